//! Accounts and how they sign in: admin tokens and member sessions. None of
//! these writes is configuration the proxy caches, so none bumps the revision
//! (except creating an account, which the snapshot's members name; shared
//! with SQLite: `crate::sql::accounts`).

crate::sql::accounts::account_queries!(sqlx::PgPool);
