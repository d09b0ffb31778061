//! Per-address abuse failures counted in the store (`abuse_failures`; shared
//! with PostgreSQL: `crate::sql::abuse`). Used only when replicas share a
//! store; a single SQLite process counts in memory. One writer at a time, so
//! the prune needs no row locks.

use sqlx::SqlitePool;

crate::sql::abuse::abuse_queries!(SqlitePool, "");
