//! WebAuthn ceremonies in progress, so any replica finishes a ceremony
//! another began (shared with SQLite: `crate::sql::ceremonies`).

crate::sql::ceremonies::ceremony_queries!(sqlx::PgPool, sqlx::postgres::PgRow);
