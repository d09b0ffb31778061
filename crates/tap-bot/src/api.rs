//! A small typed Bot API client: the methods TAP calls, nothing more.
//!
//! Why not teloxide or frankenstein: teloxide pulls a second HTTP/TLS stack
//! (reqwest 0.12 with OpenSSL) and its own runtime model; both frameworks
//! would bypass the proxy's guarded resolver. Eight methods with a dozen
//! fields are cheaper to type by hand than to audit as a dependency.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Most bytes of a Bot API description echoed in an error.
const MAX_DESCRIPTION: usize = 200;
/// Time bound of an ordinary call (everything but long polling).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time a long poll's HTTP call gets beyond its `timeout` parameter.
pub const POLL_GRACE: Duration = Duration::from_secs(10);

/// Why the transport failed. Never carries the bot token or a URL holding it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The destination is not allowed (outbound rule) or not usable.
    #[error("Telegram API refused by the outbound rule: {0}")]
    Refused(String),
    /// The network call failed or timed out.
    #[error("Telegram unreachable: {0}")]
    Unreachable(String),
}

/// Sends one Bot API call: `POST <base>/bot<token>/<method>` with a JSON body.
/// The implementation owns the token and the base URL.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Calls `method` with `body`, bounded by `timeout`; returns the HTTP
    /// status and the answer's body.
    async fn call(
        &self,
        method: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), TransportError>;
}

/// Why a Bot API call failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The Bot API answered `ok: false`.
    #[error("Telegram refused {method}: {description}")]
    Api {
        /// Method called.
        method: &'static str,
        /// Telegram's description, clipped.
        description: String,
    },
    /// The answer was not the documented shape.
    #[error("Telegram answered {method} with an unexpected body")]
    Shape {
        /// Method called.
        method: &'static str,
    },
}

/// A Telegram user.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Bot or not.
    #[serde(default)]
    pub is_bot: bool,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Username.
    #[serde(default)]
    pub username: Option<String>,
}

/// A chat.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Chat {
    /// Chat id.
    pub id: i64,
}

/// A message.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Message {
    /// Message id in its chat.
    pub message_id: i64,
    /// The chat.
    pub chat: Chat,
    /// Sender.
    #[serde(default)]
    pub from: Option<User>,
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
}

/// A button press.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct CallbackQuery {
    /// Query id, answered with `answerCallbackQuery`.
    pub id: String,
    /// Who pressed.
    pub from: User,
    /// The message the button was on.
    #[serde(default)]
    pub message: Option<Message>,
    /// The button's callback data.
    #[serde(default)]
    pub data: Option<String>,
}

/// One update.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Update {
    /// Update id (the offset of the next poll is the last id plus one).
    pub update_id: i64,
    /// A new message.
    #[serde(default)]
    pub message: Option<Message>,
    /// A button press.
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

/// One inline button.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InlineKeyboardButton {
    /// Label.
    pub text: String,
    /// Callback data (at most 64 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// A link instead of a callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Buttons under a message, by row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct InlineKeyboardMarkup {
    /// Rows of buttons.
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    description: Option<String>,
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_DESCRIPTION) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// The Bot API over an injected transport.
#[derive(Clone, Debug)]
pub struct BotApi {
    transport: Arc<dyn Transport>,
}

impl BotApi {
    /// A client sending through `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::Shape { method })?;
        let (_status, answer) = self.transport.call(method, bytes, timeout).await?;
        let a: Answer<T> =
            serde_json::from_slice(&answer).map_err(|_| ApiError::Shape { method })?;
        if !a.ok {
            return Err(ApiError::Api {
                method,
                description: clip(a.description.as_deref().unwrap_or("no description")),
            });
        }
        a.result.ok_or(ApiError::Shape { method })
    }

    /// `getMe`: the bot itself (a cheap health check).
    pub async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", json!({}), CALL_TIMEOUT).await
    }

    /// `getUpdates` with long polling: waits up to `timeout_secs` for updates
    /// from `offset` on (earlier ones are confirmed and dropped by Telegram).
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_secs: u64,
    ) -> Result<Vec<Update>, ApiError> {
        self.call(
            "getUpdates",
            json!({
                "offset": offset,
                "timeout": timeout_secs,
                "allowed_updates": ["message", "callback_query"],
            }),
            Duration::from_secs(timeout_secs) + POLL_GRACE,
        )
        .await
    }

    /// `sendMessage` as plain text (no parse mode: nothing in a request body
    /// can turn into markup), with optional inline buttons.
    pub async fn send_message(
        &self,
        chat_id: &str,
        text: &str,
        markup: Option<&InlineKeyboardMarkup>,
    ) -> Result<Message, ApiError> {
        let mut body = json!({
            "chat_id": chat_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(m) = markup {
            body["reply_markup"] = json!(m);
        }
        self.call("sendMessage", body, CALL_TIMEOUT).await
    }

    /// `editMessageText`; without `markup` the inline buttons are removed.
    pub async fn edit_message_text(
        &self,
        chat_id: &str,
        message_id: i64,
        text: &str,
        markup: Option<&InlineKeyboardMarkup>,
    ) -> Result<(), ApiError> {
        let mut body = json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(m) = markup {
            body["reply_markup"] = json!(m);
        }
        // The result is the edited Message (or `true` for inline messages).
        let _: serde_json::Value = self.call("editMessageText", body, CALL_TIMEOUT).await?;
        Ok(())
    }

    /// `editMessageReplyMarkup` with an empty keyboard: removes the buttons.
    pub async fn remove_buttons(&self, chat_id: &str, message_id: i64) -> Result<(), ApiError> {
        let _: serde_json::Value = self
            .call(
                "editMessageReplyMarkup",
                json!({"chat_id": chat_id, "message_id": message_id, "reply_markup": {"inline_keyboard": []}}),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(())
    }

    /// `answerCallbackQuery`: a toast, or an alert the user must dismiss.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: &str,
        show_alert: bool,
    ) -> Result<(), ApiError> {
        let _: bool = self
            .call(
                "answerCallbackQuery",
                json!({"callback_query_id": callback_query_id, "text": text, "show_alert": show_alert}),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(())
    }

    /// `setWebhook` with a secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`.
    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), ApiError> {
        let _: bool = self
            .call(
                "setWebhook",
                json!({"url": url, "secret_token": secret_token, "allowed_updates": ["message", "callback_query"]}),
                CALL_TIMEOUT,
            )
            .await?;
        Ok(())
    }

    /// `deleteWebhook` (long polling is refused while a webhook is set).
    pub async fn delete_webhook(&self) -> Result<(), ApiError> {
        let _: bool = self.call("deleteWebhook", json!({}), CALL_TIMEOUT).await?;
        Ok(())
    }
}
