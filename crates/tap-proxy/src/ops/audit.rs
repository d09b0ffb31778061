//! The audit trail: chain verification.

use tap_core::audit::{Verification, verify_chain};
use tap_core::model::Team;

use super::{Ops, OpsResult};

impl Ops {
    /// Checks a team's audit chain.
    pub async fn verify_audit(&self, team: &Team) -> OpsResult<Verification> {
        let (anchor, first, rows) = self.store.audit_chain(team.internal_id).await?;
        Ok(verify_chain(&anchor, first, &rows))
    }
}
