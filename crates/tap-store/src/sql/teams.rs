//! Teams and what belongs to a team as a whole: members (with the last-owner
//! rule), links that let other teams' agents in, notification channels.

/// The team, member, link and channel queries over `$pool` (and `$conn`
/// inside a transaction); `$db` is the backend `crate::rekey` writes through.
/// `INSERT … ON CONFLICT DO NOTHING` reads the same on both backends (SQLite
/// ≥ 3.24) and, with every column bound to a value, skips exactly the rows
/// SQLite's `INSERT OR IGNORE` did: those already there.
macro_rules! team_queries {
    ($pool:ty, $conn:ty, $db:ty) => {
        use std::str::FromStr;

        use sqlx::Row;
        use tap_core::model::{Channel, Link, Member, MemberRole, Team};
        use tap_core::policy::ApprovalMode;
        use tap_core::store::{StoreError, StoreResult, TeamKeyChange};

        use super::pool::{bump, conflict_as, unavailable, write_tx};
        use super::rows::{link_from_row, team_from_row};
        use crate::clock::now_ms;

        pub(super) async fn create_team(
            pool: &$pool,
            slug: &str,
            mode: ApprovalMode,
            dek_id: &str,
            wrapped_dek: &[u8],
        ) -> StoreResult<Team> {
            let mut tx = write_tx(pool).await?;
            let now = now_ms();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO teams (slug, default_approval_mode, dek_id, wrapped_dek, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(slug)
            .bind(mode.to_string())
            .bind(dek_id)
            .bind(wrapped_dek)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_as(format!("team {slug} already exists")))?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Team {
                internal_id: id,
                slug: slug.to_owned(),
                default_approval_mode: mode,
                dek_id: dek_id.to_owned(),
                wrapped_dek: wrapped_dek.to_vec(),
                created_at: now,
            })
        }

        pub(super) async fn team(pool: &$pool, slug: &str) -> StoreResult<Option<Team>> {
            sqlx::query("SELECT * FROM teams WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?
                .map(|r| team_from_row(&r))
                .transpose()
        }

        pub(super) async fn teams(pool: &$pool) -> StoreResult<Vec<Team>> {
            sqlx::query("SELECT * FROM teams ORDER BY id")
                .fetch_all(pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(team_from_row)
                .collect()
        }

        pub(super) async fn set_team_mode(
            pool: &$pool,
            team: i64,
            mode: ApprovalMode,
        ) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query("UPDATE teams SET default_approval_mode = $1 WHERE id = $2")
                .bind(mode.to_string())
                .bind(team)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn set_membership(
            pool: &$pool,
            team: i64,
            account_id: i64,
            role: MemberRole,
        ) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO members (team_id, account_id, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, account_id) DO UPDATE SET role = excluded.role",
            )
            .bind(team)
            .bind(account_id)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn members(pool: &$pool, team: i64) -> StoreResult<Vec<Member>> {
            let rows = sqlx::query(
                "SELECT m.account_id, a.email, m.role, m.created_at FROM members m JOIN accounts a ON a.id = m.account_id WHERE m.team_id = $1 ORDER BY a.email",
            )
            .bind(team)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let account_id: i64 = r.get("account_id");
                let role: String = r.get("role");
                let credentials = sqlx::query_scalar(
                    "SELECT credential FROM member_credentials WHERE team_id = $1 AND account_id = $2 ORDER BY credential",
                )
                .bind(team)
                .bind(account_id)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
                out.push(Member {
                    account_id,
                    email: r.get("email"),
                    role: MemberRole::from_str(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    credentials,
                    created_at: r.get("created_at"),
                });
            }
            Ok(out)
        }

        async fn owner_count_after(
            tx: &mut $conn,
            team: i64,
            email: &str,
            new_role: Option<MemberRole>,
        ) -> StoreResult<i64> {
            let owners: Vec<String> = sqlx::query_scalar(
                "SELECT a.email FROM members m JOIN accounts a ON a.id = m.account_id WHERE m.team_id = $1 AND m.role = 'owner'",
            )
            .bind(team)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            let mut n = owners.iter().filter(|e| e.as_str() != email).count() as i64;
            if new_role == Some(MemberRole::Owner) {
                n += 1;
            }
            Ok(n)
        }

        pub(super) async fn set_member_role(
            pool: &$pool,
            team: i64,
            email: &str,
            role: MemberRole,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            if owner_count_after(&mut tx, team, email, Some(role)).await? == 0 {
                return Err(StoreError::Conflict(format!(
                    "{email} is the last owner of the team; make another member owner first"
                )));
            }
            let n = sqlx::query(
                "UPDATE members SET role = $1 WHERE team_id = $2 AND account_id = (SELECT id FROM accounts WHERE email = $3)",
            )
            .bind(role.as_str())
            .bind(team)
            .bind(email)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn remove_member(pool: &$pool, team: i64, email: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            if owner_count_after(&mut tx, team, email, None).await? == 0 {
                return Err(StoreError::Conflict(format!(
                    "{email} is the last owner of the team and cannot be removed"
                )));
            }
            let n = sqlx::query("DELETE FROM members WHERE team_id = $1 AND account_id = (SELECT id FROM accounts WHERE email = $2)")
                .bind(team)
                .bind(email)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn set_member_credentials(
            pool: &$pool,
            team: i64,
            email: &str,
            credentials: &[String],
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let account: Option<i64> = sqlx::query_scalar(
                "SELECT m.account_id FROM members m JOIN accounts a ON a.id = m.account_id WHERE m.team_id = $1 AND a.email = $2",
            )
            .bind(team)
            .bind(email)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            let Some(account) = account else {
                return Ok(false);
            };
            sqlx::query("DELETE FROM member_credentials WHERE team_id = $1 AND account_id = $2")
                .bind(team)
                .bind(account)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            for c in credentials {
                sqlx::query("INSERT INTO member_credentials (team_id, account_id, credential) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(team)
                    .bind(account)
                    .bind(c)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        }

        pub(super) async fn set_link(pool: &$pool, l: &Link) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO links (team_id, home_team_id, agent_id, role, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (team_id, home_team_id, agent_id) DO UPDATE SET role = excluded.role",
            )
            .bind(l.team_internal_id)
            .bind(l.home_team_internal_id)
            .bind(&l.agent_id)
            .bind(&l.role)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn links(pool: &$pool, team: i64) -> StoreResult<Vec<Link>> {
            Ok(sqlx::query(
                "SELECT l.team_id, l.home_team_id, t.slug, l.agent_id, l.role, l.created_at FROM links l JOIN teams t ON t.id = l.home_team_id WHERE l.team_id = $1 ORDER BY t.slug, l.agent_id",
            )
            .bind(team)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(link_from_row)
            .collect())
        }

        pub(super) async fn delete_link(
            pool: &$pool,
            team: i64,
            home: i64,
            agent_id: &str,
        ) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n =
                sqlx::query("DELETE FROM links WHERE team_id = $1 AND home_team_id = $2 AND agent_id = $3")
                    .bind(team)
                    .bind(home)
                    .bind(agent_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(n > 0)
        }

        pub(super) async fn set_channel(pool: &$pool, c: &Channel) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO notification_channels (team_id, name, kind, chat_id, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (team_id, name) DO UPDATE SET kind = excluded.kind, chat_id = excluded.chat_id",
            )
            .bind(c.team_internal_id)
            .bind(&c.name)
            .bind(&c.kind)
            .bind(&c.chat_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn channels(pool: &$pool, team: i64) -> StoreResult<Vec<Channel>> {
            Ok(
                sqlx::query("SELECT * FROM notification_channels WHERE team_id = $1 ORDER BY name")
                    .bind(team)
                    .fetch_all(pool)
                    .await
                    .map_err(unavailable)?
                    .iter()
                    .map(|r| Channel {
                        team_internal_id: r.get("team_id"),
                        name: r.get("name"),
                        kind: r.get("kind"),
                        chat_id: r.get("chat_id"),
                        created_at: r.get("created_at"),
                    })
                    .collect(),
            )
        }

        pub(super) async fn delete_channel(pool: &$pool, team: i64, name: &str) -> StoreResult<bool> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query("DELETE FROM notification_channels WHERE team_id = $1 AND name = $2")
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

        pub(super) async fn rewrap_keys(
            pool: &$pool,
            teams: &[TeamKeyChange],
            meta: &[(String, Vec<u8>)],
        ) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            crate::rekey::apply::<$db>(&mut tx, teams, meta).await?;
            bump(&mut tx).await?;
            tx.commit().await.map_err(unavailable)
        }
    };
}

pub(crate) use team_queries;
