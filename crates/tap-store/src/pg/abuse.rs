//! Per-address abuse failures counted in the store (`abuse_failures`; shared
//! with SQLite: `crate::sql::abuse`) by every replica: the upsert is atomic
//! per row, so a limit of N allows exactly N across replicas, and concurrent
//! prunes skip each other's rows instead of waiting for them.

use sqlx::PgPool;

crate::sql::abuse::abuse_queries!(PgPool, "FOR UPDATE SKIP LOCKED");
