//! [`TelegramBot`]: the Telegram approval channel.
//!
//! - New approvals: one message per approval to the chat from the policy's
//!   `telegram_chat_id`, else the team's Telegram channel, else the default
//!   chat, with Approve / Deny (/ Approve for 30 min) buttons whose callback
//!   data carries a per-message nonce. The row is stored before the send, so
//!   a failed delivery is retried with backoff by [`TelegramBot::sync_once`].
//! - Clicks: the nonce is looked up by its hash, the chat must be the one the
//!   message went to, the clicker must be linked to a member; the decision
//!   goes through the injected [`Decider`] (the proxy's one gate, channel
//!   `telegram`). Anything else gets an alert and decides nothing.
//! - Outcomes: [`TelegramBot::sync_once`] reads every open message's approval
//!   from the store and edits the message when its state changed — so a
//!   decision made on the web, the terminal or another replica shows too —
//!   and removes the buttons once decided.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use tap_core::approval::{ApprovalChannel, ApprovalSummary, ChannelError, Decided, GateError};
use tap_core::crypto::sha256_hex;
use tap_core::model::{ApprovalStatus, TelegramMessage};
use tap_core::policy::Policy;
use tap_core::store::{Store, StoreError};
use tap_core::time::Clock;
use tokio::sync::Notify;

use crate::api::{ApiError, BotApi, CallbackQuery, Message, Update};
use crate::render;

/// Channel name in routes and votes.
pub const CHANNEL: &str = "telegram";
/// Seconds a long poll waits for updates.
pub const POLL_TIMEOUT_SECS: u64 = 25;
/// How often open messages are compared with their approvals.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// First retry delay of a failed delivery or edit; doubles per attempt.
pub const RETRY_BASE_MS: i64 = 1_000;
/// Longest retry delay.
pub const RETRY_MAX_MS: i64 = 60_000;
/// Most messages one sync pass handles.
pub const SYNC_BATCH: u32 = 100;
/// Longest pause of the poller after a failed poll.
pub const POLL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Store metadata key of the next update offset.
pub const OFFSET_META: &str = "telegram.update_offset";
/// Most characters of a `/link` code.
const MAX_CODE_LEN: usize = 64;

/// Mints the callback nonce of a message from what identifies it. The proxy
/// implements it with a keyed MAC, so nonces are unguessable and any replica
/// can rebuild a message's buttons for an edit or a retried delivery.
pub type NonceMinter = Arc<dyn Fn(&str, &str) -> [u8; 32] + Send + Sync>;

/// The proxy's decision gate, as the bot sees it.
#[async_trait]
pub trait Decider: Send + Sync {
    /// Approves or denies `txn_id` as `email` through the gate on channel `telegram`.
    async fn decide(&self, txn_id: &str, email: &str, approve: bool) -> Result<Decided, GateError>;
    /// Approves like [`Decider::decide`] and, when the vote counted, creates a
    /// grant for the request's method and route lasting `minutes`. Refused
    /// (nothing decided) where the policy allows no grant.
    async fn approve_with_grant(
        &self,
        txn_id: &str,
        email: &str,
        minutes: u32,
    ) -> Result<Decided, GateError>;
}

/// Settings of the bot (the token lives in the transport, not here).
#[derive(Clone, Debug, Default)]
pub struct TelegramSettings {
    /// `TELEGRAM_CHAT_ID`: the chat when neither policy nor team names one.
    pub default_chat_id: Option<String>,
    /// `webhook` or `polling`.
    pub webhook: bool,
}

/// What `tap status` and `/agent/services` say about the channel.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Health {
    /// `polling` or `webhook`.
    pub mode: &'static str,
    /// True when the last Bot API call succeeded.
    pub ok: bool,
    /// The last failure, without secrets.
    pub last_error: Option<String>,
}

/// The Telegram approval channel.
pub struct TelegramBot {
    api: BotApi,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: TelegramSettings,
    mint: NonceMinter,
    wake: Notify,
    health: Mutex<Health>,
}

impl std::fmt::Debug for TelegramBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramBot")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn backoff(attempts: u32) -> i64 {
    let shift = attempts.saturating_sub(1).min(16);
    (RETRY_BASE_MS << shift).min(RETRY_MAX_MS)
}

impl TelegramBot {
    /// A bot over `api`, reading approvals and links from `store`.
    pub fn new(
        api: BotApi,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: TelegramSettings,
        mint: NonceMinter,
    ) -> Self {
        let mode = if settings.webhook {
            "webhook"
        } else {
            "polling"
        };
        Self {
            api,
            store,
            clock,
            settings,
            mint,
            wake: Notify::new(),
            health: Mutex::new(Health {
                mode,
                ok: true,
                last_error: None,
            }),
        }
    }

    /// The Bot API client.
    pub fn api(&self) -> &BotApi {
        &self.api
    }

    /// The channel's health.
    pub fn health(&self) -> Health {
        match self.health.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn record<T>(&self, r: &Result<T, ApiError>) {
        let mut g = match self.health.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match r {
            Ok(_) => {
                g.ok = true;
                g.last_error = None;
            }
            Err(e) => {
                g.ok = false;
                g.last_error = Some(e.to_string());
            }
        }
    }

    fn nonce(&self, txn_id: &str, chat_id: &str) -> String {
        URL_SAFE_NO_PAD.encode((self.mint)(txn_id, chat_id))
    }

    async fn chat_for(
        &self,
        team: &str,
        policy: Option<&Policy>,
    ) -> Result<Option<String>, StoreError> {
        if let Some(c) = policy.and_then(|p| p.telegram_chat_id.clone()) {
            return Ok(Some(c));
        }
        if let Some(t) = self.store.team(team).await? {
            let channels = self.store.channels(t.internal_id).await?;
            let named = policy.and_then(|p| p.approval_channel.as_deref());
            let pick = channels
                .iter()
                .filter(|c| c.kind == CHANNEL)
                .find(|c| named.is_none_or(|n| n == c.name))
                .or_else(|| channels.iter().find(|c| c.kind == CHANNEL));
            if let Some(c) = pick {
                return Ok(Some(c.chat_id.clone()));
            }
        }
        Ok(self.settings.default_chat_id.clone())
    }

    /// Sends (or re-sends) an undelivered message; updates its row.
    async fn deliver(&self, m: &mut TelegramMessage, min_approvals: u32) -> Result<(), ApiError> {
        let nonce = self.nonce(&m.txn_id, &m.chat_id);
        let text = format!("{}\n\nApprovals: 0/{}", m.text, min_approvals.max(1));
        let r = self
            .api
            .send_message(
                &m.chat_id,
                &text,
                Some(&render::keyboard(
                    &nonce,
                    m.offers_grant,
                    m.approve_url.as_deref(),
                )),
            )
            .await;
        self.record(&r);
        let now = self.clock.now_ms();
        match &r {
            Ok(msg) => {
                m.message_id = Some(msg.message_id);
                m.shown = "pending:0".into();
                m.attempts = 0;
                m.next_attempt_at = now;
            }
            Err(_) => {
                m.attempts = m.attempts.saturating_add(1);
                m.next_attempt_at = now + backoff(m.attempts);
            }
        }
        if let Err(e) = self.store.update_telegram_message(m).await {
            tracing::warn!(txn = %m.txn_id, error = %e, "telegram message state not stored");
        }
        r.map(|_| ())
    }

    /// One pass over open messages: delivers what is undelivered, edits what
    /// changed, closes what is decided. Returns how many messages it touched.
    pub async fn sync_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let open = self.store.open_telegram_messages(now, SYNC_BATCH).await?;
        let mut touched = 0;
        for mut m in open {
            let Some(a) = self.store.approval(&m.txn_id).await? else {
                m.closed = true;
                self.store.update_telegram_message(&m).await?;
                continue;
            };
            let Some(message_id) = m.message_id else {
                if a.status == ApprovalStatus::Pending && a.expires_at > now {
                    touched += 1;
                    if let Err(e) = self.deliver(&mut m, a.min_approvals).await {
                        tracing::warn!(txn = %m.txn_id, attempts = m.attempts, error = %e, "telegram delivery retry failed");
                    }
                } else {
                    m.closed = true;
                    self.store.update_telegram_message(&m).await?;
                }
                continue;
            };
            let state = render::state_of(&a);
            if state == m.shown {
                continue;
            }
            touched += 1;
            let text = format!("{}\n\n{}", m.text, render::status_line(&a));
            let pending = a.status == ApprovalStatus::Pending;
            let keyboard = pending.then(|| {
                render::keyboard(
                    &self.nonce(&m.txn_id, &m.chat_id),
                    m.offers_grant,
                    m.approve_url.as_deref(),
                )
            });
            let r = self
                .api
                .edit_message_text(&m.chat_id, message_id, &text, keyboard.as_ref())
                .await;
            self.record(&r);
            match r {
                Ok(()) => {
                    m.shown = state.clone();
                    m.closed = render::is_closed_state(&state);
                    m.attempts = 0;
                    m.next_attempt_at = now;
                }
                Err(e) => {
                    tracing::warn!(txn = %m.txn_id, error = %e, "telegram message not edited");
                    m.attempts = m.attempts.saturating_add(1);
                    m.next_attempt_at = now + backoff(m.attempts);
                }
            }
            self.store.update_telegram_message(&m).await?;
        }
        Ok(touched)
    }

    /// Keeps messages in step with their approvals until the task is dropped.
    /// Runs in one process of a deployment (the proxy runs it on the replica
    /// that leads Telegram), woken by decisions made here, by changes any
    /// replica commits to a shared store, and every [`SYNC_INTERVAL`].
    pub async fn run_sync(self: Arc<Self>) {
        loop {
            let woken = self.wake.notified();
            let changed = self.store.changed();
            if let Err(e) = self.sync_once().await {
                tracing::warn!(error = %e, "telegram message sync failed");
            }
            let _ = tokio::time::timeout(SYNC_INTERVAL, async {
                tokio::select! {
                    () = woken => {},
                    () = changed => {},
                }
            })
            .await;
        }
    }

    /// Long-polls `getUpdates` and handles every update, until the task is
    /// dropped. The offset is stored, so a restart neither loses nor replays
    /// confirmed updates (a replayed click would be refused by the gate anyway).
    pub async fn run_polling(self: Arc<Self>, decider: Arc<dyn Decider>) {
        let r = self.api.delete_webhook().await;
        self.record(&r);
        if let Err(e) = r {
            tracing::warn!(error = %e, "telegram deleteWebhook failed");
        }
        let mut offset = match self.store.meta(OFFSET_META).await {
            Ok(Some(v)) => String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(0),
            _ => 0,
        };
        let mut pause = Duration::from_millis(500);
        loop {
            let r = self.api.get_updates(offset, POLL_TIMEOUT_SECS).await;
            self.record(&r);
            match r {
                Ok(updates) => {
                    pause = Duration::from_millis(500);
                    for u in updates {
                        offset = offset.max(u.update_id + 1);
                        self.handle_update(decider.as_ref(), u).await;
                    }
                    if let Err(e) = self
                        .store
                        .set_meta(OFFSET_META, offset.to_string().as_bytes())
                        .await
                    {
                        tracing::warn!(error = %e, "telegram update offset not stored");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "telegram getUpdates failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(POLL_BACKOFF_MAX);
                }
            }
        }
    }

    /// Handles one update (from long polling or the webhook).
    pub async fn handle_update(&self, decider: &dyn Decider, u: Update) {
        if let Some(q) = u.callback_query {
            let (text, alert) = self.on_callback(decider, &q).await;
            let r = self.api.answer_callback_query(&q.id, &text, alert).await;
            self.record(&r);
            if let Err(e) = r {
                tracing::warn!(error = %e, "telegram answerCallbackQuery failed");
            }
        } else if let Some(m) = u.message {
            self.on_message(&m).await;
        }
    }

    async fn on_callback(&self, decider: &dyn Decider, q: &CallbackQuery) -> (String, bool) {
        let refuse = |s: &str| (s.to_owned(), true);
        let data = q.data.as_deref().unwrap_or_default();
        let (kind, nonce) = if let Some(n) = data.strip_prefix(render::APPROVE) {
            ("approve", n)
        } else if let Some(n) = data.strip_prefix(render::DENY) {
            ("deny", n)
        } else if let Some(n) = data.strip_prefix(render::GRANT) {
            ("grant", n)
        } else {
            return refuse("This button is not valid.");
        };
        let m = match self
            .store
            .telegram_message(&sha256_hex(nonce.as_bytes()))
            .await
        {
            Ok(Some(m)) => m,
            Ok(None) => return refuse("This button is not valid."),
            Err(e) => {
                tracing::warn!(error = %e, "telegram click not resolved");
                return refuse(
                    "TAP could not read this request; try again or use the approval page.",
                );
            }
        };
        // A nonce is bound to the chat and message it was sent in.
        let same_place = q.message.as_ref().is_some_and(|msg| {
            msg.chat.id.to_string() == m.chat_id && Some(msg.message_id) == m.message_id
        });
        if !same_place {
            return refuse("This button is not valid here.");
        }
        let email = match self.store.telegram_user(q.from.id).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                tracing::info!(txn = %m.txn_id, telegram_user = q.from.id, "click by an unlinked telegram user");
                return refuse(&format!(
                    "Your Telegram account is not linked to a TAP member. Ask an admin to run: tap member link-telegram EMAIL {}",
                    q.from.id
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram user not resolved");
                return refuse("TAP could not check who you are; try again.");
            }
        };
        let r = match kind {
            "approve" if m.approve_url.is_some() => {
                return refuse("This request needs your passkey: use Approve with passkey.");
            }
            "approve" => decider.decide(&m.txn_id, &email, true).await,
            "deny" => decider.decide(&m.txn_id, &email, false).await,
            _ if !m.offers_grant => return refuse("This request cannot be approved with a grant."),
            _ => {
                decider
                    .approve_with_grant(&m.txn_id, &email, render::GRANT_MINUTES)
                    .await
            }
        };
        self.wake.notify_one();
        match r {
            Ok(d) => {
                tracing::info!(txn = %d.txn_id, member = %email, status = d.status, "telegram decision counted");
                let text = match d.status {
                    "approved" if kind == "grant" => format!(
                        "Approved; similar requests pass for {} min.",
                        render::GRANT_MINUTES
                    ),
                    "approved" => "Approved.".to_owned(),
                    "denied" => "Denied.".to_owned(),
                    _ => format!("Counted: {}/{} approvals.", d.approvals, d.min_approvals),
                };
                (text, false)
            }
            Err(GateError::Store(e)) => {
                tracing::warn!(error = %e, "telegram decision not stored");
                refuse("TAP could not record your decision; try again.")
            }
            Err(e) => {
                tracing::info!(txn = %m.txn_id, member = %email, refusal = %e, "telegram decision refused");
                refuse(&format!("Not decided: {e}."))
            }
        }
    }

    async fn on_message(&self, m: &Message) {
        let Some(text) = m.text.as_deref().map(str::trim) else {
            return;
        };
        let Some(from) = &m.from else { return };
        let chat = m.chat.id.to_string();
        let reply = if let Some(code) = text.strip_prefix("/link") {
            let code = code.trim();
            if code.is_empty() || code.len() > MAX_CODE_LEN {
                "Send /link CODE with the code from: tap member link-telegram EMAIL --code"
                    .to_owned()
            } else {
                match self
                    .store
                    .redeem_telegram_link_code(
                        &sha256_hex(code.as_bytes()),
                        from.id,
                        self.clock.now_ms(),
                    )
                    .await
                {
                    Ok(Some(email)) => {
                        tracing::info!(member = %email, telegram_user = from.id, "telegram user linked by code");
                        format!("Linked: your clicks now count as {email}.")
                    }
                    Ok(None) => "That code is unknown, used or expired.".to_owned(),
                    Err(e) => {
                        tracing::warn!(error = %e, "telegram link code not redeemed");
                        "TAP could not link you; try again.".to_owned()
                    }
                }
            }
        } else if text.starts_with("/start") {
            format!(
                "This is a TAP approval bot. Your Telegram user id is {}. Link it with /link CODE.",
                from.id
            )
        } else {
            return;
        };
        let r = self.api.send_message(&chat, &reply, None).await;
        self.record(&r);
        if let Err(e) = r {
            tracing::warn!(error = %e, "telegram reply failed");
        }
    }
}

#[async_trait]
impl ApprovalChannel for TelegramBot {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// Every approval goes to Telegram unless its policy names the web or the
    /// terminal as its channel.
    fn routes(&self, policy: Option<&Policy>) -> bool {
        !policy
            .and_then(|p| p.approval_channel.as_deref())
            .is_some_and(|c| c == "web" || c == "terminal")
    }

    fn notifies(&self) -> bool {
        true
    }

    async fn notify_new(&self, summary: &ApprovalSummary) -> Result<(), ChannelError> {
        let unreachable = |detail: String| ChannelError::Unreachable {
            channel: CHANNEL,
            detail,
        };
        let store_err = |e: StoreError| unreachable(format!("store: {e}"));
        let team = self.store.team(&summary.team).await.map_err(store_err)?;
        let policy = match &team {
            Some(t) => self
                .store
                .policy(t.internal_id, &summary.credential)
                .await
                .map_err(store_err)?,
            None => None,
        };
        let Some(chat_id) = self
            .chat_for(&summary.team, policy.as_ref())
            .await
            .map_err(store_err)?
        else {
            return Err(ChannelError::NotConfigured(CHANNEL));
        };
        let offers_grant = policy
            .as_ref()
            .is_none_or(|p| !p.require_passkey && p.min_approvals <= 1);
        let nonce = self.nonce(&summary.txn_id, &chat_id);
        let now = self.clock.now_ms();
        let mut m = TelegramMessage {
            nonce_hash: sha256_hex(nonce.as_bytes()),
            txn_id: summary.txn_id.clone(),
            chat_id,
            message_id: None,
            text: render::summary_text(summary),
            offers_grant,
            approve_url: policy
                .as_ref()
                .is_some_and(|p| p.require_passkey)
                .then(|| summary.approval_url.clone()),
            shown: String::new(),
            closed: false,
            attempts: 0,
            next_attempt_at: now + RETRY_BASE_MS,
            created_at: now,
        };
        self.store
            .create_telegram_message(&m)
            .await
            .map_err(store_err)?;
        self.deliver(&mut m, summary.min_approvals)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    async fn notify_progress(&self, _txn_id: &str, _approvals: u32, _min_approvals: u32) {
        self.wake.notify_one();
    }

    async fn notify_outcome(&self, _txn_id: &str, _status: ApprovalStatus) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        assert_eq!(backoff(1), RETRY_BASE_MS);
        assert_eq!(backoff(2), 2 * RETRY_BASE_MS);
        assert_eq!(backoff(40), RETRY_MAX_MS);
    }
}
