//! Approvals and their votes (shared with SQLite: `crate::sql::approvals`);
//! here what PostgreSQL says differently: the counted emails travel as an
//! array, and a claim records its claimant so that replicas leave each
//! other's claims alone.
//! The functions below use the macro's imports (`StoreResult`, `unavailable`,
//! `write_tx`).

use sqlx::{PgConnection, PgPool};

crate::sql::approvals::approval_queries!(PgPool);

/// Approving votes on `txn_id` cast by one of the `counted` emails.
async fn counted_approvals(
    tx: &mut PgConnection,
    txn_id: &str,
    counted: &[&str],
) -> StoreResult<i64> {
    let counted: Vec<String> = counted.iter().map(|e| (*e).to_owned()).collect();
    sqlx::query_scalar(
        "SELECT count(*) FROM approval_votes WHERE txn_id = $1 AND decision = 'approve' \
         AND email = ANY($2)",
    )
    .bind(txn_id)
    .bind(&counted)
    .fetch_one(tx)
    .await
    .map_err(unavailable)
}

/// Claims for `owner` (the key of a lock it holds while it lives: `owner`).
pub(super) async fn claim_approved(pool: &PgPool, txn_id: &str, owner: i32) -> StoreResult<bool> {
    let mut tx = write_tx(pool).await?;
    let n = sqlx::query(
        "UPDATE approvals SET status = 'forwarding', claimed_by = $2 WHERE txn_id = $1 AND status = 'approved'",
    )
    .bind(txn_id)
    .bind(owner)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?
    .rows_affected();
    tx.commit().await.map_err(unavailable)?;
    Ok(n == 1)
}

/// Only approvals claimed by `own` (this store) or by a claimant that is
/// gone: its lock is free (`owner`). Another live replica's are left alone.
pub(super) async fn fail_interrupted(pool: &PgPool, now: i64, own: i32) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let n = sqlx::query(
        "UPDATE approvals SET status = 'error', error_code = 'interrupted', decided_at = COALESCE(decided_at, $1) \
         WHERE status = 'forwarding' \
           AND (claimed_by IS NULL OR claimed_by = $3 \
                OR pg_try_advisory_xact_lock($2, claimed_by::int4))",
    )
    .bind(now)
    .bind(super::pool::OWNER_LOCK)
    .bind(own)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?
    .rows_affected();
    tx.commit().await.map_err(unavailable)?;
    Ok(n)
}
