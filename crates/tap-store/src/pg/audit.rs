//! The audit trail on PostgreSQL (shared with SQLite: `crate::sql::audit`):
//! appends chained inside one transaction that holds each touched team's
//! advisory lock, so several replicas appending at once still build one
//! chain per team (each reads the head the previous writer committed), and
//! reads of one consistent snapshot. `audit_tx` and `lock_team` use the
//! macro's imports (`StoreResult`, `unavailable`).
//!
//! No spool: a row is durable when its transaction commits, which happens
//! before `append_audit` returns (the `start` row before forwarding).

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::pool::AUDIT_LOCK;

crate::sql::audit::audit_queries!(PgPool, PgConnection, Postgres, position = "strpos");

/// A plain transaction: the team locks (`lock_team`) are all an append or a
/// prune needs, not the store's write lock.
async fn audit_tx(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    pool.begin().await.map_err(unavailable)
}

/// Holds `team`'s append lock until the transaction ends.
async fn lock_team(conn: &mut PgConnection, team: i64) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int4)")
        .bind(AUDIT_LOCK)
        .bind(team)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
