//! Wake-ups across replicas: every write transaction (`pool::write_tx`)
//! sends `NOTIFY tap_changes`, delivered when it commits; a store that is
//! asked to wait for changes listens on its own connection and wakes its
//! waiters. A lost notification only delays a replica until its next poll.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, OnceCell};

/// The channel every write notifies.
pub(super) const CHANNEL: &str = "tap_changes";
/// Pause before listening again after the listener failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// This store's waiters, and the listener task started for the first one.
#[derive(Debug, Default)]
pub(super) struct Changes {
    notify: Arc<Notify>,
    started: OnceCell<()>,
}

impl Changes {
    /// Resolves at the next change committed by any process on the database.
    pub(super) async fn changed(&self, pool: &PgPool) {
        let notified = self.notify.notified();
        self.started
            .get_or_init(|| async {
                tokio::spawn(listen(pool.clone(), Arc::downgrade(&self.notify)));
            })
            .await;
        notified.await;
    }
}

/// Listens until the store is gone, waking every waiter on each notification.
async fn listen(pool: PgPool, notify: Weak<Notify>) {
    loop {
        let listening = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            loop {
                l.recv().await?;
                match notify.upgrade() {
                    Some(n) => n.notify_waiters(),
                    None => return Ok::<(), sqlx::Error>(()),
                }
            }
        };
        match listening.await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "listening for changes failed; polling meanwhile"),
        }
        if notify.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(RELISTEN_AFTER).await;
    }
}
