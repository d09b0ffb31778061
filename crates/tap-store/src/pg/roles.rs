//! Roles: named sets of credentials with an optional rate limit (shared with
//! SQLite: `crate::sql::roles`).

crate::sql::roles::role_queries!(sqlx::PgPool, sqlx::PgConnection);
