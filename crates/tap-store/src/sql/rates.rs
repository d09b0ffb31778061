//! Agent rate limits counted in the store (`rate_events`): one transaction
//! prunes, counts and records, so a limit of N allows exactly N.

/// Milliseconds until the oldest counted request leaves the window (at least 1).
pub(crate) fn retry_after(oldest: Option<i64>, window_ms: i64, now_ms: i64) -> i64 {
    oldest
        .map_or(window_ms, |t| {
            t.saturating_add(window_ms).saturating_sub(now_ms)
        })
        .max(1)
}

/// `take_rate` over `$pool`. The backend module supplies, after the
/// invocation and with this macro's imports in scope,
/// `async fn window_tx(pool: &$pool, team: i64, agent: &str) -> StoreResult<Transaction>`:
/// a transaction in which no other writer counts the same agent's window
/// until it ends.
macro_rules! rate_queries {
    ($pool:ty) => {
        use tap_core::store::StoreResult;

        use super::pool::unavailable;
        use crate::sql::rates::retry_after;

        pub(super) async fn take_rate(
            pool: &$pool,
            team: i64,
            agent: &str,
            limit: u32,
            window_ms: i64,
            now_ms: i64,
        ) -> StoreResult<Option<i64>> {
            let mut tx = window_tx(pool, team, agent).await?;
            sqlx::query(
                "DELETE FROM rate_events WHERE team_id = $1 AND agent_id = $2 AND at <= $3",
            )
            .bind(team)
            .bind(agent)
            .bind(now_ms.saturating_sub(window_ms))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT count(*), min(at) FROM rate_events WHERE team_id = $1 AND agent_id = $2",
            )
            .bind(team)
            .bind(agent)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            if count >= i64::from(limit) {
                return Ok(Some(retry_after(oldest, window_ms, now_ms)));
            }
            sqlx::query("INSERT INTO rate_events (team_id, agent_id, at) VALUES ($1, $2, $3)")
                .bind(team)
                .bind(agent)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(None)
        }
    };
}

pub(crate) use rate_queries;
