//! Inline OAuth 2 token flows (SPEC §6.3): a refresh-token or
//! client-credentials bundle is traded for an access token at its token
//! endpoint (through the guarded client), and the access token is injected;
//! tokens are cached in [`super::token_cache`].

use http::header::{ACCEPT, CONTENT_TYPE};
use tap_core::inject::{Injection, TokenShape, plan};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{AllowedHosts, TargetUrl};
use tap_signer::oauth2::{
    MAX_TOKEN_RESPONSE, TokenError, TokenGrant, TokenRequest, parse_token_response, token_request,
    with_refresh_token,
};

use super::token_cache::Minted;
use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};
use crate::outbound::is_guard_refusal;
use crate::state::AppState;

/// The injection for a credential of a token shape: the access token in the
/// credential's format (`Bearer {value}` by default), and the token in the
/// request's scrub set.
pub(crate) async fn token_injection(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    shape: TokenShape,
) -> Result<Injection, ProxyError> {
    let fingerprint = state.keys.mac().digest_bytes(value.sealed_form().expose());
    let token = state
        .tokens
        .token(
            credential.team_internal_id,
            &credential.name,
            &fingerprint,
            &*state.clock,
            |rotated| mint(state, credential, value, shape, rotated),
        )
        .await?;
    let mut injection = plan(
        credential.auth_header_format.as_deref(),
        &[],
        &CredentialValue::Text(token.clone()),
    )
    .map_err(|e| {
        tracing::error!(credential = %credential.name, error = %e, "minted token could not be injected");
        ProxyError::new(Reason::Internal, "the minted token could not be injected")
    })?;
    injection.minted.push(token);
    Ok(injection)
}

fn endpoint_error(name: &str, detail: impl Into<String>) -> ProxyError {
    ProxyError::new(Reason::TokenEndpointError, detail).with("credential", name)
}

/// One token call, and the persistence of a rotated refresh token.
async fn mint(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    shape: TokenShape,
    rotated: Option<Secret>,
) -> Result<Minted, ProxyError> {
    let name = credential.name.as_str();
    let req = token_request(
        shape,
        value,
        rotated.as_ref(),
        &state.config.google_token_url,
    )
    .map_err(|e| match e {
        TokenError::FieldMissing(f) => ProxyError::new(
            Reason::CredentialFieldMissing,
            format!("credential {name} has no field {f:?}, which its token flow needs"),
        )
        .with("field", f),
        other => endpoint_error(name, other.to_string()),
    })?;
    let grant = call_endpoint(state, name, &req).await?;
    let mut persisted = None;
    if shape == TokenShape::RefreshToken
        && let Some(new) = &grant.refresh_token
    {
        let current = rotated.or_else(|| value.field("refresh_token"));
        if current.is_none_or(|c| c.expose() != new.expose()) {
            persisted = persist_rotation(state, credential, value, new).await;
        }
    }
    Ok(Minted { grant, persisted })
}

/// Posts the token request through the guarded client; the answer must be
/// 2xx JSON with an access token, within the forward timeout.
async fn call_endpoint(
    state: &AppState,
    name: &str,
    req: &TokenRequest,
) -> Result<TokenGrant, ProxyError> {
    let url = TargetUrl::parse(&req.url)
        .map_err(|_| endpoint_error(name, "token_url is not a usable http(s) URL"))?;
    let private = || {
        endpoint_error(
            name,
            format!(
                "token endpoint {} is a private or reserved address; an operator may list it in TAP_PRIVATE_ALLOWLIST",
                url.host_str()
            ),
        )
    };
    // IP literals never reach the client's resolver: checked here.
    if let Some(ip) = url.ip()
        && !state
            .resolver
            .rule()
            .permits(url.host_str(), ip, &AllowedHosts::List(Vec::new()))
    {
        return Err(private());
    }
    let timeout = state.config.forward_timeout;
    let send = state
        .client
        .post(url.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(req.form.as_str().to_owned())
        .send();
    let mut resp = match tokio::time::timeout(timeout, send).await {
        Err(_) => {
            return Err(endpoint_error(
                name,
                "the token endpoint did not answer in time",
            ));
        }
        Ok(Err(e)) if is_guard_refusal(&e) => return Err(private()),
        Ok(Err(e)) => {
            tracing::warn!(credential = %name, error = %e.without_url(), "token endpoint unreachable");
            return Err(endpoint_error(
                name,
                "the token endpoint could not be reached",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.ok()? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(body)
    };
    let body = match tokio::time::timeout(timeout, read).await {
        Ok(Some(b)) => zeroize::Zeroizing::new(b),
        Ok(None) => {
            return Err(endpoint_error(
                name,
                "the token endpoint's answer broke off or is too large",
            ));
        }
        Err(_) => {
            return Err(endpoint_error(
                name,
                "the token endpoint did not answer in time",
            ));
        }
    };
    if !status.is_success() {
        // The answer's body is never shown: it may echo the request.
        tracing::warn!(credential = %name, status = status.as_u16(), "token endpoint refused");
        return Err(endpoint_error(
            name,
            format!("the token endpoint answered {}", status.as_u16()),
        )
        .with("status", status.as_u16()));
    }
    parse_token_response(&body).map_err(|e| endpoint_error(name, e.to_string()))
}

/// Stores the value with its rotated refresh token, sealed like any value,
/// and reloads the directory. Answers the new value's digest, or `None` when
/// it could not be stored (logged; the token stays in memory).
async fn persist_rotation(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    rotated: &Secret,
) -> Option<String> {
    let name = credential.name.as_str();
    let failed = |why: &str| {
        tracing::error!(credential = %name, why, "rotated refresh token not persisted; kept in memory");
        None
    };
    let Some(next) = with_refresh_token(value, rotated) else {
        return failed("value is not a JSON object");
    };
    let slug = state
        .directory
        .get()
        .teams
        .get(&credential.team_internal_id)
        .map(|t| t.slug.clone());
    let team = match slug {
        Some(slug) => state.store.team(&slug).await.ok().flatten(),
        None => None,
    };
    let Some(team) = team else {
        return failed("team not found");
    };
    let Ok(dek) = state.keys.team_dek(&team) else {
        return failed("team key unavailable");
    };
    let Ok(sealed) = dek.seal(team.internal_id, name, next.sealed_form()) else {
        return failed("sealing failed");
    };
    match state
        .store
        .set_credential_value(team.internal_id, name, &sealed, true)
        .await
    {
        Ok(true) => {}
        Ok(false) => return failed("credential deleted"),
        Err(_) => return failed("store unavailable"),
    }
    tracing::info!(credential = %name, "rotated refresh token persisted");
    if let Err(e) = state
        .directory
        .refresh(state.store.as_ref(), &state.keys)
        .await
    {
        tracing::warn!(error = %e, "directory reload after a token rotation failed");
    }
    Some(state.keys.mac().digest_bytes(next.sealed_form().expose()))
}
