//! Rows 8–10 of SPEC §3.1 for one address: host binding, outbound safety
//! (the private-address rule on what the proxy connects to) and a value that
//! may be sent. Shared by direct credentials and the sidecar hop.

use tap_core::secret::CredentialValue;
use tap_core::target::TargetUrl;

use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};
use crate::outbound::GuardError;
use crate::state::AppState;

/// Row 8 and 9: `url`'s host is within the credential's `allowed_hosts`,
/// and passes outbound safety.
pub(crate) async fn bound_and_safe(
    state: &AppState,
    credential: &CredentialEntry,
    url: &TargetUrl,
) -> Result<(), ProxyError> {
    host_bound(credential, url)?;
    outbound_safe(state, credential, url).await
}

/// Row 8: `url`'s host is within the credential's `allowed_hosts`.
pub(crate) fn host_bound(credential: &CredentialEntry, url: &TargetUrl) -> Result<(), ProxyError> {
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
    Ok(())
}

/// Row 9: outbound safety for an address the proxy connects to (private
/// addresses only with an explicit exception).
pub(crate) async fn outbound_safe(
    state: &AppState,
    credential: &CredentialEntry,
    url: &TargetUrl,
) -> Result<(), ProxyError> {
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
    Ok(())
}

/// Row 10 for the value: it opens, is not a signing key, the path has no
/// `..`. `None` only when no value is set and `optional` (a sidecar may hold
/// its own keys); otherwise a missing value is `credential_value_missing`.
pub(crate) fn checked_value(
    credential: &CredentialEntry,
    traversal: bool,
    optional: bool,
) -> Result<Option<&CredentialValue>, ProxyError> {
    let name = credential.name.as_str();
    let value = match &credential.value {
        Ok(Some(v)) => Some(v),
        Ok(None) if optional => None,
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
    Ok(value)
}
