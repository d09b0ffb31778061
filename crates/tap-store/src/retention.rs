//! Audit retention, written once for both backends: per team, inside the
//! caller's write transaction (which holds the team's append lock), delete
//! the oldest rows and move the team's sealed retention anchor to the last
//! deleted row, so the chain still verifies from the anchor.

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tap_core::audit::anchor_mac;
use tap_core::crypto::AuditKey;
use tap_core::store::{StoreError, StoreResult};

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("store query failed: {e}"))
}

/// Teams with audit rows (the candidates for pruning).
pub(crate) const AUDIT_TEAMS: &str = "SELECT DISTINCT team_id FROM audit ORDER BY team_id";

/// Prunes one team on `conn`: the rows up to the last one stamped before
/// `before`, never the team's last row (it carries the head on). The rows
/// deleted are a prefix of the chain (by seq), so what stays links to the
/// anchor. Answers the rows deleted.
pub(crate) async fn prune_team<DB>(
    conn: &mut DB::Connection,
    key: &AuditKey,
    team: i64,
    before: &str,
) -> StoreResult<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let last = sqlx::query::<DB>(
        "SELECT seq, row_hash FROM audit WHERE team_id = $1 AND ts < $2 \
         AND seq < (SELECT max(seq) FROM audit WHERE team_id = $1) \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(team)
    .bind(before)
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    let Some(last) = last else { return Ok(0) };
    let seq: i64 = last.try_get(0usize).map_err(unavailable)?;
    let hash: String = last.try_get(1usize).map_err(unavailable)?;
    let count = sqlx::query::<DB>("SELECT count(*) FROM audit WHERE team_id = $1 AND seq <= $2")
        .bind(team)
        .bind(seq)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    let count: i64 = count.try_get(0usize).map_err(unavailable)?;
    sqlx::query::<DB>("DELETE FROM audit WHERE team_id = $1 AND seq <= $2")
        .bind(team)
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let first_seq = seq + 1;
    let mac = anchor_mac(key, team, first_seq, &hash);
    sqlx::query::<DB>(
        "INSERT INTO audit_anchor (team_id, anchor_hash, first_seq, mac) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (team_id) DO UPDATE SET anchor_hash = excluded.anchor_hash, \
         first_seq = excluded.first_seq, mac = excluded.mac",
    )
    .bind(team)
    .bind(hash)
    .bind(first_seq)
    .bind(mac)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
