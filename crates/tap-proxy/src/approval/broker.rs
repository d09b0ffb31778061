//! The broker: approval coordination inside one proxy, built from the list of
//! configured channels (routing, notifications, outcome announcements).

use std::sync::Arc;

use tap_core::approval::gate::Decided;
use tap_core::approval::{ApprovalChannel, ApprovalSummary};
use tap_core::model::ApprovalStatus;
use tap_core::policy::Policy;
use tokio::sync::Notify;

/// The web channel: the `/approve/{txn}` page is always there; nothing to send.
#[derive(Debug)]
pub struct WebChannel;

impl ApprovalChannel for WebChannel {
    fn name(&self) -> &'static str {
        "web"
    }
}

/// The terminal channel: `tap pending` and `tap approve` read the store; nothing to send.
#[derive(Debug)]
pub struct TerminalChannel;

impl ApprovalChannel for TerminalChannel {
    fn name(&self) -> &'static str {
        "terminal"
    }
}

/// The passkey channel: the approval page's WebAuthn ceremony, for approvals
/// whose policy requires a passkey (configured by `TAP_WEBAUTHN_*`).
#[derive(Debug)]
pub struct PasskeyChannel;

impl ApprovalChannel for PasskeyChannel {
    fn name(&self) -> &'static str {
        "passkey"
    }

    fn routes(&self, policy: Option<&Policy>) -> bool {
        policy.is_some_and(|p| p.require_passkey)
    }
}

/// Approval coordination inside one proxy, built from the configured channels.
pub struct Broker {
    /// Woken whenever an approval changes here.
    pub changed: Notify,
    channels: Vec<Arc<dyn ApprovalChannel>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("channels", &self.names(None))
            .finish()
    }
}

impl Default for Broker {
    /// Web and terminal: the channels every deployment has.
    fn default() -> Self {
        Self::new(vec![Arc::new(WebChannel), Arc::new(TerminalChannel)])
    }
}

impl Broker {
    /// A broker over `channels` (web and terminal first, then the configured ones).
    pub fn new(channels: Vec<Arc<dyn ApprovalChannel>>) -> Self {
        Self {
            changed: Notify::new(),
            channels,
        }
    }

    /// Web, terminal and, when configured, Telegram and passkeys.
    pub fn with_channels(telegram: Option<Arc<tap_bot::TelegramBot>>, passkeys: bool) -> Self {
        let mut channels: Vec<Arc<dyn ApprovalChannel>> =
            vec![Arc::new(WebChannel), Arc::new(TerminalChannel)];
        if let Some(t) = telegram {
            channels.push(t);
        }
        if passkeys {
            channels.push(Arc::new(PasskeyChannel));
        }
        Self::new(channels)
    }

    /// The channels an approval under `policy` is routed to.
    pub fn route(&self, policy: Option<&Policy>) -> Vec<&Arc<dyn ApprovalChannel>> {
        self.channels.iter().filter(|c| c.routes(policy)).collect()
    }

    /// Names of the channels an approval under `policy` is routed to; all when `None`.
    pub fn names(&self, policy: Option<&Policy>) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| policy.is_none() || c.routes(policy))
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// The channel named to the agent as `notification_channel`: the first
    /// routed channel that pushes notifications, else the web page.
    pub fn notification_channel(&self, policy: Option<&Policy>) -> &'static str {
        self.route(policy)
            .into_iter()
            .find(|c| c.notifies())
            .map_or("web", |c| c.name())
    }

    /// Asks every routed channel for a decision; failures are logged, never fatal
    /// (the web page always works). Returns the `notification_channel` to name
    /// (the first notifying channel that delivered, else `web`) and, when a
    /// notifying channel failed, a `notice` for the agent.
    pub async fn notify_new(
        &self,
        policy: Option<&Policy>,
        summary: &ApprovalSummary,
    ) -> (&'static str, Option<String>) {
        let mut named = None;
        let mut failed = Vec::new();
        for ch in self.route(policy) {
            match ch.notify_new(summary).await {
                Ok(()) if ch.notifies() => {
                    named.get_or_insert(ch.name());
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(channel = ch.name(), error = %e, "approval request could not be sent");
                    if ch.notifies() {
                        failed.push(ch.name());
                    }
                }
            }
        }
        let notice = (!failed.is_empty()).then(|| {
            format!(
                "The {} notification could not be sent (it is retried); the request stays pending and can be approved at approval_url or with tap approve.",
                failed.join(", ")
            )
        });
        (named.unwrap_or("web"), notice)
    }

    /// Announces a counted vote that did not end the approval.
    pub async fn notify_progress(&self, d: &Decided) {
        for ch in &self.channels {
            ch.notify_progress(&d.txn_id, d.approvals, d.min_approvals)
                .await;
        }
    }

    /// Announces an outcome to every channel and wakes local waiters.
    pub async fn notify_outcome(&self, txn_id: &str, status: ApprovalStatus) {
        for ch in &self.channels {
            ch.notify_outcome(txn_id, status).await;
        }
        self.changed.notify_waiters();
    }
}
