//! Credentials (values stay sealed) and the policy of each (shared with
//! SQLite: `crate::sql::credentials`).

crate::sql::credentials::credential_queries!(sqlx::PgPool, sqlx::PgConnection);
