//! The sidecar hop of SPEC §6.2: a `connector: sidecar` credential is not
//! injected by the proxy but sent, with control headers, to the sidecar at
//! its `api_base`, which signs and forwards the request itself.
//!
//! - Relative targets: the request goes to `api_base` + path.
//! - Absolute targets: the request goes to `api_base`; the agent's URL (bound
//!   to `allowed_hosts` like any target) travels in `X-OAuth-Target`.
//!
//! Control headers: `X-OAuth-Credential` (the name), `X-OAuth-Target` (always
//! the absolute URL), `X-TAP-Method` (set when the request is built), and —
//! only to a sidecar on a loopback address or in `TAP_TRUSTED_SIDECARS` —
//! `X-OAuth-Credential-Data` (the value) and `X-OAuth-Signer-Secret`
//! (`TAP_SIGNER_SECRET`). A value that would go to any other sidecar is
//! refused (`sidecar_not_trusted`); a sidecar holding its own keys needs no
//! value. Agent-supplied `X-OAuth-*` never pass (see `forwarded_headers`).
//! The sidecar's address is checked by the outbound guard like any target
//! and never shown to agents.

use tap_core::inject::Injection;
use tap_core::scrub::{ScrubSecret, Scrubber};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::TargetUrl;
use zeroize::Zeroizing;

use super::guard::{bound_and_safe, checked_value, host_bound, outbound_safe};
use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// The credential's name.
pub(crate) const CREDENTIAL_HEADER: &str = "x-oauth-credential";
/// The absolute upstream URL the sidecar forwards to.
pub(crate) const TARGET_HEADER: &str = "x-oauth-target";
/// The credential value (trusted sidecars only).
pub(crate) const DATA_HEADER: &str = "x-oauth-credential-data";
/// `TAP_SIGNER_SECRET` (trusted sidecars only).
pub(crate) const SECRET_HEADER: &str = "x-oauth-signer-secret";
/// The upstream method.
pub(crate) const METHOD_HEADER: &str = "x-tap-method";

/// Rows 8–10 and the injection for a sidecar credential. `url` is the row 8
/// URL: `api_base` + path for relative targets, the agent's URL otherwise.
pub(crate) async fn injection(
    state: &AppState,
    credential: &CredentialEntry,
    url: &TargetUrl,
    traversal: bool,
) -> Result<Injection, ProxyError> {
    let name = credential.name.as_str();
    let hop = if credential.relative_target {
        // `api_base` + path: the sidecar itself, bound and guarded.
        bound_and_safe(state, credential, url).await?;
        url.clone()
    } else {
        // The agent's URL is reached by the sidecar, not by the proxy: it is
        // bound to `allowed_hosts`; an IP literal also meets the private
        // rule (a name is the sidecar's to resolve).
        host_bound(credential, url)?;
        if url.ip().is_some() {
            outbound_safe(state, credential, url).await?;
        }
        let Some(base) = credential.api_base.clone() else {
            return Err(ProxyError::new(
                Reason::InvalidTarget,
                format!("credential {name} is served by a sidecar but has no usable api_base"),
            ));
        };
        // The sidecar is reached like any target: private addresses need an
        // explicit exception (never named to the agent: it is internal).
        bound_and_safe_hop(state, credential, &base).await?;
        base
    };
    let value = checked_value(credential, traversal, true)?;
    let trusted = is_trusted(state, &hop);
    if value.is_some() && !trusted {
        tracing::warn!(credential = %name, "credential value not sent: the sidecar is neither on loopback nor trusted");
        return Err(ProxyError::new(
            Reason::SidecarNotTrusted,
            format!(
                "credential {name} has a value and its sidecar is neither on a loopback address nor in TAP_TRUSTED_SIDECARS"
            ),
        )
        .with("credential", name));
    }
    let mut headers = vec![
        (
            CREDENTIAL_HEADER.to_owned(),
            Secret::new(name.as_bytes().to_vec()),
        ),
        (
            TARGET_HEADER.to_owned(),
            Secret::new(url.as_str().as_bytes().to_vec()),
        ),
    ];
    if let Some(v) = value {
        headers.push((DATA_HEADER.to_owned(), data_header(name, v)?));
    }
    if trusted && let Some(s) = &state.config.sidecars.signer_secret {
        headers.push((SECRET_HEADER.to_owned(), s.clone()));
    }
    Ok(Injection {
        headers,
        via: Some(hop),
        ..Injection::default()
    })
}

/// Outbound safety for the sidecar's own address; a refusal names no host.
async fn bound_and_safe_hop(
    state: &AppState,
    credential: &CredentialEntry,
    hop: &TargetUrl,
) -> Result<(), ProxyError> {
    outbound_safe(state, credential, hop)
        .await
        .map_err(|e| {
            let reason = e.reason;
            tracing::warn!(credential = %credential.name, code = reason.code(), "sidecar address refused by the outbound guard");
            let detail = match reason {
                Reason::TargetNotAllowed => {
                    "the credential's sidecar is on a private or reserved address that is not allowed"
                }
                _ => "the credential's sidecar could not be reached",
            };
            ProxyError::new(reason, detail)
        })
}

/// True for a sidecar on a loopback IP address or matching `TAP_TRUSTED_SIDECARS`.
pub(crate) fn is_trusted(state: &AppState, hop: &TargetUrl) -> bool {
    hop.ip().is_some_and(|ip| ip.is_loopback())
        || state.config.sidecars.trusted.iter().any(|p| p.matches(hop))
}

/// The value as one header line: a text value as is, a JSON value compacted
/// (an operator's pretty-printed JSON holds newlines).
fn data_header(name: &str, value: &CredentialValue) -> Result<Secret, ProxyError> {
    let bytes = match value {
        CredentialValue::Text(s) => Zeroizing::new(s.expose().to_vec()),
        CredentialValue::Json(s) => {
            let parsed: serde_json::Value = serde_json::from_slice(s.expose()).map_err(|_| {
                ProxyError::new(Reason::Internal, "credential value could not be opened")
            })?;
            Zeroizing::new(serde_json::to_vec(&parsed).map_err(|_| {
                ProxyError::new(Reason::Internal, "credential value could not be opened")
            })?)
        }
    };
    if bytes.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ProxyError::new(
            Reason::InvalidHeader,
            format!(
                "credential {name} holds a control character and cannot be sent to its sidecar"
            ),
        ));
    }
    Ok(Secret::new(bytes.to_vec()))
}

/// `scrubber` extended with `TAP_SIGNER_SECRET` when this request sends it
/// to a sidecar: a sidecar that echoes it never shows it to the agent.
/// Unchanged, without a rebuild, otherwise.
pub(crate) fn with_signer_secret(
    scrubber: std::sync::Arc<Scrubber>,
    injection: &Injection,
) -> std::sync::Arc<Scrubber> {
    let Some((_, secret)) = injection.headers.iter().find(|(n, _)| n == SECRET_HEADER) else {
        return scrubber;
    };
    std::sync::Arc::new(scrubber.with_renderings([ScrubSecret {
        label: "tap_signer_secret",
        value: secret.expose(),
    }]))
}
