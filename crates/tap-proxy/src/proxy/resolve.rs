//! Rows 3–10 of SPEC §3.1: rate limit, target, body, team, leak blocking,
//! credential, grant, host binding, outbound safety, usability.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use tap_core::inject::{AuthMode, InjectError, Injection, SignError, SignedShape, plan};
use tap_core::model::Connector;
use tap_core::secret::CredentialValue;
use tap_core::secret::Secret;
use tap_core::target::{TargetError, TargetUrl};

use super::audit::AuditDraft;
use super::authenticate::Authenticated;
use super::header_str;
use crate::directory::{AgentEntry, CredentialEntry, Directory, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::outbound::GuardError;
use crate::state::AppState;

/// Headers never forwarded as the agent sent them (besides `x-tap-*`, `x-oauth-*` and injected ones).
const STRIPPED: &[&str] = &[
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
    pub(crate) injection: Injection,
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

pub(super) fn rate_limit(state: &AppState, agent: &AgentEntry) -> Result<(), ProxyError> {
    if let Some(limit) = agent.rate_limit_per_hour
        && let Err(retry) =
            state
                .rate
                .check(agent.team_internal_id, &agent.id, limit, Instant::now())
    {
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

pub(crate) async fn resolve(
    state: &AppState,
    dir: &Directory,
    auth: &Authenticated,
    headers: &HeaderMap,
    body: Body,
    draft: &mut AuditDraft,
) -> Result<Resolved, ProxyError> {
    // Row 3 (single key; with several keys it applies to the key that owns the grant, below).
    if auth.agents.len() == 1 {
        rate_limit(state, auth.primary())?;
    }
    // Row 4.
    let raw_target = header_str(headers, "x-tap-target")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProxyError::new(Reason::MissingTarget, "X-TAP-Target header is missing"))?;
    let target = if raw_target.starts_with('/') && !raw_target.starts_with("//") {
        RawTarget::Path(raw_target.to_owned())
    } else {
        RawTarget::Absolute(TargetUrl::parse(raw_target).map_err(|e| target_error(&e))?)
    };
    // Row 4a: the whole body within TAP_BODY_TIMEOUT_SECS (408) and TAP_MAX_BODY_BYTES (413).
    let body =
        crate::http::body::read_body(body, state.config.max_body_bytes, state.config.body_timeout)
            .await?;
    draft.set_body(&body);
    // Row 5: the home team, or a team one of the presented keys is linked to.
    let primary = auth.primary();
    let team_slug = header_str(headers, "x-tap-team")?.filter(|t| !t.is_empty());
    let not_linked = |slug: &str| {
        ProxyError::new(
            Reason::TeamNotLinked,
            format!("agent {} is not linked to team {slug}", primary.id),
        )
        .with("team", slug)
    };
    let team = match team_slug {
        None => dir.teams.get(&primary.team_internal_id).cloned(),
        Some(slug) => match dir.team_by_slug(slug) {
            Some(t)
                if auth
                    .agents
                    .iter()
                    .any(|a| a.credentials_in(t.internal_id).is_some()) =>
            {
                Some(Arc::clone(t))
            }
            _ => return Err(not_linked(slug)),
        },
    }
    .ok_or_else(|| ProxyError::new(Reason::Internal, "agent's team is missing"))?;
    if team.internal_id != primary.team_internal_id {
        // A linked team's credentials, policies and audit apply.
        draft.set_team(team.internal_id, &team.slug, Arc::clone(&team.all_secrets));
        draft.record.agent_home_team = Some(primary.team.clone());
    }
    // Row 5a: an agent should never hold a secret: of this team, nor of the
    // home team of any key presented (a linked team's upstream must not carry
    // those away, nor its audit chain store them).
    let mut detectors = vec![Arc::clone(&team.leak_detector)];
    for a in &auth.agents {
        if let Some(home) = dir.teams.get(&a.team_internal_id)
            && home.internal_id != team.internal_id
        {
            if !detectors
                .iter()
                .any(|d| Arc::ptr_eq(d, &home.leak_detector))
            {
                detectors.push(Arc::clone(&home.leak_detector));
            }
            draft.also_scrub(Arc::clone(&home.all_secrets));
        }
    }
    let find = |bytes: &[u8]| {
        detectors
            .iter()
            .find_map(|d| d.find(bytes).map(str::to_owned))
    };
    let leak = find(raw_target.as_bytes())
        .or_else(|| {
            // Header names too: a name can carry a (lower-case) secret just as well as a value.
            headers
                .iter()
                .filter(|(n, _)| n.as_str() != "x-tap-key")
                .find_map(|(n, v)| find(n.as_str().as_bytes()).or_else(|| find(v.as_bytes())))
        })
        .or_else(|| find(&body));
    if let Some(label) = leak {
        tracing::warn!(agent = %primary.id, team = %team.slug, secret = %label, "leak attempt: request carries a credential value");
        draft.record.decision = "refused".into();
        return Err(ProxyError::new(
            Reason::SecretInRequest,
            "the request carries the value of a team credential; it was not forwarded",
        ));
    }
    // Row 6.
    let Some(name) = header_str(headers, "x-tap-credential")?.filter(|c| !c.is_empty()) else {
        // Legacy placeholder mode (SPEC §3.2).
        let raw = super::placeholders::Raw {
            target: &target,
            raw_target,
            headers,
            body,
        };
        return super::placeholders::resolve(state, auth, team, raw, draft).await;
    };
    let credential = team.credentials.get(name).cloned().ok_or_else(|| {
        ProxyError::new(
            Reason::CredentialNotFound,
            format!("credential {name} does not exist in team {}", team.slug),
        )
        .with("credential", name)
    })?;
    // Row 7: the first key granted the credential in this team (directly, by role or by link role).
    let agent = auth
        .agents
        .iter()
        .find(|a| {
            a.credentials_in(team.internal_id)
                .is_some_and(|c| c.contains(name))
        })
        .cloned()
        .ok_or_else(|| {
            ProxyError::new(
                Reason::CredentialNotGranted,
                format!("agent {} may not use credential {name}", primary.id),
            )
            .with("credential", name)
        })?;
    if auth.agents.len() > 1 {
        rate_limit(state, &agent)?;
    }
    draft.record.agent_id.clone_from(&agent.id);
    draft.record.agent_home_team =
        (agent.team_internal_id != team.internal_id).then(|| agent.team.clone());
    // Row 8.
    let (url, traversal) = target_url(&target, &credential)?;
    draft.set_target(url.as_str());
    // Validated at row 2a: anything else was refused as `invalid_auth_mode`.
    let auth_mode = header_str(headers, "x-tap-auth-mode")?
        .and_then(AuthMode::parse)
        .unwrap_or_default();
    let injection =
        destination_and_injection(state, &credential, &url, traversal, auth_mode).await?;
    let fwd = forwarded_headers(headers, &credential.injected_headers);
    Ok(Resolved {
        agent_team_internal_id: agent.team_internal_id,
        team,
        credential,
        others: Vec::new(),
        legacy: false,
        url,
        injection,
        auth_mode,
        headers: fwd,
        body,
    })
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

/// Rows 8–10 for a resolved URL: host binding, outbound safety, usable value, injection plan.
/// Also the re-check of an approved request before it is forwarded.
pub(crate) async fn destination_and_injection(
    state: &AppState,
    credential: &CredentialEntry,
    url: &TargetUrl,
    traversal: bool,
    mode: AuthMode,
) -> Result<Injection, ProxyError> {
    let value = usable_destination(state, credential, url, traversal).await?;
    let name = credential.name.as_str();
    // A §6.3 shape is signed per request, at send time, over exactly what is sent.
    if let Some(shape) = SignedShape::for_credential(
        credential.auth_header_format.as_deref(),
        !credential.bindings.is_empty(),
        value,
    ) {
        if shape == SignedShape::OAuth1 && mode == AuthMode::Bearer {
            return hybrid_bearer(name, value);
        }
        let signer =
            tap_signer::signer_for(shape, value, url.url()).map_err(|e| sign_error(name, e))?;
        return Ok(Injection::signed(signer));
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
    if !credential.allowed_hosts.matches(url) {
        return Err(ProxyError::new(
            Reason::HostNotAllowed,
            format!(
                "host {} is not in the allowed_hosts of credential {name}",
                url.host_str()
            ),
        )
        .with("host", url.host_str())
        .with("credential", name));
    }
    // Row 9.
    let not_allowed = || {
        ProxyError::new(
            Reason::TargetNotAllowed,
            format!(
                "destination {} is a private or reserved address",
                url.host_str()
            ),
        )
        .with("host", url.host_str())
    };
    if let Some(ip) = url.ip() {
        if !state
            .resolver
            .rule()
            .permits(url.host_str(), ip, &credential.allowed_hosts)
        {
            return Err(not_allowed());
        }
    } else {
        match state.resolver.resolve(url.host_str(), url.port()).await {
            Ok(_) => {}
            Err(GuardError::Refused { .. }) => return Err(not_allowed()),
            Err(GuardError::Unresolvable { host }) => {
                return Err(ProxyError::new(
                    Reason::UpstreamError,
                    format!("could not resolve {host}"),
                )
                .with("target", url.as_str()));
            }
        }
    }
    // Row 10.
    let value = match &credential.value {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(ProxyError::new(
                Reason::CredentialValueMissing,
                format!("credential {name} has no value set"),
            )
            .with("credential", name));
        }
        Err(_) => {
            return Err(ProxyError::new(
                Reason::Internal,
                "credential value could not be opened",
            ));
        }
    };
    if credential.signing_key {
        return Err(ProxyError::new(
            Reason::SigningKeyOnForward,
            format!("credential {name} is a signing key and cannot be forwarded"),
        ));
    }
    if traversal {
        return Err(ProxyError::new(
            Reason::PathTraversal,
            "the target path contains '..'",
        ));
    }
    if credential.connector != Connector::Direct {
        return Err(ProxyError::new(
            Reason::Internal,
            format!("credential {name} uses a connector this build does not support"),
        ));
    }
    Ok(value)
}
