//! The audit trail: the pool-side appends and reads (shared with
//! PostgreSQL: `crate::sql::audit`), and in front of them the spool this
//! store hands out as its [`AuditWriter`]: once there is one, appends go
//! through it, and reads fold it first (`SpoolSlot`). SQLite has one writer,
//! so the write transaction alone keeps each team's chain to one writer.
//! The code below uses the macro's imports (`AuditAppend`, `AuditKeySlot`,
//! `StoreError`, `StoreResult`, `write_tx`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tap_core::store::AuditWriter;

use super::spool::{Spool, spool_path};

crate::sql::audit::audit_queries!(SqlitePool, SqliteConnection, Sqlite, position = "instr");

/// The write transaction (`BEGIN IMMEDIATE`) an append or a prune writes in:
/// it excludes every other writer, appends and prunes alike.
async fn audit_tx(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    write_tx(pool).await
}

/// Nothing more to take: `audit_tx` already excludes every other writer.
async fn lock_team(_conn: &mut SqliteConnection, _team: i64) -> StoreResult<()> {
    Ok(())
}

/// The audit spool of a file-backed store, opened when the store first hands
/// out its writer; clones share it.
#[derive(Clone, Debug)]
pub(super) struct SpoolSlot {
    /// The database file, for the spool's own connection (`None` in memory).
    path: Option<PathBuf>,
    spool: Arc<Mutex<Option<Arc<Spool>>>>,
    /// The audit key, shared with the spool.
    key: AuditKeySlot,
}

impl SpoolSlot {
    pub(super) fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            spool: Arc::default(),
            key: AuditKeySlot::default(),
        }
    }

    /// The audit key of this store (and its clones and spool).
    pub(super) fn key(&self) -> &AuditKeySlot {
        &self.key
    }

    /// This store's spool, once handed out.
    fn own(&self) -> Option<Arc<Spool>> {
        self.spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store's [`AuditWriter`]: one spool per store, opened on first use.
    /// `Conflict` when another live process owns the file's spool.
    pub(super) fn writer(&self) -> StoreResult<Option<Arc<dyn AuditWriter>>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut slot = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slot.as_ref() {
            return Ok(Some(Arc::clone(s) as Arc<dyn AuditWriter>));
        }
        let spool = Arc::new(Spool::open(path, self.key.clone())?);
        *slot = Some(Arc::clone(&spool));
        Ok(Some(spool))
    }

    /// Appends `rows`: through this store's spool once it handed one out
    /// (one order for every row of this process), else chained through the
    /// pool.
    pub(super) async fn append(&self, pool: &SqlitePool, rows: &[AuditAppend]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(spool) = self.own() {
            spool.append(rows)?;
            return fold_blocking(spool).await;
        }
        append_audit(pool, &self.key, rows).await
    }

    /// Before reading audit rows: fold this process's spool, or a spool no live
    /// process owns (left by a proxy that crashed). One owned by a running proxy
    /// is folded by it within milliseconds.
    pub(super) async fn fold_pending(&self) -> StoreResult<()> {
        if let Some(spool) = self.own() {
            return fold_blocking(spool).await;
        }
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        // Without the key nothing can be chained: the rows stay in the spool
        // for the next process that holds it.
        if !spool_path(&path).exists() || self.key.current().is_none() {
            return Ok(());
        }
        let key = self.key.clone();
        let opened = tokio::task::spawn_blocking(move || Spool::open(&path, key).map(drop))
            .await
            .map_err(|_| StoreError::Unavailable("audit fold failed".into()))?;
        match opened {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            // A chain head edited behind the store's back: nothing is chained
            // onto it, and reads (`tap audit verify` above all) still show
            // the chain as it is.
            Err(StoreError::Corrupt(e)) => {
                tracing::warn!(error = %e, "audit spool left unfolded");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Folds off the async runtime's workers: the fold may wait for SQLite's lock.
async fn fold_blocking(spool: Arc<Spool>) -> StoreResult<()> {
    tokio::task::spawn_blocking(move || spool.fold())
        .await
        .map_err(|_| StoreError::Unavailable("audit fold failed".into()))?
        .map(|_| ())
}
