//! The hot path's view of the configuration, read in one transaction
//! (shared with PostgreSQL: `crate::sql::snapshot`).

crate::sql::snapshot::snapshot_query!(sqlx::SqlitePool);
