//! Shared OAuth 2 access tokens (`oauth_tokens`; shared with PostgreSQL:
//! `crate::sql::tokens`). SQLite has one writer, so the write transaction
//! alone lets one holder lease at a time. `token_tx` uses the macro's
//! imports (`StoreResult`, `write_tx`).

use sqlx::{Sqlite, SqlitePool, Transaction};

crate::sql::tokens::token_queries!(SqlitePool);

/// The write transaction a lease or a stored token is decided in.
async fn token_tx(
    pool: &SqlitePool,
    _team: i64,
    _name: &str,
) -> StoreResult<Transaction<'static, Sqlite>> {
    write_tx(pool).await
}
