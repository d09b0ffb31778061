//! Roles: named sets of credentials with an optional rate limit.

/// The role queries over `$pool` (and `$conn`, a connection inside a
/// transaction). `INSERT … ON CONFLICT DO NOTHING` and `CAST(1 AS BIGINT)`
/// read the same on both backends (SQLite ≥ 3.24).
macro_rules! role_queries {
    ($pool:ty, $conn:ty) => {
        use sqlx::Row;
        use tap_core::model::Role;
        use tap_core::store::{StoreError, StoreResult};

        use super::credentials::require_credential;
        use super::pool::{bump, conflict_as, unavailable, write_tx};
        use super::rows::role_from_row;
        use crate::clock::now_ms;

        pub(super) async fn create_role(pool: &$pool, role: &Role) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO roles (team_id, name, description, rate_limit_per_hour, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(role.team_internal_id)
            .bind(&role.name)
            .bind(&role.description)
            .bind(role.rate_limit_per_hour.map(i64::from))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(conflict_as(format!("role {} already exists", role.name)))?;
            for c in &role.credentials {
                sqlx::query("INSERT INTO role_credentials (team_id, role, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(role.team_internal_id)
                    .bind(&role.name)
                    .bind(c)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn role(pool: &$pool, team: i64, name: &str) -> StoreResult<Option<Role>> {
            let Some(r) = sqlx::query("SELECT * FROM roles WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let credentials = role_credentials(pool, team, name).await?;
            Ok(Some(role_from_row(&r, credentials)))
        }

        pub(super) async fn roles(pool: &$pool, team: i64) -> StoreResult<Vec<Role>> {
            let rows = sqlx::query("SELECT * FROM roles WHERE team_id = $1 ORDER BY name")
                .bind(team)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let name: String = r.get("name");
                let credentials = role_credentials(pool, team, &name).await?;
                out.push(role_from_row(&r, credentials));
            }
            Ok(out)
        }

        async fn role_credentials(pool: &$pool, team: i64, role: &str) -> StoreResult<Vec<String>> {
            Ok(sqlx::query("SELECT credential FROM role_credentials WHERE team_id = $1 AND role = $2 ORDER BY credential")
                .bind(team)
                .bind(role)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect())
        }

        pub(super) async fn set_role_credential(
            pool: &$pool,
            team: i64,
            role: &str,
            credential: &str,
            present: bool,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM roles WHERE team_id = $1 AND name = $2")
                    .bind(team)
                    .bind(role)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if exists.is_none() {
                return Ok(false);
            }
            let q = if present {
                "INSERT INTO role_credentials (team_id, role, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM role_credentials WHERE team_id = $1 AND role = $2 AND credential = $3"
            };
            sqlx::query(q)
                .bind(team)
                .bind(role)
                .bind(credential)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn delete_role(pool: &$pool, team: i64, name: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            sqlx::query("DELETE FROM agent_roles WHERE team_id = $1 AND role = $2")
                .bind(team)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let n = sqlx::query("DELETE FROM roles WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        /// `NotFound("role X")` unless `role` exists in `team`; inside the caller's
        /// transaction, so the check holds for what it then writes.
        pub(super) async fn require_role(
            conn: &mut $conn,
            team: i64,
            role: &str,
        ) -> StoreResult<()> {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM roles WHERE team_id = $1 AND name = $2")
                    .bind(team)
                    .bind(role)
                    .fetch_optional(conn)
                    .await
                    .map_err(unavailable)?;
            found
                .map(drop)
                .ok_or_else(|| StoreError::NotFound(format!("role {role}")))
        }

        pub(super) async fn put_role(pool: &$pool, role: &Role) -> StoreResult<bool> {
            let team = role.team_internal_id;
            let mut tx = write_tx(pool).await?;
            // Dropping `tx` on any `?` below rolls back everything before it.
            for c in &role.credentials {
                require_credential(&mut tx, team, c).await?;
            }
            let existed: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM roles WHERE team_id = $1 AND name = $2")
                    .bind(team)
                    .bind(&role.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            // An upsert rather than delete-and-insert: `agent_roles` rows that name the
            // role must survive its replacement.
            sqlx::query(
                "INSERT INTO roles (team_id, name, description, rate_limit_per_hour, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (team_id, name) DO UPDATE SET description = excluded.description, rate_limit_per_hour = excluded.rate_limit_per_hour",
            )
            .bind(team)
            .bind(&role.name)
            .bind(&role.description)
            .bind(role.rate_limit_per_hour.map(i64::from))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query("DELETE FROM role_credentials WHERE team_id = $1 AND role = $2")
                .bind(team)
                .bind(&role.name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            for c in &role.credentials {
                sqlx::query(
                    "INSERT INTO role_credentials (team_id, role, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(team)
                .bind(&role.name)
                .bind(c)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(existed.is_none())
        }
    };
}

pub(crate) use role_queries;
