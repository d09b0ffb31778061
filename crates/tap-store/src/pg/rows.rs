//! Decoding stored rows into domain types (shared with SQLite:
//! `crate::sql::rows`). Pure: no queries.

crate::sql::rows::row_decoders!(sqlx::postgres::PgRow);
