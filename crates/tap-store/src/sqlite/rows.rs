//! Decoding stored rows into domain types (shared with PostgreSQL:
//! `crate::sql::rows`). Pure: no queries.

crate::sql::rows::row_decoders!(sqlx::sqlite::SqliteRow);
