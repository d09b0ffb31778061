//! Approvals: the members' list and decisions through the one gate.

use tap_core::approval::gate::{Decision, PasskeyProof};
use tap_core::model::ApprovalStatus;

use super::views::{ApprovalDetailView, ApprovalView, DecidedView};
use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::approval::captured::CapturedRequest;
use crate::approval::display::RequestDisplay;

/// Most approvals one list answers.
pub(super) const MAX_LISTED_APPROVALS: u32 = 500;

impl Ops {
    /// Approvals of the scope's team in `status` (all when `None`), newest
    /// first; approvers see only their credentials'. Pending approvals past
    /// their expiry (not yet swept by the executor) are left out.
    pub async fn approvals(
        &self,
        scope: &Scope,
        status: Option<ApprovalStatus>,
    ) -> OpsResult<Vec<ApprovalView>> {
        scope.require(Need::Member)?;
        let now = self.clock.now_ms();
        Ok(self
            .store
            .approvals(scope.team.internal_id, status, MAX_LISTED_APPROVALS)
            .await?
            .iter()
            .filter(|a| a.credential_names().all(|c| scope.sees_credential(c)))
            .filter(|a| a.status != ApprovalStatus::Pending || a.expires_at > now)
            .map(ApprovalView::from)
            .collect())
    }

    /// One approval of the scope's team with the whole request it would
    /// forward (`tap pending show`): an approver sees only their credentials'.
    pub async fn approval_detail(
        &self,
        scope: &Scope,
        txn_id: &str,
    ) -> OpsResult<ApprovalDetailView> {
        scope.require(Need::Member)?;
        let a = self
            .store
            .approval(txn_id)
            .await?
            .filter(|a| {
                a.team_internal_id == scope.team.internal_id
                    && a.credential_names().all(|c| scope.sees_credential(c))
            })
            .ok_or_else(|| {
                OpsError::NotFound(format!("approval {txn_id} in team {}", scope.team.slug))
            })?;
        let captured: CapturedRequest = serde_json::from_str(&a.request)
            .map_err(|_| OpsError::Invalid(format!("the stored request of {txn_id} is damaged")))?;
        let dir = self.directory().await?;
        let team = dir.teams.get(&a.team_internal_id);
        let request = RequestDisplay::new(
            &captured,
            team.and_then(|t| {
                a.credential_names()
                    .next()
                    .and_then(|c| t.credentials.get(c))
            })
            .map(|c| &**c),
            |s| team.map_or_else(|| s.to_owned(), |t| t.all_secrets.scrub_str(s).0),
        );
        let mut approval = ApprovalView::from(&a);
        if let Some(t) = team {
            approval.target = t.all_secrets.scrub_str(&approval.target).0;
        }
        Ok(ApprovalDetailView { approval, request })
    }

    /// Approves or denies through the gate, as the scope's member, on `channel`.
    /// The gate decides eligibility (scope roles do not widen it).
    pub async fn decide(
        &self,
        scope: &Scope,
        txn_id: &str,
        approve: bool,
        channel: &str,
    ) -> OpsResult<DecidedView> {
        self.decide_with(scope, txn_id, approve, channel, None)
            .await
    }

    /// [`Ops::decide`] carrying a passkey assertion made for this request.
    pub async fn decide_with(
        &self,
        scope: &Scope,
        txn_id: &str,
        approve: bool,
        channel: &str,
        passkey: Option<&PasskeyProof>,
    ) -> OpsResult<DecidedView> {
        let d = crate::approval::decide::decide(
            self.store.as_ref(),
            self.clock.as_ref(),
            Decision {
                txn_id,
                email: &scope.email,
                approve,
                channel,
                passkey,
            },
        )
        .await?;
        if let Some(broker) = self.broker()
            && d.status == ApprovalStatus::Pending.public_str()
        {
            broker.notify_progress(&d).await;
        }
        self.approvals_changed();
        Ok(DecidedView {
            txn_id: d.txn_id,
            status: d.status.to_owned(),
            approvals: d.approvals,
            min_approvals: d.min_approvals,
        })
    }

    /// Approves or denies as the member signed in as `account_id` (the web
    /// page; a linked Telegram user), in the approval's own team. An unknown
    /// approval and one of a team the member is not in answer alike.
    pub async fn decide_as_member(
        &self,
        account_id: i64,
        txn_id: &str,
        approve: bool,
        channel: &str,
    ) -> OpsResult<DecidedView> {
        self.decide_as_member_with(account_id, txn_id, approve, channel, None)
            .await
    }

    /// [`Ops::decide_as_member`] carrying a passkey assertion made for this
    /// request (the passkey ceremony of the approval page).
    pub async fn decide_as_member_with(
        &self,
        account_id: i64,
        txn_id: &str,
        approve: bool,
        channel: &str,
        passkey: Option<&PasskeyProof>,
    ) -> OpsResult<DecidedView> {
        let missing = || OpsError::NotFound(format!("approval {txn_id}"));
        let a = self.store.approval(txn_id).await?.ok_or_else(missing)?;
        let slug = self
            .store
            .teams()
            .await?
            .into_iter()
            .find(|t| t.internal_id == a.team_internal_id)
            .map(|t| t.slug)
            .ok_or_else(missing)?;
        let scope = self
            .member_scope(account_id, Some(&slug))
            .await
            .map_err(|_| missing())?;
        self.decide_with(&scope, txn_id, approve, channel, passkey)
            .await
    }
}
