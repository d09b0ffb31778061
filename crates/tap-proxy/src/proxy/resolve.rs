//! Rows 3–10 of SPEC §3.1: rate limit, target, body, team, leak blocking,
//! credential, grant, host binding, outbound safety, usability; the shared
//! pieces live in [`super::destination`].

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use tap_core::inject::AuthMode;
use tap_core::target::TargetUrl;

use super::audit::AuditDraft;
use super::authenticate::Authenticated;
use super::destination::{
    Plan, RawTarget, Resolved, destination_and_injection, forwarded_headers, rate_limit,
    target_error, target_url,
};
use super::header_str;
use crate::directory::{AgentEntry, CredentialEntry, Directory, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

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
        rate_limit(state, auth.primary()).await?;
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
    // Row 5.
    let team = chosen_team(dir, auth, headers, draft)?;
    let primary = auth.primary();
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
    let (credential, agent) = granted_credential(state, auth, &team, name, draft).await?;
    // Row 8.
    let (url, traversal) = target_url(&target, &credential)?;
    draft.set_target(url.as_str());
    // Validated at row 2a: anything else was refused as `invalid_auth_mode`.
    let auth_mode = header_str(headers, "x-tap-auth-mode")?
        .and_then(AuthMode::parse)
        .unwrap_or_default();
    // A token flow waits for the policy decision (`destination::authorize`).
    let Plan { injection, token } =
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
        token,
        auth_mode,
        headers: fwd,
        body,
    })
}

/// Row 5: the home team, or the team `X-TAP-Team` names when one of the
/// presented keys is linked to it; a linked team's credentials, policies and
/// audit then apply.
pub(crate) fn chosen_team(
    dir: &Directory,
    auth: &Authenticated,
    headers: &HeaderMap,
    draft: &mut AuditDraft,
) -> Result<Arc<TeamEntry>, ProxyError> {
    let primary = auth.primary();
    let team = match header_str(headers, "x-tap-team")?.filter(|t| !t.is_empty()) {
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
            _ => {
                return Err(ProxyError::new(
                    Reason::TeamNotLinked,
                    format!("agent {} is not linked to team {slug}", primary.id),
                )
                .with("team", slug));
            }
        },
    }
    .ok_or_else(|| ProxyError::new(Reason::Internal, "agent's team is missing"))?;
    if team.internal_id != primary.team_internal_id {
        draft.set_team(team.internal_id, &team.slug, Arc::clone(&team.all_secrets));
        draft.record.agent_home_team = Some(primary.team.clone());
    }
    Ok(team)
}

/// Rows 6–7: credential `name` of `team` and the first presented key granted
/// it there (directly, by role or by link role), which the audit row then
/// names; with several keys, row 3's rate limit applies to that key.
pub(crate) async fn granted_credential(
    state: &AppState,
    auth: &Authenticated,
    team: &TeamEntry,
    name: &str,
    draft: &mut AuditDraft,
) -> Result<(Arc<CredentialEntry>, Arc<AgentEntry>), ProxyError> {
    let credential = team.credentials.get(name).cloned().ok_or_else(|| {
        ProxyError::new(
            Reason::CredentialNotFound,
            format!("credential {name} does not exist in team {}", team.slug),
        )
        .with("credential", name)
    })?;
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
                format!("agent {} may not use credential {name}", auth.primary().id),
            )
            .with("credential", name)
        })?;
    if auth.agents.len() > 1 {
        rate_limit(state, &agent).await?;
    }
    draft.record.agent_id.clone_from(&agent.id);
    draft.record.agent_home_team =
        (agent.team_internal_id != team.internal_id).then(|| agent.team.clone());
    Ok((credential, agent))
}
