//! The copy guard: a `tap.db` copied while it was in use, without the
//! `tap.db-wal` beside it, is refused instead of served with its recent
//! writes missing.
//!
//! SQLite keeps the newest writes in the WAL until a checkpoint copies them
//! into the main file, and deletes the WAL only when the last connection
//! closes cleanly (after copying everything). So:
//!
//! - every process that opens the store holds a `flock` on `tap.db-lock` for
//!   as long as it has the store open: the first opener takes it exclusively
//!   while it checks and marks the store (others opening meanwhile wait),
//!   then shares it; later openers share it and skip the check (the WAL of
//!   a live store may not exist yet when they look);
//! - the first to open an initialised store writes a marker row into `meta`
//!   and checkpoints (FULL), so the main file says "in use" while any
//!   process has it open;
//! - a process closing the store removes the marker, before its connections
//!   close, only if it can take the lock exclusively (no other process has
//!   the store open): a store stopped properly has no marker and no WAL, and
//!   opens;
//! - a crash leaves the marker and the WAL beside it, and opens;
//! - a main file with the marker and no WAL beside it was copied (or
//!   restored) without its WAL: refused, and nothing is written, so every
//!   later start is refused too.
//!
//! `tap backup` removes the marker from its snapshot. Someone certain that a
//! marked file is whole (its WAL was lost with the machine, say) can delete
//! the row by hand (docs/operations.md).
//!
//! A leaf: it imports only `pool` and `schema`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use tap_core::store::{StoreError, StoreResult};

use super::pool::{companion, unavailable};
use super::schema::BUSY_TIMEOUT;

/// The `meta` key of the marker.
pub(crate) const META_IN_USE: &str = "sqlite_in_use";

/// How often a shared lock is tried again while a closing process holds it.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// The WAL file of the database at `db`.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    companion(db, "-wal")
}

/// The lock file of the database at `db`.
pub(super) fn lock_path(db: &Path) -> PathBuf {
    companion(db, "-lock")
}

/// The guard of one store (shared by its clones): holds the shared lock, and
/// removes the marker when the last clone goes if no other process has the
/// store open.
#[derive(Debug)]
pub(super) struct InUse {
    path: Option<PathBuf>,
    /// The lock file, held shared while the store is open; `None` in memory
    /// and once released.
    lock: Mutex<Option<File>>,
    /// Whether the lock was taken exclusively at open: no other process had
    /// the store open, so a missing WAL means something. Until
    /// [`Self::share`], other processes wait to open.
    alone: bool,
    /// Whether the marker is set (by this process or one before it).
    marked: Mutex<bool>,
}

impl InUse {
    /// Takes the lock of the database at `path` (`None` in memory):
    /// exclusively when no other process has the store open (it is then
    /// checked and marked with nobody else opening it at the same moment, and
    /// shared after [`Self::share`]), else shared. Waits (bounded) while
    /// another process opens or closes the store. Call it before the WAL is
    /// looked at and the pool opens.
    pub(super) async fn acquire(path: Option<PathBuf>) -> StoreResult<Self> {
        let (lock, alone) = match &path {
            Some(db) => {
                let (file, alone) = take_lock(&lock_path(db)).await?;
                (Some(file), alone)
            }
            None => (None, false),
        };
        Ok(Self {
            path,
            lock: Mutex::new(lock),
            alone,
            marked: Mutex::new(false),
        })
    }

    /// Once checked and marked: lets other processes open the store too.
    pub(super) fn share(&self) {
        if let Some(file) = &*self.lock.lock().unwrap_or_else(PoisonError::into_inner)
            && let Err(e) = file.lock_shared()
        {
            tracing::warn!(error = %e, "could not share the store's lock");
        }
    }

    /// Checks the file opened by `pool` is not a copy taken without its WAL,
    /// then marks it in use. `wal_was_present`: whether the WAL existed
    /// before the pool opened. A store without a schema yet is marked by
    /// [`Self::mark`] once migrated.
    pub(super) async fn check_and_mark(
        &self,
        pool: &SqlitePool,
        wal_was_present: bool,
    ) -> StoreResult<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !has_meta(pool).await? {
            return Ok(());
        }
        // With another process live, its WAL may simply not be created yet;
        // the process that opened the store first checked it.
        if self.alone && !wal_was_present && marked(pool).await? {
            return Err(StoreError::Corrupt(format!(
                "{db} was copied or restored while a proxy had it open, without {wal} beside it: \
                 its most recent writes may be missing, so it is not served; \
                 copy the data dir whole while the proxy is stopped, or use `tap backup` and `tap restore`; \
                 nothing was changed",
                db = path.display(),
                wal = wal_path(path).display(),
            )));
        }
        self.mark(pool).await
    }

    /// Marks the store in use (when it has a schema) and checkpoints, so the
    /// main file carries the marker.
    pub(super) async fn mark(&self, pool: &SqlitePool) -> StoreResult<()> {
        if self.path.is_none() || !has_meta(pool).await? {
            return Ok(());
        }
        if !marked(pool).await? {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, x'31') ON CONFLICT (key) DO NOTHING",
            )
            .bind(META_IN_USE)
            .execute(pool)
            .await
            .map_err(unavailable)?;
            // FULL: waits (the busy timeout) for other connections, so the
            // marker is in the main file before anyone can copy it without.
            let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(FULL)")
                .fetch_one(pool)
                .await
                .map_err(unavailable)?;
            if busy != 0 {
                tracing::warn!(
                    "the in-use marker could not be checkpointed into the store file yet"
                );
            }
        }
        *self.marked.lock().unwrap_or_else(PoisonError::into_inner) = true;
        Ok(())
    }

    /// Lets go of the store, before its connections close: when no other
    /// process has the store open, removes the marker and folds the WAL into
    /// the file, so the file alone is whole. Idempotent.
    pub(super) fn release(&self) {
        let Some(file) = self
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let marked =
            std::mem::take(&mut *self.marked.lock().unwrap_or_else(PoisonError::into_inner));
        let (Some(path), true) = (&self.path, marked) else {
            return;
        };
        match file.try_lock() {
            Ok(()) => {
                if let Err(e) = unmark(path) {
                    tracing::warn!(error = %e, "could not clear the store's in-use marker");
                } else if let Err(e) = fold_wal(path) {
                    // The file is whole with its WAL; without it, it is refused.
                    tracing::debug!(error = %e, "WAL not folded into the store file at close");
                }
            }
            // Another process has the store open: the last one out clears it.
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                tracing::warn!(error = %e, "could not lock the store to clear its in-use marker");
            }
        }
        // Dropping `file` lets go of the lock.
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.release();
    }
}

/// The lock on `path` (created if missing): exclusive when nobody holds it,
/// else shared (`false`); waits up to the busy timeout while another process
/// holds it exclusively (opening or closing the store).
async fn take_lock(path: &Path) -> StoreResult<(File, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    let failed = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
    let give_up = Instant::now() + BUSY_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok((file, true)),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(failed(e)),
        }
        match file.try_lock_shared() {
            Ok(()) => return Ok((file, false)),
            Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "{} stays locked by a process opening or closing the store",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(failed(e)),
        }
    }
}

/// Removes the marker from the database file at `path` (also used on a
/// backup's snapshot).
pub(super) fn unmark(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute("DELETE FROM meta WHERE key = ?1", [META_IN_USE])?;
    Ok(())
}

/// Copies the whole WAL of the database at `path` into the file and
/// truncates it (fails while another process reads or writes).
pub(super) fn fold_wal(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if busy != 0 {
        return Err("the WAL is in use".into());
    }
    Ok(())
}

async fn has_meta(pool: &SqlitePool) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
    )
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    Ok(n > 0)
}

async fn marked(pool: &SqlitePool) -> StoreResult<bool> {
    let found: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(META_IN_USE)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use tap_core::store::Store as _;

    use super::*;
    use crate::SqliteStore;

    async fn migrated(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path).await.expect("open");
        store.migrate().await.expect("migrate");
        store
    }

    async fn has_marker(store: &SqliteStore) -> bool {
        store.meta(META_IN_USE).await.expect("meta").is_some()
    }

    /// A copy of the main file alone, as `cp tap.db` would take it.
    fn copy_main(from: &Path, dir: &Path) -> PathBuf {
        let to = dir.join("copy.db");
        for p in [to.clone(), wal_path(&to), companion(&to, "-shm")] {
            let _ = std::fs::remove_file(p);
        }
        std::fs::copy(from, &to).expect("copy");
        to
    }

    #[tokio::test]
    async fn a_main_file_copied_while_open_is_refused_and_one_closed_properly_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tap.db");
        let first = migrated(&db).await;
        first.set_meta("probe", b"written").await.expect("write");
        assert!(has_marker(&first).await);

        // Taken while open: refused, every time, and nothing is left that
        // would let a later open through.
        let copy = copy_main(&db, dir.path());
        for _ in 0..2 {
            let err = SqliteStore::open(&copy).await.expect_err("refused");
            let text = err.to_string();
            assert!(matches!(err, StoreError::Corrupt(_)), "{text}");
            assert!(text.contains("copy.db-wal"), "{text}");
            assert!(text.contains("tap restore"), "{text}");
            assert!(!wal_path(&copy).exists(), "no WAL left behind");
        }

        // A second user of the store closing does not clear the marker while
        // the first still has it open.
        let second = migrated(&db).await;
        drop(second);
        assert!(has_marker(&first).await, "still in use by the first");
        let copy = copy_main(&db, dir.path());
        assert!(SqliteStore::open(&copy).await.is_err());

        // Closed properly: no WAL, no marker; the main file alone is whole.
        drop(first);
        let reopened = migrated(&db).await;
        assert_eq!(
            reopened.meta("probe").await.expect("meta").as_deref(),
            Some(&b"written"[..])
        );
        reopened.close().await;
        let wal = std::fs::metadata(wal_path(&db)).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL was folded into the file at the last close");
        let copy = copy_main(&db, dir.path());
        let served = migrated(&copy).await;
        assert_eq!(
            served.meta("probe").await.expect("meta").as_deref(),
            Some(&b"written"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_opening_a_closed_store_at_the_same_moment_all_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tap.db");
        migrated(&db).await.close().await;
        for _ in 0..5 {
            let opened = futures_join(&db).await;
            assert!(opened.iter().all(Result::is_ok), "{opened:?}");
            for s in opened.into_iter().flatten() {
                s.close().await;
            }
        }
    }

    /// Four opens of `db` at once.
    async fn futures_join(db: &Path) -> Vec<StoreResult<SqliteStore>> {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let db = db.to_path_buf();
                tokio::spawn(async move { SqliteStore::open(&db).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("join"));
        }
        out
    }

    #[tokio::test]
    async fn a_store_left_by_a_crash_keeps_its_wal_and_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("tap.db");
        let crashed = migrated(&db).await;
        crashed.set_meta("probe", b"kept").await.expect("write");
        // A crash: the process goes without closing anything.
        std::mem::forget(crashed);
        assert!(wal_path(&db).exists());
        let after = migrated(&db).await;
        assert_eq!(
            after.meta("probe").await.expect("meta").as_deref(),
            Some(&b"kept"[..])
        );
    }
}
