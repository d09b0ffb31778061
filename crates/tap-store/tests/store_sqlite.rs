//! The store contract (`tests/contract`) on SQLite: each case on a fresh
//! database file in a temp dir, which is removed after it.

use std::sync::Arc;

use tap_store::SqliteStore;

mod contract;

async fn sqlite_store() -> contract::Subject {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("tap.db"))
        .await
        .expect("open");
    contract::Subject::new(Arc::new(store), dir)
}

contract::store_contract!(sqlite_store().await);

/// What is kept stays bounded: each counted failure deletes a batch of
/// expired windows, so a wave of failing addresses is gone a few failures
/// after its window ends.
#[tokio::test]
async fn expired_abuse_windows_are_deleted_as_failures_are_counted() {
    use tap_core::store::{AbuseKind, Store as _};
    const MINUTE: i64 = 60_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tap.db");
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    let t0 = 2_000_000_000;
    for i in 0..200 {
        let address = format!("10.2.{}.{}", i / 256, i % 256);
        let counted = store
            .count_abuse_failure(AbuseKind::Login, &address, 5, MINUTE, t0)
            .await
            .expect("count");
        assert_eq!(counted, None);
    }
    for i in 0..4 {
        let address = format!("10.3.0.{i}");
        let counted = store
            .count_abuse_failure(AbuseKind::Login, &address, 5, MINUTE, t0 + MINUTE)
            .await
            .expect("count");
        assert_eq!(counted, None);
    }
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the file");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM abuse_failures")
        .fetch_one(&db)
        .await
        .expect("count rows");
    assert_eq!(rows, 4, "only the windows still open are kept");
    db.close().await;
}
