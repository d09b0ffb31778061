//! The executor: one task per proxy expires pending approvals, claims approved
//! ones atomically, re-checks the agent, credential and destination, forwards
//! byte for byte what was approved, and stores the scrubbed result.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use tap_core::audit::{AuditPhase, AuditRecord};
use tap_core::model::{Approval, ApprovalStatus};
use tap_core::store::{AuditAppend, StoreError};
use tap_core::target::TargetUrl;

use super::captured::{CapturedRequest, final_record};
use crate::error::{ProxyError, Reason};
use crate::proxy::destination::{Plan, destination_and_injection, minted, usable_destination};
use crate::proxy::forward::{
    Coding, decoded_stream, has_no_body, response_coding, scrub_headers, send_error, unscannable,
    upstream_request, with_query_renderings,
};
use crate::proxy::placeholders::{combined_scrubber, substitute};
use crate::state::AppState;

/// Largest upstream answer stored for a poll.
pub const MAX_STORED_RESPONSE: usize = 10 * 1024 * 1024;
/// How often the executor looks for decisions made elsewhere (the CLI, another replica).
pub const EXECUTOR_INTERVAL: Duration = Duration::from_millis(200);

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
                credential_names: a.credential_names().map(str::to_owned).collect(),
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
    // Every credential the approval names (several in legacy placeholder mode).
    let names: Vec<&str> = a.credential_names().collect();
    let agent_granted = dir.agents_by_key.values().any(|ag| {
        ag.team_internal_id == a.agent_team_internal_id
            && ag.id == a.agent_id
            && ag
                .credentials_in(a.team_internal_id)
                .is_some_and(|c| names.iter().all(|n| c.contains(*n)))
    });
    // Rows 5–7.
    let team = dir
        .teams
        .get(&a.team_internal_id)
        .ok_or_else(|| ProxyError::new(Reason::TeamNotLinked, "the team no longer exists"))?;
    let mut credentials = Vec::with_capacity(names.len());
    for name in &names {
        let c = team.credentials.get(*name).ok_or_else(|| {
            ProxyError::new(Reason::CredentialChanged, "the credential was deleted")
        })?;
        credentials.push(&**c);
    }
    let Some(credential) = credentials.first().copied() else {
        return Err(ProxyError::new(
            Reason::RequestTampered,
            "the approval names no credential",
        ));
    };
    let version = credentials.iter().map(|c| c.updated_at).max();
    if version != Some(a.credential_version) {
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
    // POST /sign: the signature is made now, after approval (SPEC §6.4).
    if credential.signing_key {
        return crate::proxy::sign_result::sign_approved(credential, &captured.body_bytes()?);
    }
    // Rows 8–10 on the captured target.
    let url = TargetUrl::parse(&captured.url)
        .map_err(|_| ProxyError::new(Reason::RequestTampered, "stored target is damaged"))?;
    let headers = captured.header_map()?;
    let injection = if captured.legacy {
        for c in &credentials {
            usable_destination(state, c, &url, false).await?;
        }
        substitute(&headers, &credentials)?
    } else {
        let mode = tap_core::inject::AuthMode::parse(captured.auth_mode.as_deref().unwrap_or(""))
            .ok_or_else(|| {
            ProxyError::new(Reason::RequestTampered, "stored auth mode is damaged")
        })?;
        // Approved and re-checked: a token flow runs now, never before.
        match destination_and_injection(state, credential, &url, false, mode).await? {
            Plan {
                token: Some(shape), ..
            } => minted(state, credential, shape).await?,
            Plan { injection, .. } => injection,
        }
    };
    let body = captured.body_bytes()?;
    let req = upstream_request(
        &captured.method,
        &url,
        &headers,
        &injection,
        body,
        &*state.clock,
    )?;
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
    let bodyless = has_no_body(&captured.method, resp.status());
    let coding = if bodyless {
        Coding::Identity
    } else {
        response_coding(resp.headers()).map_err(unscannable)?
    };
    let status = resp.status().as_u16();
    let base = if credentials.len() == 1 {
        credential.scrubber()
    } else {
        combined_scrubber(credentials.iter().copied())
    };
    let scrubber = with_query_renderings(base, &credential.name, &injection);
    let scrubber = crate::proxy::sidecar::with_signer_secret(scrubber, &injection);
    let (mut headers, header_hits) = scrub_headers(resp.headers(), &scrubber, &credentials);
    if coding != Coding::Identity || bodyless {
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
    let mut last_audit_prune = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = state.broker.changed.notified() => {},
            // Another replica decided or finished an approval: look now, and
            // wake this proxy's waiters (`wait_final`) to read it.
            () = state.store.changed() => state.broker.changed.notify_waiters(),
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
        let days = state.config.audit_retention_days;
        crate::retention::due(
            &*state.store,
            state.clock.now_ms(),
            days,
            &mut last_audit_prune,
        )
        .await;
    }
}
