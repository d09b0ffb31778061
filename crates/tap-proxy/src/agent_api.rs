//! Agent endpoints other than `/forward` (SPEC §3.4).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tap_core::audit::merge_rows;
use tap_core::model::Connector;
use tap_core::store::AuditQuery;

use crate::agent_services::granted;
use crate::agent_views::{
    AgentConfigView, AgentLogsView, ApprovalPollView, BootstrapView, ConfigCredentialView,
    ErrorBody, HealthView,
};
use crate::directory::{AgentEntry, Directory, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::ops::audit::AuditEntry;
use crate::proxy::authenticate::authenticate;
use crate::state::AppState;

/// Default and largest `limit` of `/agent/logs`.
const LOGS_DEFAULT: u32 = 20;
const LOGS_MAX: u32 = 100;

/// `GET /health`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "agent",
    summary = "Liveness and store health",
    responses(
        (status = 200, description = "Healthy", body = HealthView),
        (status = 503, description = "Store unreachable", body = HealthView),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            let mut resp = Json(HealthView {
                status: "ok",
                version: env!("CARGO_PKG_VERSION"),
                db: None,
            })
            .into_response();
            // Which store this proxy serves: `tap status` checks it is its own.
            if let Ok(Some(id)) = state.store.meta(crate::keyring::STORE_ID_META).await
                && let Ok(v) = HeaderValue::from_bytes(&id)
            {
                resp.headers_mut().insert("x-tap-store-id", v);
            }
            resp
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthView {
                status: "error",
                version: env!("CARGO_PKG_VERSION"),
                db: Some("unreachable"),
            }),
        )
            .into_response(),
    }
}

/// `GET /instructions`.
#[utoipa::path(
    get,
    path = "/instructions",
    tag = "agent",
    summary = "Plain-text primer for LLM agents",
    responses(
        (status = 200, description = "The primer", body = String, content_type = "text/plain"),
    )
)]
pub async fn instructions() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        INSTRUCTIONS,
    )
        .into_response()
}

const INSTRUCTIONS: &str = r#"TAP: Tool Authorization Protocol proxy
=====================================

You call external APIs through this proxy. You never hold API secrets: you name
a credential, the proxy checks policy, injects the secret, forwards your
request, and removes every trace of the secret from the answer.

Authentication
  Every agent endpoint needs your key:    X-TAP-Key: tap_...

Calling an API
  POST /forward
    X-TAP-Key:        your agent key
    X-TAP-Credential: the credential name (see GET /agent/services)
    X-TAP-Target:     the full upstream URL, e.g. https://api.example.com/v1/items
                      (or a path like /v1/items for relative-target credentials)
    X-TAP-Method:     the upstream method (default GET)
    X-TAP-Team:       optional, another team you are linked to
  The HTTP body and every other header are sent to the upstream as they are.
  Do not set Authorization yourself: the proxy injects it.

  Example:
    curl -X POST http://PROXY/forward \
      -H "X-TAP-Key: $TAP_KEY" -H "X-TAP-Credential: github" \
      -H "X-TAP-Target: https://api.github.com/user" -H "X-TAP-Method: GET"

  Placeholder mode (clients written for the public TAP protocol): leave out
  X-TAP-Credential and write <CREDENTIAL:name> (or <CREDENTIAL:name.field> for
  one field of a multi-secret credential) in the Authorization, X-Api-Key or
  X-Auth-Token header, or in a header the credential binds:
    -H "Authorization: Bearer <CREDENTIAL:github>"
  The proxy substitutes the secret there and nowhere else: a placeholder in
  another header, the URL or the body is refused (400
  placeholder_position_violation, "location" says where). Several credentials
  may be referenced; each must be granted to you and allow the target host,
  and if any one needs approval the whole request does. Without
  X-TAP-Credential and without placeholders: 400 no_credential.

  The answer is the upstream's status, headers and body. Secrets in it appear
  as [REDACTED:<credential>]. An answer made by the proxy itself carries the
  header X-TAP-Error and a JSON body {"error", "error_code", "detail", "fix"}:
  error and error_code hold the stable code, detail the sentence.

Approval
  By default reads (GET, HEAD) proceed at once and writes need a human's
  approval. GET /agent/services tells you, per credential, which rules apply
  (approval.rules: first match wins; proceeds_immediately or pauses_for_human).
  A request that pauses:
    - without Prefer, blocks until a human decides (then answers as usual, or
      403 approval_denied / 504 approval_timed_out) for up to about 20 s, then
      answers 202 Accepted;
    - with "Prefer: respond-async", answers 202 at once; "Prefer: wait=N" waits
      up to N seconds first.
  The 202 body holds txn_id, poll_url and approval_url. Show approval_url to
  your human, then GET poll_url with your X-TAP-Key until status is forwarded
  (the upstream answer is in "response"), denied, timed_out or error. Never
  send the same write again while it is pending. When no human may decide,
  the answer is 503 approval_unavailable and nothing was sent.

MCP
  POST /mcp is a Model Context Protocol server (streamable HTTP) with the
  tools list_services, request, approval_status and recent_logs; send your
  key as Authorization: Bearer tap_... (or X-TAP-Key). Each tool call is the
  same request as above, with the same rules and audit.

Other endpoints
  GET /agent/services    what you may use and how
  GET /agent/config      your id, team and credential names
  GET /agent/logs?limit= your latest audited requests
  GET /agent/bootstrap   readiness summary
  GET /health            liveness (no key needed)

Rules
  Never put a secret value in a request: the proxy refuses it (secret_in_request).
  Targets must be on the credential's allowed hosts; private addresses are refused.
"#;

/// The directory, the calling agent and its team.
type AgentCtx = (Arc<Directory>, Arc<AgentEntry>, Arc<TeamEntry>);

fn agent_ctx(state: &AppState, headers: &HeaderMap) -> Result<AgentCtx, ProxyError> {
    let dir = state.directory.get();
    let auth = authenticate(&dir, state.keys.mac(), headers)?;
    let wanted = headers
        .get("x-tap-team")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let (agent, team) = match wanted {
        None => {
            let agent = Arc::clone(auth.primary());
            let team = dir.teams.get(&agent.team_internal_id).cloned();
            (agent, team)
        }
        Some(slug) => {
            let team = dir.team_by_slug(slug).cloned();
            let agent = team.as_ref().and_then(|t| {
                auth.agents
                    .iter()
                    .find(|a| a.credentials_in(t.internal_id).is_some())
                    .cloned()
            });
            match agent {
                Some(a) => (a, team),
                None => {
                    return Err(ProxyError::new(
                        Reason::TeamNotLinked,
                        format!("agent {} is not linked to team {slug}", auth.primary().id),
                    )
                    .with("team", slug));
                }
            }
        }
    };
    let team = team.ok_or_else(|| ProxyError::new(Reason::Internal, "agent's team is missing"))?;
    Ok((dir, agent, team))
}

/// `GET /agent/config`.
#[utoipa::path(
    get,
    path = "/agent/config",
    tag = "agent",
    security(("agent_key" = [])),
    summary = "Agent id, team and credential names",
    responses(
        (status = 200, description = "Config", body = AgentConfigView),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 403, description = "X-TAP-Team names a team the key is not linked to", body = ErrorBody),
    )
)]
pub async fn config(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, agent, team) = match agent_ctx(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let credentials = granted(&agent, &team)
        .into_iter()
        .map(|c| ConfigCredentialView {
            name: c.name.clone(),
            description: c.description.clone(),
            // A sidecar's address is internal: never shown to agents.
            api_base: (c.connector == Connector::Direct)
                .then(|| c.api_base_raw.clone())
                .flatten(),
        })
        .collect();
    Json(AgentConfigView {
        agent_id: agent.id.clone(),
        team_id: team.slug.clone(),
        credentials,
    })
    .into_response()
}

/// `GET /agent/bootstrap`.
#[utoipa::path(
    get,
    path = "/agent/bootstrap",
    tag = "agent",
    security(("agent_key" = [])),
    summary = "Readiness summary",
    responses(
        (status = 200, description = "Bootstrap", body = BootstrapView),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 403, description = "X-TAP-Team names a team the key is not linked to", body = ErrorBody),
    )
)]
pub async fn bootstrap(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, agent, team) = match agent_ctx(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let n = granted(&agent, &team).len();
    Json(BootstrapView {
        protocol: "tap",
        version: 1,
        status: if n > 0 { "ready" } else { "needs_credentials" },
        agent_id: agent.id.clone(),
        team_id: team.slug.clone(),
        credential_count: n,
        services_url: "/agent/services",
        forward_url: "/forward",
        logs_url: "/agent/logs",
        safe_to_retry: true,
    })
    .into_response()
}

/// Query of `/agent/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    limit: Option<String>,
}

/// `GET /agent/logs?limit=N`.
#[utoipa::path(
    get,
    path = "/agent/logs",
    tag = "agent",
    security(("agent_key" = [])),
    summary = "The agent's own latest audit entries",
    params(
        ("limit" = u32, Query, description = "Entries, default 20, max 100"),
    ),
    responses(
        (status = 200, description = "Entries, newest first", body = AgentLogsView),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
    )
)]
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LogsQuery>,
) -> Response {
    let (_, agent, team) = match agent_ctx(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let limit = q
        .limit
        .and_then(|l| l.trim().parse::<u32>().ok())
        .unwrap_or(LOGS_DEFAULT)
        .clamp(1, LOGS_MAX);
    let rows = match state
        .store
        .audit_rows(
            team.internal_id,
            &AuditQuery {
                agent: Some(agent.id.clone()),
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return ProxyError::from(e).into_response(),
    };
    // Keyed by (team, agent): a linked agent with the same id as a local one sees only its own rows.
    let entries: Vec<_> = merge_rows(&rows)
        .into_iter()
        .filter(|r| r.agent_home_team.as_deref().unwrap_or(&r.team_id) == agent.team)
        .map(AuditEntry)
        .collect();
    Json(AgentLogsView {
        agent_id: agent.id.clone(),
        team_id: team.slug.clone(),
        count: entries.len(),
        entries,
    })
    .into_response()
}

/// `GET /agent/approvals/{txn_id}`: only the creating agent may read; anyone else gets 404.
#[utoipa::path(
    get,
    path = "/agent/approvals/{txn_id}",
    tag = "agent",
    security(("agent_key" = [])),
    summary = "Poll an approval",
    params(
        ("txn_id" = String, Path, description = "Transaction id"),
    ),
    responses(
        (status = 200, description = "Approval status and result", body = ApprovalPollView),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 404, description = "Not this agent's approval", body = ErrorBody),
    )
)]
pub async fn approval(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn_id): Path<String>,
) -> Response {
    let dir = state.directory.get();
    let auth = match authenticate(&dir, state.keys.mac(), &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let not_found = || {
        ProxyError::new(
            Reason::NotFound,
            format!("no approval {txn_id} for this agent"),
        )
        .with("txn_id", txn_id.clone())
        .into_response()
    };
    let a = match state.store.approval(&txn_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(),
        Err(e) => return ProxyError::from(e).into_response(),
    };
    let mine = auth
        .agents
        .iter()
        .any(|ag| ag.team_internal_id == a.agent_team_internal_id && ag.id == a.agent_id);
    if !mine {
        return not_found();
    }
    Json(crate::approval::results::poll_body(&a)).into_response()
}
