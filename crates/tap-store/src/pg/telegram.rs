//! Telegram approvals: linked Telegram users, one-time link codes and the
//! approval messages sent. None of this is configuration the proxy caches,
//! so nothing here bumps the revision (shared with
//! SQLite: `crate::sql::telegram`).

crate::sql::telegram::telegram_queries!(sqlx::PgPool, sqlx::PgConnection, sqlx::postgres::PgRow);
