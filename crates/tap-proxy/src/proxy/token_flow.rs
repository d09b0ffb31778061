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

use std::time::Duration;

use tap_core::crypto::Dek;
use tap_core::store::TokenLease;
use tap_signer::oauth2::TokenGrant as Grant;

use super::token_cache::{Minted, usable_until};
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
            |rotated| shared_mint(state, credential, value, shape, rotated),
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

/// How often a replica waiting for another's token call asks the store again.
const LEASE_POLL: Duration = Duration::from_millis(50);

/// The token of a credential, shared by every replica through the store: the
/// one stored while it is usable, else one token call by whichever replica
/// leases it (the others wait, bounded by the lease, and read its token).
/// Under the lease the credential's current value is read from the store, so
/// a refresh token another replica rotated is used at once.
async fn shared_mint(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    shape: TokenShape,
    rotated: Option<Secret>,
) -> Result<Minted, ProxyError> {
    let team = credential.team_internal_id;
    let name = credential.name.as_str();
    let store_error = |e: tap_core::store::StoreError| {
        tracing::warn!(credential = %name, error = %e, "shared token cache unavailable");
        ProxyError::new(Reason::StoreUnavailable, "the store is unavailable")
    };
    let dek = team_dek(state, team)
        .await
        .ok_or_else(|| endpoint_error(name, "the team's data key is unavailable"))?;
    let token_name = token_seal_name(name);
    // The lease outlives one token call (connect + answer, each bounded).
    let lease_ms = i64::try_from(state.config.forward_timeout.as_millis())
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(2)
        .saturating_add(10_000);
    let give_up = state
        .clock
        .now_ms()
        .saturating_add(lease_ms)
        .saturating_add(1_000);
    loop {
        let now = state.clock.now_ms();
        match state
            .store
            .token_lease(team, name, state.tokens.holder(), now, lease_ms)
            .await
            .map_err(store_error)?
        {
            TokenLease::Cached { sealed, until_ms } => {
                let token = dek.open(team, &token_name, &sealed).map_err(|_| {
                    tracing::error!(credential = %name, "shared access token does not open");
                    ProxyError::new(
                        Reason::Internal,
                        "a stored access token could not be opened",
                    )
                })?;
                return Ok(Minted {
                    grant: Grant {
                        access_token: token,
                        expires_in: None,
                        refresh_token: None,
                    },
                    persisted: None,
                    until: Some(until_ms),
                });
            }
            TokenLease::Busy if now < give_up => tokio::time::sleep(LEASE_POLL).await,
            TokenLease::Busy => {
                return Err(endpoint_error(
                    name,
                    "another replica's token call did not finish in time",
                ));
            }
            TokenLease::Acquired => break,
        }
    }
    // Leased: the current value (another replica may have rotated it), and
    // its sealed form, which a rotation persisted now must still find.
    let current = current_value(state, &dek, team, name).await;
    let fp = |v: &CredentialValue| state.keys.mac().digest_bytes(v.sealed_form().expose());
    let (value, rotated, sealed) = match current {
        Some((c, sealed)) if fp(&c) != fp(value) => (c, None, Some(sealed)),
        Some((_, sealed)) => (value.clone(), rotated, Some(sealed)),
        None => (value.clone(), rotated, None),
    };
    let minted = mint(state, credential, &value, shape, rotated, sealed.as_deref()).await;
    let holder = state.tokens.holder();
    let stored = match &minted {
        Ok(m) => match usable_until(&m.grant, state.clock.now_ms()) {
            Some(until) => match dek.seal(team, &token_name, &m.grant.access_token) {
                Ok(sealed) => Some((sealed, until)),
                Err(_) => None,
            },
            None => None,
        },
        Err(_) => None,
    };
    let put = match &stored {
        Some((sealed, until)) => {
            state
                .store
                .put_token(team, name, holder, Some(sealed), *until)
                .await
        }
        None => state.store.put_token(team, name, holder, None, 0).await,
    };
    if let Err(e) = put {
        // The token still serves this process; other replicas call again.
        tracing::warn!(credential = %name, error = %e, "shared access token not stored");
    }
    minted
}

/// The name a minted token is sealed under: never a credential's own (a
/// sealed token cannot pass for a sealed value).
fn token_seal_name(name: &str) -> String {
    format!("{name}\u{0}oauth-access-token")
}

/// The team's data key, by internal id.
async fn team_dek(state: &AppState, team: i64) -> Option<Dek> {
    let slug = state
        .directory
        .get()
        .teams
        .get(&team)
        .map(|t| t.slug.clone())?;
    let team = state.store.team(&slug).await.ok().flatten()?;
    state.keys.team_dek(&team).ok()
}

/// The credential's value as the store holds it now, opened, and sealed;
/// `None` when it cannot be read (the caller's value is used).
async fn current_value(
    state: &AppState,
    dek: &Dek,
    team: i64,
    name: &str,
) -> Option<(CredentialValue, Vec<u8>)> {
    let c = state.store.credential(team, name).await.ok().flatten()?;
    let blob = c.sealed_value?;
    let s = dek.open(team, name, &blob).ok()?;
    let value = CredentialValue::from_stored(s.expose().to_vec(), c.value_is_json);
    Some((value, blob))
}

/// One token call, and the persistence of a rotated refresh token over
/// `sealed`, the stored form of `value` (nothing is persisted without it).
async fn mint(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    shape: TokenShape,
    rotated: Option<Secret>,
    sealed: Option<&[u8]>,
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
            persisted = persist_rotation(state, credential, value, sealed, new).await;
        }
    }
    Ok(Minted {
        grant,
        persisted,
        until: None,
    })
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
/// in place of `expected` (the sealed form of `value`), and reloads the
/// directory. Not a change of the credential: its version stays, so pending
/// approvals on it still forward; a value an admin set meanwhile is never
/// overwritten. Answers the new value's digest, or `None` when it was not
/// stored (logged; the token stays in memory for the old value).
async fn persist_rotation(
    state: &AppState,
    credential: &CredentialEntry,
    value: &CredentialValue,
    expected: Option<&[u8]>,
    rotated: &Secret,
) -> Option<String> {
    let name = credential.name.as_str();
    let failed = |why: &str| {
        tracing::error!(credential = %name, why, "rotated refresh token not persisted; kept in memory");
        None
    };
    let Some(expected) = expected else {
        return failed("stored value unreadable");
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
        .rotate_credential_value(team.internal_id, name, expected, &sealed)
        .await
    {
        Ok(true) => {}
        Ok(false) => return failed("credential deleted or its value set meanwhile"),
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
