//! Per-address abuse failures counted in the store (`abuse_failures`): failed
//! sign-ins and invalid agent keys, so replicas sharing the store share one
//! limit. Each step is one statement, atomic on its own: the upsert counts a
//! failure only while the address is under its limit (a limit of N allows
//! exactly N), and pruning expired windows takes a bounded batch per call and
//! never waits for another caller's rows, so counting never deadlocks.

/// Expired windows deleted per counted failure: more than one is created per
/// failure, so the table drains faster than it fills, and each call's work
/// stays bounded however many expired rows there are.
pub(crate) const PRUNE_BATCH: i64 = 64;

/// `count_abuse_failure` and `abuse_blocked` over `$pool`. `$skip_locked`
/// ends the prune's row selection: PostgreSQL passes `"FOR UPDATE SKIP
/// LOCKED"` (concurrent prunes take disjoint rows instead of waiting), SQLite
/// (one writer) `""`.
macro_rules! abuse_queries {
    ($pool:ty, $skip_locked:literal) => {
        use tap_core::store::{AbuseKind, StoreResult};

        use super::pool::unavailable;
        use crate::sql::abuse::PRUNE_BATCH;
        use crate::sql::rates::retry_after;

        pub(super) async fn count_abuse_failure(
            pool: &$pool,
            kind: AbuseKind,
            address: &str,
            limit: u32,
            window_ms: i64,
            now_ms: i64,
        ) -> StoreResult<Option<i64>> {
            if limit == 0 {
                return Ok(Some(window_ms.max(1)));
            }
            let expired = now_ms.saturating_sub(window_ms);
            sqlx::query(concat!(
                "DELETE FROM abuse_failures WHERE (kind, address) IN (",
                "SELECT kind, address FROM abuse_failures WHERE kind = $1 AND window_start <= $2 ",
                "LIMIT $3 ",
                $skip_locked,
                ")"
            ))
            .bind(kind.as_str())
            .bind(expired)
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await
            .map_err(unavailable)?;
            // A window that ended restarts with this failure; otherwise the
            // failure counts only below the limit (no row comes back then).
            let counted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO abuse_failures (kind, address, window_start, failures) \
                 VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (kind, address) DO UPDATE SET \
                 window_start = CASE WHEN abuse_failures.window_start <= $4 \
                     THEN excluded.window_start ELSE abuse_failures.window_start END, \
                 failures = CASE WHEN abuse_failures.window_start <= $4 \
                     THEN 1 ELSE abuse_failures.failures + 1 END \
                 WHERE abuse_failures.window_start <= $4 OR abuse_failures.failures < $5 \
                 RETURNING failures",
            )
            .bind(kind.as_str())
            .bind(address)
            .bind(now_ms)
            .bind(expired)
            .bind(i64::from(limit))
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            if counted.is_some() {
                return Ok(None);
            }
            let start: Option<i64> = sqlx::query_scalar(
                "SELECT window_start FROM abuse_failures WHERE kind = $1 AND address = $2",
            )
            .bind(kind.as_str())
            .bind(address)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            Ok(Some(retry_after(start, window_ms, now_ms)))
        }

        pub(super) async fn abuse_blocked(
            pool: &$pool,
            kind: AbuseKind,
            address: &str,
            limit: u32,
            window_ms: i64,
            now_ms: i64,
        ) -> StoreResult<Option<i64>> {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT failures, window_start FROM abuse_failures \
                 WHERE kind = $1 AND address = $2 AND window_start > $3",
            )
            .bind(kind.as_str())
            .bind(address)
            .bind(now_ms.saturating_sub(window_ms))
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            Ok(match row {
                Some((failures, start)) if failures >= i64::from(limit) => {
                    Some(retry_after(Some(start), window_ms, now_ms))
                }
                None if limit == 0 => Some(window_ms.max(1)),
                _ => None,
            })
        }
    };
}

pub(crate) use abuse_queries;
