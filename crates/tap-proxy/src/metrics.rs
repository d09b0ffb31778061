//! `GET /metrics`: Prometheus text, recorded in one place — every request's
//! `finish` audit row as the journal takes it (the audit stage runs on every
//! exit path), plus gauges read at scrape time.

use std::sync::atomic::AtomicU64;

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
        }
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
