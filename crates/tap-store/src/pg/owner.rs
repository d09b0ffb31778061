//! Which replica is forwarding an approved request, and whether it still runs;
//! which replica leads a deployment-wide role (one Telegram poller).
//!
//! SQLite has one proxy, so at start every approval left `forwarding` was
//! interrupted. With several replicas on one database another replica may be
//! forwarding it right now. So each store that claims an approval holds a
//! session advisory lock `(OWNER_LOCK, key)` on a connection of its own for
//! its whole life, and records `key` in `approvals.claimed_by`; the lock is
//! released when the process dies (its connection closes). An approval is
//! interrupted only when its claimant is this store (called at start, as on
//! SQLite) or nobody holds its claimant's lock.

use std::collections::HashMap;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tap_core::store::{StoreError, StoreResult};
use tokio::sync::Mutex;

use super::pool::{LEAD_LOCK, OWNER_LOCK, unavailable};

/// This store's claimant key and the connection holding its lock (opened on
/// the first claim: CLI commands never claim).
#[derive(Debug)]
pub(super) struct Owner {
    key: i32,
    opts: PgConnectOptions,
    held: Mutex<Option<PgConnection>>,
    /// Roles this store leads, each held by a session lock on its own connection.
    leads: Mutex<HashMap<String, PgConnection>>,
}

impl Owner {
    pub(super) fn new(opts: PgConnectOptions) -> StoreResult<Self> {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b)
            .map_err(|_| StoreError::Unavailable("random source unavailable".into()))?;
        Ok(Self {
            key: i32::from_le_bytes(b),
            opts,
            held: Mutex::new(None),
            leads: Mutex::new(HashMap::new()),
        })
    }

    /// This store's key, whether or not it holds the lock yet.
    pub(super) fn id(&self) -> i32 {
        self.key
    }

    /// The key to record on a claim, once this store holds its lock.
    pub(super) async fn key(&self) -> StoreResult<i32> {
        let mut held = self.held.lock().await;
        let alive = match held.as_mut() {
            Some(c) => c.ping().await.is_ok(),
            None => false,
        };
        if !alive {
            let mut c = PgConnection::connect_with(&self.opts)
                .await
                .map_err(unavailable)?;
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(OWNER_LOCK)
                .bind(self.key)
                .execute(&mut c)
                .await
                .map_err(unavailable)?;
            *held = Some(c);
        }
        Ok(self.key)
    }

    /// True while this store holds `role`'s session lock: kept while its
    /// connection answers, taken when nobody else holds it. A process that
    /// dies releases it with its connection.
    pub(super) async fn lead(&self, role: &str) -> StoreResult<bool> {
        let mut leads = self.leads.lock().await;
        if let Some(c) = leads.get_mut(role) {
            if c.ping().await.is_ok() {
                return Ok(true);
            }
            leads.remove(role);
        }
        let mut c = PgConnection::connect_with(&self.opts)
            .await
            .map_err(unavailable)?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LEAD_LOCK)
            .bind(role)
            .fetch_one(&mut c)
            .await
            .map_err(unavailable)?;
        if got {
            leads.insert(role.to_owned(), c);
        } else {
            let _ = c.close().await;
        }
        Ok(got)
    }
}
