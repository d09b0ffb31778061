//! Connection bounds (THREATS §K, §P): how long a connection may sit with no
//! request in flight, and what an over-the-cap connection is told.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, SizeHint};

use crate::error::{ProxyError, Reason};

/// Longest time to read a request head on HTTP/1 (also bounds an idle
/// keep-alive connection); the idle timeout caps it further.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 keep-alive ping interval: finds peers that vanished without a FIN.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long an HTTP/2 ping may go unanswered before the connection is closed.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Requests in flight on one connection and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// A connection that just opened (idle, no request yet).
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request starts; it counts until the guard (held by its answer's body) drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    /// HTTP/2 pings and partial request heads do not count as activity.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let wait = if self.in_flight.load(Ordering::SeqCst) == 0 {
                let since = self.idle_since_ms.load(Ordering::SeqCst);
                let idle_ms = self.now_ms().saturating_sub(since);
                let idle_ms = Duration::from_millis(idle_ms);
                if idle_ms >= idle {
                    return;
                }
                idle - idle_ms
            } else {
                idle
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms.store(a.now_ms(), Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An answer body that keeps its request counted as in flight until it is
/// fully sent or dropped (a slow streamed answer is not an idle connection).
pub struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl TrackedBody {
    /// Wraps `inner`.
    pub fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The bytes written to a connection refused by the cap: an HTTP/1.1 503 in
/// the one error dialect, then the connection is closed.
pub fn over_capacity_answer() -> Vec<u8> {
    let e = ProxyError::new(
        Reason::TooManyConnections,
        "the proxy is serving as many connections as it allows",
    );
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nx-tap-error: {}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        e.reason.code(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let idle = Duration::from_millis(50);
        let a = Arc::new(Activity::new());
        let guard = a.enter();
        // Busy: never idle, however long it takes.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), a.idle_for(idle))
                .await
                .is_err()
        );
        drop(guard);
        assert!(
            tokio::time::timeout(Duration::from_secs(10), a.idle_for(idle))
                .await
                .is_ok()
        );
    }
}
