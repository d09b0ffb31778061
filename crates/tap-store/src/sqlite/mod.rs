//! SQLite backend.
//!
//! [`SqliteStore`] is a thin front: its [`Store`] impl (`crate::sql::store`)
//! forwards each method to the free function of the same name in the module
//! of its concern, taking the pool; written out here are only the methods
//! that differ from PostgreSQL's (the audit trail, which goes through the
//! spool, the in-use marker, claims without a claimant, leading).
//! Submodules import only leaves (`pool`, `rows`, `schema`) and each other
//! downward, never this module, so there is no import circle:
//!
//! - `schema`: settings, statements and the audit key shared with the spool's
//!   own connection;
//! - `pool`: opening, migrations, revision, metadata, write transactions;
//! - `rows`: decoding rows into domain types;
//! - `teams`, `accounts`, `agents`, `credentials`, `tokens`, `roles`,
//!   `grants`, `rates`, `approvals`, `telegram`, `passkeys`, `ceremonies`:
//!   one concern each, their queries shared with PostgreSQL (`crate::sql`);
//! - `audit` (pool-side appends and reads) over `spool` (the audit spool);
//! - `snapshot`: the hot path's consistent read.
//!
//! [`Store`]: tap_core::store::Store

mod abuse;
mod accounts;
mod agents;
mod approvals;
mod audit;
mod backup;
mod ceremonies;
mod credentials;
mod grants;
mod in_use;
mod passkeys;
mod pool;
pub(crate) mod rates;
mod roles;
mod rows;
pub(crate) mod schema;
mod snapshot;
mod spool;
mod teams;
mod telegram;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use tap_core::audit::{AuditChain, AuditHead, AuditRow};
use tap_core::crypto::AuditKey;
use tap_core::store::{AuditAppend, AuditQuery, AuditWriter, StoreResult};

/// The embedded SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Declared first, so it is dropped (and the in-use marker removed)
    /// before the pool's connections close.
    in_use: Arc<in_use::InUse>,
    pool: SqlitePool,
    /// The audit spool, once this store handed out its writer.
    spool: audit::SpoolSlot,
}

impl SqliteStore {
    /// Opens (creating the file if needed) the database at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::connect(pool::file_options(path)).await
    }

    /// Opens a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::connect(pool::url_options(url)?).await
    }

    /// The pool, for the SQLite-to-PostgreSQL copy.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let file = pool::file_of(&opts);
        let guard = in_use::InUse::acquire(file.clone()).await?;
        let wal_was_present = file
            .as_deref()
            .is_some_and(|f| in_use::wal_path(f).exists());
        let (pool, path) = pool::connect(opts).await?;
        if let Err(e) = guard.check_and_mark(&pool, wal_was_present).await {
            pool.close().await;
            if !wal_was_present && let Some(f) = &path {
                // Leave the directory as it was: an empty WAL created by
                // this refused open must not let a second start through.
                pool::remove_empty_companions(f);
            }
            return Err(e);
        }
        guard.share();
        Ok(Self {
            in_use: Arc::new(guard),
            pool,
            spool: audit::SpoolSlot::new(path),
        })
    }
}

crate::sql::store::store_impl!(SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        pool::migrate(&self.pool).await?;
        self.in_use.mark(&self.pool).await
    }

    async fn set_audit_key(&self, key: AuditKey) -> StoreResult<()> {
        audit::set_audit_key(&self.pool, self.spool.key(), key).await
    }

    async fn audit_head(&self, team: i64) -> StoreResult<Option<AuditHead>> {
        self.spool.fold_pending().await?;
        audit::audit_head(&self.pool, team).await
    }

    async fn append_audit(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        self.spool.append(&self.pool, rows).await
    }

    fn audit_writer(&self) -> StoreResult<Option<Arc<dyn AuditWriter>>> {
        self.spool.writer()
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        pool::checkpoint(&self.pool).await
    }

    async fn close(&self) {
        self.close_files().await;
    }

    async fn audit_rows(&self, team: i64, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.spool.fold_pending().await?;
        audit::audit_rows(&self.pool, team, q).await
    }

    async fn audit_chain(&self, team: i64) -> StoreResult<AuditChain> {
        self.spool.fold_pending().await?;
        audit::audit_chain(&self.pool, team).await
    }

    async fn prune_audit(&self, before: &str) -> StoreResult<u64> {
        // Only folded rows are pruned.
        self.spool.fold_pending().await?;
        audit::prune_audit(&self.pool, self.spool.key(), before).await
    }

    async fn claim_approved(&self, txn_id: &str) -> StoreResult<bool> {
        approvals::claim_approved(&self.pool, txn_id).await
    }

    async fn fail_interrupted(&self, now: i64) -> StoreResult<u64> {
        approvals::fail_interrupted(&self.pool, now).await
    }

    async fn lead(&self, _role: &str) -> StoreResult<bool> {
        // One proxy per database file (its audit spool is locked): it leads.
        Ok(true)
    }
});
