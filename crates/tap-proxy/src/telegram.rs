//! A small typed Telegram Bot API client on the proxy's guarded HTTP client.
//!
//! `TELEGRAM_API_URL` is the Bot API base (tests point it at loopback); the
//! client calls `<base>/bot<token>/<method>`. The token is a secret: it never
//! appears in logs or errors (the URL holding it is stripped from every error).

use serde_json::{Value, json};
use tap_core::target::{AllowedHosts, TargetUrl};

use crate::config::TelegramConfig;
use crate::outbound::GuardedResolver;

/// Why a Telegram call failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// `TELEGRAM_BOT_TOKEN` is not set.
    #[error("Telegram is not configured: set TELEGRAM_BOT_TOKEN")]
    NotConfigured,
    /// The API base is not usable or not allowed by the outbound rule.
    #[error("Telegram API URL refused: {0}")]
    Refused(String),
    /// The network call failed.
    #[error("Telegram unreachable: {0}")]
    Unreachable(String),
    /// The Bot API answered `ok: false`.
    #[error("Telegram refused the message: {0}")]
    Api(String),
}

/// Sends a message; the destination passes the same outbound rule as any target.
pub async fn send_message(
    client: &reqwest::Client,
    resolver: &GuardedResolver,
    cfg: &TelegramConfig,
    chat_id: &str,
    text: &str,
) -> Result<(), TelegramError> {
    let token = cfg.token.as_ref().ok_or(TelegramError::NotConfigured)?;
    let base = TargetUrl::parse(cfg.api_url.trim_end_matches('/'))
        .map_err(|e| TelegramError::Refused(e.to_string()))?;
    // IP literals are never looked up, so the rule is applied here; names are
    // checked by the client's guarded resolver at connect time.
    if let Some(ip) = base.ip() {
        let none = AllowedHosts::List(Vec::new());
        if !resolver.rule().permits(base.host_str(), ip, &none) {
            return Err(TelegramError::Refused(format!(
                "{} is a private address; list it in TAP_PRIVATE_ALLOWLIST",
                base.host_str()
            )));
        }
    } else if let Err(e) = resolver.resolve(base.host_str(), base.port()).await {
        return Err(TelegramError::Refused(e.to_string()));
    }
    let token = String::from_utf8_lossy(token.expose()).into_owned();
    let url = format!(
        "{}/bot{token}/sendMessage",
        base.as_str().trim_end_matches('/')
    );
    let resp = client
        .post(url)
        .json(&json!({"chat_id": chat_id, "text": text}))
        .send()
        .await
        .map_err(|e| TelegramError::Unreachable(e.without_url().to_string()))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| TelegramError::Unreachable(e.without_url().to_string()))?;
    if status.is_success() && body["ok"] == true {
        Ok(())
    } else {
        let desc = body["description"].as_str().unwrap_or("no description");
        Err(TelegramError::Api(
            desc.replace(&token, "[REDACTED:telegram_bot_token]"),
        ))
    }
}

/// The Bot API transport of the Telegram channel: the proxy's guarded client,
/// the same outbound rule as any target, and the bot token, which stays here
/// (tap-bot never sees it) and is stripped from every error.
pub struct GuardedTransport {
    client: reqwest::Client,
    resolver: std::sync::Arc<GuardedResolver>,
    api_url: String,
    token: tap_core::secret::Secret,
}

impl std::fmt::Debug for GuardedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedTransport")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl GuardedTransport {
    /// A transport for `cfg`; `None` when no bot token is set.
    pub fn new(
        client: reqwest::Client,
        resolver: std::sync::Arc<GuardedResolver>,
        cfg: &TelegramConfig,
    ) -> Option<Self> {
        Some(Self {
            client,
            resolver,
            api_url: cfg.api_url.trim_end_matches('/').to_owned(),
            token: cfg.token.clone()?,
        })
    }

    fn redact(&self, s: &str) -> String {
        let token = String::from_utf8_lossy(self.token.expose());
        s.replace(token.as_ref(), "[REDACTED:telegram_bot_token]")
    }
}

#[async_trait::async_trait]
impl tap_bot::Transport for GuardedTransport {
    async fn call(
        &self,
        method: &'static str,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<(u16, Vec<u8>), tap_bot::TransportError> {
        use tap_bot::TransportError as E;
        let base = TargetUrl::parse(&self.api_url).map_err(|e| E::Refused(e.to_string()))?;
        if let Some(ip) = base.ip() {
            let none = AllowedHosts::List(Vec::new());
            if !self.resolver.rule().permits(base.host_str(), ip, &none) {
                return Err(E::Refused(format!(
                    "{} is a private address; list it in TAP_PRIVATE_ALLOWLIST",
                    base.host_str()
                )));
            }
        }
        let token = String::from_utf8_lossy(self.token.expose()).into_owned();
        let url = format!(
            "{}/bot{token}/{method}",
            base.as_str().trim_end_matches('/')
        );
        let resp = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| E::Unreachable(self.redact(&e.without_url().to_string())))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| E::Unreachable(self.redact(&e.without_url().to_string())))?;
        Ok((
            status,
            self.redact(&String::from_utf8_lossy(&bytes)).into_bytes(),
        ))
    }
}
