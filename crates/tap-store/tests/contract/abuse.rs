//! Per-address abuse failures counted in the store (failed sign-ins, invalid
//! agent keys): a limit of N allows exactly N failures per address, kind and
//! window, whatever the number of concurrent callers, and a window ends on
//! time.

use std::sync::Arc;

use tap_core::store::{AbuseKind, Store};

use super::race;

const MINUTE: i64 = 60_000;

pub(crate) async fn abuse_failures_count_to_the_limit_per_kind_and_address_in_a_window(
    store: Arc<dyn Store>,
) {
    store.migrate().await.expect("migrate");
    let login = AbuseKind::Login;
    let t0 = 2_000_000_000;
    for i in 0..3 {
        let now = t0 + i * 1000;
        assert_eq!(
            store
                .abuse_blocked(login, "10.0.0.1", 3, MINUTE, now)
                .await
                .expect("blocked"),
            None,
            "not blocked before failure {i}"
        );
        assert_eq!(
            store
                .count_abuse_failure(login, "10.0.0.1", 3, MINUTE, now)
                .await
                .expect("count"),
            None,
            "failure {i} is counted"
        );
    }
    // The window started at the first failure: it ends 60 s after t0.
    let now = t0 + 10_000;
    assert_eq!(
        store
            .abuse_blocked(login, "10.0.0.1", 3, MINUTE, now)
            .await
            .expect("blocked"),
        Some(MINUTE - 10_000)
    );
    assert_eq!(
        store
            .count_abuse_failure(login, "10.0.0.1", 3, MINUTE, now)
            .await
            .expect("count"),
        Some(MINUTE - 10_000),
        "a failure over the limit is refused, not counted"
    );
    // Another address, and the same address under another kind, are apart.
    for (kind, address) in [(login, "10.0.0.2"), (AbuseKind::AgentKey, "10.0.0.1")] {
        assert_eq!(
            store
                .abuse_blocked(kind, address, 3, MINUTE, now)
                .await
                .expect("blocked"),
            None,
            "{kind:?} {address}"
        );
        assert_eq!(
            store
                .count_abuse_failure(kind, address, 3, MINUTE, now)
                .await
                .expect("count"),
            None,
            "{kind:?} {address}"
        );
    }
    // Once the window ends, the address starts a new one with its next failure.
    let later = t0 + MINUTE;
    assert_eq!(
        store
            .abuse_blocked(login, "10.0.0.1", 3, MINUTE, later)
            .await
            .expect("blocked"),
        None
    );
    for i in 0..3 {
        assert_eq!(
            store
                .count_abuse_failure(login, "10.0.0.1", 3, MINUTE, later + i)
                .await
                .expect("count"),
            None,
            "failure {i} of the new window"
        );
    }
    assert_eq!(
        store
            .abuse_blocked(login, "10.0.0.1", 3, MINUTE, later + 5)
            .await
            .expect("blocked"),
        Some(MINUTE - 5)
    );
    // A limit of zero allows no failure.
    assert_eq!(
        store
            .count_abuse_failure(login, "10.0.0.9", 0, MINUTE, later)
            .await
            .expect("count"),
        Some(MINUTE)
    );
    assert_eq!(
        store
            .abuse_blocked(login, "10.0.0.9", 0, MINUTE, later)
            .await
            .expect("blocked"),
        Some(MINUTE)
    );
}

pub(crate) async fn abuse_failures_count_exactly_the_limit_under_contention(store: Arc<dyn Store>) {
    const CALLERS: usize = 24;
    const LIMIT: u32 = 10;
    store.migrate().await.expect("migrate");
    let now = 2_000_000_000;
    let results = race(CALLERS, |_| {
        let store = Arc::clone(&store);
        async move {
            store
                .count_abuse_failure(AbuseKind::AgentKey, "2001:db8:1:2::", LIMIT, MINUTE, now)
                .await
                .expect("count")
        }
    })
    .await;
    let counted = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(counted, LIMIT as usize, "{results:?}");
    assert_eq!(
        store
            .abuse_blocked(AbuseKind::AgentKey, "2001:db8:1:2::", LIMIT, MINUTE, now)
            .await
            .expect("blocked"),
        Some(MINUTE)
    );
}

pub(crate) async fn expired_abuse_windows_are_pruned_while_many_addresses_fail_at_once(
    store: Arc<dyn Store>,
) {
    const ADDRESSES: usize = 200;
    store.migrate().await.expect("migrate");
    let t0 = 2_000_000_000;
    // Many addresses fail at once, then, a window later, many again: the
    // pruning of the first wave's rows never makes a failure fail or wait.
    for wave in 0..2 {
        let now = t0 + wave * MINUTE;
        let results = race(ADDRESSES, |i| {
            let store = Arc::clone(&store);
            async move {
                store
                    .count_abuse_failure(
                        AbuseKind::Login,
                        &format!("10.1.{wave}.{i}"),
                        1,
                        MINUTE,
                        now,
                    )
                    .await
            }
        })
        .await;
        for r in results {
            assert_eq!(r.expect("count"), None);
        }
    }
    let now = t0 + MINUTE;
    assert!(
        store
            .abuse_blocked(AbuseKind::Login, "10.1.1.7", 1, MINUTE, now)
            .await
            .expect("blocked")
            .is_some()
    );
    assert_eq!(
        store
            .abuse_blocked(AbuseKind::Login, "10.1.0.7", 1, MINUTE, now)
            .await
            .expect("blocked"),
        None,
        "the first wave's windows ended"
    );
}
