//! Master-key rotation inside one write transaction, written once for both
//! backends (the SQL is the same; each backend opens its own write
//! transaction and bumps the revision).

use sqlx::{ColumnIndex, Database, Executor, IntoArguments, Row};
use tap_core::store::{StoreError, StoreResult, TeamKeyChange};

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("store query failed: {e}"))
}

fn conflict(why: String) -> StoreError {
    StoreError::Conflict(format!("{why} during the rotation; run it again"))
}

/// Applies `teams` and `meta` on `conn`, inside the caller's transaction.
/// Every check that fails returns `Conflict` before the caller commits, so
/// the transaction is rolled back and nothing changes.
pub(crate) async fn apply<DB>(
    conn: &mut DB::Connection,
    teams: &[TeamKeyChange],
    meta: &[(String, Vec<u8>)],
) -> StoreResult<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let teams_now: i64 = {
        let row = sqlx::query::<DB>("SELECT count(*) FROM teams")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        row.try_get::<i64, usize>(0).map_err(unavailable)?
    };
    if usize::try_from(teams_now).unwrap_or(usize::MAX) != teams.len() {
        return Err(conflict("a team was created or removed".into()));
    }
    for t in teams {
        let id = t.team_internal_id;
        let done = sqlx::query::<DB>(
            "UPDATE teams SET wrapped_dek = $1, dek_id = $2 WHERE id = $3 AND dek_id = $4 RETURNING id",
        )
        .bind(t.wrapped_dek.clone())
        .bind(t.new_dek_id.clone())
        .bind(id)
        .bind(t.dek_id.clone())
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        if done.is_none() {
            return Err(conflict(format!("team {id} changed its data key")));
        }
        if t.new_dek_id == t.dek_id {
            if !t.values.is_empty() {
                return Err(StoreError::Conflict(
                    "values are re-sealed only under a new data key".into(),
                ));
            }
            continue;
        }
        for v in &t.values {
            // Compare-and-set on the sealed bytes: a value changed since it
            // was read would otherwise be lost or left under the old key.
            let done = sqlx::query::<DB>(
                "UPDATE credentials SET sealed_value = $1 \
                 WHERE team_id = $2 AND name = $3 AND sealed_value = $4 RETURNING team_id",
            )
            .bind(v.resealed.clone())
            .bind(id)
            .bind(v.credential.clone())
            .bind(v.sealed.clone())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
            if done.is_none() {
                return Err(conflict(format!(
                    "the value of credential {} changed",
                    v.credential
                )));
            }
        }
        let sealed: i64 = {
            let row = sqlx::query::<DB>(
                "SELECT count(*) FROM credentials WHERE team_id = $1 AND sealed_value IS NOT NULL",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
            row.try_get::<i64, usize>(0).map_err(unavailable)?
        };
        if usize::try_from(sealed).unwrap_or(usize::MAX) != t.values.len() {
            return Err(conflict(format!("a value of team {id} was set")));
        }
    }
    for (key, value) in meta {
        sqlx::query::<DB>(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key.clone())
        .bind(value.clone())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}
