//! `POST /sign` (SPEC §6.4, §15): a signing key signs a payload, always
//! after human approval, whatever the credential's policy says.
//!
//! The approval captures the agent's body (payload, encoding, description)
//! and is bound to it by the request hash like a `/forward`; the signature
//! is made only by the executor once the approval is granted, from the key
//! in the current configuration, and is polled like any approval result
//! (status `forwarded`, `response.body` = `{"algorithm", "signature",
//! "public_key"}`). The private key never leaves the proxy.

use std::time::Instant;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tap_core::inject::{AuthMode, Injection};
use tap_core::target::TargetUrl;

use super::audit::AuditDraft;
use super::destination::{Resolved, rate_limit};
use super::resolve::{chosen_team, granted_credential};
use super::sign_result::{payload, usable_key};
use super::{Prefer, SUPPORTED_TAP_HEADERS, admit, header_str, refuse};
use crate::agent_views::{ErrorBody, PendingView};
use crate::directory::Directory;
use crate::error::{ProxyError, Reason};
use crate::request_id::RequestId;
use crate::state::AppState;

/// The method an approval for a signature shows.
pub const SIGN_METHOD: &str = "SIGN";
/// The policy reason of every signature: approval always.
pub const SIGN_POLICY_REASON: &str = "signing_key";

/// The `POST /sign` handler.
#[utoipa::path(
    post,
    path = "/sign",
    tag = "agent",
    summary = "Sign a payload with a signing key, after human approval",
    description = "X-TAP-Credential names a signing key (ed25519, secp256k1 or p256). Always needs approval; the result is polled like any approval: status forwarded, response.body = {\"algorithm\", \"signature\", \"public_key\"} in hex.",
    security(("agent_key" = [])),
    params(
        ("X-TAP-Credential" = String, Header, description = "The signing key, by name"),
        ("X-TAP-Team" = Option<String>, Header, description = "Another team the agent is linked to"),
        ("Prefer" = Option<String>, Header, description = "respond-async, or wait=N seconds"),
    ),
    request_body(content = serde_json::Value, description = "{\"payload\", \"encoding\": \"hex\"|\"base64\", \"payload_description\"?}", content_type = "application/json"),
    responses(
        (status = 200, description = "Approved and signed: {\"algorithm\", \"signature\", \"public_key\"}", body = serde_json::Value),
        (status = 202, description = "Waiting for approval", body = PendingView),
        (status = 400, description = "Refused (bad request)", body = ErrorBody),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 403, description = "Refused or denied", body = ErrorBody),
        (status = 404, description = "Unknown credential", body = ErrorBody),
        (status = 503, description = "Approval unavailable", body = ErrorBody),
        (status = 504, description = "Approval timed out", body = ErrorBody),
    )
)]
pub async fn sign_handler(
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
    draft.set_method(SIGN_METHOD);
    let resolved = match resolve_sign(&state, &dir, &auth, &parts.headers, body, &mut draft).await {
        Ok(r) => r,
        Err(e) => return refuse(e, draft).await,
    };
    draft.record.policy_reason = Some(SIGN_POLICY_REASON.into());
    draft.record.decision = "approval".into();
    let prepared = super::forward::Prepared {
        method: SIGN_METHOD.to_owned(),
        resolved,
    };
    let prefer = Prefer::parse(&parts.headers);
    super::approve::request_approval(&state, prepared, SIGN_POLICY_REASON.into(), draft, prefer)
        .await
}

/// Team, credential, grant and body checks of a `/sign` request.
async fn resolve_sign(
    state: &AppState,
    dir: &Directory,
    auth: &super::authenticate::Authenticated,
    headers: &HeaderMap,
    body: axum::body::Body,
    draft: &mut AuditDraft,
) -> Result<Resolved, ProxyError> {
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
    let primary = auth.primary();
    if auth.agents.len() == 1 {
        rate_limit(state, primary).await?;
    }
    let body =
        crate::http::body::read_body(body, state.config.max_body_bytes, state.config.body_timeout)
            .await?;
    draft.set_body(&body);
    let team = chosen_team(dir, auth, headers, draft)?;
    if team.leak_detector.find(&body).is_some() {
        draft.record.decision = "refused".into();
        return Err(ProxyError::new(
            Reason::SecretInRequest,
            "the request carries the value of a team credential; it was not signed",
        ));
    }
    let name = header_str(headers, "x-tap-credential")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ProxyError::new(
                Reason::NoCredential,
                "X-TAP-Credential must name a signing key",
            )
        })?;
    draft.set_credential(name);
    let (credential, agent) = granted_credential(state, auth, &team, name, draft).await?;
    let algorithm = usable_key(&credential)?;
    let url = display_target(algorithm.as_str())?;
    draft.set_target(url.as_str());
    // The payload must decode now: a human approves only a signable request.
    payload(&body)?;
    Ok(Resolved {
        agent_team_internal_id: agent.team_internal_id,
        team,
        credential,
        others: Vec::new(),
        legacy: false,
        url,
        injection: Injection::default(),
        token: None,
        auth_mode: AuthMode::Auto,
        headers: HeaderMap::new(),
        body,
    })
}

/// What approvals and audit rows show as the target of a signature.
fn display_target(algorithm: &str) -> Result<TargetUrl, ProxyError> {
    TargetUrl::parse(&format!("https://tap.invalid/sign/{algorithm}"))
        .map_err(|_| ProxyError::new(Reason::Internal, "sign target could not be built"))
}
