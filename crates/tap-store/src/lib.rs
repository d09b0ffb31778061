//! Store implementations for TAP.
//!
//! [`SqliteStore`] is the embedded default (`<data-dir>/tap.db`, WAL,
//! `synchronous=NORMAL`: durable across a crash or `kill -9` of the proxy).

mod clock;
mod pg;
pub(crate) mod sqlite;

pub use pg::PgStore;
pub use sqlite::SqliteStore;
