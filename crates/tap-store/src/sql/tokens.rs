//! Shared OAuth 2 access tokens (`oauth_tokens`): the lease that lets one
//! holder call a token endpoint while the others wait, and the sealed token
//! it stores. One transaction that no other writer of the same credential's
//! token row runs beside decides, so one holder leases at a time.

use tap_core::store::{StoreError, TokenLease};

/// A credential with its token row, as both backends read it.
pub(crate) struct TokenRow {
    /// The credential's sealed value.
    pub(crate) value: Option<Vec<u8>>,
    /// The stored token, its use-until time and the sealed value it was stored for.
    pub(crate) token: Option<(Vec<u8>, i64, Option<Vec<u8>>)>,
    /// The lease's holder and end.
    pub(crate) lease: Option<(String, i64)>,
}

/// What a lease request gets, given the row (both backends).
pub(crate) fn decide(row: TokenRow, holder: &str, now_ms: i64) -> TokenLease {
    if let Some((sealed, until_ms, at)) = row.token
        && at == row.value
        && now_ms < until_ms
    {
        return TokenLease::Cached { sealed, until_ms };
    }
    match row.lease {
        Some((h, until)) if h != holder && now_ms < until => TokenLease::Busy,
        _ => TokenLease::Acquired,
    }
}

pub(crate) fn missing(name: &str) -> StoreError {
    StoreError::NotFound(format!("credential {name}"))
}

pub(crate) type Raw = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
);

pub(crate) fn row_of(raw: Raw) -> TokenRow {
    let (value, sealed, until, at, holder, lease_until) = raw;
    TokenRow {
        value,
        token: sealed.map(|s| (s, until.unwrap_or(0), at)),
        lease: holder.map(|h| (h, lease_until.unwrap_or(0))),
    }
}

/// `token_lease`, `put_token` and `rotate_credential_value` over `$pool`.
/// The backend module supplies, after the invocation and with this macro's
/// imports in scope,
/// `async fn token_tx(pool: &$pool, team: i64, name: &str) -> StoreResult<Transaction>`:
/// a transaction in which no other writer leases or stores the token of the
/// same credential until it ends.
macro_rules! token_queries {
    ($pool:ty) => {
        use tap_core::store::{StoreResult, TokenLease};

        use super::pool::{bump, unavailable, write_tx};
        use crate::sql::tokens::{Raw, decide, missing, row_of};

        pub(super) async fn token_lease(
            pool: &$pool,
            team: i64,
            name: &str,
            holder: &str,
            now_ms: i64,
            lease_ms: i64,
        ) -> StoreResult<TokenLease> {
            let mut tx = token_tx(pool, team, name).await?;
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
            pool: &$pool,
            team: i64,
            name: &str,
            holder: &str,
            sealed: Option<&[u8]>,
            until_ms: i64,
        ) -> StoreResult<()> {
            let mut tx = token_tx(pool, team, name).await?;
            let q = sqlx::query(
                "UPDATE oauth_tokens SET lease_holder = NULL, lease_until = 0,
                   sealed_token = COALESCE($1, sealed_token),
                   until_ms = CASE WHEN $1 IS NULL THEN until_ms ELSE $2 END,
                   value_sealed = CASE WHEN $1 IS NULL THEN value_sealed ELSE
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
            pool: &$pool,
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
    };
}

pub(crate) use token_queries;
