//! Roles: named sets of credentials with an optional rate limit (shared with
//! PostgreSQL: `crate::sql::roles`).

crate::sql::roles::role_queries!(sqlx::SqlitePool, sqlx::SqliteConnection);
