//! Typed views: what the admin API answers and the CLI prints with `--json`,
//! one shape for both. Never a value, a key or a password hash.

use serde::Serialize;
use tap_core::model::Approval;
use utoipa::ToSchema;

use crate::approval::display::RequestDisplay;
use crate::clock::rfc3339_ms;

/// One member's vote on an approval.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VoteView {
    /// Member e-mail.
    pub email: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Channel the vote came through.
    pub channel: String,
}

/// An approval as listed to members (`GET /team/approvals`, `tap pending`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    /// Transaction id (the request id).
    pub txn_id: String,
    /// Agent id.
    pub agent_id: String,
    /// Credential.
    pub credential: String,
    /// Upper-cased method.
    pub method: String,
    /// Target URL.
    pub target: String,
    /// `pending`, `approved`, `forwarded`, `denied`, `timed_out` or `error`.
    pub status: String,
    /// Why the policy asked for approval.
    pub policy_reason: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Distinct approvals so far.
    pub approvals: usize,
    /// Needed approvals.
    pub min_approvals: u32,
    /// Votes cast.
    pub votes: Vec<VoteView>,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        Self {
            txn_id: a.txn_id.clone(),
            agent_id: a.agent_id.clone(),
            credential: a.credential.clone(),
            method: a.method.clone(),
            target: a.target.clone(),
            status: a.status.public_str().to_owned(),
            policy_reason: a.policy_reason.clone(),
            created_at: rfc3339_ms(a.created_at),
            expires_at: rfc3339_ms(a.expires_at),
            approvals: a.approvers().len(),
            min_approvals: a.min_approvals,
            votes: a
                .votes
                .iter()
                .map(|v| VoteView {
                    email: v.email.clone(),
                    decision: v.decision.clone(),
                    channel: v.channel.clone(),
                })
                .collect(),
        }
    }
}

/// One approval with the whole request it would forward (`tap pending show`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApprovalDetailView {
    /// The approval.
    #[serde(flatten)]
    pub approval: ApprovalView,
    /// The request, as a human must see it before approving.
    pub request: RequestDisplay,
}

/// The result of a counted decision (`POST /team/approvals/{txn}/approve`, `tap approve`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DecidedView {
    /// Transaction id.
    pub txn_id: String,
    /// Status after the vote.
    pub status: String,
    /// Distinct approvals so far.
    pub approvals: u32,
    /// Needed approvals.
    pub min_approvals: u32,
}
