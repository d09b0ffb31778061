//! The connection pool and what concerns the database as a whole: opening it,
//! migrations, the configuration revision, deployment metadata, and the write
//! transaction every configuration change runs in.
//!
//! SQLite has one writer at a time, and the logic shared with it (last-owner
//! checks, vote counting, "nothing written unless every name exists") reads
//! and then writes inside one transaction. On PostgreSQL several replicas
//! write at once, so every such transaction first takes one advisory lock
//! ([`CONFIG_LOCK`], held until commit): read-then-write stays race-free
//! across processes, as on SQLite. Audit appends take per-team locks instead
//! (see `audit`), so they never wait for a configuration change.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tap_core::store::{StoreError, StoreResult};

/// Connections in each process's pool.
const POOL_SIZE: u32 = 16;
/// How long a caller waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Advisory-lock class of the store's write transactions (`pg_advisory_xact_lock(class, key)`).
pub(super) const CONFIG_LOCK: i32 = 0x7461_7001;
/// Advisory-lock class of a team's audit chain; the key is the team.
pub(super) const AUDIT_LOCK: i32 = 0x7461_7002;

/// Advisory-lock class of a live claimant of approvals (`owner`); the key is the claimant's.
pub(super) const OWNER_LOCK: i32 = 0x7461_7003;

/// Advisory-lock class of an agent's rate window (`rates`); the key hashes the agent.
pub(super) const RATE_LOCK: i32 = 0x7461_7004;

/// Advisory-lock class of a deployment-wide role (`owner`); the key hashes the role.
pub(super) const LEAD_LOCK: i32 = 0x7461_7005;

/// Advisory-lock class of a credential's shared OAuth 2 token (`tokens`); the key hashes it.
pub(super) const TOKEN_LOCK: i32 = 0x7461_7006;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A driver error as a store error: unique violations are conflicts.
pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists".into())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A conflict from a unique violation, named; other errors as [`unavailable`].
pub(super) fn conflict_as(what: String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match unavailable(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        other => other,
    }
}

/// Options for a `postgres://` URL. The URL's own `options` (e.g.
/// `options=-c%20search_path%3Dtap`) are kept.
pub(super) fn url_options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid database url: {}", redacted(&e))))
}

/// A URL parse error without the URL (it may hold a password).
fn redacted(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "not a postgres:// url",
        _ => "unreadable",
    }
}

/// Opens the pool (lazily: the first query connects).
pub(super) async fn connect(opts: PgConnectOptions) -> StoreResult<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(opts)
        .await
        .map_err(unavailable)?;
    Ok(pool)
}

/// A transaction holding the store's write lock until it ends (module docs)
/// that wakes every replica's waiters when it commits.
pub(crate) async fn write_tx(
    pool: &PgPool,
) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    // The notification leaves only if the transaction commits (`changes`).
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0), pg_notify($2, '')")
        .bind(CONFIG_LOCK)
        .bind(super::changes::CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    Ok(tx)
}

/// A read-only transaction on one snapshot of the database (PostgreSQL's
/// default isolation gives each statement its own).
pub(super) async fn read_tx(
    pool: &PgPool,
) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(unavailable)
}

/// Bumps the configuration revision, inside the transaction that changes the
/// configuration, so a proxy polling the revision never misses a change.
pub(super) async fn bump(tx: &mut sqlx::PgConnection) -> StoreResult<()> {
    sqlx::query("UPDATE config_revision SET revision = revision + 1 WHERE id = 1")
        .execute(tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
}

pub(super) async fn is_initialized(pool: &PgPool) -> StoreResult<bool> {
    // `to_regclass` resolves through the search path, as every query here does.
    sqlx::query_scalar("SELECT to_regclass('teams') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn ping(pool: &PgPool) -> StoreResult<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn revision(pool: &PgPool) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn meta(pool: &PgPool, key: &str) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn set_meta(pool: &PgPool, key: &str, value: &[u8]) -> StoreResult<()> {
    let mut tx = write_tx(pool).await?;
    sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    bump(&mut tx).await?;
    tx.commit().await.map_err(unavailable)
}
