//! The audit journal: group commit of audit rows without a writer thread.
//!
//! Rows are queued; whoever finds no write in progress becomes the leader and
//! appends everything queued, in one `write`, to the store's durable audit log
//! ([`AuditWriter`]; for SQLite the spool file of `tap-store`), right on the
//! calling task: a `start` row costs no thread hand-off and no database
//! transaction. The flusher task folds the log into the store's tables in
//! large batches [`FOLD_LINGER`] later, on the blocking pool.
//!
//! A `start` row is acknowledged only once it is durable, so the upstream never
//! sees a request whose audit row could be lost with the process. `finish` rows
//! are queued without waiting and ride along with the next write, or are
//! written by the flusher after [`WRITE_LINGER`].
//!
//! A store without such a log (a future Postgres store) gets the same queue,
//! with batches written by [`Store::append_audit`] on a spawned task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tap_core::store::{AuditAppend, AuditWriter, Store, StoreError};
use tokio::sync::{Notify, oneshot};

/// Rows waiting for a commit beyond which new `start` rows are refused (fail
/// closed: nothing is forwarded). `finish` rows are always accepted: each
/// belongs to a request whose `start` row was, so they stay bounded too.
pub const JOURNAL_QUEUE: usize = 8192;
/// Most rows committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How long the flusher waits after being woken before writing queued `finish`
/// rows nobody else wrote, so that one write carries many.
pub const WRITE_LINGER: Duration = Duration::from_millis(5);
/// How long after the first write since the last fold the flusher folds, so
/// that one fold carries many rows: fewer database pages written per row (each
/// transaction rewrites the tails of the table and of its indexes).
pub const FOLD_LINGER: Duration = Duration::from_millis(50);
/// How often the write-ahead log is copied into the database (when rows were written).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long shutdown waits for queued rows to be written.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an audit row was not committed. Clone-able: every waiter of a failed
/// batch gets the same store error. Names no row content.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal is shutting down or its task is gone.
    #[error("audit journal stopped")]
    Stopped,
    /// [`JOURNAL_QUEUE`] rows are already waiting.
    #[error("audit queue is full")]
    QueueFull,
    /// The store refused the batch the row was in.
    #[error("audit write failed: {0}")]
    Write(Arc<StoreError>),
}

type Done = oneshot::Sender<Result<(), JournalError>>;

struct Job {
    row: AuditAppend,
    done: Option<Done>,
}

struct Inner {
    store: Arc<dyn Store>,
    queue: Mutex<Vec<Job>>,
    /// True while some task is the leader (writes the queue).
    leading: AtomicBool,
    /// The store's durable audit log, when it has one.
    writer: Option<Arc<dyn AuditWriter>>,
    /// Wakes the flusher: rows to fold or `finish` rows waiting, or shutdown.
    wake: Notify,
    /// Rows folded since the last checkpoint.
    written: AtomicU64,
    closed: AtomicBool,
    /// Every request's outcome is recorded here, from its `finish` row.
    metrics: Arc<crate::metrics::Metrics>,
}

/// Handle to the journal.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Starts the journal and its flusher task. Without a durable log (the
    /// store has none, or another process owns it) commits go through
    /// [`Store::append_audit`] on a spawned task. A damaged or missing log
    /// of a store that had one (`StoreError::Corrupt`) is an error: the
    /// store may have lost writes and is not served.
    pub fn start(store: Arc<dyn Store>) -> Result<(Self, tokio::task::JoinHandle<()>), StoreError> {
        let writer = match store.audit_writer() {
            Ok(w) => w,
            Err(e @ StoreError::Corrupt(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "audit spool unavailable; committing audit rows to the store directly");
                None
            }
        };
        let inner = Arc::new(Inner {
            store,
            queue: Mutex::new(Vec::new()),
            leading: AtomicBool::new(false),
            writer,
            wake: Notify::new(),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            metrics: Arc::default(),
        });
        let task = tokio::spawn(flusher(Arc::clone(&inner)));
        Ok((Self { inner }, task))
    }

    /// The metrics every request is recorded in.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// Rows queued in memory, not yet written.
    pub fn queued(&self) -> usize {
        lock(&self.inner.queue).len()
    }

    fn observe(&self, row: &AuditAppend) {
        if row.phase == tap_core::audit::AuditPhase::Finish {
            self.inner.metrics.observe_finish(&row.record);
        }
    }

    /// Appends a row and waits until it is committed.
    pub async fn commit(&self, row: AuditAppend) -> Result<(), JournalError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(JournalError::Stopped);
        }
        self.observe(&row);
        let started = std::time::Instant::now();
        let (done, wait) = oneshot::channel();
        {
            let mut q = lock(&self.inner.queue);
            if q.len() >= JOURNAL_QUEUE {
                return Err(JournalError::QueueFull);
            }
            q.push(Job {
                row,
                done: Some(done),
            });
        }
        lead(&self.inner);
        self.inner.wake.notify_one();
        let done = wait.await.map_err(|_| JournalError::Stopped)?;
        self.inner
            .metrics
            .observe_audit_commit(started.elapsed().as_secs_f64());
        done
    }

    /// Queues a row without waiting for the commit.
    pub fn enqueue(&self, row: AuditAppend) {
        self.observe(&row);
        lock(&self.inner.queue).push(Job { row, done: None });
        self.inner.wake.notify_one();
    }

    /// Writes and folds everything queued and stops accepting `start` rows;
    /// bounded by [`DRAIN_TIMEOUT`].
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            loop {
                lead(&self.inner);
                let idle = !self.inner.leading.load(Ordering::Acquire);
                if idle && lock(&self.inner.queue).is_empty() {
                    fold(&self.inner).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::error!("audit rows were still queued at shutdown");
        }
    }
}

/// Folds the log into the store's tables, writes `finish` rows nobody
/// commits for, and checkpoints now and then.
async fn flusher(inner: Arc<Inner>) {
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the next fold is due: set by the first write after a fold.
    let mut fold_at: Option<tokio::time::Instant> = None;
    loop {
        let due = async {
            match fold_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = inner.wake.notified() => {
                tokio::time::sleep(WRITE_LINGER).await;
                lead(&inner);
                fold_at.get_or_insert_with(|| tokio::time::Instant::now() + FOLD_LINGER);
            }
            () = due => {
                fold_at = None;
                lead(&inner);
                fold(&inner).await;
            }
            _ = checkpoint.tick() => {
                if inner.written.swap(0, Ordering::AcqRel) > 0
                    && let Err(e) = inner.store.checkpoint().await
                {
                    tracing::warn!(error = %e, "audit checkpoint failed");
                }
            }
        }
        if inner.closed.load(Ordering::Acquire) && lock(&inner.queue).is_empty() {
            return;
        }
    }
}

/// Moves the durable log into the store's tables, off the runtime workers.
async fn fold(inner: &Arc<Inner>) {
    let Some(writer) = inner.writer.clone() else {
        return;
    };
    match tokio::task::spawn_blocking(move || writer.fold()).await {
        Ok(Ok(n)) => {
            inner.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        // The rows stay in the log; the next fold retries.
        Ok(Err(e)) => tracing::error!(error = %e, "audit fold failed"),
        Err(_) => tracing::error!("audit fold panicked"),
    }
}

/// Up to [`MAX_BATCH`] queued rows, oldest first, and who waits on them.
struct Batch {
    rows: Vec<AuditAppend>,
    waiters: Vec<Done>,
}

fn take_batch(inner: &Inner) -> Batch {
    let jobs: Vec<Job> = {
        let mut q = lock(&inner.queue);
        if q.len() <= MAX_BATCH {
            std::mem::take(&mut *q)
        } else {
            q.drain(..MAX_BATCH).collect()
        }
    };
    let mut batch = Batch {
        rows: Vec::with_capacity(jobs.len()),
        waiters: Vec::new(),
    };
    for job in jobs {
        batch.rows.push(job.row);
        batch.waiters.extend(job.done);
    }
    batch
}

fn complete(batch: Batch, result: Result<(), StoreError>) {
    let outcome = result.map_err(|e| {
        tracing::error!(error = %e, rows = batch.rows.len(), "audit write failed");
        JournalError::Write(Arc::new(e))
    });
    for done in batch.waiters {
        // The waiting request may be gone (agent disconnected): nothing to tell.
        let _ = done.send(outcome.clone());
    }
}

/// Becomes the leader unless someone is, and writes the queue until it is empty.
///
/// Every row pushed before a leader releases leadership is written by it or by
/// the next one: a leader re-checks the queue after letting go.
fn lead(inner: &Arc<Inner>) {
    loop {
        if inner
            .leading
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        if !drain_inline(inner) {
            // A spawned task holds the leadership now and lets go when done.
            return;
        }
        inner.leading.store(false, Ordering::Release);
        if lock(&inner.queue).is_empty() {
            return;
        }
    }
}

/// Writes batches in place. Returns false when it handed the leadership to a task.
fn drain_inline(inner: &Arc<Inner>) -> bool {
    loop {
        let batch = take_batch(inner);
        if batch.rows.is_empty() {
            return true;
        }
        let Some(writer) = &inner.writer else {
            tokio::spawn(drain_async(Arc::clone(inner), batch));
            return false;
        };
        let result = writer.append(&batch.rows);
        complete(batch, result);
    }
}

/// The leader's work for a store without a durable log: batches written by
/// [`Store::append_audit`]. Releases the leadership when the queue is empty.
async fn drain_async(inner: Arc<Inner>, first: Batch) {
    let mut batch = first;
    while !batch.rows.is_empty() {
        let result = inner.store.append_audit(&batch.rows).await;
        complete(batch, result);
        batch = take_batch(&inner);
    }
    inner.leading.store(false, Ordering::Release);
    if !lock(&inner.queue).is_empty() {
        lead(&inner);
    }
}
