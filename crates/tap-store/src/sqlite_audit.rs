//! The audit writer: a synchronous SQLite connection of its own, owned by the
//! proxy's audit journal.
//!
//! sqlx runs every SQLite connection on a worker thread and each statement is a
//! round trip to it; the `start` row is committed before every forward, so on
//! the hot path those hand-offs cost more than the commit. This connection is
//! used in-process by whoever commits (see `tap-proxy`'s journal), with cached
//! prepared statements.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};
use tap_core::audit::{GENESIS_HASH, chain_hash};
use tap_core::store::{AppendError, AuditAppend, AuditWriter, StoreError, StoreResult};

use crate::sqlite::BUSY_TIMEOUT;

/// Statements kept prepared (head read, anchor read, insert).
const STATEMENT_CACHE: usize = 8;

/// The audit writer's connection.
pub(crate) struct SqliteAuditWriter {
    conn: Connection,
    /// The busy timeout currently set on `conn`.
    waiting: Option<Duration>,
}

impl std::fmt::Debug for SqliteAuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteAuditWriter")
    }
}

fn failed(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl SqliteAuditWriter {
    /// Opens a connection to the (already migrated) database at `path`.
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        // The same durability as the pool (WAL, synchronous=NORMAL). Statement
        // journals stay in memory. No automatic checkpoints on this connection:
        // they would fsync on the request path; the journal asks for a passive
        // checkpoint from the pool instead (`Store::checkpoint`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(failed)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // rusqlite opens with a 5 s busy timeout; `waiting: None` means none.
        conn.busy_timeout(Duration::ZERO).map_err(failed)?;
        Ok(Self {
            conn,
            waiting: None,
        })
    }

    fn set_wait(&mut self, wait: bool) -> Result<(), AppendError> {
        let want = wait.then_some(BUSY_TIMEOUT);
        if self.waiting != want {
            self.conn
                .busy_timeout(want.unwrap_or(Duration::ZERO))
                .map_err(|e| AppendError::Failed(failed(e)))?;
            self.waiting = want;
        }
        Ok(())
    }

    fn write(&mut self, rows: &[AuditAppend], wait: bool) -> Result<(), AppendError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| {
                if !wait && is_busy(&e) {
                    AppendError::Busy
                } else {
                    AppendError::Failed(failed(e))
                }
            })?;
        let fail = |e: rusqlite::Error| AppendError::Failed(failed(e));
        // Heads are read inside the write transaction: another writer (another
        // process on the same file) may have moved them since this one last wrote.
        let mut heads: HashMap<i64, (i64, String)> = HashMap::new();
        {
            let mut head = tx
                .prepare_cached(
                    "SELECT seq, row_hash FROM audit WHERE team_id = ?1 ORDER BY seq DESC LIMIT 1",
                )
                .map_err(fail)?;
            let mut anchor = tx
                .prepare_cached(
                    "SELECT anchor_hash, first_seq FROM audit_anchor WHERE team_id = ?1",
                )
                .map_err(fail)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit (team_id, seq, phase, request_id, agent_id, credential, ts, record, prev_hash, row_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(fail)?;
            for row in rows {
                let team = row.team_internal_id;
                if let std::collections::hash_map::Entry::Vacant(slot) = heads.entry(team) {
                    let last = head
                        .query_row([team], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                        })
                        .map(Some)
                        .or_else(|e| match e {
                            rusqlite::Error::QueryReturnedNoRows => Ok(None),
                            other => Err(other),
                        })
                        .map_err(fail)?;
                    let h = match last {
                        Some(h) => h,
                        None => anchor
                            .query_row([team], |r| {
                                Ok((r.get::<_, i64>(1)? - 1, r.get::<_, String>(0)?))
                            })
                            .or_else(|e| match e {
                                rusqlite::Error::QueryReturnedNoRows => {
                                    Ok((0, GENESIS_HASH.to_owned()))
                                }
                                other => Err(other),
                            })
                            .map_err(fail)?,
                    };
                    slot.insert(h);
                }
                let Some((seq, prev)) = heads.get_mut(&team) else {
                    return Err(AppendError::Failed(StoreError::Unavailable(
                        "audit chain head missing".into(),
                    )));
                };
                let json = serde_json::to_string(&row.record).map_err(|e| {
                    AppendError::Failed(StoreError::Corrupt(format!("audit record: {e}")))
                })?;
                let new_seq = *seq + 1;
                let hash = chain_hash(prev, new_seq, row.phase, &json);
                insert
                    .execute(params![
                        team,
                        new_seq,
                        row.phase.as_str(),
                        row.record.request_id,
                        row.record.agent_id,
                        row.record.credential_names.first(),
                        row.record.timestamp,
                        json,
                        prev.as_str(),
                        hash,
                    ])
                    .map_err(fail)?;
                *seq = new_seq;
                *prev = hash;
            }
        }
        // Dropping `tx` on any error above rolls the whole batch back.
        tx.commit().map_err(fail)
    }
}

impl AuditWriter for SqliteAuditWriter {
    fn append(&mut self, rows: &[AuditAppend], wait: bool) -> Result<(), AppendError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.set_wait(wait)?;
        self.write(rows, wait)
    }
}
