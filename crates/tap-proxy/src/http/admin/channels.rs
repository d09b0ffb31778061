//! Ops API: notification channels (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::clock::rfc3339_ms;
use crate::error::Reason;
use crate::state::AppState;
use crate::web::api_error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::model::Team;
use tap_core::names::validate_name;

use super::*;

fn channel_view(c: &tap_core::model::Channel) -> Value {
    json!({"name": c.name, "type": c.kind, "chat_id": c.chat_id, "created_at": rfc3339_ms(c.created_at)})
}

/// `GET /team/notification-channels`.
#[utoipa::path(
    get,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "List notification channels",
    security(("bearer" = [])),
    responses((status = 200, description = "Channels"))
)]
pub async fn list_channels(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.channels(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(channel_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct ChannelBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    chat_id: String,
}

/// Validates and stores a channel (shared by the API and the CLI).
pub async fn put_channel(
    store: &dyn tap_core::store::Store,
    team: &Team,
    name: &str,
    kind: &str,
    chat_id: &str,
) -> Result<tap_core::model::Channel, String> {
    validate_name("channel", name).map_err(|e| e.to_string())?;
    if kind != "telegram" {
        return Err(format!("unknown channel type {kind:?}: use telegram"));
    }
    let chat = chat_id.trim();
    let valid = !chat.is_empty()
        && chat.len() <= 64
        && (chat
            .strip_prefix('-')
            .unwrap_or(chat)
            .bytes()
            .all(|b| b.is_ascii_digit())
            || (chat.starts_with('@')
                && chat[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')));
    if !valid {
        return Err("chat_id must be a numeric Telegram chat id or @channelname".into());
    }
    let ch = tap_core::model::Channel {
        team_internal_id: team.internal_id,
        name: name.to_owned(),
        kind: kind.to_owned(),
        chat_id: chat.to_owned(),
        created_at: 0,
    };
    store.set_channel(&ch).await.map_err(|e| e.to_string())?;
    Ok(ch)
}

/// `POST /team/notification-channels` `{"name"?, "type": "telegram", "chat_id"}`.
#[utoipa::path(
    post,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "Add or replace a notification channel",
    request_body(content = Object, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored"), (status = 400, description = "Invalid"))
)]
pub async fn create_channel(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: ChannelBody = json_body!(body);
    let kind = b.kind.unwrap_or_else(|| "telegram".into());
    let name = b.name.unwrap_or_else(|| kind.clone());
    match put_channel(s.store.as_ref(), &c.team, &name, &kind, &b.chat_id).await {
        Ok(ch) => (StatusCode::CREATED, Json(channel_view(&ch))).into_response(),
        Err(m) => bad(m),
    }
}

/// `DELETE /team/notification-channels/{name}`.
#[utoipa::path(
    delete,
    path = "/team/notification-channels/{name}",
    tag = "channels",
    summary = "Remove a notification channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses((status = 200, description = "Removed"), (status = 404, description = "Not found"))
)]
pub async fn delete_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_channel(c.team.internal_id, &name).await {
        Ok(true) => Json(json!({"deleted": name})).into_response(),
        Ok(false) => not_found(format!("channel {name}")),
        Err(e) => store_err(e),
    }
}

/// `POST /team/notification-channels/{name}/test`: sends a test message.
#[utoipa::path(
    post,
    path = "/team/notification-channels/{name}/test",
    tag = "channels",
    summary = "Send a test message through a channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Delivered"),
        (status = 404, description = "Not found"),
        (status = 502, description = "Telegram refused or unreachable"),
        (status = 503, description = "Telegram not configured")
    )
)]
pub async fn test_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let ch = match s.store.channels(c.team.internal_id).await {
        Ok(list) => match list.into_iter().find(|x| x.name == name) {
            Some(ch) => ch,
            None => return not_found(format!("channel {name}")),
        },
        Err(e) => return store_err(e),
    };
    let text = format!(
        "TAP test message for team {} (channel {}).",
        c.team.slug, ch.name
    );
    match crate::telegram::send_message(
        &s.client,
        &s.resolver,
        &s.config.telegram,
        &ch.chat_id,
        &text,
    )
    .await
    {
        Ok(()) => Json(json!({"name": ch.name, "delivered": true})).into_response(),
        Err(crate::telegram::TelegramError::NotConfigured) => api_error(
            Reason::ChannelUnavailable,
            "Telegram is not configured: set TELEGRAM_BOT_TOKEN",
        ),
        Err(e) => api_error(Reason::ChannelError, e.to_string()),
    }
}
