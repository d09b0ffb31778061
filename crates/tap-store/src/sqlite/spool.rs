//! The audit spool: an append-only file next to the database that makes an
//! audit row durable with one `write`, folded into SQLite in large batches.
//!
//! Committing every `start` row to SQLite before forwarding cost about 40 % of
//! the proxy's CPU: each small transaction writes a table page and three index
//! pages to the WAL. Appending the row to the spool is as durable as that
//! commit was (SQLite runs with `synchronous=NORMAL`: both survive a crash of
//! the process, neither an OS crash without fsync), and the fold then writes
//! hundreds of rows per transaction.
//!
//! Invariants:
//! - a row is acknowledged only after its complete line is in the file;
//! - the fold chains rows in file order on each team's head read inside its
//!   transaction, and stores how far it got (spool id, byte offset) in the same
//!   transaction, so after a crash exactly the unfolded rows are replayed;
//! - a last line cut short (a crash during its write, never acknowledged) is
//!   dropped at open; a complete line that fails its check is damage: the
//!   spool refuses to open or fold rather than skip acknowledged rows;
//! - one process at a time owns the spool (an exclusive lock on the file).
//!
//! File format: a header line `TAP-AUDIT-SPOOL v2 <32 hex id>\n`, then one
//! line per row: `<8 hex check> <meta JSON>\t<record JSON>\n`, where meta is
//! `[team, phase, request_id, agent_id, credential, ts]` and the check is the
//! CRC-32 of everything between the space and the newline (it detects a torn
//! or damaged line; tampering is the hash chain's business, once folded).
//! JSON never holds a raw tab or newline. A `v1` file (16 hex digits of
//! SHA-256 as the check) left by an earlier version is folded, then started
//! over as `v2`.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tap_core::audit::{AuditPhase, Chainer};
use tap_core::crypto::sha256_hex;
use tap_core::store::{AuditAppend, AuditWriter, StoreError, StoreResult};

use super::schema::{
    AUDIT_ANCHOR, AUDIT_HAS_ROWS, AUDIT_HEAD, AUDIT_PUT_HEAD, AuditKeySlot, BUSY_TIMEOUT, HeadRow,
    resume,
};

const MAGIC: &str = "TAP-AUDIT-SPOOL v2 ";
/// The first format's magic; same length.
const MAGIC_V1: &str = "TAP-AUDIT-SPOOL v1 ";
/// Header length: magic, 32 hex digits, newline.
const HEADER_LEN: u64 = MAGIC.len() as u64 + 33;

/// How a file's lines are checked, by its header's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// 16 hex digits of SHA-256 (read only).
    V1,
    /// 8 hex digits of CRC-32.
    V2,
}

impl Format {
    fn check_len(self) -> usize {
        match self {
            Self::V1 => 16,
            Self::V2 => 8,
        }
    }

    fn check_ok(self, check: &str, body: &[u8]) -> bool {
        match self {
            Self::V1 => sha256_hex(body).get(..16) == Some(check),
            Self::V2 => crc_hex(body).as_slice() == check.as_bytes(),
        }
    }
}

/// The v2 check of `body`.
fn crc_hex(body: &[u8]) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let crc = crc32fast::hash(body);
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((crc >> (28 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Bytes read and folded in one transaction: small enough not to show in the
/// proxy's peak memory (with 1 MiB its peak RSS was 0.5-2 MiB higher). A line
/// longer than this (a record with a large body and headers) is read in a
/// doubled chunk.
const FOLD_CHUNK: u64 = 256 << 10;
/// Once everything is folded and the file is this long, it starts over.
const REWIND_AT: u64 = 16 << 20;
/// Unfolded bytes beyond which appends are refused (fail closed: the caller
/// forwards nothing) rather than letting the file grow without bound.
const MAX_UNFOLDED: u64 = 256 << 20;
/// Statements kept prepared.
const STATEMENT_CACHE: usize = 8;
/// Page cache of the fold's connection, KiB.
const FOLD_CACHE_KIB: u32 = 256;

/// The spool file that belongs to the database at `db`.
pub(crate) fn spool_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".audit-spool");
    PathBuf::from(p)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Unavailable(format!("audit spool {what}: {e}"))
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// `None` for a query that found no row.
fn optional<T>(found: rusqlite::Result<T>) -> StoreResult<Option<T>> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(sql(e)),
    }
}

fn header(id: &str) -> String {
    format!("{MAGIC}{id}\n")
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    // Uniqueness only (tells one incarnation of the file from the next).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One row as the fold reads it back, borrowed from the bytes read.
struct Spooled<'a> {
    team: i64,
    phase: AuditPhase,
    request_id: Cow<'a, str>,
    agent_id: Cow<'a, str>,
    credential: Option<Cow<'a, str>>,
    ts: Cow<'a, str>,
    record: &'a str,
}

/// `[team, phase, request_id, agent_id, credential, ts]`.
#[derive(serde::Deserialize)]
struct Meta<'a>(
    i64,
    AuditPhase,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
);

/// Appends one row's line to `out`.
fn encode(row: &AuditAppend, out: &mut Vec<u8>) -> StoreResult<()> {
    let start = out.len();
    let written = encode_line(row, out, start);
    if written.is_err() {
        // Nothing of a line that could not be written whole.
        out.truncate(start);
    }
    written
}

/// `<check> <meta>\t<record>\n`, serialized in place; the check is filled in
/// once the body is there.
fn encode_line(row: &AuditAppend, out: &mut Vec<u8>, start: usize) -> StoreResult<()> {
    let r = &row.record;
    out.extend_from_slice(b"00000000 ");
    serde_json::to_writer(
        &mut *out,
        &(
            row.team_internal_id,
            row.phase,
            &r.request_id,
            &r.agent_id,
            r.credential_column(),
            &r.timestamp,
        ),
    )
    .map_err(|e| StoreError::Corrupt(format!("audit row: {e}")))?;
    out.push(b'\t');
    serde_json::to_writer(&mut *out, r)
        .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?;
    let check = crc_hex(&out[start + 9..]);
    out[start..start + 8].copy_from_slice(&check);
    out.push(b'\n');
    Ok(())
}

/// Parses one line (without its newline); `None` when it is damaged.
fn decode(format: Format, line: &[u8]) -> Option<Spooled<'_>> {
    let line = std::str::from_utf8(line).ok()?;
    let n = format.check_len();
    let (check, body) = (line.get(..n)?, line.get(n + 1..)?);
    if line.as_bytes().get(n) != Some(&b' ') || !format.check_ok(check, body.as_bytes()) {
        return None;
    }
    let (meta, record) = body.split_once('\t')?;
    let Meta(team, phase, request_id, agent_id, credential, ts) =
        serde_json::from_str(meta).ok()?;
    Some(Spooled {
        team,
        phase,
        request_id,
        agent_id,
        credential,
        ts,
        record,
    })
}

struct Appender {
    file: File,
    /// Bytes in the file: every line below this offset is complete.
    len: u64,
    /// A failed write could not be undone: refuse appends until restart.
    broken: bool,
}

struct Folder {
    conn: Connection,
    /// Spool id of the file's current incarnation.
    id: String,
    /// Its format.
    format: Format,
    /// Everything below this offset is in the database.
    offset: u64,
}

/// The spool of one database; shared by the journal and the store's readers.
pub(crate) struct Spool {
    append: Mutex<Appender>,
    fold: Mutex<Folder>,
    /// A second handle for reading (the appender's is busy writing).
    read: File,
    /// `Folder::offset`, readable without waiting for a fold in progress.
    folded: AtomicU64,
    /// [`REWIND_AT`]; smaller in tests.
    rewind_at: u64,
    /// [`FOLD_CHUNK`]; smaller in tests.
    fold_chunk: u64,
    /// The audit key the fold chains with.
    key: AuditKeySlot,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spool")
    }
}

impl Spool {
    /// Opens (creating) the spool of the (migrated) database at `db`, takes its
    /// lock and folds whatever an earlier process left. `Conflict` when another
    /// live process owns it.
    pub(crate) fn open(db: &Path, key: AuditKeySlot) -> StoreResult<Self> {
        // Without the key the fold at open could chain nothing.
        key.get()?;
        let path = spool_path(db);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Conflict(
                    "the audit spool is owned by another process".into(),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock")(e)),
        }
        let mut len = file.metadata().map_err(io("stat"))?.len();
        let mut head = vec![0u8; usize::try_from(HEADER_LEN.min(len)).unwrap_or(0)];
        file.read_exact_at(&mut head, 0).map_err(io("read"))?;
        let parsed = std::str::from_utf8(&head).ok().and_then(|h| {
            let (format, rest) = match h.strip_prefix(MAGIC) {
                Some(rest) => (Format::V2, rest),
                None => (Format::V1, h.strip_prefix(MAGIC_V1)?),
            };
            let id = rest
                .strip_suffix('\n')
                .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))?;
            Some((id.to_owned(), format))
        });
        let (id, format) = match parsed {
            Some(found) => found,
            None if len <= HEADER_LEN => {
                // New, or a header cut short: no row was ever appended after it.
                let id = new_id();
                file.set_len(0).map_err(io("truncate"))?;
                file.write_all_at(header(&id).as_bytes(), 0)
                    .map_err(io("write"))?;
                len = HEADER_LEN;
                (id, Format::V2)
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{} is not an audit spool",
                    path.display()
                )));
            }
        };
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        // The pool's durability (WAL, synchronous=NORMAL); statement journals in
        // memory; checkpoints are left to the pool (`Store::checkpoint`). The
        // fold only appends (sequence numbers and UUIDv7 request ids grow), so
        // it touches the right edge of each b-tree (of each active agent's
        // range in the by-agent index): a small page cache serves it, where
        // SQLite's default (2 MiB) would mostly keep pages already written.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 0;
             PRAGMA cache_size = -{FOLD_CACHE_KIB};"
        ))
        .map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let stored: Option<(String, i64)> = optional(conn.query_row(
            "SELECT spool_id, position FROM audit_spool WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))?;
        if !existed && stored.is_some() {
            // The database has folded from a spool that is not here: the
            // file was copied without its companions (`-wal`, spool), so its
            // recent writes may be missing. Refuse rather than serve it.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Corrupt(format!(
                "{} is missing: {} was copied or restored without the files beside it \
                 (tap.db-wal and the audit spool), so recent writes may be lost; \
                 copy the data dir whole while the proxy is stopped, or use `tap backup` and `tap restore`",
                path.display(),
                db.display()
            )));
        }
        let offset = match stored {
            // Beyond the end only after a rewind that a crash cut short: nothing to fold.
            Some((sid, pos)) if sid == id => u64::try_from(pos).unwrap_or(0).clamp(HEADER_LEN, len),
            _ => HEADER_LEN,
        };
        let read = file.try_clone().map_err(io("open"))?;
        let spool = Spool {
            append: Mutex::new(Appender {
                file,
                len,
                broken: false,
            }),
            fold: Mutex::new(Folder {
                conn,
                id,
                format,
                offset,
            }),
            read,
            folded: AtomicU64::new(offset),
            rewind_at: REWIND_AT,
            fold_chunk: FOLD_CHUNK,
            key,
        };
        spool.fold_inner(true)?;
        Ok(spool)
    }

    /// Moves every spooled row into the database. Blocks on SQLite's lock
    /// (up to the busy timeout): call it off the async runtime's workers.
    pub(crate) fn fold(&self) -> StoreResult<usize> {
        self.fold_inner(false)
    }

    fn fold_inner(&self, recovering: bool) -> StoreResult<usize> {
        let mut f = lock(&self.fold);
        let mut total = 0;
        let mut chunk = self.fold_chunk.max(1);
        loop {
            let end = lock(&self.append).len;
            if f.offset >= end {
                break;
            }
            let n = (end - f.offset).min(chunk);
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
            self.read
                .read_exact_at(&mut buf, f.offset)
                .map_err(io("read"))?;
            let mut rows = Vec::new();
            let mut consumed = 0usize;
            let mut bad_line = false;
            while let Some(nl) = memchr::memchr(b'\n', &buf[consumed..]) {
                match decode(f.format, &buf[consumed..consumed + nl]) {
                    Some(row) => rows.push(row),
                    None => {
                        bad_line = true;
                        break;
                    }
                }
                consumed += nl + 1;
            }
            if consumed == 0 && !bad_line && n < end - f.offset {
                // A line longer than the chunk: read more of it.
                chunk = chunk.saturating_mul(2);
                continue;
            }
            // A crash can only cut the last write short: its bytes end without a newline.
            let torn_tail = !bad_line && consumed < buf.len() && n == end - f.offset;
            if !rows.is_empty() {
                let next = f.offset + consumed as u64;
                insert(&mut f, &self.key, &rows, next)?;
                f.offset = next;
                self.folded.store(next, Ordering::Release);
                total += rows.len();
            }
            if torn_tail && recovering {
                // Never acknowledged: drop it.
                let mut a = lock(&self.append);
                tracing::warn!(
                    bytes = a.len - f.offset,
                    "audit spool ends in a write cut short by a crash; dropping it"
                );
                a.file.set_len(f.offset).map_err(io("truncate"))?;
                a.len = f.offset;
                break;
            }
            if bad_line || torn_tail || consumed == 0 {
                // A complete line that fails its check is damage, not a crash: stop
                // loudly rather than drop acknowledged rows.
                return Err(StoreError::Corrupt(format!(
                    "audit spool damaged at byte {}",
                    f.offset
                )));
            }
        }
        // Start the file over once it is all in the database (at once for a v1
        // file: appends are v2). The database still names the old id, so a
        // crash from here on replays the new file whole.
        let mut a = lock(&self.append);
        if f.offset == a.len && (a.len >= self.rewind_at || f.format != Format::V2) {
            let id = new_id();
            a.file.set_len(HEADER_LEN).map_err(io("truncate"))?;
            a.file
                .write_all_at(header(&id).as_bytes(), 0)
                .map_err(io("write"))?;
            a.len = HEADER_LEN;
            f.id = id;
            f.format = Format::V2;
            f.offset = HEADER_LEN;
            self.folded.store(HEADER_LEN, Ordering::Release);
        }
        Ok(total)
    }
}

/// Chains and inserts `rows` in one transaction that also moves each team's
/// sealed head and records `next` as the fold position.
fn insert(f: &mut Folder, key: &AuditKeySlot, rows: &[Spooled<'_>], next: u64) -> StoreResult<()> {
    let key = key.get()?;
    let tx = f
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    // Heads are read inside the write transaction: other writers (the pool,
    // other processes) may have moved them.
    let mut chainer = Chainer::new(key.clone());
    {
        let mut head = tx.prepare_cached(AUDIT_HEAD).map_err(sql)?;
        for team in Chainer::teams_of(rows.iter().map(|r| r.team)) {
            let stored: Option<HeadRow> = optional(
                head.query_row([team], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))),
            )?;
            let resumed = resume(
                &key,
                team,
                stored,
                || {
                    tx.prepare_cached(AUDIT_HAS_ROWS)
                        .and_then(|mut q| q.query_row([team], |r| r.get(0)))
                        .map_err(sql)
                },
                || {
                    let mut q = tx.prepare_cached(AUDIT_ANCHOR).map_err(sql)?;
                    optional(q.query_row([team], |r| Ok((r.get(0)?, r.get(1)?))))
                },
            )?;
            chainer.set_head(team, resumed);
        }
    }
    {
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO audit (team_id, seq, phase, request_id, agent_id, credential, ts, record, prev_hash, row_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(sql)?;
        for row in rows {
            let link = chainer
                .link(row.team, row.phase, row.record)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            ins.execute(params![
                row.team,
                link.seq,
                row.phase.as_str(),
                row.request_id,
                row.agent_id,
                row.credential,
                row.ts,
                row.record,
                link.prev_hash,
                link.row_hash,
            ])
            .map_err(sql)?;
        }
        let mut put = tx.prepare_cached(AUDIT_PUT_HEAD).map_err(sql)?;
        for h in chainer.heads() {
            put.execute(params![
                h.team_internal_id,
                h.seq,
                h.last_hash,
                h.keyed_from,
                h.mac
            ])
            .map_err(sql)?;
        }
        tx.prepare_cached(
            "INSERT INTO audit_spool (id, spool_id, position) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET spool_id = excluded.spool_id, position = excluded.position",
        )
        .map_err(sql)?
        .execute(params![f.id, i64::try_from(next).unwrap_or(i64::MAX)])
        .map_err(sql)?;
    }
    // Dropping `tx` on any error above rolls the whole batch back.
    tx.commit().map_err(sql)
}

impl AuditWriter for Spool {
    fn append(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(rows.len() * 2048);
        for row in rows {
            encode(row, &mut buf)?;
        }
        let mut a = lock(&self.append);
        let folded = self.folded.load(Ordering::Acquire);
        if a.broken {
            return Err(StoreError::Unavailable(
                "the audit spool failed earlier; restart the proxy".into(),
            ));
        }
        if a.len.saturating_sub(folded) > MAX_UNFOLDED {
            return Err(StoreError::Unavailable(
                "too many audit rows wait to be folded into the store".into(),
            ));
        }
        let at = a.len;
        if let Err(e) = a.file.write_all_at(&buf, at) {
            // Take back a partial line, so the next one starts clean.
            if a.file.set_len(at).is_err() {
                a.broken = true;
            }
            return Err(io("write")(e));
        }
        a.len = at + buf.len() as u64;
        Ok(())
    }

    fn fold(&self) -> StoreResult<usize> {
        Spool::fold(self)
    }
}

#[cfg(test)]
mod tests;
