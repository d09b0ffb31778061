//! Temporary grants: scoped, expiring, optionally counted permissions (the
//! queries are shared with PostgreSQL: `crate::sql::grants`).

crate::sql::grants::grant_queries!(sqlx::SqlitePool);
