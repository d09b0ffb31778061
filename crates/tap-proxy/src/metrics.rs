//! `GET /metrics`: Prometheus text, recorded in one place — every request's
//! `finish` audit row as the journal takes it (the audit stage runs on every
//! exit path), plus gauges read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tap_core::audit::AuditRecord;

/// Labels of `tap_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    /// `ok`, `refused`, `error` or `approval`.
    outcome: String,
    /// The error code, or `none`.
    code: String,
}

/// Labels of the stage histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Stage {
    stage: &'static str,
}

/// The proxy's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Outcome, Counter>,
    duration: Histogram,
    stages: Family<Stage, Histogram>,
    scrubbed: Counter,
    leak_blocks: Counter,
    upstream_errors: Counter,
    audit_commit: Histogram,
    pending: Gauge,
    audit_queue: Gauge<u64, AtomicU64>,
    rate: RequestRate,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Seconds buckets from 100 µs to about 100 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tap");
        let requests = Family::<Outcome, Counter>::default();
        registry.register(
            "requests",
            "Agent requests by outcome and error code",
            requests.clone(),
        );
        let duration = latency();
        registry.register(
            "request_duration_seconds",
            "Time from arrival to the answer, every request",
            duration.clone(),
        );
        let stages = Family::<Stage, Histogram>::new_with_constructor(latency);
        registry.register(
            "stage_duration_seconds",
            "Time spent in a stage: approval (waiting for a human), upstream (the call), proxy (everything else)",
            stages.clone(),
        );
        let scrubbed = Counter::default();
        registry.register(
            "scrubbed_responses",
            "Answers in which a secret was found and redacted",
            scrubbed.clone(),
        );
        let leak_blocks = Counter::default();
        registry.register(
            "leak_blocks",
            "Requests refused because they carried a secret (secret_in_request)",
            leak_blocks.clone(),
        );
        let upstream_errors = Counter::default();
        registry.register(
            "upstream_errors",
            "Upstream calls that failed (unreachable, timed out, invalid or unscannable answers)",
            upstream_errors.clone(),
        );
        let audit_commit = latency();
        registry.register(
            "audit_commit_duration_seconds",
            "Time until an audit row is durable",
            audit_commit.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "pending_approvals",
            "Approvals waiting for a human",
            pending.clone(),
        );
        let audit_queue = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "audit_queue_rows",
            "Audit rows queued in memory, not yet written",
            audit_queue.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            stages,
            scrubbed,
            leak_blocks,
            upstream_errors,
            audit_commit,
            pending,
            audit_queue,
            rate: RequestRate::default(),
        }
    }
}

/// The outcomes of `tap_requests_total`, in the order of [`StatusCounters`] arrays.
pub const OUTCOMES: [&str; 4] = ["ok", "refused", "error", "approval"];

/// Minutes of per-minute request counts kept in memory (the status page's window).
pub const RATE_MINUTES: usize = 60;

fn outcome_index(outcome: &str) -> usize {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(2)
}

/// One minute's requests by outcome (indexed like [`OUTCOMES`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// Requests finished in that minute, by outcome.
    pub counts: [u64; 4],
}

/// What the status page shows: the `/metrics` counters and a per-minute
/// window of requests by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCounters {
    /// Requests by outcome since start (the sums of `tap_requests_total`).
    pub totals: [u64; 4],
    /// The last [`RATE_MINUTES`] minutes, oldest first, ending with the current one.
    pub per_minute: Vec<MinuteCounts>,
    /// `tap_scrubbed_responses_total`.
    pub scrubbed: u64,
    /// `tap_leak_blocks_total`.
    pub leak_blocks: u64,
    /// `tap_upstream_errors_total`.
    pub upstream_errors: u64,
}

/// Requests per minute by outcome: a ring of [`RATE_MINUTES`] buckets keyed
/// by the minute a request finished (its audit timestamp plus its total
/// latency), fed where `tap_requests_total` is incremented. Bounded: a slot
/// is reused for a newer minute; a request older than its slot is dropped.
#[derive(Debug)]
struct RequestRate {
    slots: Mutex<[MinuteCounts; RATE_MINUTES]>,
    totals: [AtomicU64; 4],
}

impl Default for RequestRate {
    fn default() -> Self {
        Self {
            slots: Mutex::new(
                [MinuteCounts {
                    minute: i64::MIN,
                    counts: [0; 4],
                }; RATE_MINUTES],
            ),
            totals: Default::default(),
        }
    }
}

/// The minute (since the epoch) a request finished, from its RFC 3339
/// arrival time and total latency.
fn finish_minute(r: &AuditRecord) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(&r.timestamp, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    let took = r.latency_total_ms.unwrap_or(0.0).max(0.0) as i64;
    Some(ms.saturating_add(took).div_euclid(60_000))
}

impl RequestRate {
    fn record(&self, r: &AuditRecord, outcome: usize) {
        self.totals[outcome].fetch_add(1, Ordering::Relaxed);
        let Some(minute) = finish_minute(r) else {
            return;
        };
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[minute.rem_euclid(RATE_MINUTES as i64) as usize];
        if slot.minute < minute {
            *slot = MinuteCounts {
                minute,
                counts: [0; 4],
            };
        }
        if slot.minute == minute {
            slot.counts[outcome] += 1;
        }
    }

    fn totals(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.totals[i].load(Ordering::Relaxed))
    }

    /// The [`RATE_MINUTES`] minutes ending with `now`, oldest first.
    fn window(&self, now: i64) -> Vec<MinuteCounts> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        (0..RATE_MINUTES as i64)
            .rev()
            .map(|back| {
                let minute = now - back;
                let slot = slots[minute.rem_euclid(RATE_MINUTES as i64) as usize];
                MinuteCounts {
                    minute,
                    counts: if slot.minute == minute {
                        slot.counts
                    } else {
                        [0; 4]
                    },
                }
            })
            .collect()
    }
}

/// Error codes that mean the upstream failed, not the agent.
fn is_upstream_error(code: &str) -> bool {
    code.starts_with("upstream_") || code == "unscannable_response" || code == "bad_gateway"
}

impl Metrics {
    /// Records a request from its `finish` audit row.
    pub fn observe_finish(&self, r: &AuditRecord) {
        let code = r.error_code.as_deref().unwrap_or("none");
        let outcome = match (r.error_code.is_some(), r.decision.as_str()) {
            (false, _) => "ok",
            (true, "refused") => "refused",
            (true, "approval") => "approval",
            (true, _) => "error",
        };
        self.rate.record(r, outcome_index(outcome));
        self.requests
            .get_or_create(&Outcome {
                outcome: outcome.into(),
                code: code.into(),
            })
            .inc();
        let total = r.latency_total_ms.unwrap_or(0.0);
        let approval = r.latency_approval_ms.unwrap_or(0.0);
        let upstream = r.latency_upstream_ms.unwrap_or(0.0);
        self.duration.observe(total / 1000.0);
        if let Some(a) = r.latency_approval_ms {
            self.stages
                .get_or_create(&Stage { stage: "approval" })
                .observe(a / 1000.0);
        }
        if let Some(u) = r.latency_upstream_ms {
            self.stages
                .get_or_create(&Stage { stage: "upstream" })
                .observe(u / 1000.0);
        }
        self.stages
            .get_or_create(&Stage { stage: "proxy" })
            .observe((total - approval - upstream).max(0.0) / 1000.0);
        if r.response_scrubbed {
            self.scrubbed.inc();
        }
        if code == "secret_in_request" {
            self.leak_blocks.inc();
        }
        if is_upstream_error(code) {
            self.upstream_errors.inc();
        }
    }

    /// The counters the dashboard's status page draws, read from the same
    /// counters `/metrics` renders; the per-minute window ends at `now_ms`.
    pub fn status(&self, now_ms: i64) -> StatusCounters {
        StatusCounters {
            totals: self.rate.totals(),
            per_minute: self.rate.window(now_ms.div_euclid(60_000)),
            scrubbed: self.scrubbed.get(),
            leak_blocks: self.leak_blocks.get(),
            upstream_errors: self.upstream_errors.get(),
        }
    }

    /// Records how long an audit commit took.
    pub fn observe_audit_commit(&self, secs: f64) {
        self.audit_commit.observe(secs);
    }

    /// The Prometheus text exposition, with the scrape-time gauges set.
    pub fn render(&self, pending_approvals: i64, audit_queue: u64) -> String {
        self.pending.set(pending_approvals);
        self.audit_queue.set(audit_queue);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: &str, total_ms: f64, error: Option<&str>) -> AuditRecord {
        AuditRecord {
            timestamp: ts.into(),
            latency_total_ms: Some(total_ms),
            error_code: error.map(Into::into),
            decision: "proceed".into(),
            ..Default::default()
        }
    }

    #[test]
    fn requests_land_in_the_minute_they_finished_and_old_minutes_fall_out() {
        let m = Metrics::default();
        // 2026-12-06T00:10:30Z, in minutes since the epoch.
        let base = 1_796_515_830_000i64.div_euclid(60_000);
        m.observe_finish(&rec("2026-12-06T00:10:30.000Z", 5.0, None));
        m.observe_finish(&rec("2026-12-06T00:10:59.990Z", 20.0, None));
        m.observe_finish(&rec(
            "2026-12-06T00:10:31.000Z",
            1.0,
            Some("secret_in_request"),
        ));
        let s = m.status((base + 1) * 60_000 + 5);
        assert_eq!(s.per_minute.len(), RATE_MINUTES);
        let last = s.per_minute[RATE_MINUTES - 1];
        let prev = s.per_minute[RATE_MINUTES - 2];
        assert_eq!(last.minute, base + 1);
        assert_eq!(
            last.counts,
            [1, 0, 0, 0],
            "finished after the minute turned"
        );
        assert_eq!(prev.counts, [1, 0, 1, 0]);
        assert_eq!(s.totals, [2, 0, 1, 0]);
        assert_eq!(s.leak_blocks, 1);
        // An hour later the window no longer holds them; totals stay.
        let later = m.status((base + 1 + RATE_MINUTES as i64) * 60_000);
        assert!(later.per_minute.iter().all(|b| b.counts == [0; 4]));
        assert_eq!(later.totals, [2, 0, 1, 0]);
        // A newer minute reuses the slot; a late request of the old one is dropped.
        m.observe_finish(&rec("2026-12-06T01:10:30.000Z", 1.0, None));
        m.observe_finish(&rec("2026-12-06T00:10:30.000Z", 1.0, None));
        let now = m.status((base + RATE_MINUTES as i64) * 60_000);
        assert_eq!(now.per_minute[RATE_MINUTES - 1].counts, [1, 0, 0, 0]);
        assert_eq!(now.totals, [4, 0, 1, 0]);
    }

    #[test]
    fn an_unreadable_timestamp_still_counts_in_the_totals() {
        let m = Metrics::default();
        m.observe_finish(&rec("not a time", 1.0, None));
        let s = m.status(0);
        assert_eq!(s.totals, [1, 0, 0, 0]);
        assert!(s.per_minute.iter().all(|b| b.counts == [0; 4]));
    }
}
