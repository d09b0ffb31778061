//! Shared OAuth 2 access tokens (`oauth_tokens`; shared with SQLite:
//! `crate::sql::tokens`), with the credential's advisory lock held by the
//! deciding transaction so one replica leases at a time. `token_tx` uses the
//! macro's imports (`StoreResult`, `unavailable`).

use sqlx::{PgPool, Postgres, Transaction};

use super::pool::TOKEN_LOCK;

crate::sql::tokens::token_queries!(PgPool);

/// A transaction holding the advisory lock of the credential's token row
/// until it ends; not the store's write lock, so a token lease never waits
/// for a configuration change.
async fn token_tx(
    pool: &PgPool,
    team: i64,
    name: &str,
) -> StoreResult<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text || ':' || $3))")
        .bind(TOKEN_LOCK)
        .bind(team)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    Ok(tx)
}
