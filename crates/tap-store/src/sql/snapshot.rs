//! The hot path's view of the configuration, read in one transaction.

/// `snapshot` over `$pool`; the backend's `pool::read_tx` gives the one
/// consistent read.
macro_rules! snapshot_query {
    ($pool:ty) => {
        use std::collections::HashMap;
        use std::str::FromStr;

        use sqlx::Row;
        use tap_core::model::{Member, MemberRole};
        use tap_core::store::{Snapshot, StoreError, StoreResult};

        use super::pool::{read_tx, unavailable};
        use super::rows::{
            AGENT_SELECT, agent_from_row, corrupt, credential_from_row, grant_from_row, link_from_row,
            role_from_row, team_from_row,
        };
        use crate::clock::now_ms;

        pub(super) async fn snapshot(pool: &$pool) -> StoreResult<Snapshot> {
            // One read transaction so the snapshot is consistent.
            let mut tx = read_tx(pool).await?;
            let revision: i64 = sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            let teams = sqlx::query("SELECT * FROM teams ORDER BY id")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(team_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let mut agent_roles: HashMap<(i64, String), Vec<String>> = Default::default();
            for r in sqlx::query("SELECT team_id, agent_id, role FROM agent_roles ORDER BY role")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
            {
                agent_roles
                    .entry((r.get(0), r.get(1)))
                    .or_default()
                    .push(r.get(2));
            }
            let mut agent_creds: HashMap<(i64, String), Vec<String>> = Default::default();
            for r in sqlx::query(
                "SELECT team_id, agent_id, credential FROM agent_credentials ORDER BY credential",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            {
                agent_creds
                    .entry((r.get(0), r.get(1)))
                    .or_default()
                    .push(r.get(2));
            }
            let agents = sqlx::query(AGENT_SELECT)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    let key = (r.get::<i64, _>("team_id"), r.get::<String, _>("id"));
                    let roles = agent_roles.remove(&key).unwrap_or_default();
                    let creds = agent_creds.remove(&key).unwrap_or_default();
                    agent_from_row(r, roles, creds)
                })
                .collect();
            let credentials = sqlx::query("SELECT * FROM credentials")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(credential_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let mut role_creds: HashMap<(i64, String), Vec<String>> = Default::default();
            for r in
                sqlx::query("SELECT team_id, role, credential FROM role_credentials ORDER BY credential")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?
            {
                role_creds
                    .entry((r.get(0), r.get(1)))
                    .or_default()
                    .push(r.get(2));
            }
            let roles = sqlx::query("SELECT * FROM roles")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    let key = (r.get::<i64, _>("team_id"), r.get::<String, _>("name"));
                    role_from_row(r, role_creds.remove(&key).unwrap_or_default())
                })
                .collect();
            let policies = sqlx::query("SELECT team_id, credential, policy FROM policies")
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    let raw: String = r.get(2);
                    Ok((
                        r.get(0),
                        r.get(1),
                        serde_json::from_str(&raw).map_err(corrupt("policy"))?,
                    ))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let now_secs = now_ms() / 1000;
            let grants = sqlx::query("SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > $1")
                .bind(now_secs)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(grant_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let mut member_creds: HashMap<(i64, i64), Vec<String>> = Default::default();
            for r in sqlx::query(
                "SELECT team_id, account_id, credential FROM member_credentials ORDER BY credential",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            {
                member_creds
                    .entry((r.get(0), r.get(1)))
                    .or_default()
                    .push(r.get(2));
            }
            let members = sqlx::query(
                "SELECT m.team_id, m.account_id, a.email, m.role, m.created_at FROM members m JOIN accounts a ON a.id = m.account_id",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| {
                let team: i64 = r.get("team_id");
                let account_id: i64 = r.get("account_id");
                let role: String = r.get("role");
                Ok((
                    team,
                    Member {
                        account_id,
                        email: r.get("email"),
                        role: MemberRole::from_str(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        credentials: member_creds.remove(&(team, account_id)).unwrap_or_default(),
                        created_at: r.get("created_at"),
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
            let links = sqlx::query(
                "SELECT l.team_id, l.home_team_id, t.slug, l.agent_id, l.role, l.created_at FROM links l JOIN teams t ON t.id = l.home_team_id",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            .iter()
            .map(link_from_row)
            .collect();
            tx.commit().await.map_err(unavailable)?;
            Ok(Snapshot {
                revision,
                teams,
                agents,
                credentials,
                roles,
                policies,
                grants,
                members,
                links,
            })
        }
    };
}

pub(crate) use snapshot_query;
