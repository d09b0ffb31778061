//! `POST /forward`: the request pipeline of SPEC §3.1, stage by stage.
//!
//! authenticate → resolve team and credential → outbound safety → policy →
//! approval → inject → forward → scrub → audit. Every exit after
//! authentication writes an audit row; nothing is forwarded before its `start`
//! row is committed.

mod approve;
pub mod audit;
pub mod authenticate;
pub(crate) mod destination;
pub(crate) mod forward;
pub(crate) mod guard;
pub(crate) mod placeholders;
pub(crate) mod resolve;
pub(crate) mod sidecar;
pub mod sign;
pub(crate) mod sign_result;
pub mod token_cache;
pub(crate) mod token_flow;

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tap_core::policy::{
    Decision, EvalInput, GrantView, NormalizedTarget, PolicyReason, normalize_method,
};

use crate::error::{ProxyError, Reason, error_response};
use crate::request_id::RequestId;
use crate::state::AppState;

use self::audit::AuditDraft;
use self::authenticate::{Authenticated, authenticate};

/// The `X-TAP-*` headers the protocol defines (lower-case).
pub const SUPPORTED_TAP_HEADERS: &[&str] = &[
    "x-tap-key",
    "x-tap-credential",
    "x-tap-target",
    "x-tap-method",
    "x-tap-team",
    "x-tap-auth-mode",
];

/// Reads one header as text; `Err` when it is not visible ASCII.
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ProxyError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ProxyError::new(
                Reason::InvalidHeader,
                format!("header {name} holds bytes that are not visible ASCII"),
            )
        }),
    }
}

/// Rows 2 and 2a: only known `X-TAP-*` headers, a valid method and auth mode, no control characters.
fn check_headers(headers: &HeaderMap) -> Result<String, ProxyError> {
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-tap-") && !SUPPORTED_TAP_HEADERS.contains(&n) {
            return Err(ProxyError::new(
                Reason::UnknownTapHeader,
                format!("unknown TAP header {n}"),
            )
            .with("header", n)
            .with("supported_tap_headers", SUPPORTED_TAP_HEADERS.to_vec()));
        }
    }
    let method =
        normalize_method(header_str(headers, "x-tap-method")?.unwrap_or("")).map_err(|e| {
            ProxyError::new(
                Reason::MethodNotAllowed,
                format!("X-TAP-Method refused: {e}"),
            )
        })?;
    if let Some(mode) = header_str(headers, "x-tap-auth-mode")?
        && !matches!(
            mode.to_ascii_lowercase().as_str(),
            "auto" | "bearer" | "oauth1"
        )
    {
        return Err(ProxyError::new(
            Reason::InvalidAuthMode,
            "X-TAP-Auth-Mode must be auto, bearer or oauth1",
        ));
    }
    for (name, value) in headers {
        if value
            .as_bytes()
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0)
        {
            return Err(ProxyError::new(
                Reason::InvalidHeader,
                format!("header {name} contains CR, LF or NUL"),
            ));
        }
    }
    Ok(method)
}

use crate::agent_views::{ErrorBody, PendingView};

/// The `POST /forward` handler.
#[utoipa::path(
    post,
    path = "/forward",
    tag = "agent",
    summary = "Forward a request with an injected credential",
    description = "X-TAP-Credential, X-TAP-Target and X-TAP-Method name the call; the body and other headers go upstream as sent. Any status the upstream answers comes back with its headers and a scrubbed body; an answer the proxy makes itself carries X-TAP-Error and the error body.",
    security(("agent_key" = [])),
    params(
        ("X-TAP-Credential" = Option<String>, Header, description = "The credential to inject, by name; absent: legacy placeholder mode (<CREDENTIAL:name> in Authorization, X-Api-Key, X-Auth-Token or a bound header)"),
        ("X-TAP-Target" = String, Header, description = "The upstream URL, or a path for relative-target credentials"),
        ("X-TAP-Method" = Option<String>, Header, description = "The upstream method (default GET)"),
        ("X-TAP-Team" = Option<String>, Header, description = "Another team the agent is linked to"),
        ("Prefer" = Option<String>, Header, description = "respond-async, or wait=N seconds, for requests that pause for approval"),
    ),
    request_body(content = Vec<u8>, description = "The upstream request body", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The upstream's answer, scrubbed (any upstream status passes through)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 202, description = "Waiting for approval", body = PendingView),
        (status = 400, description = "Refused (bad request)", body = ErrorBody),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 403, description = "Refused (not allowed)", body = ErrorBody),
        (status = 404, description = "Unknown credential", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Upstream failed", body = ErrorBody),
        (status = 503, description = "Approval unavailable", body = ErrorBody),
        (status = 504, description = "Approval timed out or upstream too slow", body = ErrorBody),
    )
)]
pub async fn forward_handler(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let dir = state.directory.get();
    let (auth, mut draft) = match admit(&state, &dir, &request_id, &parts.headers, started) {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    if let Some(t) = parts.headers.get("x-tap-target") {
        draft.set_target(&String::from_utf8_lossy(t.as_bytes()));
    }
    if let Some(c) = parts
        .headers
        .get("x-tap-credential")
        .and_then(|v| v.to_str().ok())
    {
        draft.set_credential(c.trim());
    }
    if let Ok(m) = normalize_method(
        parts
            .headers
            .get("x-tap-method")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    ) {
        draft.set_method(&m);
    }

    let (mut prepared, claimed) =
        match prepare(&state, &dir, &auth, &parts.headers, body, &mut draft).await {
            Ok(Step::Forward(p, claimed)) => (p, claimed),
            Ok(Step::Approval(p, reason)) => {
                let prefer = Prefer::parse(&parts.headers);
                return approve::request_approval(&state, p, reason, draft, prefer).await;
            }
            Err(e) => return refuse(e, draft).await,
        };
    // Inject: the policy proceeded, so a token flow may run now.
    if let Err(e) = destination::authorize(&state, &mut prepared.resolved).await {
        // Nothing reached the upstream: the grant uses claimed for it go back.
        release_uses(&state, &claimed).await;
        return refuse(e, draft).await;
    }
    if let Err(e) = draft.commit_start().await {
        tracing::error!(error = %e, request_id = %request_id, "audit start row not committed; not forwarding");
        let err = ProxyError::new(
            Reason::StoreUnavailable,
            "the audit trail could not be written; nothing was forwarded",
        );
        return refuse(err, draft).await;
    }
    forward::forward(&state, prepared, draft).await
}

/// The first stage of `/forward` and `/sign`: authenticates the agent (a
/// refusal here writes no audit row: nobody is known to file it under) and
/// opens the audit draft on its home team, headers recorded.
fn admit(
    state: &AppState,
    dir: &crate::directory::Directory,
    request_id: &str,
    headers: &HeaderMap,
    started: Instant,
) -> Result<(Authenticated, AuditDraft), ProxyError> {
    let auth = authenticate(dir, state.keys.mac(), headers)?;
    let primary = Arc::clone(auth.primary());
    let Some(home) = dir.teams.get(&primary.team_internal_id) else {
        return Err(ProxyError::new(Reason::Internal, "agent's team is missing"));
    };
    let mut draft = AuditDraft::new(
        state.journal.clone(),
        request_id,
        home.internal_id,
        &home.slug,
        &primary.id,
        Arc::clone(&home.all_secrets),
        started,
    );
    draft.set_headers(headers);
    Ok((auth, draft))
}

/// What the agent asked for with `Prefer` (RFC 7240).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Prefer {
    pub(crate) respond_async: bool,
    pub(crate) wait_secs: Option<u64>,
}

impl Prefer {
    fn parse(headers: &HeaderMap) -> Self {
        let mut p = Prefer::default();
        for v in headers.get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            for pref in v.split(',') {
                let pref = pref.trim();
                let (name, value) = match pref.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (pref, None),
                };
                if name.eq_ignore_ascii_case("respond-async") {
                    p.respond_async = true;
                } else if name.eq_ignore_ascii_case("wait") {
                    p.wait_secs = value.and_then(|v| v.parse().ok());
                }
            }
        }
        p
    }
}

/// The outcome of rows 2–11.
enum Step {
    /// Forward now; the ids of the grants whose uses were claimed for it.
    Forward(forward::Prepared, Vec<String>),
    Approval(forward::Prepared, String),
}

/// Answers a refusal: audit row committed, body scrubbed of every team secret.
pub(crate) async fn refuse(err: ProxyError, draft: AuditDraft) -> Response {
    let reason = err.reason;
    tracing::info!(agent = %draft.record.agent_id, team = %draft.record.team_id, code = reason.code(), "request refused");
    let body = serde_json::to_vec(&err.body()).unwrap_or_default();
    let scrubbed = draft.scrub_bytes(&body);
    let retry_after = err.retry_after;
    draft.finish_committed(Some(reason.code())).await;
    error_response(reason, scrubbed, retry_after)
}

/// Rows 2–11: everything decided before the upstream is contacted.
async fn prepare(
    state: &AppState,
    dir: &crate::directory::Directory,
    auth: &Authenticated,
    headers: &HeaderMap,
    body: Body,
    draft: &mut AuditDraft,
) -> Result<Step, ProxyError> {
    let method = check_headers(headers)?;
    draft.set_method(&method);
    let resolved = resolve::resolve(state, dir, auth, headers, body, draft).await?;
    let normalized = NormalizedTarget::from_url(resolved.url.url());
    let team = Arc::clone(&resolved.team);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Every credential the request uses is policy-checked; the strictest
    // outcome wins whatever the order of reference (SPEC §3.2): one that needs
    // approval makes the whole request need it, and grants are claimed only
    // when every credential proceeds.
    let names = resolved.credential_names();
    let mut evals = Vec::with_capacity(names.len());
    for name in &names {
        evals.push(evaluate(&team, name, &method, &normalized, now, &[]));
    }
    if let Some(e) = evals.iter().find(|e| e.decision == Decision::Approval) {
        let reason = e.reason.as_str().into_owned();
        draft.record.policy_reason = Some(reason.clone());
        draft.record.decision = "approval".into();
        let prepared = forward::Prepared { method, resolved };
        return Ok(Step::Approval(prepared, reason));
    }
    let mut reasons = Vec::with_capacity(names.len());
    let mut claimed = Vec::new();
    for name in &names {
        let eval = match claim(state, &team, name, &method, &normalized, now).await {
            Ok(eval) => eval,
            Err(e) => {
                release_uses(state, &claimed).await;
                return Err(e);
            }
        };
        if let PolicyReason::Grant(id) = &eval.reason {
            claimed.push(id.clone());
        }
        if eval.decision == Decision::Approval {
            release_uses(state, &claimed).await;
            let reason = eval.reason.as_str().into_owned();
            draft.record.policy_reason = Some(reason.clone());
            draft.record.decision = "approval".into();
            let prepared = forward::Prepared { method, resolved };
            return Ok(Step::Approval(prepared, reason));
        }
        reasons.push(eval.reason.as_str().into_owned());
    }
    draft.record.policy_reason = reasons.into_iter().next();
    Ok(Step::Forward(
        forward::Prepared { method, resolved },
        claimed,
    ))
}

/// Gives back grant uses claimed for a request that forwards nothing under
/// them (best effort: a use that cannot be given back stays spent).
async fn release_uses(state: &AppState, claimed: &[String]) {
    for id in claimed {
        if let Err(e) = state.store.release_grant_use(id).await {
            tracing::warn!(grant = %id, error = %e, "a claimed grant use could not be given back");
        }
    }
}

/// Policy for one credential (SPEC §5), grants other than `skip` considered
/// but not claimed.
fn evaluate(
    team: &crate::directory::TeamEntry,
    credential: &str,
    method: &str,
    normalized: &NormalizedTarget,
    now: i64,
    skip: &[String],
) -> tap_core::policy::Evaluation {
    let views: Vec<GrantView<'_>> = team
        .grants
        .get(credential)
        .map(|g| g.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|g| !skip.contains(&g.id))
        .map(|g| GrantView {
            id: &g.id,
            methods: &g.methods,
            route_scope: &g.route_scope,
            expires_at: g.expires_at,
            uses_left: g.max_uses.map(|m| m.saturating_sub(g.uses)),
        })
        .collect();
    tap_core::policy::evaluate(&EvalInput {
        method,
        target: normalized,
        policy: team.policies.get(credential).map(|p| p.as_ref()),
        team_mode: team.mode,
        grants: &views,
        now,
    })
}

/// Policy for one credential with its step 7 grant claimed atomically; an
/// exhausted grant is dropped and policy runs again.
async fn claim(
    state: &AppState,
    team: &crate::directory::TeamEntry,
    credential: &str,
    method: &str,
    normalized: &NormalizedTarget,
    now: i64,
) -> Result<tap_core::policy::Evaluation, ProxyError> {
    let mut skip: Vec<String> = Vec::new();
    loop {
        let eval = evaluate(team, credential, method, normalized, now, &skip);
        let PolicyReason::Grant(id) = &eval.reason else {
            return Ok(eval);
        };
        if state.store.use_grant(id, now).await? {
            return Ok(eval);
        }
        skip.push(id.clone());
    }
}
