//! Store implementations for TAP.
//!
//! [`SqliteStore`] is the embedded default (`<data-dir>/tap.db`, WAL,
//! `synchronous=NORMAL`: durable across a crash or `kill -9` of the proxy).

mod sqlite;
mod sqlite_audit;
mod sqlite_schema;

pub use sqlite::SqliteStore;

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
