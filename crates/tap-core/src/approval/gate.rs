//! The one decision gate (SPEC §11): every channel's decision passes here.
//!
//! It checks, in order: the approval exists and the decider is a member of its
//! team (else it does not exist for them), it is pending, the channel is one
//! the request was routed to, the decider is eligible (owner/admin, or an
//! approver assigned the credential; within `allowed_approvers` when set — an
//! empty list means nobody; for an approval naming several credentials, all
//! of this for every one of them), a `require_passkey` approval carries a
//! [`PasskeyProof`] for this very request and decider, and the decider has not
//! counted before (the store's atomic vote).

use serde::Serialize;

use crate::model::{Approval, ApprovalStatus, Member, MemberRole};
use crate::policy::Policy;
use crate::store::{Store, StoreError, VoteOutcome};
use crate::time::Clock;

/// Proof that a member completed a fresh passkey assertion for one request.
///
/// Invariant: only the passkey channel constructs one, after verifying a
/// WebAuthn assertion whose challenge was bound to the request hash; the gate
/// accepts it only for the same transaction, member and request hash. It is
/// a type, not a flag, so "passkey verified" cannot be claimed by passing
/// `true`.
#[derive(Debug)]
pub struct PasskeyProof {
    txn_id: String,
    email: String,
    request_hash: String,
}

impl PasskeyProof {
    /// Records a verified assertion. Call only from the passkey channel, after
    /// the WebAuthn ceremony for `txn_id` (challenge bound to `request_hash`)
    /// succeeded for `email`.
    pub fn from_verified_assertion(txn_id: &str, email: &str, request_hash: &str) -> Self {
        Self {
            txn_id: txn_id.to_owned(),
            email: email.trim().to_ascii_lowercase(),
            request_hash: request_hash.to_owned(),
        }
    }

    fn covers(&self, a: &Approval, email: &str) -> bool {
        self.txn_id == a.txn_id
            && self.email == email
            && crate::crypto::ct_eq(self.request_hash.as_bytes(), a.request_hash.as_bytes())
    }
}

/// One member's decision, as a channel hands it to the gate.
#[derive(Debug)]
pub struct Decision<'a> {
    /// Transaction id.
    pub txn_id: &'a str,
    /// The deciding member's e-mail (any case).
    pub email: &'a str,
    /// Approve (true) or deny (false).
    pub approve: bool,
    /// Channel the decision came through.
    pub channel: &'a str,
    /// A passkey assertion for this request, from the passkey channel.
    pub passkey: Option<&'a PasskeyProof>,
}

/// Why the gate refused a decision. Messages name members and ids, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// No such approval (or the decider is not in its team).
    #[error("approval {0} not found")]
    NotFound(String),
    /// Already decided or expired.
    #[error("approval is {0}, not pending")]
    NotPending(&'static str),
    /// The member may not decide this request.
    #[error("{0} may not decide this request")]
    NotEligible(String),
    /// The member already voted.
    #[error("{0} has already decided this request")]
    AlreadyVoted(String),
    /// The channel was not one the request was routed to.
    #[error("this request was not routed to the {0} channel")]
    NotRouted(String),
    /// The policy needs a passkey assertion for this request.
    #[error("this credential needs a passkey approval")]
    PasskeyRequired,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a counted decision.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Decided {
    /// Transaction id.
    pub txn_id: String,
    /// Status after the vote (`pending`, `approved` or `denied`).
    pub status: &'static str,
    /// Distinct approvals so far.
    pub approvals: u32,
    /// Needed approvals.
    pub min_approvals: u32,
}

impl Decided {
    /// True when this vote ended the approval as denied.
    pub fn denied(&self) -> bool {
        self.status == ApprovalStatus::Denied.public_str()
    }
}

/// Members who may decide a request on `credential`: owners and admins, and
/// approvers assigned the credential; restricted to `allowed_approvers` when
/// the policy sets it (an empty list means nobody).
pub fn eligible_approvers(
    members: &[Member],
    credential: &str,
    policy: Option<&Policy>,
) -> Vec<String> {
    members
        .iter()
        .filter(|m| match m.role {
            MemberRole::Owner | MemberRole::Admin => true,
            MemberRole::Approver => m.credentials.iter().any(|c| c == credential),
            MemberRole::Viewer => false,
        })
        .filter(
            |m| match policy.and_then(|p| p.allowed_approvers.as_ref()) {
                None => true,
                Some(list) => list.iter().any(|a| a.trim().eq_ignore_ascii_case(&m.email)),
            },
        )
        .map(|m| m.email.clone())
        .collect()
}

/// Members who may decide a request on every one of `credentials` (each with
/// its policy): the intersection of [`eligible_approvers`] over them. A
/// legacy placeholder request referencing several credentials is decided only
/// by members eligible for all of them (SPEC §3.2, §15). Empty input: nobody.
pub fn eligible_for_all(
    members: &[Member],
    credentials: &[(&str, Option<&Policy>)],
) -> Vec<String> {
    let Some(((first, first_policy), rest)) = credentials.split_first() else {
        return Vec::new();
    };
    let mut out = eligible_approvers(members, first, *first_policy);
    for (credential, policy) in rest {
        let eligible = eligible_approvers(members, credential, *policy);
        out.retain(|e| eligible.contains(e));
    }
    out
}

/// The pure part of the gate: may `email` cast `d` on `a` at `now_ms`?
///
/// `policies` holds the current policy of each credential of
/// [`Approval::credential_names`], in that order. `email` is already
/// lower-cased. Distinctness is left to the store's atomic vote; everything
/// else is decided here.
pub fn check(
    a: &Approval,
    members: &[Member],
    policies: &[Option<&Policy>],
    email: &str,
    d: &Decision<'_>,
    now_ms: i64,
) -> Result<(), GateError> {
    if !members.iter().any(|m| m.email == email) {
        // Someone outside the team cannot even learn that the transaction exists.
        return Err(GateError::NotFound(a.txn_id.clone()));
    }
    if a.status != ApprovalStatus::Pending {
        return Err(GateError::NotPending(a.status.public_str()));
    }
    if a.expires_at <= now_ms {
        // Expired but not yet swept by an executor: as final as `timed_out`.
        return Err(GateError::NotPending(ApprovalStatus::TimedOut.public_str()));
    }
    if !a.channels.iter().any(|c| c == d.channel) {
        return Err(GateError::NotRouted(d.channel.to_owned()));
    }
    let credentials: Vec<(&str, Option<&Policy>)> = a
        .credential_names()
        .zip(policies.iter().copied().chain(std::iter::repeat(None)))
        .collect();
    if !eligible_for_all(members, &credentials)
        .iter()
        .any(|e| e == email)
    {
        return Err(GateError::NotEligible(email.to_owned()));
    }
    if d.approve
        && policies.iter().flatten().any(|p| p.require_passkey)
        && !d.passkey.is_some_and(|p| p.covers(a, email))
    {
        return Err(GateError::PasskeyRequired);
    }
    Ok(())
}

/// The current policy of each credential the approval names, in the order of
/// [`Approval::credential_names`].
pub async fn approval_policies(
    store: &dyn Store,
    a: &Approval,
) -> Result<Vec<Option<Policy>>, StoreError> {
    let mut out = Vec::new();
    for name in a.credential_names() {
        out.push(store.policy(a.team_internal_id, name).await?);
    }
    Ok(out)
}

/// Members who may decide `a` now: eligible for every credential it names.
pub async fn approval_eligible(
    store: &dyn Store,
    a: &Approval,
    members: &[Member],
) -> Result<Vec<String>, StoreError> {
    let policies = approval_policies(store, a).await?;
    let credentials: Vec<(&str, Option<&Policy>)> = a
        .credential_names()
        .zip(policies.iter().map(Option::as_ref))
        .collect();
    Ok(eligible_for_all(members, &credentials))
}

/// Checks a decision and, when it passes, counts it atomically in the store.
pub async fn decide(
    store: &dyn Store,
    clock: &dyn Clock,
    d: Decision<'_>,
) -> Result<Decided, GateError> {
    let email = d.email.trim().to_ascii_lowercase();
    let a = store
        .approval(d.txn_id)
        .await?
        .ok_or_else(|| GateError::NotFound(d.txn_id.to_owned()))?;
    let members = store.members(a.team_internal_id).await?;
    let policies = approval_policies(store, &a).await?;
    let refs: Vec<Option<&Policy>> = policies.iter().map(Option::as_ref).collect();
    let now = clock.now_ms();
    check(&a, &members, &refs, &email, &d, now)?;
    // Earlier votes count only while their members are still eligible.
    let credentials: Vec<(&str, Option<&Policy>)> =
        a.credential_names().zip(refs.iter().copied()).collect();
    let eligible = eligible_for_all(&members, &credentials);
    let counted: Vec<&str> = eligible.iter().map(String::as_str).collect();
    match store
        .vote(d.txn_id, &email, d.approve, d.channel, now, &counted)
        .await?
    {
        VoteOutcome::Counted { status, approvals } => Ok(Decided {
            txn_id: a.txn_id,
            status: status.public_str(),
            approvals,
            min_approvals: a.min_approvals,
        }),
        VoteOutcome::AlreadyVoted => Err(GateError::AlreadyVoted(email)),
        VoteOutcome::NotPending(s) => Err(GateError::NotPending(s.public_str())),
        VoteOutcome::Missing => Err(GateError::NotFound(d.txn_id.to_owned())),
    }
}

#[cfg(test)]
mod tests;
