//! Agent rate limits counted in the store (`rate_events`): one write
//! transaction prunes, counts and records, so a limit of N allows exactly N.

use sqlx::SqlitePool;
use tap_core::store::StoreResult;

use super::pool::{unavailable, write_tx};

pub(super) async fn take_rate(
    pool: &SqlitePool,
    team: i64,
    agent: &str,
    limit: u32,
    window_ms: i64,
    now_ms: i64,
) -> StoreResult<Option<i64>> {
    let mut tx = write_tx(pool).await?;
    sqlx::query("DELETE FROM rate_events WHERE team_id = $1 AND agent_id = $2 AND at <= $3")
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

/// Milliseconds until the oldest counted request leaves the window (at least 1).
pub(crate) fn retry_after(oldest: Option<i64>, window_ms: i64, now_ms: i64) -> i64 {
    oldest
        .map_or(window_ms, |t| {
            t.saturating_add(window_ms).saturating_sub(now_ms)
        })
        .max(1)
}
