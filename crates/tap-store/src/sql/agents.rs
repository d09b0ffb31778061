//! Agents with their roles and direct credential grants.

/// The agent queries over `$pool` (and `$conn` inside a transaction).
/// `INSERT … ON CONFLICT DO NOTHING` and `CAST(1 AS BIGINT)` read the same on
/// both backends (SQLite ≥ 3.24); with every column bound to a value the
/// insert skips exactly the rows SQLite's `INSERT OR IGNORE` did.
macro_rules! agent_queries {
    ($pool:ty, $conn:ty) => {
        use sqlx::Row;
        use tap_core::model::Agent;
        use tap_core::store::{AgentUpdate, NewAgent, StoreError, StoreResult};

        use super::credentials::require_credential;
        use super::pool::{bump, conflict_as, unavailable, write_tx};
        use super::roles::require_role;
        use super::rows::{AGENT_SELECT, agent_from_row};
        use crate::clock::now_ms;

        pub(super) async fn create_agent(pool: &$pool, a: &NewAgent) -> StoreResult<Agent> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO agents (team_id, id, description, enabled, key_hash, rate_limit_per_hour, created_at) VALUES ($1, $2, $3, 1, $4, $5, $6)",
            )
            .bind(a.team_internal_id)
            .bind(&a.id)
            .bind(&a.description)
            .bind(&a.key_hash)
            .bind(a.rate_limit_per_hour.map(i64::from))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(conflict_as(format!("agent {} already exists", a.id)))?;
            for role in &a.roles {
                require_role(&mut tx, a.team_internal_id, role).await?;
                sqlx::query(
                    "INSERT INTO agent_roles (team_id, agent_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(a.team_internal_id)
                .bind(&a.id)
                .bind(role)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            for cred in &a.credentials {
                sqlx::query("INSERT INTO agent_credentials (team_id, agent_id, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(a.team_internal_id)
                    .bind(&a.id)
                    .bind(cred)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            bump(&mut tx).await?;
            let created = load_agent(&mut tx, a.team_internal_id, &a.id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("agent {}", a.id)))?;
            tx.commit().await.map_err(unavailable)?;
            Ok(created)
        }

        pub(super) async fn agent(pool: &$pool, team: i64, id: &str) -> StoreResult<Option<Agent>> {
            let mut conn = pool.acquire().await.map_err(unavailable)?;
            load_agent(&mut conn, team, id).await
        }

        pub(super) async fn agents(pool: &$pool, team: i64) -> StoreResult<Vec<Agent>> {
            let mut conn = pool.acquire().await.map_err(unavailable)?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{AGENT_SELECT} WHERE a.team_id = $1 ORDER BY a.id"
            )))
            .bind(team)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.get("id");
                let (roles, creds) = agent_links(&mut conn, team, &id).await?;
                out.push(agent_from_row(&r, roles, creds));
            }
            Ok(out)
        }

        /// An agent read on `conn`: inside a write transaction it sees that
        /// transaction's changes.
        async fn load_agent(
            conn: &mut $conn,
            team: i64,
            id: &str,
        ) -> StoreResult<Option<Agent>> {
            let Some(r) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{AGENT_SELECT} WHERE a.team_id = $1 AND a.id = $2"
            )))
            .bind(team)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let (roles, creds) = agent_links(conn, team, id).await?;
            Ok(Some(agent_from_row(&r, roles, creds)))
        }

        /// An agent's roles and direct credentials, each sorted.
        async fn agent_links(
            conn: &mut $conn,
            team: i64,
            id: &str,
        ) -> StoreResult<(Vec<String>, Vec<String>)> {
            let roles = sqlx::query_scalar(
                "SELECT role FROM agent_roles WHERE team_id = $1 AND agent_id = $2 ORDER BY role",
            )
            .bind(team)
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
            let creds = sqlx::query_scalar(
                "SELECT credential FROM agent_credentials WHERE team_id = $1 AND agent_id = $2 ORDER BY credential",
            )
            .bind(team)
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
            Ok((roles, creds))
        }

        pub(super) async fn set_agent_enabled(
            pool: &$pool,
            team: i64,
            id: &str,
            enabled: bool,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("UPDATE agents SET enabled = $1 WHERE team_id = $2 AND id = $3")
                .bind(i64::from(enabled))
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

        pub(super) async fn set_agent_key(
            pool: &$pool,
            team: i64,
            id: &str,
            key_hash: &str,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("UPDATE agents SET key_hash = $1 WHERE team_id = $2 AND id = $3")
                .bind(key_hash)
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

        pub(super) async fn delete_agent(pool: &$pool, team: i64, id: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("DELETE FROM agents WHERE team_id = $1 AND id = $2")
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

        /// Whether the agent exists, read inside the caller's write transaction.
        async fn agent_exists(
            tx: &mut $conn,
            team: i64,
            id: &str,
        ) -> StoreResult<bool> {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM agents WHERE team_id = $1 AND id = $2")
                    .bind(team)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            Ok(exists.is_some())
        }

        pub(super) async fn set_agent_credential(
            pool: &$pool,
            team: i64,
            id: &str,
            credential: &str,
            granted: bool,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            if !agent_exists(&mut tx, team, id).await? {
                return Ok(false);
            }
            let q = if granted {
                "INSERT INTO agent_credentials (team_id, agent_id, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM agent_credentials WHERE team_id = $1 AND agent_id = $2 AND credential = $3"
            };
            sqlx::query(q)
                .bind(team)
                .bind(id)
                .bind(credential)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn set_agent_role(
            pool: &$pool,
            team: i64,
            id: &str,
            role: &str,
            held: bool,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            if !agent_exists(&mut tx, team, id).await? {
                return Ok(false);
            }
            if held {
                require_role(&mut tx, team, role).await?;
            }
            let q = if held {
                "INSERT INTO agent_roles (team_id, agent_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM agent_roles WHERE team_id = $1 AND agent_id = $2 AND role = $3"
            };
            sqlx::query(q)
                .bind(team)
                .bind(id)
                .bind(role)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn update_agent(
            pool: &$pool,
            team: i64,
            id: &str,
            u: &AgentUpdate,
        ) -> StoreResult<Option<Agent>> {
            let mut tx = write_tx(pool).await?;
            // Dropping `tx` on any early return below rolls back everything before
            // it: an update is applied whole or not at all.
            let n = sqlx::query(
                "UPDATE agents SET
                   description = COALESCE($1, description),
                   enabled = COALESCE($2, enabled),
                   rate_limit_per_hour = CASE WHEN $3 THEN $4 ELSE rate_limit_per_hour END
                 WHERE team_id = $5 AND id = $6",
            )
            .bind(u.description.as_deref())
            .bind(u.enabled.map(i64::from))
            .bind(u.rate_limit_per_hour.is_some())
            .bind(u.rate_limit_per_hour.flatten().map(i64::from))
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            if let Some(roles) = &u.roles {
                for role in roles {
                    require_role(&mut tx, team, role).await?;
                }
                sqlx::query("DELETE FROM agent_roles WHERE team_id = $1 AND agent_id = $2")
                    .bind(team)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                for role in roles {
                    sqlx::query(
                        "INSERT INTO agent_roles (team_id, agent_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(team)
                    .bind(id)
                    .bind(role)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
            }
            if let Some(credentials) = &u.credentials {
                for credential in credentials {
                    require_credential(&mut tx, team, credential).await?;
                }
                sqlx::query("DELETE FROM agent_credentials WHERE team_id = $1 AND agent_id = $2")
                    .bind(team)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                for credential in credentials {
                    sqlx::query("INSERT INTO agent_credentials (team_id, agent_id, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(team)
                        .bind(id)
                        .bind(credential)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
            }
            bump(&mut tx).await?;
            let updated = load_agent(&mut tx, team, id).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(updated)
        }
    };
}

pub(crate) use agent_queries;
