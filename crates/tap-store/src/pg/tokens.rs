//! Shared OAuth 2 access tokens (`oauth_tokens`), as on SQLite
//! (`crate::sqlite::tokens`), with the credential's advisory lock held by the
//! deciding transaction so one replica leases at a time.

use sqlx::PgPool;
use tap_core::store::{StoreResult, TokenLease};

use super::pool::{TOKEN_LOCK, bump, unavailable, write_tx};
use crate::sqlite::tokens::{Raw, decide, missing, row_of};

pub(super) async fn token_lease(
    pool: &PgPool,
    team: i64,
    name: &str,
    holder: &str,
    now_ms: i64,
    lease_ms: i64,
) -> StoreResult<TokenLease> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text || ':' || $3))")
        .bind(TOKEN_LOCK)
        .bind(team)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    let raw: Option<Raw> = sqlx::query_as(
        "SELECT c.sealed_value, t.sealed_token, t.until_ms, t.value_sealed, t.lease_holder, t.lease_until
         FROM credentials c LEFT JOIN oauth_tokens t ON t.team_id = c.team_id AND t.name = c.name
         WHERE c.team_id = $1 AND c.name = $2",
    )
    .bind(team)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(unavailable)?;
    let lease = decide(row_of(raw.ok_or_else(|| missing(name))?), holder, now_ms);
    if lease == TokenLease::Acquired {
        sqlx::query(
            "INSERT INTO oauth_tokens (team_id, name, lease_holder, lease_until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (team_id, name) DO UPDATE SET lease_holder = excluded.lease_holder, lease_until = excluded.lease_until",
        )
        .bind(team)
        .bind(name)
        .bind(holder)
        .bind(now_ms.saturating_add(lease_ms))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(lease)
}

pub(super) async fn put_token(
    pool: &PgPool,
    team: i64,
    name: &str,
    holder: &str,
    sealed: Option<&[u8]>,
    until_ms: i64,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text || ':' || $3))")
        .bind(TOKEN_LOCK)
        .bind(team)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    let q = sqlx::query(
        "UPDATE oauth_tokens SET lease_holder = NULL, lease_until = 0,
           sealed_token = COALESCE($1::bytea, sealed_token),
           until_ms = CASE WHEN $1::bytea IS NULL THEN until_ms ELSE $2 END,
           value_sealed = CASE WHEN $1::bytea IS NULL THEN value_sealed ELSE
             (SELECT sealed_value FROM credentials c WHERE c.team_id = $3 AND c.name = $4) END
         WHERE team_id = $3 AND name = $4 AND lease_holder = $5",
    );
    q.bind(sealed)
        .bind(until_ms)
        .bind(team)
        .bind(name)
        .bind(holder)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(())
}

/// A rotated refresh token's value, compared-and-swapped on the sealed
/// value; `updated_at` and the token row stay (see the `Store` docs).
pub(super) async fn rotate_credential_value(
    pool: &PgPool,
    team: i64,
    name: &str,
    expected: &[u8],
    sealed: &[u8],
) -> StoreResult<bool> {
    let mut tx = write_tx(pool).await?;
    let n = sqlx::query(
        "UPDATE credentials SET sealed_value = $1
         WHERE team_id = $2 AND name = $3 AND sealed_value = $4",
    )
    .bind(sealed)
    .bind(team)
    .bind(name)
    .bind(expected)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?
    .rows_affected();
    if n > 0 {
        bump(&mut tx).await?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(n > 0)
}
