//! PostgreSQL backend, for several proxy replicas sharing one database.
//!
//! [`PgStore`] has the same shape as the SQLite store: a thin front whose
//! [`Store`] impl (`crate::sql::store`) forwards each method to one module
//! per concern, taking the pool; written out here are only the methods that
//! differ (the audit key, claims recorded with their claimant, change
//! notifications, leading). The queries are shared with SQLite
//! (`crate::sql`); what differs is concurrency: write transactions take an
//! advisory lock (`pool`) where SQLite takes its single writer lock, and
//! audit appends lock only their teams (`audit`).
//! Migrations are their own (`migrations/postgres`).
//!
//! [`Store`]: tap_core::store::Store

mod abuse;
mod accounts;
mod agents;
mod approvals;
mod audit;
mod ceremonies;
mod changes;
mod credentials;
mod grants;
mod owner;
mod passkeys;
mod pool;
mod rates;

pub(crate) use pool::write_tx;
mod roles;
mod rows;
mod snapshot;
mod teams;
mod telegram;
mod tokens;

use std::sync::Arc;

use sqlx::PgPool;
use tap_core::audit::{AuditChain, AuditHead, AuditRow};
use tap_core::crypto::AuditKey;
use tap_core::store::{AuditAppend, AuditQuery, StoreResult};

use crate::sqlite::schema::AuditKeySlot;

/// The PostgreSQL store. Clones share the pool and the audit key.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// The audit key, once the master key is open.
    key: AuditKeySlot,
    /// This store's claimant lock (`owner`), shared by its clones.
    owner: Arc<owner::Owner>,
    /// Waiters for changes made by any replica, shared by its clones.
    changes: Arc<changes::Changes>,
}

impl PgStore {
    /// Connects to a `postgres://` URL (tables in the URL's search path).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::with_options(pool::url_options(url)?).await
    }

    /// Connects to a `postgres://` URL with every table in `schema`, which
    /// must exist (several deployments, or test cases, can share a database).
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        let opts = pool::url_options(url)?.options([("search_path", schema)]);
        Self::with_options(opts).await
    }

    /// The pool, for the SQLite-to-PostgreSQL copy.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn with_options(opts: sqlx::postgres::PgConnectOptions) -> StoreResult<Self> {
        Ok(Self {
            pool: pool::connect(opts.clone()).await?,
            key: AuditKeySlot::default(),
            owner: Arc::new(owner::Owner::new(opts)?),
            changes: Arc::default(),
        })
    }
}

crate::sql::store::store_impl!(PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        pool::migrate(&self.pool).await
    }

    async fn set_audit_key(&self, key: AuditKey) -> StoreResult<()> {
        audit::set_audit_key(&self.pool, &self.key, key).await
    }

    async fn audit_head(&self, team: i64) -> StoreResult<Option<AuditHead>> {
        audit::audit_head(&self.pool, team).await
    }

    async fn append_audit(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        audit::append_audit(&self.pool, &self.key, rows).await
    }

    async fn audit_rows(&self, team: i64, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        audit::audit_rows(&self.pool, team, q).await
    }

    async fn audit_chain(&self, team: i64) -> StoreResult<AuditChain> {
        audit::audit_chain(&self.pool, team).await
    }

    async fn prune_audit(&self, before: &str) -> StoreResult<u64> {
        audit::prune_audit(&self.pool, &self.key, before).await
    }

    async fn claim_approved(&self, txn_id: &str) -> StoreResult<bool> {
        let owner = self.owner.key().await?;
        approvals::claim_approved(&self.pool, txn_id, owner).await
    }

    async fn fail_interrupted(&self, now: i64) -> StoreResult<u64> {
        approvals::fail_interrupted(&self.pool, now, self.owner.id()).await
    }

    async fn changed(&self) {
        self.changes.changed(&self.pool).await;
    }

    async fn lead(&self, role: &str) -> StoreResult<bool> {
        self.owner.lead(role).await
    }
});
