//! Legacy placeholder mode (SPEC §3.2): a request without `X-TAP-Credential`
//! names its credentials as `<CREDENTIAL:name>` / `<CREDENTIAL:name.field>`
//! in `Authorization`, `X-Api-Key`, `X-Auth-Token` or a header the credential
//! binds; the proxy substitutes them there and nowhere else.
//!
//! Row 6 in this mode: a placeholder in any other position (another header,
//! the URL, the body) is 400 `placeholder_position_violation` naming the
//! location; no placeholder at all is 400 `no_credential`. Then every
//! referenced credential passes rows 6–10 on its own (exists, granted to the
//! key, target host allowed, usable), policy runs for each and the strictest
//! outcome wins (`super::prepare`), the answer is scrubbed of every
//! referenced secret and the audit row names every credential.

use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use tap_core::inject::Injection;
use tap_core::placeholder::{ALLOWED_HEADERS, Reference, Segment, find_marker, parse};
use tap_core::scrub::{ScrubSecret, Scrubber};
use tap_core::secret::{CredentialValue, Secret};

use super::audit::AuditDraft;
use super::authenticate::Authenticated;
use super::destination::{
    RawTarget, Resolved, forwarded_headers, rate_limit, target_url, usable_destination,
};
use crate::directory::{CredentialEntry, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// The request as the resolve stage read it, before any credential is known.
pub(super) struct Raw<'r> {
    pub(super) target: &'r RawTarget,
    /// `X-TAP-Target` as sent.
    pub(super) raw_target: &'r str,
    pub(super) headers: &'r HeaderMap,
    pub(super) body: Bytes,
}

impl Resolved {
    /// Every credential this request uses: one, or each referenced one in order.
    pub(crate) fn credentials(&self) -> impl Iterator<Item = &Arc<CredentialEntry>> {
        std::iter::once(&self.credential).chain(self.others.iter())
    }

    /// The names of [`Self::credentials`].
    pub(crate) fn credential_names(&self) -> Vec<String> {
        self.credentials().map(|c| c.name.clone()).collect()
    }

    /// Scrubs every secret of every credential the request uses.
    pub(crate) fn scrubber(&self) -> Arc<Scrubber> {
        if self.others.is_empty() {
            return self.credential.scrubber();
        }
        combined_scrubber(self.credentials().map(|c| &**c))
    }
}

/// One scrubber for the secrets of several credentials (labels stay per credential).
pub(crate) fn combined_scrubber<'c>(
    credentials: impl IntoIterator<Item = &'c CredentialEntry>,
) -> Arc<Scrubber> {
    let mut secrets: Vec<(String, Secret)> = Vec::new();
    for c in credentials {
        if let Ok(Some(v)) = &c.value {
            secrets.extend(v.secrets(&c.name));
        }
    }
    Arc::new(Scrubber::new(secrets.iter().map(|(label, s)| {
        ScrubSecret {
            label,
            value: s.expose(),
        }
    })))
}

fn violation(location: &str, what: &str) -> ProxyError {
    ProxyError::new(
        Reason::PlaceholderPositionViolation,
        format!(
            "a <CREDENTIAL:...> placeholder in {what} is never substituted; nothing was forwarded"
        ),
    )
    .with("location", location)
}

fn invalid(header: &str, detail: &str) -> ProxyError {
    ProxyError::new(
        Reason::InvalidPlaceholder,
        format!("placeholder in header {header}: {detail}"),
    )
    .with("location", format!("header:{header}"))
}

/// True when a placeholder of `credential` may stand in header `name` (lower-case).
fn header_allowed(name: &str, credential: Option<&CredentialEntry>) -> bool {
    ALLOWED_HEADERS.contains(&name)
        || credential.is_some_and(|c| c.injected_headers.iter().any(|h| h == name))
}

/// Row 6 in legacy mode: every placeholder in an allowed position and well
/// formed. Answers the referenced credential names, distinct, in order of
/// first reference (empty: the request has none).
pub(crate) fn referenced(
    team: &TeamEntry,
    raw_target: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, ProxyError> {
    if find_marker(raw_target.as_bytes()).is_some() {
        return Err(violation("url", "the URL (X-TAP-Target)"));
    }
    let mut names: Vec<String> = Vec::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n == "x-tap-key" || n == "x-tap-target" {
            continue;
        }
        if find_marker(value.as_bytes()).is_none() {
            continue;
        }
        let location = format!("header:{n}");
        let Ok(text) = value.to_str() else {
            return Err(violation(&location, &format!("header {n}")));
        };
        let segments = parse(text).map_err(|e| {
            if ALLOWED_HEADERS.contains(&n) {
                invalid(n, &e.to_string())
            } else {
                violation(&location, &format!("header {n}"))
            }
        })?;
        let mut any = false;
        for seg in &segments {
            match seg {
                Segment::Literal(l) => {
                    // An escaped marker next to real ones would go upstream verbatim.
                    if find_marker(l.as_bytes()).is_some() {
                        return Err(if ALLOWED_HEADERS.contains(&n) {
                            invalid(n, "an escaped placeholder is never substituted")
                        } else {
                            violation(&location, &format!("header {n}"))
                        });
                    }
                }
                Segment::Reference(Reference { credential, .. }) => {
                    any = true;
                    let entry = team.credentials.get(*credential).map(|c| &**c);
                    if !header_allowed(n, entry) {
                        return Err(violation(&location, &format!("header {n}")));
                    }
                    if !names.iter().any(|c| c == credential) {
                        names.push((*credential).to_owned());
                    }
                }
            }
        }
        if !any {
            return Err(if ALLOWED_HEADERS.contains(&n) {
                invalid(n, "an escaped placeholder is never substituted")
            } else {
                violation(&location, &format!("header {n}"))
            });
        }
        if headers.get_all(name).iter().count() > 1 {
            return Err(invalid(n, "the header appears more than once"));
        }
    }
    if find_marker(body).is_some() {
        return Err(violation("body", "the request body"));
    }
    Ok(names)
}

/// The substituted header values: every placeholder replaced by its
/// credential's value (or field). Rows 6–10 passed for every credential named.
pub(crate) fn substitute(
    headers: &HeaderMap,
    credentials: &[&CredentialEntry],
) -> Result<Injection, ProxyError> {
    let mut injection = Injection::default();
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("x-tap-") || find_marker(value.as_bytes()).is_none() {
            continue;
        }
        let text = value
            .to_str()
            .map_err(|_| invalid(n, "the header is not visible ASCII"))?;
        let segments = parse(text).map_err(|e| invalid(n, &e.to_string()))?;
        let mut out: Vec<u8> = Vec::with_capacity(text.len() + 64);
        for seg in segments {
            match seg {
                Segment::Literal(l) => out.extend_from_slice(l.as_bytes()),
                Segment::Reference(r) => {
                    let c = credentials
                        .iter()
                        .find(|c| c.name == r.credential)
                        .ok_or_else(|| {
                            ProxyError::new(
                                Reason::Internal,
                                "a referenced credential was not resolved",
                            )
                        })?;
                    out.extend_from_slice(reference_value(c, &r)?.expose());
                }
            }
        }
        if out.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ProxyError::new(
                Reason::InvalidHeader,
                format!("header {n} would carry a control character after substitution"),
            ));
        }
        injection.headers.push((n.to_owned(), Secret::new(out)));
    }
    Ok(injection)
}

/// The secret one placeholder stands for.
fn reference_value(c: &CredentialEntry, r: &Reference<'_>) -> Result<Secret, ProxyError> {
    let name = c.name.as_str();
    let Ok(Some(value)) = &c.value else {
        return Err(ProxyError::new(
            Reason::CredentialValueMissing,
            format!("credential {name} has no value set"),
        )
        .with("credential", name));
    };
    match (value, r.field) {
        (CredentialValue::Text(s), None) => Ok(s.clone()),
        (CredentialValue::Json(_), None) => Err(ProxyError::new(
            Reason::MultiSecretUnbound,
            format!(
                "credential {name} holds several secrets: reference one as <CREDENTIAL:{name}.field>"
            ),
        )
        .with("credential", name)),
        (v, Some(f)) => v.field(f).ok_or_else(|| {
            ProxyError::new(
                Reason::CredentialFieldMissing,
                format!("credential {name} has no string field {f:?}"),
            )
            .with("credential", name)
            .with("field", f)
        }),
    }
}

/// Rows 6–10 in legacy placeholder mode (after the leak check of row 5a).
pub(super) async fn resolve(
    state: &AppState,
    auth: &Authenticated,
    team: Arc<TeamEntry>,
    raw: Raw<'_>,
    draft: &mut AuditDraft,
) -> Result<Resolved, ProxyError> {
    // Row 6: positions, then at least one placeholder.
    let names = referenced(&team, raw.raw_target, raw.headers, &raw.body)?;
    if names.is_empty() {
        return Err(ProxyError::new(
            Reason::NoCredential,
            "no X-TAP-Credential header and no <CREDENTIAL:name> placeholder: name the credential to use",
        ));
    }
    draft.record.credential_names = names
        .iter()
        .map(|n| draft.team_scrubber.scrub_str(n).0)
        .collect();
    let mut credentials: Vec<Arc<CredentialEntry>> = Vec::with_capacity(names.len());
    for name in &names {
        let c = team.credentials.get(name).cloned().ok_or_else(|| {
            ProxyError::new(
                Reason::CredentialNotFound,
                format!("credential {name} does not exist in team {}", team.slug),
            )
            .with("credential", name.as_str())
        })?;
        credentials.push(c);
    }
    // Row 7: the first key granted every referenced credential in this team.
    let granted_all = |a: &crate::directory::AgentEntry| {
        a.credentials_in(team.internal_id)
            .is_some_and(|c| names.iter().all(|n| c.contains(n)))
    };
    let Some(agent) = auth.agents.iter().find(|a| granted_all(a)).cloned() else {
        let primary = auth.primary();
        let missing = names
            .iter()
            .find(|n| {
                !primary
                    .credentials_in(team.internal_id)
                    .is_some_and(|c| c.contains(*n))
            })
            .unwrap_or(&names[0]);
        return Err(ProxyError::new(
            Reason::CredentialNotGranted,
            format!("agent {} may not use credential {missing}", primary.id),
        )
        .with("credential", missing.as_str()));
    };
    if auth.agents.len() > 1 {
        rate_limit(state, &agent).await?;
    }
    draft.record.agent_id.clone_from(&agent.id);
    draft.record.agent_home_team =
        (agent.team_internal_id != team.internal_id).then(|| agent.team.clone());
    // Row 8: the URL as the first credential reads it; every credential's
    // hosts must allow it (rows 8–10 per credential, in reference order).
    let (url, traversal) = target_url(raw.target, &credentials[0])?;
    draft.set_target(url.as_str());
    for c in &credentials {
        usable_destination(state, c, &url, traversal).await?;
    }
    let refs: Vec<&CredentialEntry> = credentials.iter().map(|c| &**c).collect();
    let injection = substitute(raw.headers, &refs)?;
    let fwd = forwarded_headers(raw.headers, &[]);
    let mut all = credentials.into_iter();
    let Some(credential) = all.next() else {
        return Err(ProxyError::new(Reason::Internal, "no credential resolved"));
    };
    Ok(Resolved {
        agent_team_internal_id: agent.team_internal_id,
        team,
        credential,
        others: all.collect(),
        legacy: true,
        url,
        injection,
        token: None,
        auth_mode: tap_core::inject::AuthMode::Auto,
        headers: fwd,
        body: raw.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_headers_are_open_to_every_credential() {
        for h in ["authorization", "x-api-key", "x-auth-token"] {
            assert!(header_allowed(h, None));
        }
        for h in ["x-custom", "cookie", "x-echo", "content-type"] {
            assert!(!header_allowed(h, None));
        }
    }
}
