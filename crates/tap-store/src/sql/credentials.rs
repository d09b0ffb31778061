//! Credentials (values stay sealed) and the policy of each.

/// The credential and policy queries over `$pool` (and `$conn` inside a
/// transaction: `require_credential` for the agent and role queries).
/// `CAST(1 AS BIGINT)` reads the same on both backends.
macro_rules! credential_queries {
    ($pool:ty, $conn:ty) => {
        use tap_core::model::Credential;
        use tap_core::policy::Policy;
        use tap_core::store::{StoreError, StoreResult};

        use super::pool::{bump, unavailable, write_tx};
        use super::rows::{corrupt, credential_from_row};
        use crate::clock::now_ms;

        pub(super) async fn upsert_credential(pool: &$pool, c: &Credential) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let existed: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM credentials WHERE team_id = $1 AND name = $2")
                    .bind(c.team_internal_id)
                    .bind(&c.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            let bindings = serde_json::to_string(&c.auth_bindings).map_err(corrupt("auth_bindings"))?;
            let hosts = serde_json::to_string(&c.allowed_hosts).map_err(corrupt("allowed_hosts"))?;
            let now = now_ms();
            sqlx::query(
                "INSERT INTO credentials (team_id, name, description, connector, api_base, relative_target, auth_header_format, auth_bindings, allowed_hosts, allow_any_host, sealed_value, value_is_json, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (team_id, name) DO UPDATE SET
                   description = excluded.description, connector = excluded.connector, api_base = excluded.api_base,
                   relative_target = excluded.relative_target, auth_header_format = excluded.auth_header_format,
                   auth_bindings = excluded.auth_bindings, allowed_hosts = excluded.allowed_hosts,
                   allow_any_host = excluded.allow_any_host,
                   sealed_value = COALESCE(excluded.sealed_value, credentials.sealed_value),
                   value_is_json = CASE WHEN excluded.sealed_value IS NULL THEN credentials.value_is_json ELSE excluded.value_is_json END,
                   updated_at = excluded.updated_at",
            )
            .bind(c.team_internal_id)
            .bind(&c.name)
            .bind(&c.description)
            .bind(c.connector.as_str())
            .bind(&c.api_base)
            .bind(i64::from(c.relative_target))
            .bind(&c.auth_header_format)
            .bind(bindings)
            .bind(hosts)
            .bind(i64::from(c.allow_any_host))
            .bind(&c.sealed_value)
            .bind(i64::from(c.value_is_json))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            if c.sealed_value.is_some() {
                drop_token_row(&mut tx, c.team_internal_id, &c.name).await?;
            }
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(existed.is_none())
        }

        pub(super) async fn credential(
            pool: &$pool,
            team: i64,
            name: &str,
        ) -> StoreResult<Option<Credential>> {
            sqlx::query("SELECT * FROM credentials WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?
                .map(|r| credential_from_row(&r))
                .transpose()
        }

        pub(super) async fn credentials(pool: &$pool, team: i64) -> StoreResult<Vec<Credential>> {
            sqlx::query("SELECT * FROM credentials WHERE team_id = $1 ORDER BY name")
                .bind(team)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(credential_from_row)
                .collect()
        }

        pub(super) async fn set_credential_value(
            pool: &$pool,
            team: i64,
            name: &str,
            sealed: &[u8],
            is_json: bool,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query(
                "UPDATE credentials SET sealed_value = $1, value_is_json = $2, updated_at = $3 WHERE team_id = $4 AND name = $5",
            )
            .bind(sealed)
            .bind(i64::from(is_json))
            .bind(now_ms())
            .bind(team)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            drop_token_row(&mut tx, team, name).await?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn delete_credential(
            pool: &$pool,
            team: i64,
            name: &str,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let roles: Vec<String> = sqlx::query_scalar(
                "SELECT role FROM role_credentials WHERE team_id = $1 AND credential = $2 ORDER BY role",
            )
            .bind(team)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if !roles.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "credential {name} is still named by role(s) {}; remove it from them first",
                    roles.join(", ")
                )));
            }
            let n = sqlx::query("DELETE FROM credentials WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            for q in [
                "DELETE FROM agent_credentials WHERE team_id = $1 AND credential = $2",
                "DELETE FROM policies WHERE team_id = $1 AND credential = $2",
                "DELETE FROM member_credentials WHERE team_id = $1 AND credential = $2",
                "DELETE FROM oauth_tokens WHERE team_id = $1 AND name = $2",
            ] {
                sqlx::query(q)
                    .bind(team)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn policy(
            pool: &$pool,
            team: i64,
            credential: &str,
        ) -> StoreResult<Option<Policy>> {
            let raw: Option<String> =
                sqlx::query_scalar("SELECT policy FROM policies WHERE team_id = $1 AND credential = $2")
                    .bind(team)
                    .bind(credential)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?;
            raw.map(|s| serde_json::from_str(&s).map_err(corrupt("policy")))
                .transpose()
        }

        pub(super) async fn set_policy(
            pool: &$pool,
            team: i64,
            credential: &str,
            policy: &Policy,
        ) -> StoreResult<()> {
            let json = serde_json::to_string(policy).map_err(corrupt("policy"))?;
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO policies (team_id, credential, policy, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, credential) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
            )
            .bind(team)
            .bind(credential)
            .bind(json)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn clear_policy(
            pool: &$pool,
            team: i64,
            credential: &str,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("DELETE FROM policies WHERE team_id = $1 AND credential = $2")
                .bind(team)
                .bind(credential)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        /// `NotFound("credential X")` unless `name` exists in `team`; inside the
        /// caller's transaction, so the check holds for what it then writes.
        pub(super) async fn require_credential(
            conn: &mut $conn,
            team: i64,
            name: &str,
        ) -> StoreResult<()> {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM credentials WHERE team_id = $1 AND name = $2")
                    .bind(team)
                    .bind(name)
                    .fetch_optional(conn)
                    .await
                    .map_err(unavailable)?;
            found
                .map(drop)
                .ok_or_else(|| StoreError::NotFound(format!("credential {name}")))
        }

        /// Deletes the credential's shared OAuth 2 token row (token, lease and the
        /// value it was minted for): an admin's new value, or no value, starts
        /// afresh; a holder still calling the endpoint then stores nothing.
        async fn drop_token_row(conn: &mut $conn, team: i64, name: &str) -> StoreResult<()> {
            sqlx::query("DELETE FROM oauth_tokens WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(name)
                .execute(conn)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    };
}

pub(crate) use credential_queries;
