//! Credentials (values stay sealed) and the policy of each (shared with
//! PostgreSQL: `crate::sql::credentials`).

crate::sql::credentials::credential_queries!(sqlx::SqlitePool, sqlx::SqliteConnection);
