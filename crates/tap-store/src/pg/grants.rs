//! Temporary grants: scoped, expiring, optionally counted permissions (the
//! queries are shared with SQLite: `crate::sql::grants`).

crate::sql::grants::grant_queries!(sqlx::PgPool);
