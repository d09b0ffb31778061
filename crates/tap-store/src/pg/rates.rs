//! Agent rate limits counted in the store (`rate_events`; shared with SQLite:
//! `crate::sql::rates`), and by every replica: one transaction holding the
//! agent's advisory lock prunes, counts and records, so a limit of N allows
//! exactly N across replicas. `window_tx` uses the macro's imports
//! (`StoreResult`, `unavailable`).

use sqlx::{PgPool, Postgres, Transaction};

use super::pool::RATE_LOCK;

crate::sql::rates::rate_queries!(PgPool);

/// A transaction holding the advisory lock of `agent`'s rate window until it
/// ends; not the store's write lock, so rate checks never wait for a
/// configuration change.
async fn window_tx(
    pool: &PgPool,
    team: i64,
    agent: &str,
) -> StoreResult<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text || ':' || $3))")
        .bind(RATE_LOCK)
        .bind(team)
        .bind(agent)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    Ok(tx)
}
