//! Approvals and their votes. Every state change is one conditional write in
//! a write transaction (`BEGIN IMMEDIATE` on SQLite, under the configuration
//! lock on PostgreSQL), so concurrent voters and forwarders see
//! each transition happen exactly once. Approvals are not configuration: no
//! write here bumps the revision.

/// The approval and vote queries over `$pool`. The backend module supplies
/// what its SQL does differently, after the invocation and with this macro's
/// imports in scope:
/// `async fn counted_approvals(conn, txn_id: &str, counted: &[&str]) -> StoreResult<i64>`
/// (approving votes cast by the `counted` emails, read in the vote's
/// transaction), and `claim_approved` and
/// `fail_interrupted` themselves (PostgreSQL records and checks the claimant).
/// `INSERT … ON CONFLICT DO NOTHING` and `CAST(1 AS BIGINT)` read the same on
/// both backends (SQLite ≥ 3.24); with every column bound to a value the
/// insert skips exactly the rows SQLite's `INSERT OR IGNORE` did.
macro_rules! approval_queries {
    ($pool:ty) => {
        use std::str::FromStr;

        use sqlx::Row;
        use tap_core::model::{Approval, ApprovalStatus, Vote};
        use tap_core::store::{StoreError, StoreResult, VoteOutcome};

        use super::pool::{unavailable, write_tx};
        use super::rows::{approval_from_row, corrupt, saturating_u32};

        pub(super) async fn create_approval(pool: &$pool, a: &Approval) -> StoreResult<()> {
            let channels = serde_json::to_string(&a.channels).map_err(corrupt("channels"))?;
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "INSERT INTO approvals (txn_id, team_id, agent_team_id, agent_id, credential, credential_version, method, target, request, request_hash, status, policy_reason, min_approvals, channels, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&a.txn_id)
            .bind(a.team_internal_id)
            .bind(a.agent_team_internal_id)
            .bind(&a.agent_id)
            .bind(&a.credential)
            .bind(a.credential_version)
            .bind(&a.method)
            .bind(&a.target)
            .bind(&a.request)
            .bind(&a.request_hash)
            .bind(a.status.as_str())
            .bind(&a.policy_reason)
            .bind(i64::from(a.min_approvals))
            .bind(channels)
            .bind(a.created_at)
            .bind(a.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn approval(pool: &$pool, txn_id: &str) -> StoreResult<Option<Approval>> {
            let Some(r) = sqlx::query("SELECT * FROM approvals WHERE txn_id = $1")
                .bind(txn_id)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let votes = votes(pool, txn_id).await?;
            approval_from_row(&r, votes).map(Some)
        }

        pub(super) async fn approvals(
            pool: &$pool,
            team: i64,
            status: Option<ApprovalStatus>,
            limit: u32,
        ) -> StoreResult<Vec<Approval>> {
            let rows = sqlx::query(
                "SELECT * FROM approvals WHERE team_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC LIMIT $3",
            )
            .bind(team)
            .bind(status.map(ApprovalStatus::as_str))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.get("txn_id");
                let votes = votes(pool, &id).await?;
                out.push(approval_from_row(r, votes)?);
            }
            Ok(out)
        }

        async fn votes(pool: &$pool, txn_id: &str) -> StoreResult<Vec<Vote>> {
            Ok(sqlx::query("SELECT email, decision, channel, at FROM approval_votes WHERE txn_id = $1 ORDER BY at, email")
                .bind(txn_id)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| Vote {
                    email: r.get("email"),
                    decision: r.get("decision"),
                    channel: r.get("channel"),
                    at: r.get("at"),
                })
                .collect())
        }

        pub(super) async fn pending_count(
            pool: &$pool,
            agent_team: i64,
            agent_id: &str,
        ) -> StoreResult<u32> {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM approvals WHERE agent_team_id = $1 AND agent_id = $2 AND status = 'pending'",
            )
            .bind(agent_team)
            .bind(agent_id)
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
            Ok(saturating_u32(n))
        }

        pub(super) async fn vote(
            pool: &$pool,
            txn_id: &str,
            email: &str,
            approve: bool,
            channel: &str,
            now: i64,
            counted: &[&str],
        ) -> StoreResult<VoteOutcome> {
            let mut tx = write_tx(pool).await?;
            let row: Option<(String, i64, i64)> =
                sqlx::query_as("SELECT status, expires_at, min_approvals FROM approvals WHERE txn_id = $1")
                    .bind(txn_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            let Some((status, expires_at, min)) = row else {
                return Ok(VoteOutcome::Missing);
            };
            let status =
                ApprovalStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if status != ApprovalStatus::Pending {
                return Ok(VoteOutcome::NotPending(status));
            }
            if expires_at <= now {
                sqlx::query("UPDATE approvals SET status = 'timed_out', decided_at = $1 WHERE txn_id = $2")
                    .bind(now)
                    .bind(txn_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                return Ok(VoteOutcome::NotPending(ApprovalStatus::TimedOut));
            }
            let inserted = sqlx::query(
                "INSERT INTO approval_votes (txn_id, email, decision, channel, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(txn_id)
            .bind(email)
            .bind(if approve { "approve" } else { "deny" })
            .bind(channel)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            if inserted == 0 {
                return Ok(VoteOutcome::AlreadyVoted);
            }
            let approvals = counted_approvals(&mut tx, txn_id, counted).await?;
            let new_status = if !approve {
                ApprovalStatus::Denied
            } else if approvals >= min.max(1) {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Pending
            };
            if new_status != ApprovalStatus::Pending {
                sqlx::query("UPDATE approvals SET status = $1, decided_at = $2 WHERE txn_id = $3")
                    .bind(new_status.as_str())
                    .bind(now)
                    .bind(txn_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(VoteOutcome::Counted {
                status: new_status,
                approvals: saturating_u32(approvals),
            })
        }

        pub(super) async fn approved_unclaimed(pool: &$pool, limit: u32) -> StoreResult<Vec<String>> {
            sqlx::query_scalar(
                "SELECT txn_id FROM approvals WHERE status = 'approved' ORDER BY decided_at LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(unavailable)
        }

        pub(super) async fn finish_approval(
            pool: &$pool,
            txn_id: &str,
            status: ApprovalStatus,
            error_code: Option<&str>,
            response: Option<&str>,
            now: i64,
        ) -> StoreResult<()> {
            let mut tx = write_tx(pool).await?;
            sqlx::query(
                "UPDATE approvals SET status = $1, error_code = $2, response = $3, decided_at = COALESCE(decided_at, $4) WHERE txn_id = $5",
            )
            .bind(status.as_str())
            .bind(error_code)
            .bind(response)
            .bind(now)
            .bind(txn_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn expire_approvals(pool: &$pool, now: i64) -> StoreResult<Vec<String>> {
            // A plain read first: the write lock is taken only when something expired,
            // so the every-200 ms check never competes with audit writes.
            let due: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM approvals WHERE status = 'pending' AND expires_at <= $1 LIMIT 1",
            )
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = write_tx(pool).await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT txn_id FROM approvals WHERE status = 'pending' AND expires_at <= $1",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if !ids.is_empty() {
                sqlx::query("UPDATE approvals SET status = 'timed_out', decided_at = $1 WHERE status = 'pending' AND expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(ids)
        }

        pub(super) async fn purge_approvals(pool: &$pool, before: i64) -> StoreResult<u64> {
            let mut tx = write_tx(pool).await?;
            let n = sqlx::query(
                "DELETE FROM approvals WHERE status IN ('forwarded', 'denied', 'timed_out', 'error') AND decided_at < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            Ok(n)
        }
    };
}

pub(crate) use approval_queries;
