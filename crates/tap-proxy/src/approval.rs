//! Human approval (SPEC §3.3, §11): approvals are stored state, decided through
//! one gate, forwarded by an executor exactly once.
//!
//! - The broker captures the request at decision time (method, target, the
//!   headers to forward, the body), binds it with a keyed hash and stores it.
//! - Every channel (web page, `/team/approvals`, the terminal, Telegram later)
//!   decides through [`decide`], which checks eligibility, `allowed_approvers`,
//!   distinct approvers, routing and passkey requirements.
//! - The executor (one task per proxy) expires pending approvals, claims
//!   approved ones atomically, re-checks the agent, credential and destination,
//!   forwards byte for byte what was approved, and stores the scrubbed result.
//!   A restart loses nothing: everything lives in the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tap_core::approval::gate::{self, Decided, Decision, GateError};
use tap_core::approval::{ApprovalChannel, ApprovalSummary};
use tap_core::audit::{AuditPhase, AuditRecord};
use tap_core::model::{Approval, ApprovalStatus};
use tap_core::policy::Policy;
use tap_core::store::{AuditAppend, Store, StoreError};
use tap_core::target::TargetUrl;
use tap_core::time::Clock;
use tokio::sync::Notify;

use crate::error::{ProxyError, Reason};
use crate::proxy::forward::{
    Coding, decoded_stream, response_coding, scrub_headers, send_error, unscannable,
    upstream_request,
};
use crate::proxy::resolve::destination_and_injection;
use crate::state::AppState;

/// Most approvals one agent may have pending at once (429 beyond).
pub const MAX_PENDING_PER_AGENT: u32 = 20;
/// Largest upstream answer stored for a poll.
pub const MAX_STORED_RESPONSE: usize = 10 * 1024 * 1024;
/// How often the executor looks for decisions made elsewhere (the CLI, another replica).
pub const EXECUTOR_INTERVAL: Duration = Duration::from_millis(200);

/// The request as captured when approval was asked; forwarded byte for byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapturedRequest {
    /// Upper-cased method.
    pub method: String,
    /// Target URL before injection.
    pub url: String,
    /// Headers to forward (after stripping, before injection), values base64.
    pub headers: Vec<(String, String)>,
    /// Body, base64.
    pub body: String,
    /// The audit record so far (completed when the approval ends).
    pub audit: AuditRecord,
}

impl CapturedRequest {
    /// Captures a request.
    pub fn new(
        method: &str,
        url: &TargetUrl,
        headers: &HeaderMap,
        body: &[u8],
        audit: AuditRecord,
    ) -> Self {
        let b64 = &base64::engine::general_purpose::STANDARD;
        Self {
            method: method.to_owned(),
            url: url.as_str().to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), b64.encode(v.as_bytes())))
                .collect(),
            body: b64.encode(body),
            audit,
        }
    }

    fn header_map(&self) -> Result<HeaderMap, ProxyError> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut h = HeaderMap::with_capacity(self.headers.len());
        for (n, v) in &self.headers {
            let bad = || {
                ProxyError::new(
                    Reason::RequestTampered,
                    "stored request headers are damaged",
                )
            };
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad())?;
            let raw = b64.decode(v).map_err(|_| bad())?;
            let value = HeaderValue::from_bytes(&raw).map_err(|_| bad())?;
            h.append(name, value);
        }
        Ok(h)
    }

    fn body_bytes(&self) -> Result<Bytes, ProxyError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .map(Bytes::from)
            .map_err(|_| ProxyError::new(Reason::RequestTampered, "stored request body is damaged"))
    }

    /// Body preview for humans: at most `max` bytes, cut on a character boundary.
    pub fn body_preview(&self, max: usize) -> String {
        let body = self.body_bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let cut = tap_core::audit::cut_on_char_boundary(&text, max);
        if cut.len() < text.len() {
            format!("{cut}…")
        } else {
            cut.to_owned()
        }
    }
}

/// The web channel: the `/approve/{txn}` page is always there; nothing to send.
#[derive(Debug)]
pub struct WebChannel;

impl ApprovalChannel for WebChannel {
    fn name(&self) -> &'static str {
        "web"
    }
}

/// The terminal channel: `tap pending` and `tap approve` read the store; nothing to send.
#[derive(Debug)]
pub struct TerminalChannel;

impl ApprovalChannel for TerminalChannel {
    fn name(&self) -> &'static str {
        "terminal"
    }
}

/// Approval coordination inside one proxy, built from the configured channels.
pub struct Broker {
    /// Woken whenever an approval changes here.
    pub changed: Notify,
    channels: Vec<Arc<dyn ApprovalChannel>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("channels", &self.names(None))
            .finish()
    }
}

impl Default for Broker {
    /// Web and terminal: the channels every deployment has.
    fn default() -> Self {
        Self::new(vec![Arc::new(WebChannel), Arc::new(TerminalChannel)])
    }
}

impl Broker {
    /// A broker over `channels` (web and terminal first, then the configured ones).
    pub fn new(channels: Vec<Arc<dyn ApprovalChannel>>) -> Self {
        Self {
            changed: Notify::new(),
            channels,
        }
    }

    /// The channels an approval under `policy` is routed to.
    pub fn route(&self, policy: Option<&Policy>) -> Vec<&Arc<dyn ApprovalChannel>> {
        self.channels.iter().filter(|c| c.routes(policy)).collect()
    }

    /// Names of the channels an approval under `policy` is routed to; all when `None`.
    pub fn names(&self, policy: Option<&Policy>) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| policy.is_none() || c.routes(policy))
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// The channel named to the agent as `notification_channel`: the first
    /// routed channel that pushes notifications, else the web page.
    pub fn notification_channel(&self, policy: Option<&Policy>) -> &'static str {
        self.route(policy)
            .into_iter()
            .find(|c| c.notifies())
            .map_or("web", |c| c.name())
    }

    /// Asks every routed channel for a decision; failures are logged, never fatal
    /// (the web page always works).
    pub async fn notify_new(&self, policy: Option<&Policy>, summary: &ApprovalSummary) {
        for ch in self.route(policy) {
            if let Err(e) = ch.notify_new(summary).await {
                tracing::warn!(channel = ch.name(), error = %e, "approval request could not be sent");
            }
        }
    }

    /// Announces a counted vote that did not end the approval.
    pub async fn notify_progress(&self, d: &Decided) {
        for ch in &self.channels {
            ch.notify_progress(&d.txn_id, d.approvals, d.min_approvals)
                .await;
        }
    }

    /// Announces an outcome to every channel and wakes local waiters.
    pub async fn notify_outcome(&self, txn_id: &str, status: ApprovalStatus) {
        for ch in &self.channels {
            ch.notify_outcome(txn_id, status).await;
        }
        self.changed.notify_waiters();
    }
}

/// Decides through the gate and records what a decision ends: a denial's
/// finish audit row is written here, by whichever process the member decided in.
/// Every channel and the admin service call this, never the store's vote.
pub async fn decide(
    store: &dyn Store,
    clock: &dyn Clock,
    d: Decision<'_>,
) -> Result<Decided, GateError> {
    let decided = gate::decide(store, clock, d).await?;
    if decided.denied()
        && let Some(a) = store.approval(&decided.txn_id).await?
        && let Ok(c) = serde_json::from_str::<CapturedRequest>(&a.request)
    {
        let rec = final_record(&a, &c, ApprovalStatus::Denied, None, clock.now_ms());
        store
            .append_audit(&[AuditAppend {
                team_internal_id: a.team_internal_id,
                phase: AuditPhase::Finish,
                record: rec,
            }])
            .await?;
    }
    Ok(decided)
}

/// RFC 3339 of a millisecond timestamp.
pub fn rfc3339_ms(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// The approval page link.
pub fn approval_url(state: &AppState, txn_id: &str) -> String {
    let base = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen));
    format!("{}/approve/{txn_id}", base.trim_end_matches('/'))
}

/// The poll answer of SPEC §3.3.
pub fn poll_body(a: &Approval) -> Value {
    let mut v = json!({
        "txn_id": a.txn_id,
        "status": a.status.public_str(),
        "created_at": rfc3339_ms(a.created_at),
        "expires_at": rfc3339_ms(a.expires_at),
        "approvals": a.approvers().len(),
        "min_approvals": a.min_approvals,
    });
    let approvers = a.approvers();
    if a.decided_at.is_some() || !approvers.is_empty() {
        let deciders: Vec<String> = a.votes.iter().map(|v| v.email.clone()).collect();
        if !deciders.is_empty() {
            v["decided_by"] = json!(deciders);
        }
    }
    if let Some(code) = &a.error_code {
        v["error_code"] = json!(code);
    }
    if a.status == ApprovalStatus::Forwarded
        && let Some(resp) = a
            .response
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
    {
        v["response"] = resp;
    }
    v
}

/// The stored, scrubbed upstream answer as an HTTP response (sync callers).
pub fn stored_response(a: &Approval) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(v) = a
        .response
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    else {
        return ProxyError::new(Reason::Internal, "approved request has no stored answer")
            .into_response();
    };
    let status = v["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match v["body_encoding"].as_str() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(v["body"].as_str().unwrap_or(""))
            .unwrap_or_default(),
        _ => v["body"].as_str().unwrap_or("").as_bytes().to_vec(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    if let Some(hs) = v["headers"].as_array() {
        for pair in hs {
            let (Some(n), Some(val)) = (pair[0].as_str(), pair[1].as_str()) else {
                continue;
            };
            if let (Ok(n), Ok(val)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(val),
            ) {
                resp.headers_mut().append(n, val);
            }
        }
    }
    resp
}

/// The error an agent gets for a final, unsuccessful approval.
pub fn final_error(a: &Approval) -> ProxyError {
    match a.status {
        ApprovalStatus::Denied => ProxyError::new(
            Reason::ApprovalDenied,
            "a human denied this request; nothing was forwarded",
        )
        .with("txn_id", a.txn_id.clone()),
        ApprovalStatus::TimedOut => ProxyError::new(
            Reason::ApprovalTimedOut,
            "nobody decided on this request in time; nothing was forwarded",
        )
        .with("txn_id", a.txn_id.clone()),
        _ => {
            let code = a.error_code.as_deref().unwrap_or("internal");
            ProxyError::new(
                Reason::from_code(code),
                format!("the approved request was not completed ({code})"),
            )
            .with("txn_id", a.txn_id.clone())
        }
    }
}

/// Waits until the approval is final or `wait` passes; `None` when still open.
pub async fn wait_final(
    state: &AppState,
    txn_id: &str,
    wait: Duration,
) -> Result<Option<Approval>, StoreError> {
    let deadline = Instant::now() + wait;
    loop {
        let notified = state.broker.changed.notified();
        if let Some(a) = state.store.approval(txn_id).await? {
            if a.status.is_final() {
                return Ok(Some(a));
            }
        } else {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // Woken by this proxy's changes; polled for changes made elsewhere.
        let _ = tokio::time::timeout(left.min(EXECUTOR_INTERVAL), notified).await;
    }
}

fn finish_audit(
    state: &AppState,
    a: &Approval,
    captured: &CapturedRequest,
    status: ApprovalStatus,
    upstream: Option<(u16, f64, bool)>,
) {
    state.journal.enqueue(AuditAppend {
        team_internal_id: a.team_internal_id,
        phase: AuditPhase::Finish,
        record: final_record(a, captured, status, upstream, state.clock.now_ms()),
    });
}

/// The finish record of an approval that ended.
fn final_record(
    a: &Approval,
    captured: &CapturedRequest,
    status: ApprovalStatus,
    upstream: Option<(u16, f64, bool)>,
    now: i64,
) -> AuditRecord {
    let mut rec = captured.audit.clone();
    rec.approval_status = Some(status.public_str().to_owned());
    // A denial records who decided it; every other outcome who approved.
    rec.approvers = match status {
        ApprovalStatus::Denied => a.votes.iter().map(|v| v.email.clone()).collect(),
        _ => a.approvers(),
    };
    rec.decision = match status {
        ApprovalStatus::Forwarded => "proceed".into(),
        _ => "refused".into(),
    };
    rec.error_code = match status {
        ApprovalStatus::Denied => Some("approval_denied".into()),
        ApprovalStatus::TimedOut => Some("approval_timed_out".into()),
        ApprovalStatus::Error => a.error_code.clone(),
        _ => None,
    };
    let decided = a.decided_at.unwrap_or(now);
    rec.latency_approval_ms = Some((decided - a.created_at).max(0) as f64);
    rec.latency_total_ms = Some((now - a.created_at).max(0) as f64);
    if let Some((status, upstream_ms, scrubbed)) = upstream {
        rec.upstream_status = Some(status);
        rec.latency_upstream_ms = Some(upstream_ms);
        rec.response_scrubbed = scrubbed;
    }
    rec
}

/// Forwards one claimed approval; stores the outcome. Never forwards on a failed re-check.
async fn execute(state: &AppState, txn_id: &str) -> Result<(), StoreError> {
    let Some(a) = state.store.approval(txn_id).await? else {
        return Ok(());
    };
    let captured: Option<CapturedRequest> = serde_json::from_str(&a.request).ok();
    let bound = state
        .keys
        .mac()
        .verify_bytes(a.request.as_bytes(), &a.request_hash);
    let Some(captured) = captured.filter(|_| bound) else {
        tracing::error!(txn = %txn_id, "stored approval does not match its binding hash; not forwarding");
        state
            .store
            .finish_approval(
                txn_id,
                ApprovalStatus::Error,
                Some("request_tampered"),
                None,
                state.clock.now_ms(),
            )
            .await?;
        if let Some(a) = state.store.approval(txn_id).await? {
            // The captured request is untrusted now: the record is built from the
            // approval's own columns (it replaces the start row in merged views).
            let dir = state.directory.get();
            let slug = |id: i64| dir.teams.get(&id).map(|t| t.slug.clone());
            let team_id = slug(a.team_internal_id).unwrap_or_default();
            let agent_home_team = (a.agent_team_internal_id != a.team_internal_id)
                .then(|| slug(a.agent_team_internal_id))
                .flatten();
            let decided = a.decided_at.unwrap_or(state.clock.now_ms());
            let rec = AuditRecord {
                request_id: a.txn_id.clone(),
                team_id,
                agent_home_team,
                agent_id: a.agent_id.clone(),
                credential_names: vec![a.credential.clone()],
                method: a.method.clone(),
                target_url: a.target.clone(),
                decision: "refused".into(),
                policy_reason: Some(a.policy_reason.clone()),
                error_code: Some("request_tampered".into()),
                approval_status: Some("error".into()),
                approvers: a.approvers(),
                latency_approval_ms: Some((decided - a.created_at).max(0) as f64),
                latency_total_ms: Some((state.clock.now_ms() - a.created_at).max(0) as f64),
                timestamp: crate::proxy::audit::now_rfc3339(),
                ..Default::default()
            };
            state.journal.enqueue(AuditAppend {
                team_internal_id: a.team_internal_id,
                phase: AuditPhase::Finish,
                record: rec,
            });
        }
        state.broker.changed.notify_waiters();
        return Ok(());
    };
    let outcome = forward_approved(state, &a, &captured).await;
    let (status, code, response, upstream) = match outcome {
        Ok((resp_json, upstream)) => (
            ApprovalStatus::Forwarded,
            None,
            Some(resp_json),
            Some(upstream),
        ),
        Err(e) => {
            tracing::info!(txn = %txn_id, code = e.reason.code(), "approved request not completed");
            (
                ApprovalStatus::Error,
                Some(e.reason.code().to_owned()),
                None,
                None,
            )
        }
    };
    state
        .store
        .finish_approval(
            txn_id,
            status,
            code.as_deref(),
            response.as_deref(),
            state.clock.now_ms(),
        )
        .await?;
    let a = state.store.approval(txn_id).await?.unwrap_or(a);
    finish_audit(state, &a, &captured, status, upstream);
    state.broker.notify_outcome(txn_id, status).await;
    Ok(())
}

/// Re-checks rows 1 and 5–10 against the current configuration, then forwards
/// exactly the captured request and reads the (bounded) answer.
async fn forward_approved(
    state: &AppState,
    a: &Approval,
    captured: &CapturedRequest,
) -> Result<(String, (u16, f64, bool)), ProxyError> {
    // Revocations made elsewhere (the CLI, another replica) may be newer than the
    // last periodic reload: re-check against the store's current configuration.
    state
        .directory
        .refresh(state.store.as_ref(), &state.keys)
        .await
        .map_err(ProxyError::from)?;
    let dir = state.directory.get();
    // Row 1: the agent still exists and is enabled.
    let agent_ok = dir.agents_by_key.values().any(|ag| {
        ag.team_internal_id == a.agent_team_internal_id && ag.id == a.agent_id && ag.enabled
    });
    if !agent_ok {
        return Err(ProxyError::new(
            Reason::InvalidTapKey,
            "the agent was disabled or deleted",
        ));
    }
    let agent_granted = dir.agents_by_key.values().any(|ag| {
        ag.team_internal_id == a.agent_team_internal_id
            && ag.id == a.agent_id
            && ag
                .credentials_in(a.team_internal_id)
                .is_some_and(|c| c.contains(&a.credential))
    });
    // Rows 5–7.
    let team = dir
        .teams
        .get(&a.team_internal_id)
        .ok_or_else(|| ProxyError::new(Reason::TeamNotLinked, "the team no longer exists"))?;
    let credential = team
        .credentials
        .get(&a.credential)
        .ok_or_else(|| ProxyError::new(Reason::CredentialChanged, "the credential was deleted"))?;
    if credential.updated_at != a.credential_version {
        return Err(ProxyError::new(
            Reason::CredentialChanged,
            "the credential changed",
        ));
    }
    if !agent_granted {
        return Err(ProxyError::new(
            Reason::CredentialNotGranted,
            "the credential is no longer granted",
        ));
    }
    // Rows 8–10 on the captured target.
    let url = TargetUrl::parse(&captured.url)
        .map_err(|_| ProxyError::new(Reason::RequestTampered, "stored target is damaged"))?;
    let injection = destination_and_injection(state, credential, &url, false).await?;
    let headers = captured.header_map()?;
    let body = captured.body_bytes()?;
    let req = upstream_request(&captured.method, &url, &headers, &injection, body)?;
    let started = Instant::now();
    let resp =
        match tokio::time::timeout(state.config.forward_timeout, state.upstream.send(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(send_error(e, url.as_str())),
            Err(_) => {
                return Err(ProxyError::new(
                    Reason::UpstreamError,
                    "the upstream request timed out",
                ));
            }
        };
    let coding = response_coding(resp.headers()).map_err(unscannable)?;
    let status = resp.status().as_u16();
    let scrubber = credential.scrubber();
    let (mut headers, header_hits) = scrub_headers(resp.headers(), &scrubber);
    if coding != Coding::Identity {
        headers.remove(http::header::CONTENT_ENCODING);
    }
    let mut body = Vec::new();
    let mut stream = decoded_stream(resp, coding, state.config.forward_timeout);
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let c = chunk.map_err(|e| {
            tracing::warn!(error = %e, "approved request's answer broke off");
            let reason = if coding == Coding::Identity {
                Reason::UpstreamError
            } else {
                Reason::UnscannableResponse
            };
            ProxyError::new(
                reason,
                "the upstream answer broke off or could not be decoded",
            )
        })?;
        // Bounded after decoding: a decompression bomb stops here.
        if body.len() + c.len() > MAX_STORED_RESPONSE {
            return Err(ProxyError::new(
                Reason::UnscannableResponse,
                "the upstream answer is too large to keep for polling",
            ));
        }
        body.extend_from_slice(&c);
    }
    let upstream_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let (body, hits) = scrubber.scrub(&body);
    let (body, encoding) = match String::from_utf8(body) {
        Ok(s) => (s, "utf-8"),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            "base64",
        ),
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let json =
        json!({"status": status, "headers": headers, "body": body, "body_encoding": encoding})
            .to_string();
    Ok((json, (status, upstream_ms, hits + header_hits > 0)))
}

async fn expire(state: &AppState) -> Result<(), StoreError> {
    let expired = state.store.expire_approvals(state.clock.now_ms()).await?;
    for txn in &expired {
        if let Some(a) = state.store.approval(txn).await?
            && let Ok(c) = serde_json::from_str::<CapturedRequest>(&a.request)
        {
            finish_audit(state, &a, &c, ApprovalStatus::TimedOut, None);
        }
        state
            .broker
            .notify_outcome(txn, ApprovalStatus::TimedOut)
            .await;
    }
    Ok(())
}

/// The executor loop: expiry, forwarding of approved requests, result retention.
pub async fn run_executor(state: AppState) {
    match state.store.fail_interrupted(state.clock.now_ms()).await {
        Ok(n) if n > 0 => tracing::warn!(
            count = n,
            "approvals interrupted by a restart marked as error"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not check for interrupted approvals"),
    }
    let mut tick = tokio::time::interval(EXECUTOR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = state.broker.changed.notified() => {},
        }
        if let Err(e) = expire(&state).await {
            tracing::warn!(error = %e, "approval expiry failed");
        }
        match state.store.approved_unclaimed(32).await {
            Ok(ids) => {
                for id in ids {
                    match state.store.claim_approved(&id).await {
                        Ok(true) => {
                            let st = state.clone();
                            tokio::spawn(async move {
                                if let Err(e) = execute(&st, &id).await {
                                    tracing::error!(txn = %id, error = %e, "approved request could not be completed");
                                }
                            });
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "claim failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "approval scan failed"),
        }
        if last_purge.elapsed() > Duration::from_secs(60) {
            last_purge = Instant::now();
            let before = state.clock.now_ms()
                - i64::try_from(state.config.result_retention.as_millis()).unwrap_or(i64::MAX);
            if let Err(e) = state.store.purge_approvals(before).await {
                tracing::warn!(error = %e, "approval purge failed");
            }
        }
    }
}
