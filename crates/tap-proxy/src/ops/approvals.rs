//! Approvals: the members' list and decisions through the one gate.

use tap_core::approval::gate::Decision;
use tap_core::model::ApprovalStatus;

use super::views::{ApprovalView, DecidedView};
use super::{Need, Ops, OpsResult, Scope};

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
            .filter(|a| scope.sees_credential(&a.credential))
            .filter(|a| a.status != ApprovalStatus::Pending || a.expires_at > now)
            .map(ApprovalView::from)
            .collect())
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
        let d = crate::approval::decide::decide(
            self.store.as_ref(),
            self.clock.as_ref(),
            Decision {
                txn_id,
                email: &scope.email,
                approve,
                channel,
                passkey: None,
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
}
