//! The audit trail as the pool sees it: appends chained inside one
//! transaction in which each touched team's chain has one writer, so each
//! append reads the head the previous one committed, and reads of one
//! consistent snapshot. SQLite's audit spool sits in front of these
//! (`crate::sqlite::audit`); PostgreSQL has none.

/// Audit rows per INSERT (10 parameters each, under SQLite's 32,766 and
/// PostgreSQL's 65,535).
pub(crate) const AUDIT_ROWS_PER_INSERT: usize = 1000;

/// The pool-side audit queries over `$pool` (`$conn` inside a transaction,
/// `$db` the sqlx database). `position` names the SQL function that finds a
/// substring (`instr` on SQLite, `strpos` on PostgreSQL: same arguments,
/// same result). The backend module supplies, after the invocation and with
/// this macro's imports in scope,
/// `async fn audit_tx(pool: &$pool) -> StoreResult<Transaction>`, the
/// transaction an append or a prune writes in, and
/// `async fn lock_team(conn: &mut $conn, team: i64) -> StoreResult<()>`,
/// which keeps every other writer off `team`'s chain until that transaction
/// ends. Appends lock teams in ascending order, so two batches never
/// deadlock.
macro_rules! audit_queries {
    ($pool:ty, $conn:ty, $db:ty, position = $position:literal) => {
        use sqlx::Row;
        use tap_core::audit::{
            AuditChain, AuditHead, AuditRow, Chainer, GENESIS_HASH, heads_sealed_marker,
        };
        use tap_core::crypto::AuditKey;
        use tap_core::store::{AuditAppend, AuditQuery, StoreError, StoreResult};

        use super::pool::{read_tx, unavailable, write_tx};
        use super::rows::{audit_from_row, corrupt};
        use crate::sql::audit::AUDIT_ROWS_PER_INSERT;
        use crate::sqlite::schema::{
            AUDIT_ANCHOR, AUDIT_ANCHOR_SEALED, AUDIT_HAS_ROWS, AUDIT_HEAD, AUDIT_PUT_HEAD,
            AuditKeySlot, HeadRow, META_HEADS_SEALED, head_of, resume,
        };

        /// Appends `rows` through the pool, reading each team's chain head
        /// inside the transaction that holds the team's lock: always correct,
        /// a few round trips.
        pub(super) async fn append_audit(
            pool: &$pool,
            key: &AuditKeySlot,
            rows: &[AuditAppend],
        ) -> StoreResult<()> {
            if rows.is_empty() {
                return Ok(());
            }
            let key = key.get()?;
            // One transaction, one lock and head read per team, one multi-row
            // INSERT: a batch costs the same few round trips whatever its size.
            let mut tx = audit_tx(pool).await?;
            let mut chainer = Chainer::new(key.clone());
            for team in Chainer::teams_of(rows.iter().map(|r| r.team_internal_id)) {
                lock_team(&mut tx, team).await?;
                let stored: Option<HeadRow> = sqlx::query_as(AUDIT_HEAD)
                    .bind(team)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                let (has_rows, anchor) = if stored.is_some() {
                    (false, None)
                } else {
                    let has: bool = sqlx::query_scalar(AUDIT_HAS_ROWS)
                        .bind(team)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    let anchor: Option<(String, i64)> = sqlx::query_as(AUDIT_ANCHOR)
                        .bind(team)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    (has, anchor)
                };
                let head = resume(&key, team, stored, || Ok(has_rows), || Ok(anchor))?;
                chainer.set_head(team, head);
            }
            let mut chained = Vec::with_capacity(rows.len());
            for row in rows {
                let json = serde_json::to_string(&row.record).map_err(corrupt("audit record"))?;
                let link = chainer
                    .link(row.team_internal_id, row.phase, &json)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                chained.push((row, link.seq, json, link.prev_hash, link.row_hash));
            }
            for chunk in chained.chunks(AUDIT_ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit (team_id, seq, phase, request_id, agent_id, credential, ts, record, prev_hash, row_hash) ",
                );
                q.push_values(chunk, |mut b, (row, seq, json, prev, hash)| {
                    b.push_bind(row.team_internal_id)
                        .push_bind(*seq)
                        .push_bind(row.phase.as_str())
                        .push_bind(row.record.request_id.as_str())
                        .push_bind(row.record.agent_id.as_str())
                        .push_bind(row.record.credential_column())
                        .push_bind(row.record.timestamp.as_str())
                        .push_bind(json.as_str())
                        .push_bind(prev.as_str())
                        .push_bind(hash.as_str());
                });
                q.build().execute(&mut *tx).await.map_err(unavailable)?;
            }
            for head in chainer.heads() {
                put_head(&mut tx, &head).await?;
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(())
        }

        async fn put_head(tx: &mut $conn, head: &AuditHead) -> StoreResult<()> {
            sqlx::query(AUDIT_PUT_HEAD)
                .bind(head.team_internal_id)
                .bind(head.seq)
                .bind(&head.last_hash)
                .bind(head.keyed_from)
                .bind(&head.mac)
                .execute(tx)
                .await
                .map_err(unavailable)?;
            Ok(())
        }

        /// Installs the key; the first time a deployment gets one, seals the
        /// heads a migration recorded for chains of earlier versions, and
        /// records that it did (in the same transaction), so a head found
        /// unsealed later stays unsealed.
        pub(super) async fn set_audit_key(
            pool: &$pool,
            slot: &AuditKeySlot,
            key: AuditKey,
        ) -> StoreResult<()> {
            slot.set(key.clone());
            let mut tx = write_tx(pool).await?;
            let marker: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                    .bind(META_HEADS_SEALED)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if marker.is_some() {
                // Checked by `tap audit verify` through each head's own seal.
                return Ok(());
            }
            let unsealed: Vec<(i64, i64, String, i64, Option<String>)> = sqlx::query_as(
                "SELECT team_id, seq, last_hash, keyed_from, mac FROM audit_head WHERE mac IS NULL",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            for (team, seq, last_hash, keyed_from, mac) in unsealed {
                let head = head_of(team, (seq, last_hash, keyed_from, mac)).seal(&key);
                put_head(&mut tx, &head).await?;
            }
            // Audit state, not configuration: the revision stays.
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
                .bind(META_HEADS_SEALED)
                .bind(heads_sealed_marker(&key).into_bytes())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        }

        pub(super) async fn audit_head(pool: &$pool, team: i64) -> StoreResult<Option<AuditHead>> {
            let stored: Option<HeadRow> = sqlx::query_as(AUDIT_HEAD)
                .bind(team)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?;
            Ok(stored.map(|h| head_of(team, h)))
        }

        pub(super) async fn audit_rows(
            pool: &$pool,
            team: i64,
            q: &AuditQuery,
        ) -> StoreResult<Vec<AuditRow>> {
            let limit = i64::from(q.limit.unwrap_or(1000));
            // Newest `limit` requests (by their first row), then every row of
            // those requests, oldest first.
            let rows = sqlx::query(concat!(
                "SELECT * FROM audit WHERE team_id = $1 AND request_id IN (
                     SELECT request_id FROM audit
                     WHERE team_id = $1
                       AND ($2 IS NULL OR agent_id = $2)
                       AND ($3 IS NULL OR credential = $3
                            OR ",
                $position,
                "(',' || credential || ',', ',' || $3 || ',') > 0)
                       AND ($4 IS NULL OR seq > $4)
                     GROUP BY request_id ORDER BY min(seq) DESC LIMIT $5)
                 ORDER BY seq",
            ))
            .bind(team)
            .bind(&q.agent)
            .bind(&q.credential)
            .bind(q.after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
            rows.iter().map(audit_from_row).collect()
        }

        pub(super) async fn audit_chain(pool: &$pool, team: i64) -> StoreResult<AuditChain> {
            // One read transaction on one snapshot (`read_tx`): rows and head
            // agree, so an append committing meanwhile cannot look like a row
            // past the head.
            let mut tx = read_tx(pool).await?;
            let anchor: Option<(String, i64, String)> = sqlx::query_as(AUDIT_ANCHOR_SEALED)
                .bind(team)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            let (anchor_hash, first_seq, anchor_mac) = match anchor {
                Some((hash, first_seq, mac)) => (hash, first_seq, Some(mac)),
                None => (GENESIS_HASH.to_owned(), 1, None),
            };
            let rows = sqlx::query("SELECT * FROM audit WHERE team_id = $1 ORDER BY seq")
                .bind(team)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
            let head: Option<HeadRow> = sqlx::query_as(AUDIT_HEAD)
                .bind(team)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let row = audit_from_row(r)?;
                // The index columns must agree with the MACed record, or the
                // row was edited.
                let consistent = row.record().is_ok_and(|rec| {
                    rec.request_id == r.get::<String, _>("request_id")
                        && rec.agent_id == r.get::<String, _>("agent_id")
                        && rec.credential_column() == r.get::<Option<String>, _>("credential")
                        && rec.timestamp == r.get::<String, _>("ts")
                        && r.get::<String, _>("phase") == row.phase.as_str()
                });
                let mut row = row;
                if !consistent {
                    row.row_hash = String::from("index-mismatch");
                }
                out.push(row);
            }
            Ok(AuditChain {
                anchor_hash,
                first_seq,
                anchor_mac,
                rows: out,
                head: head.map(|h| head_of(team, h)),
            })
        }

        /// Retention ([`crate::retention`]): one transaction per team, holding
        /// the team's append lock, so it runs safely beside appends and other
        /// prunes (a second prune of the same cutoff finds nothing to delete).
        pub(super) async fn prune_audit(
            pool: &$pool,
            key: &AuditKeySlot,
            before: &str,
        ) -> StoreResult<u64> {
            let key = key.get()?;
            let teams: Vec<(i64,)> = sqlx::query_as(crate::retention::AUDIT_TEAMS)
                .fetch_all(pool)
                .await
                .map_err(unavailable)?;
            let mut deleted = 0;
            for (team,) in teams {
                let mut tx = audit_tx(pool).await?;
                lock_team(&mut tx, team).await?;
                deleted += crate::retention::prune_team::<$db>(&mut tx, &key, team, before).await?;
                tx.commit().await.map_err(unavailable)?;
            }
            Ok(deleted)
        }
    };
}

pub(crate) use audit_queries;
