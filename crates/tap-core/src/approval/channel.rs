//! The approval-channel seam: a place where humans are asked and decide.

use async_trait::async_trait;
use serde::Serialize;

use crate::model::ApprovalStatus;
use crate::policy::Policy;

/// A summary of an approval for humans and channels.
///
/// Invariant: holds no secret — the body preview is scrubbed of every team
/// secret before a summary is built.
#[derive(Clone, Debug, Serialize)]
pub struct ApprovalSummary {
    /// Transaction id.
    pub txn_id: String,
    /// Team slug.
    pub team: String,
    /// Agent id.
    pub agent_id: String,
    /// Credential.
    pub credential: String,
    /// Upper-cased method.
    pub method: String,
    /// Full target URL.
    pub target: String,
    /// Body preview, cut on a character boundary, scrubbed of team secrets.
    pub body_preview: String,
    /// Link to the approval page.
    pub approval_url: String,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// Why a channel could not deliver. Never carries a secret (bot tokens included).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The channel is not configured in this deployment.
    #[error("the {0} channel is not configured")]
    NotConfigured(&'static str),
    /// The channel's service could not be reached or refused the message.
    #[error("the {channel} channel could not deliver: {detail}")]
    Unreachable {
        /// Channel name.
        channel: &'static str,
        /// What went wrong, without secrets.
        detail: String,
    },
}

/// A place where humans are asked and decide. Decisions come back through
/// [`crate::approval::gate::decide`], never around it.
#[async_trait]
pub trait ApprovalChannel: Send + Sync + std::fmt::Debug {
    /// Channel name as stored in routes and votes (`web`, `terminal`, `telegram`).
    fn name(&self) -> &'static str;

    /// Whether approvals under `policy` are routed to this channel. Always-on
    /// channels (web, terminal) answer true for every policy.
    fn routes(&self, policy: Option<&Policy>) -> bool {
        let _ = policy;
        true
    }

    /// Whether this channel pushes notifications to humans (it is then named as
    /// the request's `notification_channel`); the web page and the terminal wait
    /// to be looked at.
    fn notifies(&self) -> bool {
        false
    }

    /// Asks humans for a decision on a new approval.
    async fn notify_new(&self, summary: &ApprovalSummary) -> Result<(), ChannelError> {
        let _ = summary;
        Ok(())
    }

    /// Announces that a vote was counted and more are needed.
    async fn notify_progress(&self, txn_id: &str, approvals: u32, min_approvals: u32) {
        let _ = (txn_id, approvals, min_approvals);
    }

    /// Announces the final outcome.
    async fn notify_outcome(&self, txn_id: &str, status: ApprovalStatus) {
        let _ = (txn_id, status);
    }
}
