//! Approvals and their votes (shared with PostgreSQL: `crate::sql::approvals`);
//! here what SQLite says differently: the counted emails travel as one JSON
//! list, and a claim needs no claimant (one process owns the file).
//! The functions below use the macro's imports (`StoreResult`, `unavailable`,
//! `write_tx`).

use sqlx::{SqliteConnection, SqlitePool};

crate::sql::approvals::approval_queries!(SqlitePool);

/// Approving votes on `txn_id` cast by one of the `counted` emails.
async fn counted_approvals(
    tx: &mut SqliteConnection,
    txn_id: &str,
    counted: &[&str],
) -> StoreResult<i64> {
    let counted = serde_json::to_string(counted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query_scalar(
        "SELECT count(*) FROM approval_votes WHERE txn_id = $1 AND decision = 'approve' \
         AND email IN (SELECT value FROM json_each($2))",
    )
    .bind(txn_id)
    .bind(&counted)
    .fetch_one(tx)
    .await
    .map_err(unavailable)
}

pub(super) async fn claim_approved(pool: &SqlitePool, txn_id: &str) -> StoreResult<bool> {
    let mut tx = write_tx(pool).await?;
    let n = sqlx::query(
        "UPDATE approvals SET status = 'forwarding' WHERE txn_id = $1 AND status = 'approved'",
    )
    .bind(txn_id)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?
    .rows_affected();
    tx.commit().await.map_err(unavailable)?;
    Ok(n == 1)
}

pub(super) async fn fail_interrupted(pool: &SqlitePool, now: i64) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let n = sqlx::query(
        "UPDATE approvals SET status = 'error', error_code = 'interrupted', decided_at = COALESCE(decided_at, $1) WHERE status = 'forwarding'",
    )
    .bind(now)
    .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
    tx.commit().await.map_err(unavailable)?;
    Ok(n)
}
