//! Audit retention (`TAP_AUDIT_RETENTION_DAYS`, SPEC §9): the oldest audit
//! rows are deleted and each team's chain goes on verifying from a sealed
//! anchor (see `Store::prune_audit`). The approval executor's loop calls
//! [`due`] on every replica: pruning is idempotent and safe concurrently
//! (each team is pruned under its append lock), so no leader is needed.

use std::time::{Duration, Instant};

use tap_core::store::{Store, StoreResult};

/// How often the proxy prunes (and once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The cutoff `days` before `now_ms`, as the rows stamp time (RFC 3339 UTC,
/// milliseconds), so rows compare by text; `None` when it is out of range.
pub fn cutoff(now_ms: i64, days: u32) -> Option<String> {
    let ms = now_ms.checked_sub(i64::from(days).checked_mul(DAY_MS)?)?;
    rfc3339_millis(ms)
}

/// RFC 3339 of a millisecond timestamp with millisecond precision.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&fmt).ok()
}

/// Parses an RFC 3339 time into the rows' form (UTC, milliseconds).
pub fn normalize(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(
        rfc3339.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
    rfc3339_millis(ms)
}

/// Prunes the rows older than `days` days before `now_ms`; answers the rows deleted.
pub async fn prune(store: &dyn Store, now_ms: i64, days: u32) -> StoreResult<u64> {
    match cutoff(now_ms, days) {
        Some(before) => store.prune_audit(&before).await,
        None => Ok(0),
    }
}

/// Prunes when retention is on and [`PRUNE_EVERY`] has passed since `last`
/// (at once the first time); failures are logged and retried next time.
pub async fn due(store: &dyn Store, now_ms: i64, days: u32, last: &mut Option<Instant>) {
    if days == 0 || last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    match prune(store, now_ms, days).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, days, "audit retention deleted old rows"),
        Err(e) => tracing::warn!(error = %e, "audit retention failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_days_before_now_in_the_rows_format() {
        // 2026-12-06T02:00:00.123Z
        let now = 1_796_522_400_123;
        assert_eq!(cutoff(now, 30).as_deref(), Some("2026-11-06T02:00:00.123Z"));
        assert_eq!(cutoff(now, 0).as_deref(), Some("2026-12-06T02:00:00.123Z"));
        assert_eq!(
            normalize("2026-12-06T03:00:00+01:00").as_deref(),
            Some("2026-12-06T02:00:00.000Z")
        );
        assert_eq!(normalize("yesterday"), None);
    }
}
