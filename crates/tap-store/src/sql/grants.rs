//! Temporary grants: scoped, expiring, optionally counted permissions.

/// `create_grant`, `grants`, `revoke_grant`, `use_grant` and
/// `release_grant_use` over `$pool`.
macro_rules! grant_queries {
    ($pool:ty) => {
        use tap_core::model::Grant;
        use tap_core::store::StoreResult;

        use super::pool::{bump, unavailable, write_tx};
        use super::rows::{corrupt, grant_from_row};
        use crate::clock::now_ms;

        pub(super) async fn create_grant(pool: &$pool, g: &Grant) -> StoreResult<()> {
            let methods = serde_json::to_string(&g.methods).map_err(corrupt("methods"))?;
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO grants (id, team_id, credential, methods, route_scope, expires_at, max_uses, uses, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
            )
            .bind(&g.id)
            .bind(g.team_internal_id)
            .bind(&g.credential)
            .bind(methods)
            .bind(&g.route_scope)
            .bind(g.expires_at)
            .bind(g.max_uses.map(i64::from))
            .bind(&g.created_by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn grants(pool: &$pool, team: i64) -> StoreResult<Vec<Grant>> {
            sqlx::query("SELECT * FROM grants WHERE team_id = $1 ORDER BY created_at")
                .bind(team)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(grant_from_row)
                .collect()
        }

        pub(super) async fn revoke_grant(pool: &$pool, team: i64, id: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query(
                "UPDATE grants SET revoked_at = $1 WHERE team_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn use_grant(pool: &$pool, id: &str, now_secs: i64) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query(
                "UPDATE grants SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)",
            )
            .bind(id)
            .bind(now_secs)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n == 1)
        }

        pub(super) async fn release_grant_use(pool: &$pool, id: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("UPDATE grants SET uses = uses - 1 WHERE id = $1 AND uses > 0")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n == 1)
        }
    };
}

pub(crate) use grant_queries;
