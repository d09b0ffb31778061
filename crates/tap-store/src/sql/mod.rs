//! Queries PostgreSQL and SQLite share word for word. Both backends take `$n`
//! placeholders and the same SQL here, so each macro expands to the functions
//! of one concern for one backend's pool type; the backend module that
//! invokes it supplies what differs (`super::pool::{write_tx, bump,
//! unavailable}`, `super::rows`), resolved where the macro is expanded.
//! Where a concern's SQL truly differs (array vs JSON list, advisory locks,
//! a claimant column) the backend module keeps that part as a small function
//! beside the invocation, named in the macro's docs, which the shared code
//! calls.
//! Macros rather than functions generic over `sqlx::Database`: the bounds
//! sqlx needs for a generic query (`Encode`/`Type`/`Decode` per column,
//! `IntoArguments`, `Executor` for transactions) would outweigh the queries.

pub(crate) mod abuse;
pub(crate) mod accounts;
pub(crate) mod agents;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod ceremonies;
pub(crate) mod credentials;
pub(crate) mod grants;
pub(crate) mod passkeys;
pub(crate) mod rates;
pub(crate) mod roles;
pub(crate) mod rows;
pub(crate) mod snapshot;
pub(crate) mod store;
pub(crate) mod teams;
pub(crate) mod telegram;
pub(crate) mod tokens;
