//! Members' passkeys (WebAuthn credentials). Not configuration the proxy
//! caches, so nothing here bumps the revision.

/// The passkey queries over `$pool`, decoding `$row`.
macro_rules! passkey_queries {
    ($pool:ty, $row:ty) => {
        use sqlx::Row;
        use tap_core::model::PasskeyRecord;
        use tap_core::store::StoreResult;

        use super::pool::{conflict_as, unavailable, write_tx};

        fn from_row(r: &$row) -> PasskeyRecord {
            PasskeyRecord {
                id: r.get("id"),
                account_id: r.get("account_id"),
                name: r.get("name"),
                credential_id: r.get("credential_id"),
                passkey: r.get("passkey"),
                created_at: r.get("created_at"),
                last_used_at: r.get("last_used_at"),
            }
        }

        pub(super) async fn add_passkey(pool: &$pool, p: &PasskeyRecord) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO passkeys (id, account_id, name, credential_id, passkey, created_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&p.id)
            .bind(p.account_id)
            .bind(&p.name)
            .bind(&p.credential_id)
            .bind(&p.passkey)
            .bind(p.created_at)
            .bind(p.last_used_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("passkey already registered".into()))?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn passkeys(pool: &$pool, account_id: i64) -> StoreResult<Vec<PasskeyRecord>> {
            let rows = sqlx::query("SELECT * FROM passkeys WHERE account_id = $1 ORDER BY created_at, id")
                .bind(account_id)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            Ok(rows.iter().map(from_row).collect())
        }

        pub(super) async fn update_passkey(
            pool: &$pool,
            id: &str,
            passkey: &str,
            last_used_at: i64,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("UPDATE passkeys SET passkey = $2, last_used_at = $3 WHERE id = $1")
                .bind(id)
                .bind(passkey)
                .bind(last_used_at)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn delete_passkey(pool: &$pool, account_id: i64, id: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND account_id = $2")
                .bind(id)
                .bind(account_id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }
    };
}

pub(crate) use passkey_queries;
