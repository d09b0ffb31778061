//! The audit journal: one writer task that group-commits audit rows.
//!
//! Rows from concurrent requests are appended in one store transaction, which
//! also serialises the per-team hash chain. A `start` row is acknowledged only
//! after its transaction committed, so the upstream never sees a request whose
//! audit row is not durable; `finish` rows are queued without waiting.

use std::sync::Arc;

use tap_core::store::{AuditAppend, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Queue bound: beyond it, callers wait (back-pressure), never drop rows.
pub const JOURNAL_QUEUE: usize = 8192;
/// Most rows committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How long rows nobody waits on (`finish` rows) wait for company before being written.
pub const FINISH_LINGER: std::time::Duration = std::time::Duration::from_millis(3);

struct Job {
    row: AuditAppend,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Journal {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(JOURNAL_QUEUE);
        let task = tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if batch.iter().all(|j| j.done.is_none()) {
                    // Nobody waits on these rows: let the next request's start row join them,
                    // so a request costs one transaction instead of two.
                    let linger = tokio::time::sleep(FINISH_LINGER);
                    tokio::pin!(linger);
                    while batch.len() < MAX_BATCH {
                        let room = MAX_BATCH - batch.len();
                        tokio::select! {
                            () = &mut linger => break,
                            n = rx.recv_many(&mut batch, room) => {
                                if n == 0 || batch.iter().any(|j| j.done.is_some()) {
                                    break;
                                }
                            }
                        }
                    }
                }
                let rows: Vec<AuditAppend> = batch.iter().map(|j| j.row.clone()).collect();
                let result = store.append_audit(&rows).await.map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!(error = %e, rows = rows.len(), "audit write failed");
                }
                for job in batch.drain(..) {
                    if let Some(done) = job.done {
                        let _ = done.send(result.clone());
                    }
                }
            }
        });
        (Self { tx }, task)
    }

    /// Appends a row and waits until it is committed.
    pub async fn commit(&self, row: AuditAppend) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                row,
                done: Some(done),
            })
            .await
            .map_err(|_| StoreError::Unavailable("audit journal stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("audit journal stopped".into()))?
            .map_err(StoreError::Unavailable)
    }

    /// Queues a row without waiting for the commit.
    pub fn enqueue(&self, row: AuditAppend) {
        match self.tx.try_send(Job { row, done: None }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(job).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit journal stopped; a finish row was lost");
            }
        }
    }
}
