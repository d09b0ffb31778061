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
