//! Decisions: the gate, plus what a decision ends.

use tap_core::approval::gate::{self, Decided, Decision, GateError};
use tap_core::audit::AuditPhase;
use tap_core::model::ApprovalStatus;
use tap_core::store::{AuditAppend, Store};
use tap_core::time::Clock;

use super::captured::{CapturedRequest, final_record};

/// Decides through the gate and records what a decision ends: a denial's
/// finish audit row is written here, by whichever process the member decided in.
/// Every channel and the admin service call this, never the store's vote.
pub async fn decide(
    store: &dyn Store,
    clock: &dyn Clock,
    d: Decision<'_>,
) -> Result<Decided, GateError> {
    let decided = gate::decide(store, clock, d).await?;
    if decided.denied()
        && let Some(a) = store.approval(&decided.txn_id).await?
        && let Ok(c) = serde_json::from_str::<CapturedRequest>(&a.request)
    {
        let rec = final_record(&a, &c, ApprovalStatus::Denied, None, clock.now_ms());
        store
            .append_audit(&[AuditAppend {
                team_internal_id: a.team_internal_id,
                phase: AuditPhase::Finish,
                record: rec,
            }])
            .await?;
    }
    Ok(decided)
}
