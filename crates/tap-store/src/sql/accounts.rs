//! Accounts and how they sign in: admin tokens and member sessions. None of
//! these writes is configuration the proxy caches, so none bumps the revision
//! (except creating an account, which the snapshot's members name).

/// The account, admin-token and session queries over `$pool`.
macro_rules! account_queries {
    ($pool:ty) => {
        use sqlx::Row;
        use tap_core::model::{Account, AdminToken};
        use tap_core::store::StoreResult;

        use super::pool::{bump, conflict_as, unavailable, write_tx};
        use crate::clock::now_ms;

        pub(super) async fn create_account(
            pool: &$pool,
            email: &str,
            password_hash: &str,
        ) -> StoreResult<i64> {
            let mut tx = write_tx(pool).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(email)
            .bind(password_hash)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_as(format!("account {email} already exists")))?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(id)
        }

        pub(super) async fn account_by_email(
            pool: &$pool,
            email: &str,
        ) -> StoreResult<Option<Account>> {
            Ok(
                sqlx::query("SELECT id, email, password_hash FROM accounts WHERE email = $1")
                    .bind(email)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?
                    .map(|r| Account {
                        id: r.get("id"),
                        email: r.get("email"),
                        password_hash: r.get("password_hash"),
                    }),
            )
        }

        pub(super) async fn account(pool: &$pool, id: i64) -> StoreResult<Option<Account>> {
            Ok(
                sqlx::query("SELECT id, email, password_hash FROM accounts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?
                    .map(|r| Account {
                        id: r.get("id"),
                        email: r.get("email"),
                        password_hash: r.get("password_hash"),
                    }),
            )
        }

        pub(super) async fn create_admin_token(
            pool: &$pool,
            account_id: i64,
            token_hash: &str,
            label: &str,
        ) -> StoreResult<i64> {
            let mut tx = write_tx(pool).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO admin_tokens (account_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(account_id)
            .bind(token_hash)
            .bind(label)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(id)
        }

        pub(super) async fn admin_token(
            pool: &$pool,
            token_hash: &str,
        ) -> StoreResult<Option<AdminToken>> {
            Ok(
                sqlx::query("SELECT * FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                    .bind(token_hash)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?
                    .map(|r| AdminToken {
                        id: r.get("id"),
                        account_id: r.get("account_id"),
                        token_hash: r.get("token_hash"),
                        label: r.get("label"),
                        created_at: r.get("created_at"),
                        revoked_at: r.get("revoked_at"),
                    }),
            )
        }

        pub(super) async fn admin_tokens(
            pool: &$pool,
            team: i64,
        ) -> StoreResult<Vec<(AdminToken, String)>> {
            Ok(sqlx::query(
                "SELECT k.*, a.email FROM admin_tokens k JOIN accounts a ON a.id = k.account_id
                 JOIN members m ON m.account_id = k.account_id AND m.team_id = $1 ORDER BY k.id",
            )
            .bind(team)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| {
                (
                    AdminToken {
                        id: r.get("id"),
                        account_id: r.get("account_id"),
                        token_hash: r.get("token_hash"),
                        label: r.get("label"),
                        created_at: r.get("created_at"),
                        revoked_at: r.get("revoked_at"),
                    },
                    r.get("email"),
                )
            })
            .collect())
        }

        pub(super) async fn revoke_admin_token(pool: &$pool, id: i64) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n =
                sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now_ms())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn create_session(
            pool: &$pool,
            account_id: i64,
            token_hash: &str,
            expires_at: i64,
        ) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query("INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash)
                .bind(account_id)
                .bind(now_ms())
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn session_account(
            pool: &$pool,
            token_hash: &str,
            now: i64,
        ) -> StoreResult<Option<i64>> {
            sqlx::query_scalar("SELECT account_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)
        }

        pub(super) async fn delete_session(pool: &$pool, token_hash: &str) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        }
    };
}

pub(crate) use account_queries;
