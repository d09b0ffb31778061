//! Where a request goes and what it carries, shared by the unified and the
//! placeholder resolve stages and the approval executor: the target URL, the
//! headers forwarded, the rate limit, host binding, outbound safety and
//! usability (SPEC §3.1 rows 3, 8–10).
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use bytes::Bytes;
use tap_core::inject::{
    AuthMode, InjectError, Injection, SignError, SignedShape, TokenShape, plan,
};
use tap_core::model::Connector;
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{TargetError, TargetUrl};

use super::guard::{bound_and_safe, checked_value};
use crate::directory::{AgentEntry, CredentialEntry, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::state::{AppState, RATE_WINDOW};

/// Headers never forwarded as the agent sent them (besides `x-tap-*`, `x-oauth-*` and injected ones).
pub(super) const STRIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-real-ip",
    "x-client-ip",
    // Addressed to the proxy (RFC 7240: respond-async, wait=N); some upstreams
    // (Microsoft Graph) act on it.
    "prefer",
    // Routing overrides some upstream frameworks obey instead of the path.
    "x-original-url",
    "x-rewrite-url",
    "x-override-url",
    "x-original-host",
    "x-host",
    "x-http-host-override",
];

/// What the agent named as target before the credential is known.
pub(super) enum RawTarget {
    Absolute(TargetUrl),
    Path(String),
}

/// Everything the forward stage needs. Invariant: every check of rows 1–10 passed.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) team: Arc<TeamEntry>,
    pub(crate) agent_team_internal_id: i64,
    /// The credential (the first referenced one in legacy placeholder mode).
    pub(crate) credential: Arc<CredentialEntry>,
    /// Legacy placeholder mode: the other referenced credentials, in reference
    /// order, each passed rows 6–10 like `credential`. Empty otherwise.
    pub(crate) others: Vec<Arc<CredentialEntry>>,
    /// True in legacy placeholder mode: `injection` substitutes placeholders.
    pub(crate) legacy: bool,
    pub(crate) url: TargetUrl,
    /// What is injected; for an OAuth 2 bundle empty until [`authorize`].
    pub(crate) injection: Injection,
    /// An OAuth 2 bundle's token flow, run by [`authorize`] only once the
    /// request may be sent: a refused request makes no token call.
    pub(crate) token: Option<TokenShape>,
    /// `X-TAP-Auth-Mode` (kept for an approved request's injection).
    pub(crate) auth_mode: AuthMode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

pub(super) fn target_error(e: &TargetError) -> ProxyError {
    ProxyError::new(
        Reason::InvalidTarget,
        format!("X-TAP-Target is not usable: {e}"),
    )
}

/// Counts the request against the agent's limit: in this process, or in the
/// store when replicas share it (a limit of N allows N across all of them).
pub(super) async fn rate_limit(state: &AppState, agent: &AgentEntry) -> Result<(), ProxyError> {
    let Some(limit) = agent.rate_limit_per_hour else {
        return Ok(());
    };
    let refused = if state.config.shared_store {
        let window = i64::try_from(RATE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        state
            .store
            .take_rate(
                agent.team_internal_id,
                &agent.id,
                limit,
                window,
                state.clock.now_ms(),
            )
            .await?
            .map(|ms| {
                u64::try_from(ms.saturating_add(999) / 1000)
                    .unwrap_or(1)
                    .max(1)
            })
    } else {
        state
            .rate
            .check(agent.team_internal_id, &agent.id, limit, Instant::now())
            .err()
    };
    if let Some(retry) = refused {
        let mut e = ProxyError::new(
            Reason::RateLimited,
            format!(
                "agent {} reached its limit of {limit} requests per hour",
                agent.id
            ),
        )
        .with("retry_after", retry);
        e.retry_after = Some(retry);
        return Err(e);
    }
    Ok(())
}

/// Row 8's URL: an absolute target for a direct credential, a path joined to
/// the `api_base` of a relative-target one. `true` when the path holds `..`
/// (refused at row 10, after the host checks).
pub(super) fn target_url(
    target: &RawTarget,
    credential: &CredentialEntry,
) -> Result<(TargetUrl, bool), ProxyError> {
    let name = credential.name.as_str();
    let mut traversal = false;
    let url = match (target, credential.relative_target) {
        (RawTarget::Absolute(u), false) => u.clone(),
        (RawTarget::Path(_), false) => {
            return Err(ProxyError::new(
                Reason::InvalidTarget,
                format!("credential {name} needs an absolute http(s) URL in X-TAP-Target"),
            ));
        }
        (RawTarget::Absolute(_), true) => {
            return Err(ProxyError::new(
                Reason::InvalidTarget,
                format!("credential {name} takes a path in X-TAP-Target, appended to its api_base"),
            ));
        }
        (RawTarget::Path(p), true) => {
            let Some(base) = credential.api_base.as_ref() else {
                return Err(ProxyError::new(
                    Reason::InvalidTarget,
                    format!("credential {name} has no usable api_base for relative targets"),
                ));
            };
            match TargetUrl::join_relative(base, p) {
                Ok(u) => u,
                Err(TargetError::PathTraversal) => {
                    traversal = true;
                    base.clone()
                }
                Err(e) => return Err(target_error(&e)),
            }
        }
    };
    Ok((url, traversal))
}

/// The agent's headers minus what it may not set: hop-by-hop and proxy-addressed
/// headers, `X-TAP-*`, `X-OAuth-*`, headers `Connection` names and `injected` ones.
pub(crate) fn forwarded_headers(headers: &HeaderMap, injected: &[String]) -> HeaderMap {
    let mut fwd = HeaderMap::with_capacity(headers.len());
    let conn_named: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (n, v) in headers {
        let ns = n.as_str();
        if ns.starts_with("x-tap-")
            || ns.starts_with("x-oauth-")
            || STRIPPED.contains(&ns)
            || conn_named.iter().any(|c| c == ns)
            || injected.iter().any(|h| h == ns)
        {
            continue;
        }
        fwd.append(n.clone(), v.clone());
    }
    fwd
}

/// What rows 8–10 settle about injection.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// What is injected (empty for an OAuth 2 bundle).
    pub(crate) injection: Injection,
    /// An OAuth 2 bundle (§6.3): its access token is minted (or taken from
    /// the cache) by [`authorize`], after the policy decision or approval.
    pub(crate) token: Option<TokenShape>,
}

impl From<Injection> for Plan {
    fn from(injection: Injection) -> Self {
        Self {
            injection,
            token: None,
        }
    }
}

/// The inject stage of a request that may be sent (policy proceeded, or a
/// human approved it): runs the token flow `resolve` left, so an access
/// token is never fetched for a request that is refused, waits for a human
/// or is denied.
pub(crate) async fn authorize(state: &AppState, r: &mut Resolved) -> Result<(), ProxyError> {
    if let Some(shape) = r.token.take() {
        r.injection = minted(state, &r.credential, shape).await?;
    }
    Ok(())
}

/// The injection of a [`Plan`]'s token flow for `credential`, whose value passed row 10.
pub(crate) async fn minted(
    state: &AppState,
    credential: &CredentialEntry,
    shape: TokenShape,
) -> Result<Injection, ProxyError> {
    let Some(value) = checked_value(credential, false, false)? else {
        return Err(ProxyError::new(
            Reason::Internal,
            "credential value could not be opened",
        ));
    };
    super::token_flow::token_injection(state, credential, value, shape).await
}

/// Rows 8–10 for a resolved URL: host binding, outbound safety, usable value, injection plan.
/// Also the re-check of an approved request before it is forwarded.
pub(crate) async fn destination_and_injection(
    state: &AppState,
    credential: &CredentialEntry,
    url: &TargetUrl,
    traversal: bool,
    mode: AuthMode,
) -> Result<Plan, ProxyError> {
    if credential.connector == Connector::Sidecar {
        return super::sidecar::injection(state, credential, url, traversal)
            .await
            .map(Plan::from);
    }
    let value = usable_destination(state, credential, url, traversal).await?;
    let name = credential.name.as_str();
    // OAuth 2 bundles (§6.3): an access token minted (or cached) once the
    // request may be sent.
    if let Some(shape) = TokenShape::for_credential(
        credential.auth_header_format.as_deref(),
        !credential.bindings.is_empty(),
        value,
    ) {
        return Ok(Plan {
            token: Some(shape),
            ..Plan::default()
        });
    }
    // A §6.3 shape is signed per request, at send time, over exactly what is sent.
    if let Some(shape) = SignedShape::for_credential(
        credential.auth_header_format.as_deref(),
        !credential.bindings.is_empty(),
        value,
    ) {
        if shape == SignedShape::OAuth1 && mode == AuthMode::Bearer {
            return hybrid_bearer(name, value).map(Plan::from);
        }
        let signer =
            tap_signer::signer_for(shape, value, url.url()).map_err(|e| sign_error(name, e))?;
        return Ok(Injection::signed(signer).into());
    }
    plan(
        credential.auth_header_format.as_deref(),
        &credential.bindings,
        value,
    )
    .map_err(|e| match e {
        InjectError::FieldMissing(f) => ProxyError::new(
            Reason::CredentialFieldMissing,
            format!("credential {name} has no field {f:?} for its binding"),
        )
        .with("field", f),
        InjectError::MultiSecretUnbound => ProxyError::new(
            Reason::MultiSecretUnbound,
            format!("credential {name} holds several secrets but has no bindings for them"),
        ),
        InjectError::ControlChar => ProxyError::new(
            Reason::InvalidHeader,
            format!("credential {name} renders a header value with a control character"),
        ),
        InjectError::BadFormat(_) | InjectError::BadBinding(_) => ProxyError::new(
            Reason::Internal,
            format!("credential {name} has an invalid injection format"),
        ),
    })
    .map(Plan::from)
}

/// `X-TAP-Auth-Mode: bearer` on a hybrid X/Twitter key set: its
/// `bearer_token` as `Authorization: Bearer`, nothing signed.
fn hybrid_bearer(name: &str, value: &CredentialValue) -> Result<Injection, ProxyError> {
    let token = value.field("bearer_token").ok_or_else(|| {
        ProxyError::new(
            Reason::CredentialFieldMissing,
            format!("credential {name} has no field \"bearer_token\" for X-TAP-Auth-Mode: bearer"),
        )
        .with("field", "bearer_token")
    })?;
    if token
        .expose()
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || b == 0)
    {
        return Err(ProxyError::new(
            Reason::InvalidHeader,
            format!("credential {name} renders a header value with a control character"),
        ));
    }
    let mut header = b"Bearer ".to_vec();
    header.extend_from_slice(token.expose());
    Ok(Injection {
        headers: vec![("authorization".to_owned(), Secret::new(header))],
        ..Injection::default()
    })
}

/// The refusal for a key set a signer cannot use, or a failed signature.
/// Names fields, never values.
pub(crate) fn sign_error(name: &str, e: SignError) -> ProxyError {
    match e {
        SignError::FieldMissing(f) => ProxyError::new(
            Reason::CredentialFieldMissing,
            format!("credential {name} has no field {f:?}, which its signing scheme needs"),
        )
        .with("field", f),
        SignError::Unsupported { field, value } => ProxyError::new(
            Reason::CredentialFieldMissing,
            format!("credential {name} names {field} {value:?}, which is not supported"),
        )
        .with("field", field),
        SignError::ControlChar => ProxyError::new(
            Reason::InvalidHeader,
            format!("credential {name} signs a header value with a control character"),
        ),
        SignError::Random | SignError::Failed => {
            tracing::error!(credential = %name, error = %e, "request could not be signed");
            ProxyError::new(Reason::Internal, "the request could not be signed")
        }
    }
}

/// Rows 8–10 without the injection plan: host binding, outbound safety, and a
/// value that may be sent (set, not a signing key, direct connector, no `..`).
/// Answers the value.
pub(crate) async fn usable_destination<'c>(
    state: &AppState,
    credential: &'c CredentialEntry,
    url: &TargetUrl,
    traversal: bool,
) -> Result<&'c CredentialValue, ProxyError> {
    let name = credential.name.as_str();
    bound_and_safe(state, credential, url).await?;
    let Some(value) = checked_value(credential, traversal, false)? else {
        return Err(ProxyError::new(
            Reason::Internal,
            "credential value could not be opened",
        ));
    };
    if credential.connector != Connector::Direct {
        // Legacy placeholders are substituted by the proxy; a sidecar
        // credential is only ever used through its sidecar (SPEC §6.2).
        return Err(ProxyError::new(
            Reason::NoCredential,
            format!("credential {name} is served by a sidecar: name it in X-TAP-Credential"),
        ));
    }
    Ok(value)
}
