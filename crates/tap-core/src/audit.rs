//! Audit records and the per-team hash chain (SPEC §9).

use serde::{Deserialize, Serialize};

use crate::crypto::sha256_hex_parts;

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

/// The chained hash of a row.
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

/// Where a team's chain continues: the sequence number and hash of its last
/// row. Invariant: the next row gets `seq + 1` and `prev_hash == hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last row; 0 before the first.
    pub seq: i64,
    /// Hash of the last row, or the genesis or retention anchor hash.
    pub hash: String,
}

impl ChainHead {
    /// The head of a chain that never had a row.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }

    /// The head as a store finds it: its last row `(seq, row_hash)` when it has
    /// one; else the retention anchor `(anchor_hash, first_seq)` (retention
    /// deleted every row: the chain goes on at `first_seq` from the anchor);
    /// else genesis.
    pub fn resume(last_row: Option<(i64, String)>, anchor: Option<(String, i64)>) -> Self {
        match (last_row, anchor) {
            (Some((seq, hash)), _) => Self { seq, hash },
            (None, Some((hash, first_seq))) => Self {
                seq: first_seq - 1,
                hash,
            },
            (None, None) => Self::genesis(),
        }
    }

    /// Chains one row onto this head and moves the head to it.
    pub fn link(&mut self, phase: AuditPhase, record_json: &str) -> ChainLink {
        let seq = self.seq + 1;
        let row_hash = chain_hash(&self.hash, seq, phase, record_json);
        let prev_hash = std::mem::replace(&mut self.hash, row_hash.clone());
        self.seq = seq;
        ChainLink {
            seq,
            prev_hash,
            row_hash,
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
    /// Hash of this row.
    pub row_hash: String,
}

/// A row was offered for a team whose head the caller did not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no audit chain head was read for team {0}")]
pub struct MissingHead(pub i64);

/// Chains a batch of rows of several teams, in the order given, each onto its
/// own team's chain. Every store's append path uses it, so there is one
/// definition of how rows link.
///
/// Invariant: a row is only ever chained onto a head the store read inside the
/// write transaction that inserts it ([`Chainer::link`] refuses a team whose
/// head was not given), so two writers never fork a chain.
#[derive(Clone, Debug, Default)]
pub struct Chainer {
    heads: std::collections::HashMap<i64, ChainHead>,
}

impl Chainer {
    /// A chainer that knows no team's head yet.
    pub fn new() -> Self {
        Self::default()
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
        self.heads
            .get_mut(&team)
            .map(|head| head.link(phase, record_json))
            .ok_or(MissingHead(team))
    }
}

/// Result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// True when every row links and hashes correctly.
    pub ok: bool,
    /// Rows checked.
    pub rows: u64,
    /// Sequence number of the first bad row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_row: Option<i64>,
}

/// Checks rows (ordered by seq) starting from `anchor` (the genesis hash or a retention anchor).
pub fn verify_chain<'a>(
    anchor: &str,
    first_seq: i64,
    rows: impl IntoIterator<Item = &'a AuditRow>,
) -> Verification {
    let mut prev = anchor.to_owned();
    let mut n = 0u64;
    for (expected_seq, row) in (first_seq..).zip(rows) {
        n += 1;
        let ok = row.seq == expected_seq
            && row.prev_hash == prev
            && chain_hash(&row.prev_hash, row.seq, row.phase, &row.record_json) == row.row_hash
            && row.record().is_ok();
        if !ok {
            return Verification {
                ok: false,
                rows: n,
                first_bad_row: Some(row.seq),
            };
        }
        prev.clone_from(&row.row_hash);
    }
    Verification {
        ok: true,
        rows: n,
        first_bad_row: None,
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
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let rec = AuditRecord {
                    request_id: format!("r{seq}"),
                    ..Default::default()
                };
                let json = serde_json::to_string(&rec).unwrap();
                let hash = chain_hash(&prev, seq, AuditPhase::Finish, &json);
                let row = AuditRow {
                    seq,
                    phase: AuditPhase::Finish,
                    record_json: json,
                    prev_hash: prev.clone(),
                    row_hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        assert_eq!(
            verify_chain(GENESIS_HASH, 1, &rows),
            Verification {
                ok: true,
                rows: 5,
                first_bad_row: None
            }
        );
    }

    #[test]
    fn edited_or_deleted_row_is_found() {
        let mut rows = chain(5);
        rows[2].record_json = rows[2].record_json.replace("r3", "r9");
        assert_eq!(verify_chain(GENESIS_HASH, 1, &rows).first_bad_row, Some(3));
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify_chain(GENESIS_HASH, 1, &rows).first_bad_row, Some(3));
    }

    fn row(seq: i64, phase: AuditPhase, rec: &AuditRecord) -> AuditRow {
        AuditRow {
            seq,
            phase,
            record_json: serde_json::to_string(rec).unwrap(),
            prev_hash: String::new(),
            row_hash: String::new(),
        }
    }

    #[test]
    fn merge_takes_headers_and_body_from_the_start_row_when_the_finish_leaves_them_there() {
        let start = AuditRecord {
            request_id: "a".into(),
            decision: "proceed".into(),
            request_headers: vec![("x-note".into(), "hi".into())],
            request_body: Some("{}".into()),
            ..Default::default()
        };
        let finish = AuditRecord {
            upstream_status: Some(200),
            request_headers: Vec::new(),
            request_body: None,
            request_in_start: true,
            ..start.clone()
        };
        let json = serde_json::to_string(&finish).unwrap();
        assert!(json.contains("\"request_in_start\":true"), "{json}");
        assert!(!json.contains("x-note"), "{json}");
        // A refusal's lone finish row carries everything itself.
        let lone = AuditRecord {
            request_id: "b".into(),
            request_headers: vec![("x-other".into(), "1".into())],
            ..Default::default()
        };
        let merged = merge_rows(&[
            row(1, AuditPhase::Start, &start),
            row(2, AuditPhase::Finish, &lone),
            row(3, AuditPhase::Finish, &finish),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].upstream_status, Some(200));
        assert_eq!(merged[0].request_headers, start.request_headers);
        assert_eq!(merged[0].request_body.as_deref(), Some("{}"));
        assert!(!merged[0].request_in_start);
        assert_eq!(merged[1].request_headers, lone.request_headers);
        let api = serde_json::to_string(&merged[0]).unwrap();
        assert!(!api.contains("request_in_start"), "{api}");
        // Chained in the other order (a denial written by the CLI before the
        // proxy folded its spooled start row): the outcome still wins.
        let merged = merge_rows(&[
            row(1, AuditPhase::Finish, &finish),
            row(2, AuditPhase::Start, &start),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].upstream_status, Some(200));
        assert_eq!(merged[0].request_headers, start.request_headers);
        assert_eq!(merged[0].request_body.as_deref(), Some("{}"));
        let full_finish = AuditRecord {
            request_in_start: false,
            request_headers: vec![("x-own".into(), "v".into())],
            ..finish
        };
        let merged = merge_rows(&[
            row(1, AuditPhase::Finish, &full_finish),
            row(2, AuditPhase::Start, &start),
        ]);
        assert_eq!(merged[0].request_headers, full_finish.request_headers);
        assert_eq!(merged[0].upstream_status, Some(200));
    }

    fn rows_of(chainer: &mut Chainer, team: i64, ids: &[&str]) -> Vec<AuditRow> {
        ids.iter()
            .map(|id| {
                let json = serde_json::to_string(&AuditRecord {
                    request_id: (*id).to_owned(),
                    ..Default::default()
                })
                .unwrap();
                let link = chainer.link(team, AuditPhase::Start, &json).unwrap();
                AuditRow {
                    seq: link.seq,
                    phase: AuditPhase::Start,
                    record_json: json,
                    prev_hash: link.prev_hash,
                    row_hash: link.row_hash,
                }
            })
            .collect()
    }

    #[test]
    fn chainer_keeps_one_verifiable_chain_per_team() {
        let mut chainer = Chainer::new();
        chainer.set_head(1, ChainHead::genesis());
        chainer.set_head(2, ChainHead::genesis());
        let mut one = rows_of(&mut chainer, 1, &["a", "b"]);
        let two = rows_of(&mut chainer, 2, &["x"]);
        one.extend(rows_of(&mut chainer, 1, &["c"]));
        assert_eq!(one.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(two[0].seq, 1);
        assert!(verify_chain(GENESIS_HASH, 1, &one).ok);
        assert!(verify_chain(GENESIS_HASH, 1, &two).ok);
    }

    #[test]
    fn chainer_refuses_a_team_whose_head_was_not_read() {
        let mut chainer = Chainer::new();
        assert_eq!(
            chainer.link(7, AuditPhase::Start, "{}"),
            Err(MissingHead(7))
        );
    }

    #[test]
    fn a_chain_resumes_after_its_last_row_else_after_the_anchor() {
        let mut chainer = Chainer::new();
        chainer.set_head(1, ChainHead::genesis());
        let first = rows_of(&mut chainer, 1, &["a", "b"]);
        let last = first.last().unwrap();
        let anchor = ("f".repeat(64), 40);
        let mut resumed = Chainer::new();
        resumed.set_head(
            1,
            ChainHead::resume(
                Some((last.seq, last.row_hash.clone())),
                Some(anchor.clone()),
            ),
        );
        let mut all = first.clone();
        all.extend(rows_of(&mut resumed, 1, &["c"]));
        assert!(verify_chain(GENESIS_HASH, 1, &all).ok);
        // Retention deleted every row: the chain goes on from the anchor.
        let mut anchored = Chainer::new();
        anchored.set_head(1, ChainHead::resume(None, Some(anchor.clone())));
        let rows = rows_of(&mut anchored, 1, &["d"]);
        assert_eq!(rows[0].seq, 40);
        assert!(verify_chain(&anchor.0, 40, &rows).ok);
        assert_eq!(ChainHead::resume(None, None), ChainHead::genesis());
    }

    #[test]
    fn teams_of_a_batch_are_distinct() {
        assert_eq!(Chainer::teams_of([3, 1, 3, 2, 1]), [1, 2, 3]);
    }

    #[test]
    fn chain_hash_is_the_hash_of_the_joined_fields() {
        assert_eq!(
            chain_hash("p", 7, AuditPhase::Start, "{}"),
            crate::crypto::sha256_hex(b"p|7|start|{}")
        );
    }

    #[test]
    fn cuts_multibyte_text_on_a_boundary() {
        let s = "aé"; // é is two bytes
        assert_eq!(cut_on_char_boundary(s, 2), "a");
        assert_eq!(cut_on_char_boundary(s, 3), "aé");
    }
}
