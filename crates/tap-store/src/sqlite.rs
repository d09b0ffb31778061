//! SQLite backend.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use tap_core::audit::{AuditPhase, AuditRow, GENESIS_HASH, chain_hash};
use tap_core::inject::AuthBinding;
use tap_core::model::{
    Account, AdminToken, Agent, Approval, ApprovalStatus, Channel, Connector, Credential, Grant,
    Link, Member, MemberRole, Role, Team, Vote,
};
use tap_core::policy::{ApprovalMode, Policy};
use tap_core::store::{
    AuditAppend, AuditQuery, AuditWriter, NewAgent, Snapshot, Store, StoreError, StoreResult,
    VoteOutcome,
};

use crate::now_ms;
use crate::sqlite_audit::{Spool, spool_path};

/// How long a writer waits for SQLite's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Audit rows per INSERT statement (10 parameters each, under SQLite's 32,766).
const AUDIT_ROWS_PER_INSERT: usize = 1000;
/// Connections in the pool (SQLite has one writer; readers share WAL).
const POOL_SIZE: u32 = 8;
/// Page cache of each pooled connection, KiB: at most `POOL_SIZE` times this.
const POOL_CACHE_KIB: u32 = 512;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The embedded SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file, for the audit writer's own connection (`None` in memory).
    path: Option<std::path::PathBuf>,
    /// The audit spool, once this store handed out its writer.
    spool: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<Spool>>>>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists".into())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn json_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(corrupt("list"))
}

impl SqliteStore {
    /// Opens (creating the file if needed) the database at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        Self::connect(opts).await
    }

    /// Opens a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        // Each pooled connection's page cache fills up over time (checkpoints,
        // configuration polls, admin reads while the audit tables grow): with
        // SQLite's default of 2 MiB the proxy's memory grew by ~4.6 MiB in 30 s
        // of load, with this bound by 0.9 (docs/benchmarks.md).
        let opts = opts.pragma("cache_size", format!("-{POOL_CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        let file = opts.get_filename();
        let path = (!file.as_os_str().is_empty() && file != Path::new(":memory:"))
            .then(|| file.to_path_buf());
        Ok(Self {
            pool,
            path,
            spool: Default::default(),
        })
    }

    async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }

    async fn bump(tx: &mut sqlx::SqliteConnection) -> StoreResult<()> {
        sqlx::query("UPDATE config_revision SET revision = revision + 1 WHERE id = 1")
            .execute(tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn team_from_row(r: &SqliteRow) -> StoreResult<Team> {
        let mode: String = r.get("default_approval_mode");
        Ok(Team {
            internal_id: r.get("id"),
            slug: r.get("slug"),
            default_approval_mode: ApprovalMode::from_str(&mode)
                .map_err(|_| StoreError::Corrupt(format!("approval mode {mode:?}")))?,
            dek_id: r.get("dek_id"),
            wrapped_dek: r.get("wrapped_dek"),
            created_at: r.get("created_at"),
        })
    }

    fn credential_from_row(r: &SqliteRow) -> StoreResult<Credential> {
        let connector: String = r.get("connector");
        let bindings: String = r.get("auth_bindings");
        let hosts: String = r.get("allowed_hosts");
        Ok(Credential {
            team_internal_id: r.get("team_id"),
            name: r.get("name"),
            description: r.get("description"),
            connector: Connector::from_str(&connector)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            api_base: r.get("api_base"),
            relative_target: r.get::<i64, _>("relative_target") != 0,
            auth_header_format: r.get("auth_header_format"),
            auth_bindings: serde_json::from_str::<Vec<AuthBinding>>(&bindings)
                .map_err(corrupt("auth_bindings"))?,
            allowed_hosts: json_list(&hosts)?,
            allow_any_host: r.get::<i64, _>("allow_any_host") != 0,
            sealed_value: r.get("sealed_value"),
            value_is_json: r.get::<i64, _>("value_is_json") != 0,
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        })
    }

    fn audit_from_row(r: &SqliteRow) -> StoreResult<AuditRow> {
        let phase: String = r.get("phase");
        Ok(AuditRow {
            seq: r.get("seq"),
            phase: match phase.as_str() {
                "start" => AuditPhase::Start,
                "finish" => AuditPhase::Finish,
                other => return Err(StoreError::Corrupt(format!("audit phase {other:?}"))),
            },
            record_json: r.get("record"),
            prev_hash: r.get("prev_hash"),
            row_hash: r.get("row_hash"),
        })
    }

    async fn agent_links(&self, team: i64, id: &str) -> StoreResult<(Vec<String>, Vec<String>)> {
        let roles = sqlx::query(
            "SELECT role FROM agent_roles WHERE team_id = $1 AND agent_id = $2 ORDER BY role",
        )
        .bind(team)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let creds = sqlx::query(
            "SELECT credential FROM agent_credentials WHERE team_id = $1 AND agent_id = $2 ORDER BY credential",
        )
        .bind(team)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        Ok((roles, creds))
    }

    fn agent_from_row(r: &SqliteRow, roles: Vec<String>, credentials: Vec<String>) -> Agent {
        Agent {
            team_internal_id: r.get("team_id"),
            team: r.get("slug"),
            id: r.get("id"),
            description: r.get("description"),
            enabled: r.get::<i64, _>("enabled") != 0,
            key_hash: r.get("key_hash"),
            roles,
            credentials,
            rate_limit_per_hour: r
                .get::<Option<i64>, _>("rate_limit_per_hour")
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            created_at: r.get("created_at"),
        }
    }

    fn link_from_row(r: &SqliteRow) -> Link {
        Link {
            team_internal_id: r.get(0),
            home_team_internal_id: r.get(1),
            home_team: r.get(2),
            agent_id: r.get(3),
            role: r.get(4),
            created_at: r.get(5),
        }
    }

    fn grant_from_row(r: &SqliteRow) -> StoreResult<Grant> {
        let methods: String = r.get("methods");
        Ok(Grant {
            id: r.get("id"),
            team_internal_id: r.get("team_id"),
            credential: r.get("credential"),
            methods: json_list(&methods)?,
            route_scope: r.get("route_scope"),
            expires_at: r.get("expires_at"),
            max_uses: r
                .get::<Option<i64>, _>("max_uses")
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            uses: u32::try_from(r.get::<i64, _>("uses")).unwrap_or(u32::MAX),
            created_by: r.get("created_by"),
            created_at: r.get("created_at"),
            revoked_at: r.get("revoked_at"),
        })
    }

    fn approval_from_row(r: &SqliteRow, votes: Vec<Vote>) -> StoreResult<Approval> {
        let status: String = r.get("status");
        let channels: String = r.get("channels");
        Ok(Approval {
            txn_id: r.get("txn_id"),
            team_internal_id: r.get("team_id"),
            agent_team_internal_id: r.get("agent_team_id"),
            agent_id: r.get("agent_id"),
            credential: r.get("credential"),
            credential_version: r.get("credential_version"),
            method: r.get("method"),
            target: r.get("target"),
            request: r.get("request"),
            request_hash: r.get("request_hash"),
            status: ApprovalStatus::from_str(&status)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            policy_reason: r.get("policy_reason"),
            min_approvals: u32::try_from(r.get::<i64, _>("min_approvals")).unwrap_or(1),
            channels: json_list(&channels)?,
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
            decided_at: r.get("decided_at"),
            error_code: r.get("error_code"),
            response: r.get("response"),
            votes,
        })
    }

    async fn votes(&self, txn_id: &str) -> StoreResult<Vec<Vote>> {
        Ok(sqlx::query("SELECT email, decision, channel, at FROM approval_votes WHERE txn_id = $1 ORDER BY at, email")
            .bind(txn_id)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| Vote {
                email: r.get("email"),
                decision: r.get("decision"),
                channel: r.get("channel"),
                at: r.get("at"),
            })
            .collect())
    }

    async fn owner_count_after(
        tx: &mut sqlx::SqliteConnection,
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

    async fn role_credentials(&self, team: i64, role: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query("SELECT credential FROM role_credentials WHERE team_id = $1 AND role = $2 ORDER BY credential")
            .bind(team)
            .bind(role)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect())
    }
    fn own_spool(&self) -> Option<std::sync::Arc<Spool>> {
        self.spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn fold_blocking(spool: std::sync::Arc<Spool>) -> StoreResult<()> {
        tokio::task::spawn_blocking(move || spool.fold())
            .await
            .map_err(|_| StoreError::Unavailable("audit fold failed".into()))?
            .map(|_| ())
    }

    /// Before reading audit rows: fold this process's spool, or a spool no live
    /// process owns (left by a proxy that crashed). One owned by a running proxy
    /// is folded by it within milliseconds.
    async fn fold_spooled(&self) -> StoreResult<()> {
        if let Some(spool) = self.own_spool() {
            return Self::fold_blocking(spool).await;
        }
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if !spool_path(&path).exists() {
            return Ok(());
        }
        let opened = tokio::task::spawn_blocking(move || Spool::open(&path).map(drop))
            .await
            .map_err(|_| StoreError::Unavailable("audit fold failed".into()))?;
        match opened {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads each team's chain head inside the transaction: always correct, a few round trips.
    async fn append_audit_slow(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One transaction, one head read per team, one multi-row INSERT: a batch costs
        // the same few round trips to SQLite whatever its size.
        let mut tx = self.write_tx().await?;
        let mut heads: std::collections::HashMap<i64, (i64, String)> =
            std::collections::HashMap::new();
        let mut chained = Vec::with_capacity(rows.len());
        for row in rows {
            let team = row.team_internal_id;
            if let std::collections::hash_map::Entry::Vacant(e) = heads.entry(team) {
                let last: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, row_hash FROM audit WHERE team_id = $1 ORDER BY seq DESC LIMIT 1",
                )
                .bind(team)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
                let head = match last {
                    Some(h) => h,
                    None => {
                        let anchor: Option<(String, i64)> = sqlx::query_as(
                            "SELECT anchor_hash, first_seq FROM audit_anchor WHERE team_id = $1",
                        )
                        .bind(team)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                        anchor.map_or((0, GENESIS_HASH.to_owned()), |(h, first)| (first - 1, h))
                    }
                };
                e.insert(head);
            }
            let Some((seq, prev)) = heads.get_mut(&team) else {
                return Err(StoreError::Unavailable("audit chain head missing".into()));
            };
            let json = serde_json::to_string(&row.record).map_err(corrupt("audit record"))?;
            let new_seq = *seq + 1;
            let hash = chain_hash(prev, new_seq, row.phase, &json);
            chained.push((
                row,
                new_seq,
                json,
                std::mem::replace(prev, hash.clone()),
                hash,
            ));
            *seq = new_seq;
        }
        // SQLite allows 32,766 parameters per statement; 10 per row.
        for chunk in chained.chunks(AUDIT_ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit (team_id, seq, phase, request_id, agent_id, credential, ts, record, prev_hash, row_hash) ",
            );
            q.push_values(chunk, |mut b, (row, seq, json, prev, hash)| {
                b.push_bind(row.team_internal_id)
                    .push_bind(*seq)
                    .push_bind(row.phase.as_str())
                    .push_bind(row.record.request_id.as_str())
                    .push_bind(row.record.agent_id.as_str())
                    .push_bind(row.record.credential_names.first().map(String::as_str))
                    .push_bind(row.record.timestamp.as_str())
                    .push_bind(json.as_str())
                    .push_bind(prev.as_str())
                    .push_bind(hash.as_str());
            });
            q.build().execute(&mut *tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }
}

const AGENT_SELECT: &str = "SELECT a.team_id, t.slug, a.id, a.description, a.enabled, a.key_hash, a.rate_limit_per_hour, a.created_at FROM agents a JOIN teams t ON t.id = a.team_id";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
    }

    async fn is_initialized(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'teams'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn revision(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn create_team(
        &self,
        slug: &str,
        mode: ApprovalMode,
        dek_id: &str,
        wrapped_dek: &[u8],
    ) -> StoreResult<Team> {
        let mut tx = self.write_tx().await?;
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
        .map_err(|e| match unavailable(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("team {slug} already exists")),
            other => other,
        })?;
        Self::bump(&mut tx).await?;
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

    async fn team(&self, slug: &str) -> StoreResult<Option<Team>> {
        sqlx::query("SELECT * FROM teams WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| Self::team_from_row(&r))
            .transpose()
    }

    async fn teams(&self) -> StoreResult<Vec<Team>> {
        sqlx::query("SELECT * FROM teams ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(Self::team_from_row)
            .collect()
    }

    async fn set_team_mode(&self, team: i64, mode: ApprovalMode) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE teams SET default_approval_mode = $1 WHERE id = $2")
            .bind(mode.to_string())
            .bind(team)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn create_account(&self, email: &str, password_hash: &str) -> StoreResult<i64> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match unavailable(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("account {email} already exists")),
            other => other,
        })?;
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        Ok(
            sqlx::query("SELECT id, email, password_hash FROM accounts WHERE email = $1")
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
                .map(|r| Account {
                    id: r.get("id"),
                    email: r.get("email"),
                    password_hash: r.get("password_hash"),
                }),
        )
    }

    async fn set_membership(
        &self,
        team: i64,
        account_id: i64,
        role: MemberRole,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn members(&self, team: i64) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.account_id, a.email, m.role, m.created_at FROM members m JOIN accounts a ON a.id = m.account_id WHERE m.team_id = $1 ORDER BY a.email",
        )
        .bind(team)
        .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            out.push(Member {
                account_id,
                email: r.get("email"),
                role: MemberRole::from_str(&role)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                credentials,
                created_at: r.get("created_at"),
            });
        }
        Ok(out)
    }

    async fn create_admin_token(
        &self,
        account_id: i64,
        token_hash: &str,
        label: &str,
    ) -> StoreResult<i64> {
        let mut tx = self.write_tx().await?;
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

    async fn admin_token(&self, token_hash: &str) -> StoreResult<Option<AdminToken>> {
        Ok(
            sqlx::query("SELECT * FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token_hash)
                .fetch_optional(&self.pool)
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

    async fn create_agent(&self, a: &NewAgent) -> StoreResult<Agent> {
        let mut tx = self.write_tx().await?;
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
        .map_err(|e| match unavailable(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("agent {} already exists", a.id)),
            other => other,
        })?;
        for role in &a.roles {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM roles WHERE team_id = $1 AND name = $2")
                    .bind(a.team_internal_id)
                    .bind(role)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("role {role}")));
            }
            sqlx::query(
                "INSERT OR IGNORE INTO agent_roles (team_id, agent_id, role) VALUES ($1, $2, $3)",
            )
            .bind(a.team_internal_id)
            .bind(&a.id)
            .bind(role)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        for cred in &a.credentials {
            sqlx::query("INSERT OR IGNORE INTO agent_credentials (team_id, agent_id, credential) VALUES ($1, $2, $3)")
                .bind(a.team_internal_id)
                .bind(&a.id)
                .bind(cred)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.agent(a.team_internal_id, &a.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("agent {}", a.id)))
    }

    async fn agent(&self, team: i64, id: &str) -> StoreResult<Option<Agent>> {
        let Some(r) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{AGENT_SELECT} WHERE a.team_id = $1 AND a.id = $2"
        )))
        .bind(team)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let (roles, creds) = self.agent_links(team, id).await?;
        Ok(Some(Self::agent_from_row(&r, roles, creds)))
    }

    async fn agents(&self, team: i64) -> StoreResult<Vec<Agent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{AGENT_SELECT} WHERE a.team_id = $1 ORDER BY a.id"
        )))
        .bind(team)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get("id");
            let (roles, creds) = self.agent_links(team, &id).await?;
            out.push(Self::agent_from_row(&r, roles, creds));
        }
        Ok(out)
    }

    async fn set_agent_enabled(&self, team: i64, id: &str, enabled: bool) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE agents SET enabled = $1 WHERE team_id = $2 AND id = $3")
            .bind(i64::from(enabled))
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn set_agent_key(&self, team: i64, id: &str, key_hash: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE agents SET key_hash = $1 WHERE team_id = $2 AND id = $3")
            .bind(key_hash)
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn delete_agent(&self, team: i64, id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM agents WHERE team_id = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn set_agent_credential(
        &self,
        team: i64,
        id: &str,
        credential: &str,
        granted: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agents WHERE team_id = $1 AND id = $2")
                .bind(team)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if exists.is_none() {
            return Ok(false);
        }
        let q = if granted {
            "INSERT OR IGNORE INTO agent_credentials (team_id, agent_id, credential) VALUES ($1, $2, $3)"
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn set_agent_role(
        &self,
        team: i64,
        id: &str,
        role: &str,
        held: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agents WHERE team_id = $1 AND id = $2")
                .bind(team)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if exists.is_none() {
            return Ok(false);
        }
        if held {
            let role_exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM roles WHERE team_id = $1 AND name = $2")
                    .bind(team)
                    .bind(role)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if role_exists.is_none() {
                return Err(StoreError::NotFound(format!("role {role}")));
            }
        }
        let q = if held {
            "INSERT OR IGNORE INTO agent_roles (team_id, agent_id, role) VALUES ($1, $2, $3)"
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn upsert_credential(&self, c: &Credential) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let existed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM credentials WHERE team_id = $1 AND name = $2")
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(existed.is_none())
    }

    async fn credential(&self, team: i64, name: &str) -> StoreResult<Option<Credential>> {
        sqlx::query("SELECT * FROM credentials WHERE team_id = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .map(|r| Self::credential_from_row(&r))
            .transpose()
    }

    async fn credentials(&self, team: i64) -> StoreResult<Vec<Credential>> {
        sqlx::query("SELECT * FROM credentials WHERE team_id = $1 ORDER BY name")
            .bind(team)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(Self::credential_from_row)
            .collect()
    }

    async fn set_credential_value(
        &self,
        team: i64,
        name: &str,
        sealed: &[u8],
        is_json: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn delete_credential(&self, team: i64, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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
        ] {
            sqlx::query(q)
                .bind(team)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn create_role(&self, role: &Role) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
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
        .map_err(|e| match unavailable(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("role {} already exists", role.name)),
            other => other,
        })?;
        for c in &role.credentials {
            sqlx::query("INSERT OR IGNORE INTO role_credentials (team_id, role, credential) VALUES ($1, $2, $3)")
                .bind(role.team_internal_id)
                .bind(&role.name)
                .bind(c)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn role(&self, team: i64, name: &str) -> StoreResult<Option<Role>> {
        let Some(r) = sqlx::query("SELECT * FROM roles WHERE team_id = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        Ok(Some(Role {
            team_internal_id: team,
            name: r.get("name"),
            description: r.get("description"),
            credentials: self.role_credentials(team, name).await?,
            rate_limit_per_hour: r
                .get::<Option<i64>, _>("rate_limit_per_hour")
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        }))
    }

    async fn roles(&self, team: i64) -> StoreResult<Vec<Role>> {
        let rows = sqlx::query("SELECT * FROM roles WHERE team_id = $1 ORDER BY name")
            .bind(team)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.get("name");
            out.push(Role {
                team_internal_id: team,
                credentials: self.role_credentials(team, &name).await?,
                description: r.get("description"),
                rate_limit_per_hour: r
                    .get::<Option<i64>, _>("rate_limit_per_hour")
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                name,
            });
        }
        Ok(out)
    }

    async fn set_role_credential(
        &self,
        team: i64,
        role: &str,
        credential: &str,
        present: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM roles WHERE team_id = $1 AND name = $2")
                .bind(team)
                .bind(role)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if exists.is_none() {
            return Ok(false);
        }
        let q = if present {
            "INSERT OR IGNORE INTO role_credentials (team_id, role, credential) VALUES ($1, $2, $3)"
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn delete_role(&self, team: i64, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn policy(&self, team: i64, credential: &str) -> StoreResult<Option<Policy>> {
        let raw: Option<String> = sqlx::query_scalar(
            "SELECT policy FROM policies WHERE team_id = $1 AND credential = $2",
        )
        .bind(team)
        .bind(credential)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        raw.map(|s| serde_json::from_str(&s).map_err(corrupt("policy")))
            .transpose()
    }

    async fn set_policy(&self, team: i64, credential: &str, policy: &Policy) -> StoreResult<()> {
        let json = serde_json::to_string(policy).map_err(corrupt("policy"))?;
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn clear_policy(&self, team: i64, credential: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM policies WHERE team_id = $1 AND credential = $2")
            .bind(team)
            .bind(credential)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn append_audit(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // With a spool, rows go through it: one order for every row of this process.
        if let Some(spool) = self.own_spool() {
            spool.append(rows)?;
            return Self::fold_blocking(spool).await;
        }
        self.append_audit_slow(rows).await
    }

    fn audit_writer(&self) -> StoreResult<Option<std::sync::Arc<dyn AuditWriter>>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut slot = self
            .spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.as_ref() {
            return Ok(Some(
                std::sync::Arc::clone(s) as std::sync::Arc<dyn AuditWriter>
            ));
        }
        let spool = std::sync::Arc::new(Spool::open(path)?);
        *slot = Some(std::sync::Arc::clone(&spool));
        Ok(Some(spool))
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        // PASSIVE: copies what it can without waiting for, or blocking, any writer or reader.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn audit_rows(&self, team: i64, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.fold_spooled().await?;
        let limit = i64::from(q.limit.unwrap_or(1000));
        // Newest `limit` requests (by their first row), then every row of those requests, oldest first.
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE team_id = $1 AND request_id IN (
                 SELECT request_id FROM audit
                 WHERE team_id = $1
                   AND ($2 IS NULL OR agent_id = $2)
                   AND ($3 IS NULL OR credential = $3)
                   AND ($4 IS NULL OR seq > $4)
                 GROUP BY request_id ORDER BY min(seq) DESC LIMIT $5)
             ORDER BY seq",
        )
        .bind(team)
        .bind(&q.agent)
        .bind(&q.credential)
        .bind(q.after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(Self::audit_from_row).collect()
    }

    async fn audit_chain(&self, team: i64) -> StoreResult<(String, i64, Vec<AuditRow>)> {
        self.fold_spooled().await?;
        let anchor: Option<(String, i64)> =
            sqlx::query_as("SELECT anchor_hash, first_seq FROM audit_anchor WHERE team_id = $1")
                .bind(team)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        let (anchor, first) = anchor.unwrap_or((GENESIS_HASH.to_owned(), 1));
        let rows = sqlx::query("SELECT * FROM audit WHERE team_id = $1 ORDER BY seq")
            .bind(team)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = Self::audit_from_row(r)?;
            // The index columns must agree with the hashed record, or the row was edited.
            let consistent = row.record().is_ok_and(|rec| {
                rec.request_id == r.get::<String, _>("request_id")
                    && rec.agent_id == r.get::<String, _>("agent_id")
                    && rec.credential_names.first().cloned()
                        == r.get::<Option<String>, _>("credential")
                    && rec.timestamp == r.get::<String, _>("ts")
                    && r.get::<String, _>("phase") == row.phase.as_str()
            });
            let mut row = row;
            if !consistent {
                row.row_hash = String::from("index-mismatch");
            }
            out.push(row);
        }
        Ok((anchor, first, out))
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // One read transaction so the snapshot is consistent.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let revision: i64 = sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        let teams = sqlx::query("SELECT * FROM teams ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            .iter()
            .map(Self::team_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut agent_roles: std::collections::HashMap<(i64, String), Vec<String>> =
            Default::default();
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
        let mut agent_creds: std::collections::HashMap<(i64, String), Vec<String>> =
            Default::default();
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
                Self::agent_from_row(r, roles, creds)
            })
            .collect();
        let credentials = sqlx::query("SELECT * FROM credentials")
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?
            .iter()
            .map(Self::credential_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut role_creds: std::collections::HashMap<(i64, String), Vec<String>> =
            Default::default();
        for r in sqlx::query(
            "SELECT team_id, role, credential FROM role_credentials ORDER BY credential",
        )
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
                let team: i64 = r.get("team_id");
                let name: String = r.get("name");
                Role {
                    team_internal_id: team,
                    credentials: role_creds.remove(&(team, name.clone())).unwrap_or_default(),
                    description: r.get("description"),
                    rate_limit_per_hour: r
                        .get::<Option<i64>, _>("rate_limit_per_hour")
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                    name,
                }
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
        let grants =
            sqlx::query("SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > $1")
                .bind(now_secs)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(Self::grant_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
        let mut member_creds: std::collections::HashMap<(i64, i64), Vec<String>> =
            Default::default();
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
        .map(Self::link_from_row)
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

    async fn set_member_role(&self, team: i64, email: &str, role: MemberRole) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        if Self::owner_count_after(&mut tx, team, email, Some(role)).await? == 0 {
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn remove_member(&self, team: i64, email: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        if Self::owner_count_after(&mut tx, team, email, None).await? == 0 {
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn set_member_credentials(
        &self,
        team: i64,
        email: &str,
        credentials: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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
            sqlx::query("INSERT OR IGNORE INTO member_credentials (team_id, account_id, credential) VALUES ($1, $2, $3)")
                .bind(team)
                .bind(account)
                .bind(c)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn create_approval(&self, a: &Approval) -> StoreResult<()> {
        let channels = serde_json::to_string(&a.channels).map_err(corrupt("channels"))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO approvals (txn_id, team_id, agent_team_id, agent_id, credential, credential_version, method, target, request, request_hash, status, policy_reason, min_approvals, channels, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&a.txn_id)
        .bind(a.team_internal_id)
        .bind(a.agent_team_internal_id)
        .bind(&a.agent_id)
        .bind(&a.credential)
        .bind(a.credential_version)
        .bind(&a.method)
        .bind(&a.target)
        .bind(&a.request)
        .bind(&a.request_hash)
        .bind(a.status.as_str())
        .bind(&a.policy_reason)
        .bind(i64::from(a.min_approvals))
        .bind(channels)
        .bind(a.created_at)
        .bind(a.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn approval(&self, txn_id: &str) -> StoreResult<Option<Approval>> {
        let Some(r) = sqlx::query("SELECT * FROM approvals WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let votes = self.votes(txn_id).await?;
        Self::approval_from_row(&r, votes).map(Some)
    }

    async fn approvals(
        &self,
        team: i64,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE team_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC LIMIT $3",
        )
        .bind(team)
        .bind(status.map(ApprovalStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.get("txn_id");
            let votes = self.votes(&id).await?;
            out.push(Self::approval_from_row(r, votes)?);
        }
        Ok(out)
    }

    async fn pending_count(&self, agent_team: i64, agent_id: &str) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM approvals WHERE agent_team_id = $1 AND agent_id = $2 AND status = 'pending'",
        )
        .bind(agent_team)
        .bind(agent_id)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn vote(
        &self,
        txn_id: &str,
        email: &str,
        approve: bool,
        channel: &str,
        now: i64,
    ) -> StoreResult<VoteOutcome> {
        let mut tx = self.write_tx().await?;
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, expires_at, min_approvals FROM approvals WHERE txn_id = $1",
        )
        .bind(txn_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some((status, expires_at, min)) = row else {
            return Ok(VoteOutcome::Missing);
        };
        let status =
            ApprovalStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if status != ApprovalStatus::Pending {
            return Ok(VoteOutcome::NotPending(status));
        }
        if expires_at <= now {
            sqlx::query(
                "UPDATE approvals SET status = 'timed_out', decided_at = $1 WHERE txn_id = $2",
            )
            .bind(now)
            .bind(txn_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(VoteOutcome::NotPending(ApprovalStatus::TimedOut));
        }
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO approval_votes (txn_id, email, decision, channel, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(txn_id)
        .bind(email)
        .bind(if approve { "approve" } else { "deny" })
        .bind(channel)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if inserted == 0 {
            return Ok(VoteOutcome::AlreadyVoted);
        }
        let approvals: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM approval_votes WHERE txn_id = $1 AND decision = 'approve'",
        )
        .bind(txn_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let new_status = if !approve {
            ApprovalStatus::Denied
        } else if approvals >= min.max(1) {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Pending
        };
        if new_status != ApprovalStatus::Pending {
            sqlx::query("UPDATE approvals SET status = $1, decided_at = $2 WHERE txn_id = $3")
                .bind(new_status.as_str())
                .bind(now)
                .bind(txn_id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(VoteOutcome::Counted {
            status: new_status,
            approvals: u32::try_from(approvals).unwrap_or(u32::MAX),
        })
    }

    async fn approved_unclaimed(&self, limit: u32) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT txn_id FROM approvals WHERE status = 'approved' ORDER BY decided_at LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn claim_approved(&self, txn_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE approvals SET status = 'forwarding' WHERE txn_id = $1 AND status = 'approved'",
        )
        .bind(txn_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn finish_approval(
        &self,
        txn_id: &str,
        status: ApprovalStatus,
        error_code: Option<&str>,
        response: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE approvals SET status = $1, error_code = $2, response = $3, decided_at = COALESCE(decided_at, $4) WHERE txn_id = $5",
        )
        .bind(status.as_str())
        .bind(error_code)
        .bind(response)
        .bind(now)
        .bind(txn_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn expire_approvals(&self, now: i64) -> StoreResult<Vec<String>> {
        // A plain read first: the write lock is taken only when something expired,
        // so the every-200 ms check never competes with audit writes.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM approvals WHERE status = 'pending' AND expires_at <= $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT txn_id FROM approvals WHERE status = 'pending' AND expires_at <= $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        if !ids.is_empty() {
            sqlx::query("UPDATE approvals SET status = 'timed_out', decided_at = $1 WHERE status = 'pending' AND expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }

    async fn fail_interrupted(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE approvals SET status = 'error', error_code = 'interrupted', decided_at = COALESCE(decided_at, $1) WHERE status = 'forwarding'",
        )
        .bind(now)
        .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }

    async fn purge_approvals(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM approvals WHERE status IN ('forwarded', 'denied', 'timed_out', 'error') AND decided_at < $1",
        )
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }

    async fn create_grant(&self, g: &Grant) -> StoreResult<()> {
        let methods = serde_json::to_string(&g.methods).map_err(corrupt("methods"))?;
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn grants(&self, team: i64) -> StoreResult<Vec<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE team_id = $1 ORDER BY created_at")
            .bind(team)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(Self::grant_from_row)
            .collect()
    }

    async fn revoke_grant(&self, team: i64, id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE grants SET revoked_at = $1 WHERE team_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn use_grant(&self, id: &str, now_secs: i64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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

    async fn create_session(
        &self,
        account_id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
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

    async fn session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT account_id FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn account(&self, id: i64) -> StoreResult<Option<Account>> {
        Ok(
            sqlx::query("SELECT id, email, password_hash FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
                .map(|r| Account {
                    id: r.get("id"),
                    email: r.get("email"),
                    password_hash: r.get("password_hash"),
                }),
        )
    }

    async fn set_link(&self, l: &Link) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn links(&self, team: i64) -> StoreResult<Vec<Link>> {
        Ok(sqlx::query(
            "SELECT l.team_id, l.home_team_id, t.slug, l.agent_id, l.role, l.created_at FROM links l JOIN teams t ON t.id = l.home_team_id WHERE l.team_id = $1 ORDER BY t.slug, l.agent_id",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(Self::link_from_row)
        .collect())
    }

    async fn delete_link(&self, team: i64, home: i64, agent_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM links WHERE team_id = $1 AND home_team_id = $2 AND agent_id = $3",
        )
        .bind(team)
        .bind(home)
        .bind(agent_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn admin_tokens(&self, team: i64) -> StoreResult<Vec<(AdminToken, String)>> {
        Ok(sqlx::query(
            "SELECT k.*, a.email FROM admin_tokens k JOIN accounts a ON a.id = k.account_id
             JOIN members m ON m.account_id = k.account_id AND m.team_id = $1 ORDER BY k.id",
        )
        .bind(team)
        .fetch_all(&self.pool)
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

    async fn revoke_admin_token(&self, id: i64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn set_channel(&self, c: &Channel) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
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
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn channels(&self, team: i64) -> StoreResult<Vec<Channel>> {
        Ok(
            sqlx::query("SELECT * FROM notification_channels WHERE team_id = $1 ORDER BY name")
                .bind(team)
                .fetch_all(&self.pool)
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

    async fn delete_channel(&self, team: i64, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM notification_channels WHERE team_id = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Self::bump(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_pooled_connection_has_the_bounded_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("tap.db"))
            .await
            .expect("open");
        // Hold several connections at once so the pool opens more than one.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.expect("acquire");
            let kib: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .expect("pragma");
            assert_eq!(kib, -i64::from(POOL_CACHE_KIB));
            held.push(conn);
        }
    }
}
