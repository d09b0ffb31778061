//! Audit records and the per-team hash chain (SPEC §9).

use serde::{Deserialize, Serialize};

use crate::crypto::{AuditKey, ct_eq, sha256_hex_parts};

/// Largest stored request body, cut on a character boundary.
pub const MAX_AUDIT_BODY_BYTES: usize = 16 * 1024;
/// `prev_hash` of a team's first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which half of a request's record a row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditPhase {
    /// Written and committed before the upstream sees the request.
    Start,
    /// Written after the outcome is known (or alone for refusals).
    Finish,
}

impl AuditPhase {
    /// Spelling in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Finish => "finish",
        }
    }
}

/// One request's audit record. Invariant: holds no secret and no agent key;
/// headers and body are stored as sent but scrubbed of every team secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Equals the response's `X-TAP-Request-Id`.
    pub request_id: String,
    /// Team slug.
    pub team_id: String,
    /// Agent id (unique within its home team).
    pub agent_id: String,
    /// The agent's home team when it differs from `team_id` (a linked agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_home_team: Option<String>,
    /// Credentials the request named.
    pub credential_names: Vec<String>,
    /// Upper-cased method.
    pub method: String,
    /// Display target.
    pub target_url: String,
    /// `proceed`, `approval`, `refused` or `error`.
    pub decision: String,
    /// The policy reason, when policy ran.
    pub policy_reason: Option<String>,
    /// Approval status, when approval was involved.
    pub approval_status: Option<String>,
    /// Members who decided.
    pub approvers: Vec<String>,
    /// Upstream status, when the upstream answered.
    pub upstream_status: Option<u16>,
    /// Error code of a refusal or failure.
    pub error_code: Option<String>,
    /// Total latency in milliseconds.
    pub latency_total_ms: Option<f64>,
    /// Approval wait in milliseconds.
    pub latency_approval_ms: Option<f64>,
    /// Upstream time in milliseconds.
    pub latency_upstream_ms: Option<f64>,
    /// Whether any secret was replaced in the response.
    pub response_scrubbed: bool,
    /// Request headers as sent, `X-TAP-Key` as `[REDACTED:tap_key]`, scrubbed.
    pub request_headers: Vec<(String, String)>,
    /// Request body, at most 16 KiB, scrubbed.
    pub request_body: Option<String>,
    /// RFC 3339 UTC time of the request.
    pub timestamp: String,
    /// Set on a `finish` row whose `start` row holds the request's headers and
    /// body: they are not repeated here, and [`merge_rows`] takes them from the
    /// start. Never set on a merged record, so it never reaches an API answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub request_in_start: bool,
}

impl AuditRecord {
    /// The value of the store's indexed `credential` column: every credential
    /// name joined by `,` (names never contain a comma), `None` when the
    /// request named none. A filter on one credential matches a row whose
    /// column lists it among several.
    pub fn credential_column(&self) -> Option<String> {
        (!self.credential_names.is_empty()).then(|| self.credential_names.join(","))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A row as stored in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    /// Position in the team's chain, from 1.
    pub seq: i64,
    /// Row phase.
    pub phase: AuditPhase,
    /// The record JSON exactly as hashed.
    pub record_json: String,
    /// Hash of the previous row.
    pub prev_hash: String,
    /// Hash of this row.
    pub row_hash: String,
}

impl AuditRow {
    /// Decodes the record.
    pub fn record(&self) -> Result<AuditRecord, serde_json::Error> {
        serde_json::from_str(&self.record_json)
    }
}

/// The unkeyed hash of a row, as versions before the keyed chain wrote it.
/// Only rows before a team's switch-over point ([`AuditHead::keyed_from`]) are
/// checked with it: anyone can recompute it, so it proves nothing alone.
pub fn chain_hash(prev_hash: &str, seq: i64, phase: AuditPhase, record_json: &str) -> String {
    sha256_hex_parts(&[
        prev_hash.as_bytes(),
        b"|",
        seq.to_string().as_bytes(),
        b"|",
        phase.as_str().as_bytes(),
        b"|",
        record_json.as_bytes(),
    ])
}

/// Domain label of a row's MAC.
const ROW_LABEL: &[u8] = b"tap audit row v1";
/// Domain label of a chain head's seal.
const HEAD_LABEL: &[u8] = b"tap audit head v1";
/// Domain label of a retention anchor's seal.
const ANCHOR_LABEL: &[u8] = b"tap audit anchor v1";
/// Domain label of the deployment's "legacy heads were sealed" marker.
const SEALED_LABEL: &[u8] = b"tap audit heads sealed v1";

/// The keyed hash (HMAC-SHA-256, hex) of a row: covers the team, the row's
/// position, its phase, the record (every field of the row; the store's index
/// columns are copies of record fields, checked against it) and the previous
/// row's MAC. Without the audit key nobody can make one.
pub fn chain_mac(
    key: &AuditKey,
    team_internal_id: i64,
    prev_hash: &str,
    seq: i64,
    phase: AuditPhase,
    record_json: &str,
) -> String {
    key.mac_hex(
        ROW_LABEL,
        &[
            &team_internal_id.to_be_bytes(),
            &seq.to_be_bytes(),
            phase.as_str().as_bytes(),
            prev_hash.as_bytes(),
            record_json.as_bytes(),
        ],
    )
}

/// The value a store keeps (sealed) once it has sealed the heads that earlier
/// versions left unsealed, so that it never seals them again: a head later
/// found unsealed was tampered with, not left by an upgrade.
pub fn heads_sealed_marker(key: &AuditKey) -> String {
    key.mac_hex(SEALED_LABEL, &[])
}

/// True when `stored` is the marker of [`heads_sealed_marker`] under `key`.
pub fn heads_sealed_marker_verifies(key: &AuditKey, stored: &str) -> bool {
    key.verify_hex(SEALED_LABEL, &[], stored)
}

/// The seal of a retention anchor (hex): covers the team, the first row
/// kept and the hash of the last row deleted, so that nobody without the
/// audit key can delete old rows and write an anchor that hides it.
pub fn anchor_mac(
    key: &AuditKey,
    team_internal_id: i64,
    first_seq: i64,
    anchor_hash: &str,
) -> String {
    key.mac_hex(
        ANCHOR_LABEL,
        &[
            &team_internal_id.to_be_bytes(),
            &first_seq.to_be_bytes(),
            anchor_hash.as_bytes(),
        ],
    )
}

/// A team's chain head as the store keeps it, next to the rows: where the
/// chain ends and where its keyed part starts, sealed with the audit key.
///
/// Invariant: every append moves the head in the transaction that inserts
/// the rows, so a sealed head names the last row ever appended; deleting
/// rows from the end, or moving the head, shows without the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    /// Team internal id.
    pub team_internal_id: i64,
    /// Sequence number of the last row (0 before the first).
    pub seq: i64,
    /// Hash (or MAC) of the last row; the genesis or retention anchor hash before one.
    pub last_hash: String,
    /// First row chained with the MAC: rows before it were written by an
    /// earlier version with the unkeyed hash.
    pub keyed_from: i64,
    /// The seal, hex; `None` for a head a migration recorded and no keyed
    /// process has sealed yet.
    pub mac: Option<String>,
}

/// Why a stored head cannot be chained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// No seal.
    #[error("is not sealed")]
    Unsealed,
    /// The seal does not match: the head was edited.
    #[error("does not match its seal")]
    BadSeal,
}

impl AuditHead {
    fn seal_of(key: &AuditKey, team: i64, seq: i64, last_hash: &str, keyed_from: i64) -> String {
        key.mac_hex(
            HEAD_LABEL,
            &[
                &team.to_be_bytes(),
                &seq.to_be_bytes(),
                last_hash.as_bytes(),
                &keyed_from.to_be_bytes(),
            ],
        )
    }

    /// A head sealed under `key`.
    pub fn sealed(
        key: &AuditKey,
        team_internal_id: i64,
        seq: i64,
        last_hash: String,
        keyed_from: i64,
    ) -> Self {
        let mac = Self::seal_of(key, team_internal_id, seq, &last_hash, keyed_from);
        Self {
            team_internal_id,
            seq,
            last_hash,
            keyed_from,
            mac: Some(mac),
        }
    }

    /// This head with its seal made under `key` (sealing a migrated head).
    pub fn seal(self, key: &AuditKey) -> Self {
        Self::sealed(
            key,
            self.team_internal_id,
            self.seq,
            self.last_hash,
            self.keyed_from,
        )
    }

    /// Checks the seal (in constant time).
    pub fn check(&self, key: &AuditKey) -> Result<(), HeadError> {
        let mac = self.mac.as_deref().ok_or(HeadError::Unsealed)?;
        let expected = Self::seal_of(
            key,
            self.team_internal_id,
            self.seq,
            &self.last_hash,
            self.keyed_from,
        );
        if ct_eq(expected.as_bytes(), mac.as_bytes()) {
            Ok(())
        } else {
            Err(HeadError::BadSeal)
        }
    }

    /// Where the chain continues, once the seal is checked.
    pub fn open(&self, key: &AuditKey) -> Result<ChainHead, HeadError> {
        self.check(key)?;
        Ok(ChainHead {
            seq: self.seq,
            hash: self.last_hash.clone(),
            keyed_from: self.keyed_from,
        })
    }
}

/// Where a team's chain continues: the sequence number and hash of its last
/// row. Invariant: the next row gets `seq + 1` and `prev_hash == hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last row; 0 before the first.
    pub seq: i64,
    /// Hash of the last row, or the genesis or retention anchor hash.
    pub hash: String,
    /// First keyed row of the chain.
    pub keyed_from: i64,
}

impl ChainHead {
    /// The head of a chain that never had a row.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
            keyed_from: 1,
        }
    }

    /// The head of a team with no row and no stored head: after the
    /// retention anchor `(anchor_hash, first_seq)` when retention deleted
    /// every row, else genesis. Every row from here on is keyed.
    pub fn fresh(anchor: Option<(String, i64)>) -> Self {
        match anchor {
            Some((hash, first_seq)) => Self {
                seq: first_seq - 1,
                hash,
                keyed_from: first_seq,
            },
            None => Self::genesis(),
        }
    }
}

/// One row's place in its team's chain, as stored beside the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    /// Position in the team's chain.
    pub seq: i64,
    /// Hash of the previous row (or the anchor).
    pub prev_hash: String,
    /// MAC of this row.
    pub row_hash: String,
}

/// A row was offered for a team whose head the caller did not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no audit chain head was read for team {0}")]
pub struct MissingHead(pub i64);

/// Chains a batch of rows of several teams, in the order given, each onto its
/// own team's chain, with the audit key. Every store's append path uses it, so
/// there is one definition of how rows link.
///
/// Invariant: a row is only ever chained onto a head the store read inside the
/// write transaction that inserts it ([`Chainer::link`] refuses a team whose
/// head was not given), so two writers never fork a chain; the store writes
/// [`Chainer::heads`] back in that transaction.
#[derive(Clone, Debug)]
pub struct Chainer {
    key: AuditKey,
    heads: std::collections::BTreeMap<i64, ChainHead>,
}

impl Chainer {
    /// A chainer under `key` that knows no team's head yet.
    pub fn new(key: AuditKey) -> Self {
        Self {
            key,
            heads: std::collections::BTreeMap::new(),
        }
    }

    /// Distinct teams of a batch, ascending: the heads to read before chaining it.
    pub fn teams_of(teams: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut teams: Vec<i64> = teams.into_iter().collect();
        teams.sort_unstable();
        teams.dedup();
        teams
    }

    /// Gives the head of `team`, as read from the store.
    pub fn set_head(&mut self, team: i64, head: ChainHead) {
        self.heads.insert(team, head);
    }

    /// Chains the next row of `team`.
    pub fn link(
        &mut self,
        team: i64,
        phase: AuditPhase,
        record_json: &str,
    ) -> Result<ChainLink, MissingHead> {
        let head = self.heads.get_mut(&team).ok_or(MissingHead(team))?;
        let seq = head.seq + 1;
        let row_hash = chain_mac(&self.key, team, &head.hash, seq, phase, record_json);
        let prev_hash = std::mem::replace(&mut head.hash, row_hash.clone());
        head.seq = seq;
        Ok(ChainLink {
            seq,
            prev_hash,
            row_hash,
        })
    }

    /// Every head given, moved past the rows linked, sealed: what the store
    /// writes back in the transaction that inserts the rows.
    pub fn heads(&self) -> Vec<AuditHead> {
        self.heads
            .iter()
            .map(|(team, h)| {
                AuditHead::sealed(&self.key, *team, h.seq, h.hash.clone(), h.keyed_from)
            })
            .collect()
    }
}

/// A team's whole chain as a store reads it, for verification.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditChain {
    /// Hash the first row links to: genesis, or the retention anchor.
    pub anchor_hash: String,
    /// Sequence number of the first row.
    pub first_seq: i64,
    /// The retention anchor's seal ([`anchor_mac`]); `None` without an
    /// anchor (the chain starts at genesis). A stored anchor without a seal
    /// is read as `Some("")`, which fails.
    pub anchor_mac: Option<String>,
    /// Every row, ordered by seq.
    pub rows: Vec<AuditRow>,
    /// The stored head; `None` when the team never had one.
    pub head: Option<AuditHead>,
}

/// A point of a team's chain an operator saved (`tap audit anchor`):
/// `tap1:<team>:<rows>:<hex>`, the team slug, the last row's sequence number
/// and its MAC. A later chain must still hold that row with that MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainAnchor {
    /// Team slug.
    pub team: String,
    /// Sequence number of the anchored row (0: the empty chain).
    pub rows: i64,
    /// Its hash, lower-case hex.
    pub hash: String,
}

/// Why an anchor string does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an anchor looks like tap1:<team>:<rows>:<64 hex digits>")]
pub struct BadAnchor;

impl std::str::FromStr for ChainAnchor {
    type Err = BadAnchor;

    fn from_str(s: &str) -> Result<Self, BadAnchor> {
        let mut it = s.trim().splitn(4, ':');
        let (Some("tap1"), Some(team), Some(rows), Some(hash)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(BadAnchor);
        };
        let rows: i64 = rows.parse().map_err(|_| BadAnchor)?;
        if team.is_empty()
            || rows < 0
            || hash.len() != 64
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(BadAnchor);
        }
        Ok(Self {
            team: team.to_owned(),
            rows,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for ChainAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tap1:{}:{}:{}", self.team, self.rows, self.hash)
    }
}

/// Result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// True when every row links and verifies, up to the sealed head.
    pub ok: bool,
    /// Rows checked.
    pub rows: u64,
    /// Sequence number of the first bad (or first missing) row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_row: Option<i64>,
    /// First and last sequence number of rows found missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_rows: Option<(i64, i64)>,
    /// What is wrong, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verification {
    fn failed(rows: u64, first_bad_row: i64, error: String) -> Self {
        Self {
            ok: false,
            rows,
            first_bad_row: Some(first_bad_row),
            missing_rows: None,
            error: Some(error),
        }
    }

    fn missing(rows: u64, from: i64, to: i64, why: &str) -> Self {
        Self {
            ok: false,
            rows,
            first_bad_row: Some(from),
            missing_rows: Some((from, to)),
            error: Some(if from == to {
                format!("row {from} is missing{why}")
            } else {
                format!("rows {from}..{to} are missing{why}")
            }),
        }
    }
}

/// Checks a team's chain with the audit key: the head's seal, every row's
/// link and MAC (rows before the head's `keyed_from` with the unkeyed hash
/// they were written with), that the rows run without gap up to the sealed
/// head, and, with `anchor` (`(rows, hash)` of a [`ChainAnchor`] of this
/// team), that the chain still holds the anchored row.
///
/// Detects an edited row (also with every later hash recomputed without the
/// key), deleted rows (in the middle or at the end), rows added past the head
/// and an edited head. Does not detect the whole store rolled back to an
/// earlier state of its own: that is what anchors are for.
pub fn verify_keyed(
    key: &AuditKey,
    team_internal_id: i64,
    chain: &AuditChain,
    anchor: Option<(i64, &str)>,
) -> Verification {
    // A head that is missing or fails its seal fails the chain; the rows are
    // still walked, so that the message names the first bad row when there is one.
    let (head, problem) = match &chain.head {
        Some(h) => (
            ChainHead {
                seq: h.seq,
                hash: h.last_hash.clone(),
                keyed_from: h.keyed_from,
            },
            h.check(key).err().map(|e| {
                (
                    h.seq.max(chain.first_seq),
                    format!("the audit chain head {e}: it was edited without the audit key"),
                )
            }),
        ),
        None => match (chain.rows.first(), chain.rows.last()) {
            (Some(first), Some(last)) => (
                ChainHead {
                    seq: last.seq,
                    hash: last.row_hash.clone(),
                    keyed_from: chain.first_seq,
                },
                Some((
                    first.seq,
                    "the audit chain head is missing: it was deleted".to_owned(),
                )),
            ),
            _ => (
                ChainHead::fresh(Some((chain.anchor_hash.clone(), chain.first_seq))),
                None,
            ),
        },
    };
    let problem = problem.or_else(|| anchor_problem(key, team_internal_id, chain));
    let v = verify_rows(key, team_internal_id, chain, &head, anchor);
    match problem {
        None => v,
        Some((at, why)) if v.ok => Verification::failed(v.rows, at, why),
        Some((_, why)) => Verification {
            error: v.error.map(|e| format!("{e}; {why}")),
            ..v
        },
    }
}

/// Why the chain's retention anchor cannot be trusted: an anchor (or a
/// chain not starting at genesis) whose seal does not verify.
fn anchor_problem(key: &AuditKey, team: i64, chain: &AuditChain) -> Option<(i64, String)> {
    let genesis = chain.first_seq == 1 && chain.anchor_hash == GENESIS_HASH;
    match &chain.anchor_mac {
        None if genesis => None,
        Some(mac)
            if key.verify_hex(
                ANCHOR_LABEL,
                &[
                    &team.to_be_bytes(),
                    &chain.first_seq.to_be_bytes(),
                    chain.anchor_hash.as_bytes(),
                ],
                mac,
            ) =>
        {
            None
        }
        _ => Some((
            chain.first_seq,
            "the retention anchor does not match its seal: it was edited without the audit key"
                .to_owned(),
        )),
    }
}

/// [`verify_keyed`] of the rows against `head`.
fn verify_rows(
    key: &AuditKey,
    team_internal_id: i64,
    chain: &AuditChain,
    head: &ChainHead,
    anchor: Option<(i64, &str)>,
) -> Verification {
    let anchor_bad = |rows: u64, at: i64| {
        Verification::failed(
            rows,
            at,
            format!("the chain does not extend the anchor: row {at} is not the anchored row"),
        )
    };
    if let Some((a_rows, a_hash)) = anchor {
        if a_rows > head.seq {
            return Verification::failed(
                0,
                head.seq + 1,
                format!(
                    "the chain does not extend the anchor: it ends at row {}, the anchor names row {a_rows}",
                    head.seq
                ),
            );
        }
        if a_rows < chain.first_seq - 1 {
            return Verification::failed(
                0,
                a_rows,
                format!("the anchored row {a_rows} was deleted by retention; it cannot be checked"),
            );
        }
        if a_rows == chain.first_seq - 1 && !ct_eq(chain.anchor_hash.as_bytes(), a_hash.as_bytes())
        {
            return anchor_bad(0, a_rows);
        }
    }
    let mut prev = chain.anchor_hash.clone();
    let mut expected = chain.first_seq;
    let mut n = 0u64;
    for row in &chain.rows {
        if row.seq > head.seq {
            return Verification::failed(
                n,
                row.seq,
                format!(
                    "row {} is past the sealed chain head (row {}): it was added without the audit key",
                    row.seq, head.seq
                ),
            );
        }
        if row.seq > expected {
            return Verification::missing(n, expected, row.seq - 1, "");
        }
        if row.seq < expected {
            return Verification::failed(n, row.seq, format!("row {} is out of order", row.seq));
        }
        n += 1;
        let hash_ok = if row.seq < head.keyed_from {
            chain_hash(&row.prev_hash, row.seq, row.phase, &row.record_json) == row.row_hash
        } else {
            let mac = chain_mac(
                key,
                team_internal_id,
                &row.prev_hash,
                row.seq,
                row.phase,
                &row.record_json,
            );
            ct_eq(mac.as_bytes(), row.row_hash.as_bytes())
        };
        if !(row.prev_hash == prev && hash_ok && row.record().is_ok()) {
            return Verification::failed(
                n,
                row.seq,
                format!(
                    "row {} does not verify: it was edited, or its hash recomputed without the audit key",
                    row.seq
                ),
            );
        }
        if let Some((a_rows, a_hash)) = anchor
            && a_rows == row.seq
            && !ct_eq(row.row_hash.as_bytes(), a_hash.as_bytes())
        {
            return anchor_bad(n, row.seq);
        }
        prev.clone_from(&row.row_hash);
        expected += 1;
    }
    if expected <= head.seq {
        return Verification::missing(
            n,
            expected,
            head.seq,
            &format!(
                " (the sealed chain head says the chain ends at row {})",
                head.seq
            ),
        );
    }
    if !ct_eq(prev.as_bytes(), head.hash.as_bytes()) {
        return Verification::failed(
            n,
            head.seq,
            format!("row {} does not match the sealed chain head", head.seq),
        );
    }
    Verification {
        ok: true,
        rows: n,
        first_bad_row: None,
        missing_rows: None,
        error: None,
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn cut_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Merges a request's rows into the record an operator sees: a `finish` row's
/// outcome wins over the `start` row whatever their order in the chain (a row
/// written by another process, such as a denial from the CLI, can be chained
/// before the proxy's spooled `start` row is folded), the request's headers and
/// body come from the start row when the finish row leaves them there, and a
/// start without finish stays as written.
pub fn merge_rows(rows: &[AuditRow]) -> Vec<AuditRecord> {
    // Per request: its record so far and whether a finish row set it.
    let mut out: Vec<(AuditRecord, bool)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for row in rows {
        let Ok(mut rec) = row.record() else { continue };
        let finish = row.phase == AuditPhase::Finish;
        let Some(&i) = index.get(&rec.request_id) else {
            index.insert(rec.request_id.clone(), out.len());
            out.push((rec, finish));
            continue;
        };
        let (earlier, earlier_finish) = &mut out[i];
        if finish {
            if rec.request_in_start && !*earlier_finish {
                rec.request_headers = std::mem::take(&mut earlier.request_headers);
                rec.request_body = earlier.request_body.take();
                rec.request_in_start = false;
            }
            *earlier = rec;
            *earlier_finish = true;
        } else if *earlier_finish && earlier.request_in_start {
            // The start row arrived after the finish row that points to it.
            earlier.request_headers = rec.request_headers;
            earlier.request_body = rec.request_body;
            earlier.request_in_start = false;
        }
    }
    out.into_iter()
        .map(|(mut rec, _)| {
            // A finish row whose start row is gone (retention): headers stay unknown.
            rec.request_in_start = false;
            rec
        })
        .collect()
}

#[cfg(test)]
mod tests;
