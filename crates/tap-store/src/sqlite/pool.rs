//! The connection pool and what concerns the database as a whole: opening it,
//! migrations, the configuration revision, deployment metadata, and the write
//! transaction every configuration change runs in.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tap_core::store::{StoreError, StoreResult};

use super::schema::BUSY_TIMEOUT;

/// Connections in the pool (SQLite has one writer; readers share WAL).
const POOL_SIZE: u32 = 8;
/// Page cache of each pooled connection, KiB: at most `POOL_SIZE` times this.
const POOL_CACHE_KIB: u32 = 512;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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

/// The durability every TAP database runs with (SPEC §9: WAL, `synchronous=NORMAL`).
fn durable(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

/// Options for the database file at `path`.
pub(super) fn file_options(path: &Path) -> SqliteConnectOptions {
    durable(SqliteConnectOptions::new().filename(path))
}

/// Options for a `sqlite://` URL.
pub(super) fn url_options(url: &str) -> StoreResult<SqliteConnectOptions> {
    Ok(durable(
        SqliteConnectOptions::from_str(url).map_err(unavailable)?,
    ))
}

/// Opens the pool; also returns the database file (`None` in memory), which
/// the audit spool lives next to.
pub(super) async fn connect(
    opts: SqliteConnectOptions,
) -> StoreResult<(SqlitePool, Option<PathBuf>)> {
    // Each pooled connection's page cache fills up over time (checkpoints,
    // configuration polls, admin reads while the audit tables grow): with
    // SQLite's default of 2 MiB the proxy's memory grew by ~4.6 MiB in 30 s
    // of load, with this bound by 0.9 (docs/benchmarks.md).
    let opts = opts.pragma("cache_size", format!("-{POOL_CACHE_KIB}"));
    // Connections are never retired while the store is open: SQLite deletes
    // the WAL when its last connection closes, and the copy guard
    // (`in_use`) relies on that happening only at a clean close.
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(BUSY_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts.clone())
        .await
        .map_err(unavailable)?;
    Ok((pool, file_of(&opts)))
}

/// The database file `opts` opens (`None` in memory).
pub(super) fn file_of(opts: &SqliteConnectOptions) -> Option<PathBuf> {
    let file = opts.get_filename();
    (!file.as_os_str().is_empty() && file != Path::new(":memory:")).then(|| file.to_path_buf())
}

/// The file SQLite keeps beside `db` under `suffix` (`-wal`, `-shm`).
pub(super) fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Removes an empty `-wal` (and the `-shm` beside it) left next to `db` by
/// an open that wrote nothing.
pub(super) fn remove_empty_companions(db: &Path) {
    let wal = companion(db, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(&wal);
        let _ = std::fs::remove_file(companion(db, "-shm"));
    }
}

/// A write transaction that takes SQLite's lock at once (`BEGIN IMMEDIATE`):
/// a deferred one that reads first could fail to upgrade under a concurrent
/// writer instead of waiting for the busy timeout.
pub(super) async fn write_tx(
    pool: &SqlitePool,
) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(unavailable)
}

/// A read transaction on one snapshot of the database (SQLite's deferred
/// transaction reads one snapshot once it has read).
pub(super) async fn read_tx(
    pool: &SqlitePool,
) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin().await.map_err(unavailable)
}

/// Bumps the configuration revision, inside the transaction that changes the
/// configuration, so a proxy polling the revision never misses a change.
pub(super) async fn bump(tx: &mut sqlx::SqliteConnection) -> StoreResult<()> {
    sqlx::query("UPDATE config_revision SET revision = revision + 1 WHERE id = 1")
        .execute(tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
}

pub(super) async fn is_initialized(pool: &SqlitePool) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'teams'",
    )
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    Ok(n > 0)
}

pub(super) async fn ping(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn revision(pool: &SqlitePool) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn meta(pool: &SqlitePool, key: &str) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn set_meta(pool: &SqlitePool, key: &str, value: &[u8]) -> StoreResult<()> {
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

pub(super) async fn checkpoint(pool: &SqlitePool) -> StoreResult<()> {
    // PASSIVE: copies what it can without waiting for, or blocking, any writer or reader.
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_pooled_connection_has_the_bounded_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pool, path) = connect(file_options(&dir.path().join("tap.db")))
            .await
            .expect("open");
        assert_eq!(path, Some(dir.path().join("tap.db")));
        // Hold several connections at once so the pool opens more than one.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = pool.acquire().await.expect("acquire");
            let kib: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .expect("pragma");
            assert_eq!(kib, -i64::from(POOL_CACHE_KIB));
            held.push(conn);
        }
    }
}
