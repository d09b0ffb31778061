//! WebAuthn ceremonies in progress (`webauthn_ceremonies`), so a ceremony
//! begun on one replica finishes on any other. Short-lived, not
//! configuration: nothing here bumps the revision or takes the configuration
//! lock, and `tap migrate --to` does not copy them.
//!
//! Each call is one or two single statements, no transaction: taking is one
//! `DELETE … RETURNING`, so of two replicas racing for a ceremony at most one
//! gets it; putting sweeps expired rows, drops the oldest of its kind when
//! the kind is full, then inserts below the cap (a put racing another may be
//! refused, or pass the cap by the number of writers at once, which stays
//! bounded by the connection pools).

/// The ceremony queries over `$pool`, decoding `$row`.
macro_rules! ceremony_queries {
    ($pool:ty, $row:ty) => {
        use sqlx::Row;
        use tap_core::model::{CeremonyKind, CeremonyRecord};
        use tap_core::store::{StoreError, StoreResult};

        use super::pool::unavailable;

        fn from_row(r: &$row) -> StoreResult<CeremonyRecord> {
            let kind: String = r.get("kind");
            Ok(CeremonyRecord {
                id: r.get("id"),
                kind: kind
                    .parse()
                    .map_err(|e: tap_core::model::ParseEnumError| StoreError::Corrupt(e.to_string()))?,
                state: r.get("state"),
                account_id: r.get("account_id"),
                name: r.get("name"),
                txn_id: r.get("txn_id"),
                request_hash: r.get("request_hash"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
            })
        }

        pub(super) async fn put_ceremony(
            pool: &$pool,
            c: &CeremonyRecord,
            now_ms: i64,
            cap: u32,
        ) -> StoreResult<bool> {
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1 OR id = $2")
                .bind(now_ms)
                .bind(&c.id)
                .execute(pool)
                .await
                .map_err(unavailable)?;
            // A full kind makes room by dropping its oldest ceremonies, so a
            // flood of anonymous sign-in begins pushes out older begins but
            // never refuses a member's new one.
            sqlx::query(
                "DELETE FROM webauthn_ceremonies WHERE kind = $1 AND created_at <= (
                     SELECT created_at FROM webauthn_ceremonies WHERE kind = $1
                     ORDER BY created_at DESC LIMIT 1 OFFSET $2)",
            )
            .bind(c.kind.as_str())
            .bind(i64::from(cap.saturating_sub(1)))
            .execute(pool)
            .await
            .map_err(unavailable)?;
            let n = sqlx::query(
                "INSERT INTO webauthn_ceremonies
                     (id, kind, state, account_id, name, txn_id, request_hash, created_at, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
                 WHERE (SELECT count(*) FROM webauthn_ceremonies WHERE kind = $2) < $10
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state,
                     account_id = excluded.account_id, name = excluded.name, txn_id = excluded.txn_id,
                     request_hash = excluded.request_hash, created_at = excluded.created_at,
                     expires_at = excluded.expires_at",
            )
            .bind(&c.id)
            .bind(c.kind.as_str())
            .bind(&c.state)
            .bind(c.account_id)
            .bind(&c.name)
            .bind(&c.txn_id)
            .bind(&c.request_hash)
            .bind(c.created_at)
            .bind(c.expires_at)
            .bind(i64::from(cap))
            .execute(pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
            Ok(n > 0)
        }

        pub(super) async fn take_ceremony(
            pool: &$pool,
            id: &str,
            kind: CeremonyKind,
            now_ms: i64,
        ) -> StoreResult<Option<CeremonyRecord>> {
            let row = sqlx::query(
                "DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2
                 RETURNING id, kind, state, account_id, name, txn_id, request_hash, created_at, expires_at",
            )
            .bind(id)
            .bind(kind.as_str())
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
            match row {
                Some(r) => {
                    let c = from_row(&r)?;
                    Ok((c.expires_at > now_ms).then_some(c))
                }
                None => Ok(None),
            }
        }
    };
}

pub(crate) use ceremony_queries;
