//! The audit journal: group commit of audit rows without a writer thread.
//!
//! Rows are queued; whoever finds no commit in progress becomes the leader and
//! writes everything queued in one transaction on the store's own audit
//! connection ([`AuditWriter`]), right on the calling task: at one request in
//! flight a `start` row costs one in-process commit and no thread hand-off;
//! under load, rows queued while a commit runs share the next one. One
//! transaction per batch also serialises each team's hash chain.
//!
//! A `start` row is acknowledged only after its transaction committed, so the
//! upstream never sees a request whose audit row is not durable. `finish` rows
//! are queued without waiting and ride along with the next commit, or are
//! written by the flusher task after [`FINISH_LINGER`].
//!
//! When the inline commit would wait for another writer's lock (another
//! process, or a configuration write), or the store has no synchronous writer,
//! the leadership moves to a spawned task that waits off the runtime workers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tap_core::store::{AppendError, AuditAppend, AuditWriter, Store, StoreError};
use tokio::sync::{Notify, oneshot};

/// Rows waiting for a commit beyond which new `start` rows are refused (fail
/// closed: nothing is forwarded). `finish` rows are always accepted: each
/// belongs to a request whose `start` row was, so they stay bounded too.
pub const JOURNAL_QUEUE: usize = 8192;
/// Most rows committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How long rows nobody waits on (`finish` rows) wait for company before being written.
pub const FINISH_LINGER: Duration = Duration::from_millis(3);
/// How often the write-ahead log is copied into the database (when rows were written).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long shutdown waits for queued rows to be written.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type Done = oneshot::Sender<Result<(), String>>;

struct Job {
    row: AuditAppend,
    done: Option<Done>,
}

struct Inner {
    store: Arc<dyn Store>,
    queue: Mutex<Vec<Job>>,
    /// True while some task is the leader (writes the queue).
    leading: AtomicBool,
    /// The synchronous writer; taken by the leader for a blocking write.
    writer: Mutex<Option<Box<dyn AuditWriter>>>,
    /// Wakes the flusher: `finish` rows are waiting, or shutdown.
    wake: Notify,
    /// Rows committed since the last checkpoint.
    written: AtomicU64,
    closed: AtomicBool,
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

fn stopped() -> StoreError {
    StoreError::Unavailable("audit journal stopped".into())
}

impl Journal {
    /// Starts the journal and its flusher task. Without a synchronous writer
    /// (the store has none, or it could not be opened) commits go through
    /// [`Store::append_audit`] on a spawned task.
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let writer = match store.audit_writer() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "audit writer connection failed; using the pool");
                None
            }
        };
        let inner = Arc::new(Inner {
            store,
            queue: Mutex::new(Vec::new()),
            leading: AtomicBool::new(false),
            writer: Mutex::new(writer),
            wake: Notify::new(),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let task = tokio::spawn(flusher(Arc::clone(&inner)));
        (Self { inner }, task)
    }

    /// Appends a row and waits until it is committed.
    pub async fn commit(&self, row: AuditAppend) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(stopped());
        }
        let (done, wait) = oneshot::channel();
        {
            let mut q = lock(&self.inner.queue);
            if q.len() >= JOURNAL_QUEUE {
                return Err(StoreError::Unavailable("audit queue is full".into()));
            }
            q.push(Job {
                row,
                done: Some(done),
            });
        }
        lead(&self.inner);
        wait.await
            .map_err(|_| stopped())?
            .map_err(StoreError::Unavailable)
    }

    /// Queues a row without waiting for the commit.
    pub fn enqueue(&self, row: AuditAppend) {
        lock(&self.inner.queue).push(Job { row, done: None });
        self.inner.wake.notify_one();
    }

    /// Writes everything queued and stops accepting `start` rows; bounded by [`DRAIN_TIMEOUT`].
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            loop {
                lead(&self.inner);
                let idle = !self.inner.leading.load(Ordering::Acquire);
                if idle && lock(&self.inner.queue).is_empty() {
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

/// Writes `finish` rows nobody commits for, and checkpoints now and then.
async fn flusher(inner: Arc<Inner>) {
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = inner.wake.notified() => {
                // Let the next request's commit take these rows along.
                tokio::time::sleep(FINISH_LINGER).await;
                lead(&inner);
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

fn complete(inner: &Inner, batch: Batch, result: &Result<(), StoreError>) {
    let outcome = match result {
        Ok(()) => {
            inner
                .written
                .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, rows = batch.rows.len(), "audit write failed");
            Err(e.to_string())
        }
    };
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
    let mut slot = lock(&inner.writer);
    loop {
        let batch = take_batch(inner);
        if batch.rows.is_empty() {
            return true;
        }
        let Some(writer) = slot.as_mut() else {
            drop(slot);
            tokio::spawn(drain_async(Arc::clone(inner), None, batch));
            return false;
        };
        match writer.append(&batch.rows, false) {
            Ok(()) => complete(inner, batch, &Ok(())),
            Err(AppendError::Failed(e)) => complete(inner, batch, &Err(e)),
            Err(AppendError::Busy) => {
                let writer = slot.take();
                drop(slot);
                tokio::spawn(drain_async(Arc::clone(inner), writer, batch));
                return false;
            }
        }
    }
}

/// The leader's work when it has to wait: blocking writes on the blocking pool,
/// or the store's async append. Releases the leadership when the queue is empty.
async fn drain_async(inner: Arc<Inner>, mut writer: Option<Box<dyn AuditWriter>>, first: Batch) {
    let mut batch = first;
    while !batch.rows.is_empty() {
        let result = match writer.take() {
            Some(mut w) => {
                let joined = tokio::task::spawn_blocking(move || {
                    let r = w.append(&batch.rows, true);
                    (w, batch, r)
                })
                .await;
                match joined {
                    Ok((w, b, r)) => {
                        writer = Some(w);
                        batch = b;
                        r.map_err(|e| match e {
                            AppendError::Busy => {
                                StoreError::Unavailable("store is locked by another writer".into())
                            }
                            AppendError::Failed(e) => e,
                        })
                    }
                    // The writer and the batch's waiters are lost with the panicked
                    // thread (they see the journal as stopped); the pool carries on.
                    Err(_) => {
                        tracing::error!("audit writer failed");
                        batch = take_batch(&inner);
                        continue;
                    }
                }
            }
            None => inner.store.append_audit(&batch.rows).await,
        };
        complete(&inner, batch, &result);
        batch = take_batch(&inner);
    }
    if writer.is_some() {
        *lock(&inner.writer) = writer;
    }
    inner.leading.store(false, Ordering::Release);
    if !lock(&inner.queue).is_empty() {
        lead(&inner);
    }
}
