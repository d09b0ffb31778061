//! Store implementations for TAP.
//!
//! [`SqliteStore`] is the embedded default (`<data-dir>/tap.db`, WAL,
//! `synchronous=NORMAL`: durable across a crash or `kill -9` of the proxy).
//! [`PgStore`] is for several replicas sharing one PostgreSQL database
//! (`TAP_DATABASE_URL=postgres://…`); [`copy_sqlite_to_pg`] moves a SQLite
//! deployment into one (`tap migrate --to`).

mod clock;
mod copy;
mod pg;
mod rekey;
mod retention;
mod sql;
pub(crate) mod sqlite;

pub use copy::{CopyReport, copy_sqlite_to_pg};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
