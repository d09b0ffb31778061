//! Agent rate limits counted in the store (`rate_events`; shared with
//! PostgreSQL: `crate::sql::rates`). SQLite has one writer, so the write
//! transaction alone keeps an agent's window exact. `window_tx` uses the
//! macro's imports (`StoreResult`).

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::pool::write_tx;

crate::sql::rates::rate_queries!(SqlitePool);

/// The write transaction `take_rate` prunes, counts and records in.
async fn window_tx(
    pool: &SqlitePool,
    _team: i64,
    _agent: &str,
) -> StoreResult<Transaction<'static, Sqlite>> {
    write_tx(pool).await
}
