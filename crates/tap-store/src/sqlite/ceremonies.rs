//! WebAuthn ceremonies in progress (shared with PostgreSQL:
//! `crate::sql::ceremonies`).

crate::sql::ceremonies::ceremony_queries!(sqlx::SqlitePool, sqlx::sqlite::SqliteRow);
