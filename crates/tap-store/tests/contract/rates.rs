//! Agent rate limits counted in the store: a limit of N allows exactly N per
//! sliding window, per agent, whatever the number of concurrent callers.

use std::sync::Arc;

use tap_core::store::Store;

use super::{migrated_with_team, new_team, race};

const HOUR: i64 = 3_600_000;

pub(crate) async fn take_rate_allows_exactly_the_limit_in_a_sliding_window(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    let t0 = 1_000_000_000;
    for i in 0..3 {
        let taken = store.take_rate(team, "bot", 3, HOUR, t0 + i * 1000).await;
        assert_eq!(
            taken.expect("take"),
            None,
            "request {i} is within the limit"
        );
    }
    // The fourth waits until the first leaves the window.
    let refused = store.take_rate(team, "bot", 3, HOUR, t0 + 10_000).await;
    assert_eq!(refused.expect("take"), Some(HOUR - 10_000));
    // Another agent, or the same id in another team, has its own window.
    assert_eq!(
        store
            .take_rate(team, "other", 3, HOUR, t0 + 10_000)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_rate(other, "bot", 3, HOUR, t0 + 10_000)
            .await
            .expect("take"),
        None
    );
    // A refusal counted nothing: once the first request is an hour old, one more fits.
    assert_eq!(
        store
            .take_rate(team, "bot", 3, HOUR, t0 + HOUR)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_rate(team, "bot", 3, HOUR, t0 + HOUR)
            .await
            .expect("take"),
        Some(1000)
    );
    // A limit of zero allows nothing.
    assert_eq!(
        store
            .take_rate(team, "zero", 0, HOUR, t0)
            .await
            .expect("take"),
        Some(HOUR)
    );
}

pub(crate) async fn take_rate_allows_exactly_the_limit_under_contention(store: Arc<dyn Store>) {
    const CALLERS: usize = 24;
    const LIMIT: u32 = 10;
    let team = migrated_with_team(&*store, "alpha").await;
    let now = 2_000_000_000;
    let results = race(CALLERS, |_| {
        let store = Arc::clone(&store);
        async move {
            store
                .take_rate(team, "bot", LIMIT, HOUR, now)
                .await
                .expect("take")
        }
    })
    .await;
    let allowed = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(allowed, LIMIT as usize, "{results:?}");
}
