//! Test harness: a recording fake upstream speaking real HTTP on loopback,
//! and the real `tap` binary run in a temporary data dir.
#![allow(clippy::unwrap_used)]

mod tap;
mod upstream;

pub use tap::{Served, TapHome};
pub use upstream::{FakeUpstream, Recorded};

use std::time::Duration;

/// Polls `f` until it returns `Some`, at most `tries` times `every` apart.
pub async fn eventually<T, F, Fut>(tries: u32, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(every).await;
    }
    None
}
