//! The Telegram channel's way into the one decision gate: clicks decide
//! through [`super::decide::decide`] on channel `telegram`, like every channel.

use async_trait::async_trait;
use tap_core::approval::gate::{Decided, Decision, GateError};
use tap_core::model::{ApprovalStatus, Grant};
use tap_core::store::StoreError;

use crate::state::AppState;

/// Channel name of Telegram votes.
pub const CHANNEL: &str = "telegram";

/// The gate as tap-bot sees it.
#[derive(Clone, Debug)]
pub struct GateDecider {
    state: AppState,
}

impl GateDecider {
    /// A decider over the proxy's state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn counted(&self, d: &Decided) {
        if d.status == ApprovalStatus::Pending.public_str() {
            self.state.broker.notify_progress(d).await;
        }
        self.state.broker.changed.notify_waiters();
    }
}

#[async_trait]
impl tap_bot::Decider for GateDecider {
    async fn decide(&self, txn_id: &str, email: &str, approve: bool) -> Result<Decided, GateError> {
        let d = super::decide::decide(
            self.state.store.as_ref(),
            self.state.clock.as_ref(),
            Decision {
                txn_id,
                email,
                approve,
                channel: CHANNEL,
                passkey: None,
            },
        )
        .await?;
        self.counted(&d).await;
        Ok(d)
    }

    /// "Approve for 30 min" (SPEC §15): a grant for the request's method and
    /// exact normalised path, no use limit; never for `require_passkey` or
    /// `min_approvals` above 1 (grants do not apply there).
    async fn approve_with_grant(
        &self,
        txn_id: &str,
        email: &str,
        minutes: u32,
    ) -> Result<Decided, GateError> {
        let store = self.state.store.as_ref();
        let a = store
            .approval(txn_id)
            .await?
            .ok_or_else(|| GateError::NotFound(txn_id.to_owned()))?;
        let policy = store.policy(a.team_internal_id, &a.credential).await?;
        if policy.as_ref().is_some_and(|p| p.require_passkey) {
            return Err(GateError::PasskeyRequired);
        }
        if policy.as_ref().is_some_and(|p| p.min_approvals > 1) {
            return Err(GateError::NotEligible(format!(
                "{email} (grants do not apply where several approvals are needed)"
            )));
        }
        let path = url::Url::parse(&a.target)
            .map(|u| u.path().to_owned())
            .map_err(|_| GateError::Store(StoreError::Corrupt(format!("target of {txn_id}"))))?;
        let d = tap_bot::Decider::decide(self, txn_id, email, true).await?;
        let id = crate::ops::grants::new_grant_id()
            .map_err(|e| GateError::Store(StoreError::Unavailable(e.to_string())))?;
        let now = self.state.clock.now_secs();
        let grant = Grant {
            id,
            team_internal_id: a.team_internal_id,
            credential: a.credential.clone(),
            methods: vec![a.method.clone()],
            route_scope: path,
            expires_at: now + i64::from(minutes) * 60,
            max_uses: None,
            uses: 0,
            created_by: email.trim().to_ascii_lowercase(),
            created_at: 0,
            revoked_at: None,
        };
        store.create_grant(&grant).await?;
        tracing::info!(txn = %txn_id, grant = %grant.id, credential = %grant.credential, member = %grant.created_by, "grant created from telegram");
        Ok(d)
    }
}

/// The Telegram channel of this deployment: `None` without `TELEGRAM_BOT_TOKEN`.
/// Callback nonces are the keyed MAC (under the deployment's MAC key) of the
/// txn id and chat, so they are unguessable and every replica can rebuild them.
pub fn bot(
    config: &crate::config::ProxyConfig,
    client: reqwest::Client,
    resolver: std::sync::Arc<crate::outbound::GuardedResolver>,
    store: std::sync::Arc<dyn tap_core::store::Store>,
    clock: std::sync::Arc<dyn tap_core::time::Clock>,
    keys: std::sync::Arc<crate::keyring::Keyring>,
) -> Option<std::sync::Arc<tap_bot::TelegramBot>> {
    let transport = crate::telegram::GuardedTransport::new(client, resolver, &config.telegram)?;
    let mint: tap_bot::bot::NonceMinter = std::sync::Arc::new(move |txn: &str, chat: &str| {
        let hex_mac = keys
            .mac()
            .digest_bytes(format!("tap-bot callback nonce\0{txn}\0{chat}").as_bytes());
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = hex_mac
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or_default();
        }
        out
    });
    Some(std::sync::Arc::new(tap_bot::TelegramBot::new(
        tap_bot::BotApi::new(std::sync::Arc::new(transport)),
        store,
        clock,
        tap_bot::TelegramSettings {
            default_chat_id: config.telegram.default_chat_id.clone(),
            webhook: config.telegram.webhook,
        },
        mint,
    )))
}

/// Starts the bot's background work: message sync and long polling on the one
/// replica that leads (or, in webhook mode, registering the webhook when
/// `TAP_PUBLIC_URL` is set, and message sync on the leader).
pub fn start(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(bot) = state.telegram.clone() else {
        return Vec::new();
    };
    let mut tasks = Vec::new();
    if state.config.telegram.webhook {
        let public = state.config.public_url.clone();
        let secret = state
            .config
            .telegram
            .webhook_secret
            .as_ref()
            .map(|s| String::from_utf8_lossy(s.expose()).into_owned());
        tasks.push(tokio::spawn(work_while_leading(
            state.clone(),
            std::sync::Arc::clone(&bot),
            None,
        )));
        if let (Some(public), Some(secret)) = (public, secret) {
            tasks.push(tokio::spawn(async move {
                let url = format!("{}/telegram/webhook", public.trim_end_matches('/'));
                if let Err(e) = bot.api().set_webhook(&url, &secret).await {
                    tracing::warn!(error = %e, "telegram setWebhook failed");
                }
            }));
        }
    } else {
        let decider: std::sync::Arc<dyn tap_bot::Decider> =
            std::sync::Arc::new(GateDecider::new(state.clone()));
        tasks.push(tokio::spawn(work_while_leading(
            state.clone(),
            bot,
            Some(decider),
        )));
    }
    tasks
}

/// The deployment-wide role of the one process that long-polls Telegram and
/// edits its messages.
const POLL_ROLE: &str = "telegram-poll";
/// How often a replica checks that it still leads, or tries to take over.
const LEAD_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Long-polls (with `decider`; webhook mode has none) and keeps the messages
/// in step with their approvals only while this process leads [`POLL_ROLE`]
/// (SPEC §11: with several replicas exactly one polls; another takes over
/// within seconds when it dies). One process edits, so a decision is not
/// shown twice by replicas racing to edit the same message, and a failed
/// delivery is retried once, not once per replica. A decision made on another
/// replica reaches the leader's sync through the store's change wake-up (or
/// its next pass). On SQLite the one proxy always leads.
async fn work_while_leading(
    state: AppState,
    bot: std::sync::Arc<tap_bot::TelegramBot>,
    decider: Option<std::sync::Arc<dyn tap_bot::Decider>>,
) {
    loop {
        match state.store.lead(POLL_ROLE).await {
            Ok(true) => {
                let sync = std::sync::Arc::clone(&bot).run_sync();
                let work = async {
                    match &decider {
                        Some(d) => {
                            tracing::info!("this replica polls Telegram");
                            let polling =
                                std::sync::Arc::clone(&bot).run_polling(std::sync::Arc::clone(d));
                            tokio::join!(sync, polling);
                        }
                        None => {
                            tracing::info!("this replica edits Telegram messages");
                            sync.await;
                        }
                    }
                };
                let lost = async {
                    loop {
                        tokio::time::sleep(LEAD_CHECK).await;
                        if !matches!(state.store.lead(POLL_ROLE).await, Ok(true)) {
                            break;
                        }
                    }
                };
                tokio::select! {
                    () = work => {},
                    () = lost => tracing::warn!("lost the Telegram polling role"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not check the Telegram polling role"),
        }
        tokio::time::sleep(LEAD_CHECK).await;
    }
}

/// `POST /telegram/webhook`: only in webhook mode, only with the right
/// `X-Telegram-Bot-Api-Secret-Token` (compared in constant time).
pub async fn webhook(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    use crate::error::{ProxyError, Reason};
    let (Some(bot), Some(secret), true) = (
        state.telegram.as_ref(),
        state.config.telegram.webhook_secret.as_ref(),
        state.config.telegram.webhook,
    ) else {
        return ProxyError::new(Reason::NotFound, "no Telegram webhook here").into_response();
    };
    let presented = headers
        .get("x-telegram-bot-api-secret-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !tap_core::crypto::ct_eq(presented, secret.expose()) {
        tracing::warn!("telegram webhook update with a wrong secret refused");
        return ProxyError::new(Reason::Unauthorized, "wrong or missing webhook secret")
            .into_response();
    }
    let Ok(update) = serde_json::from_slice::<tap_bot::api::Update>(&body) else {
        return ProxyError::new(Reason::InvalidRequest, "not a Telegram update").into_response();
    };
    bot.handle_update(&GateDecider::new(state.clone()), update)
        .await;
    axum::Json(serde_json::json!({})).into_response()
}
