//! Stage: audit. The record is built up along the way and written on every exit path.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use tap_core::audit::{AuditPhase, AuditRecord, MAX_AUDIT_BODY_BYTES, cut_on_char_boundary};
use tap_core::scrub::Scrubber;
use tap_core::store::AuditAppend;

use crate::clock::elapsed_ms;
use crate::journal::{Journal, JournalError};

/// How `X-TAP-Key` is stored.
pub const REDACTED_KEY: &str = "[REDACTED:tap_key]";

/// RFC 3339 UTC now, millisecond precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

/// A request's audit record in the making.
#[derive(Debug)]
pub struct AuditDraft {
    /// The record so far.
    pub record: AuditRecord,
    /// Team whose chain gets the rows.
    pub team_internal_id: i64,
    /// Scrubs every secret of that team from stored request data.
    pub team_scrubber: Arc<Scrubber>,
    /// Secrets of other teams the request came near: the agent's home team
    /// once the record moved to a linked team, and the home teams of other
    /// presented keys. A row in one team's chain must not hold them either.
    other_scrubbers: Vec<Arc<Scrubber>>,
    started: Instant,
    journal: Journal,
    start_written: bool,
}

impl AuditDraft {
    /// Starts a record for an authenticated request.
    pub fn new(
        journal: Journal,
        request_id: &str,
        team_internal_id: i64,
        team_slug: &str,
        agent_id: &str,
        team_scrubber: Arc<Scrubber>,
        started: Instant,
    ) -> Self {
        Self {
            record: AuditRecord {
                request_id: request_id.to_owned(),
                team_id: team_slug.to_owned(),
                agent_id: agent_id.to_owned(),
                decision: "refused".into(),
                timestamp: now_rfc3339(),
                ..Default::default()
            },
            team_internal_id,
            team_scrubber,
            other_scrubbers: Vec::new(),
            started,
            journal,
            start_written: false,
        }
    }

    /// `text` scrubbed of every secret of the record's team (and of the
    /// other teams it came near: [`AuditDraft::set_team`], [`AuditDraft::also_scrub`]).
    pub fn scrub_text(&self, text: &str) -> String {
        let (mut out, _) = self.team_scrubber.scrub_str(text);
        for other in &self.other_scrubbers {
            out = other.scrub_str(&out).0;
        }
        out
    }

    /// `bytes` scrubbed like [`AuditDraft::scrub_text`] (error bodies).
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let (mut out, _) = self.team_scrubber.scrub(bytes);
        for other in &self.other_scrubbers {
            out = other.scrub(&out).0;
        }
        out
    }

    /// Records the request's headers (key redacted, secrets scrubbed from names and values).
    pub fn set_headers(&mut self, headers: &HeaderMap) {
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let v = if name.as_str() == "x-tap-key" {
                REDACTED_KEY.to_owned()
            } else {
                let raw = String::from_utf8_lossy(value.as_bytes());
                self.scrub_text(&raw)
            };
            out.push((self.scrub_text(name.as_str()), v));
        }
        self.record.request_headers = out;
    }

    /// Records the method as the agent named it, scrubbed (it is agent input too).
    pub fn set_method(&mut self, method: &str) {
        self.record.method = self.scrub_text(method);
    }

    /// Records the credential the agent named, scrubbed (it is agent input too).
    pub fn set_credential(&mut self, name: &str) {
        self.record.credential_names = vec![self.scrub_text(name)];
    }

    /// Records the request body: scrubbed, then cut to 16 KiB on a character boundary.
    pub fn set_body(&mut self, body: &[u8]) {
        if body.is_empty() {
            self.record.request_body = None;
            return;
        }
        let text = String::from_utf8_lossy(body);
        let scrubbed = self.scrub_text(&text);
        self.record.request_body =
            Some(cut_on_char_boundary(&scrubbed, MAX_AUDIT_BODY_BYTES).to_owned());
    }

    /// Records the display target, scrubbed.
    pub fn set_target(&mut self, target: &str) {
        self.record.target_url = self.scrub_text(target);
    }

    /// Re-homes the record to another team (multi-account). The secrets of
    /// the team it leaves stay scrubbed from it.
    pub fn set_team(&mut self, team_internal_id: i64, slug: &str, scrubber: Arc<Scrubber>) {
        self.team_internal_id = team_internal_id;
        self.record.team_id = slug.to_owned();
        let home = std::mem::replace(&mut self.team_scrubber, Arc::clone(&scrubber));
        self.other_scrubbers.push(home);
        // What was recorded so far was scrubbed of the home team's secrets only:
        // scrub it again with the linked team's, whose chain gets the row.
        self.rescrub(&scrubber);
    }

    /// Also scrubs `scrubber`'s secrets from the record, what was recorded so
    /// far included (another presented key's home team, multi-account).
    pub fn also_scrub(&mut self, scrubber: Arc<Scrubber>) {
        if Arc::ptr_eq(&scrubber, &self.team_scrubber)
            || self
                .other_scrubbers
                .iter()
                .any(|o| Arc::ptr_eq(o, &scrubber))
        {
            return;
        }
        self.rescrub(&scrubber);
        self.other_scrubbers.push(scrubber);
    }

    fn rescrub(&mut self, scrubber: &Scrubber) {
        let s = |v: &str| scrubber.scrub_str(v).0;
        let r = &mut self.record;
        r.method = s(&r.method);
        r.target_url = s(&r.target_url);
        r.credential_names = r.credential_names.iter().map(|c| s(c)).collect();
        r.request_headers = r
            .request_headers
            .iter()
            .map(|(n, v)| (s(n), s(v)))
            .collect();
        r.request_body = r
            .request_body
            .as_deref()
            .map(|b| cut_on_char_boundary(&s(b), MAX_AUDIT_BODY_BYTES).to_owned());
    }

    /// Writes the `start` row and waits for its commit (fail closed: the caller must not forward on error).
    pub async fn commit_start(&mut self) -> Result<(), JournalError> {
        if self.record.decision == "refused" {
            self.record.decision = "proceed".into();
        }
        self.journal
            .commit(AuditAppend {
                team_internal_id: self.team_internal_id,
                phase: AuditPhase::Start,
                record: self.record.clone(),
            })
            .await?;
        self.start_written = true;
        // The start row holds the request as sent; the finish row adds the outcome only.
        self.record.request_headers = Vec::new();
        self.record.request_body = None;
        self.record.request_in_start = true;
        Ok(())
    }

    fn finish_row(mut self, error_code: Option<&str>) -> (Journal, AuditAppend) {
        if let Some(code) = error_code {
            self.record.error_code = Some(code.to_owned());
            if !self.start_written && self.record.decision != "approval" {
                self.record.decision = "refused".into();
            }
        }
        self.record.latency_total_ms = Some(elapsed_ms(self.started));
        let row = AuditAppend {
            team_internal_id: self.team_internal_id,
            phase: AuditPhase::Finish,
            record: self.record,
        };
        (self.journal, row)
    }

    /// Queues the `finish` row (the `start` row is already durable).
    pub fn finish(self, error_code: Option<&str>) {
        let (journal, row) = self.finish_row(error_code);
        journal.enqueue(row);
    }

    /// Writes the `finish` row of a refusal and waits for the commit.
    pub async fn finish_committed(self, error_code: Option<&str>) {
        let (journal, row) = self.finish_row(error_code);
        if let Err(e) = journal.commit(row).await {
            tracing::error!(error = %e, "audit row of a refused request could not be written");
        }
    }

    /// Ends the draft without a finish row: the approval executor writes it.
    pub fn hand_over(self) {}

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> f64 {
        elapsed_ms(self.started)
    }
}
