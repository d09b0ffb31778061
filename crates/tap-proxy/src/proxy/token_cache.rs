//! Inline OAuth 2 token flows (SPEC §6.3): a refresh-token or
//! client-credentials bundle is traded for an access token at its token
//! endpoint, and the access token is injected.
//!
//! Access tokens are cached per (team, credential) until [`EXPIRY_MARGIN`]
//! before they expire; concurrent requests for one credential wait for one
//! token call. A refresh token the endpoint rotates is kept in memory at once
//! and persisted (re-sealed) into the credential's value, so a restart or
//! another replica uses the new one. The endpoint is reached through the
//! guarded client (private addresses need `TAP_PRIVATE_ALLOWLIST`); any
//! failure is 502 `token_endpoint_error` and nothing is forwarded. Every
//! minted token joins the request's scrub set ([`Injection::minted`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{ACCEPT, CONTENT_TYPE};
use tap_core::inject::{Injection, TokenShape, plan};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{AllowedHosts, TargetUrl};
use tap_core::time::Clock;
use tap_signer::oauth2::{
    MAX_TOKEN_RESPONSE, TokenError, TokenGrant, TokenRequest, parse_token_response, token_request,
    with_refresh_token,
};
use tokio::sync::Mutex as AsyncMutex;

use crate::directory::CredentialEntry;
use crate::error::{ProxyError, Reason};
use crate::outbound::is_guard_refusal;
use crate::state::AppState;

/// A cached token is renewed this long before the expiry its endpoint named
/// (a token valid for less than this is used for one request only).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the endpoint names none (`expires_in` absent).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Most credentials with a cache slot; beyond, idle slots are dropped.
pub const MAX_SLOTS: usize = 10_000;

/// One credential's cached token.
#[derive(Default)]
struct Slot {
    /// Keyed digests of the values this slot belongs to: the value it was
    /// made for and the values persisted after rotations. A value outside
    /// the lineage (an operator set a new one) starts the slot afresh.
    lineage: Vec<String>,
    /// The access token and the time (ms) until which it is used.
    token: Option<(Secret, i64)>,
    /// The latest refresh token the endpoint rotated to.
    rotated: Option<Secret>,
}

/// What a token call produced.
pub(crate) struct Minted {
    /// The endpoint's answer.
    pub(crate) grant: TokenGrant,
    /// The digest of the value persisted with a rotated refresh token.
    pub(crate) persisted: Option<String>,
}

/// A slot, locked across its token call.
type SharedSlot = Arc<AsyncMutex<Slot>>;

/// Access tokens by (team internal id, credential name).
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<(i64, String), SharedSlot>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

impl TokenCache {
    fn slot(&self, team: i64, name: &str) -> SharedSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&(team, name.to_owned())) {
            // Bounded: drop slots nobody is using right now.
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Arc::clone(slots.entry((team, name.to_owned())).or_default())
    }

    /// The access token for a credential whose value has digest
    /// `fingerprint`: the cached one while it is fresh, else the one `mint`
    /// gets (given the rotated refresh token, if any). One `mint` at a time
    /// per credential; callers arriving meanwhile use its token.
    pub(crate) async fn token<F, Fut>(
        &self,
        team: i64,
        name: &str,
        fingerprint: &str,
        clock: &dyn Clock,
        mint: F,
    ) -> Result<Secret, ProxyError>
    where
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Minted, ProxyError>>,
    {
        let slot = self.slot(team, name);
        let mut s = slot.lock().await;
        if !s.lineage.iter().any(|f| f == fingerprint) {
            *s = Slot {
                lineage: vec![fingerprint.to_owned()],
                ..Slot::default()
            };
        }
        if let Some((token, until)) = &s.token
            && clock.now_ms() < *until
        {
            return Ok(token.clone());
        }
        let minted = mint(s.rotated.clone()).await?;
        let lifetime = minted.grant.expires_in.map_or(DEFAULT_LIFETIME, |secs| {
            Duration::from_secs(secs.min(365 * 24 * 3600))
        });
        let usable_ms =
            i64::try_from(lifetime.saturating_sub(EXPIRY_MARGIN).as_millis()).unwrap_or(i64::MAX);
        let token = minted.grant.access_token.clone();
        // A token shorter-lived than the margin serves this request only.
        s.token =
            (usable_ms > 0).then(|| (token.clone(), clock.now_ms().saturating_add(usable_ms)));
        if let Some(r) = minted.grant.refresh_token {
            s.rotated = Some(r);
        }
        if let Some(f) = minted.persisted {
            s.lineage.push(f);
        }
        Ok(token)
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tap_core::time::ManualClock;

    use super::*;

    fn grant(token: &str, expires_in: Option<u64>, refresh: Option<&str>) -> Minted {
        Minted {
            grant: TokenGrant {
                access_token: Secret::from(token),
                expires_in,
                refresh_token: refresh.map(Secret::from),
            },
            persisted: None,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_call_until_expiry() {
        let cache = Arc::new(TokenCache::default());
        let clock = Arc::new(ManualClock::new(1_000_000));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, clock, calls, mut gate) = (
                Arc::clone(&cache),
                Arc::clone(&clock),
                Arc::clone(&calls),
                gate.clone(),
            );
            tasks.push(tokio::spawn(async move {
                cache
                    .token(1, "g", "fp", &*clock, |_| async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        // Held open until every caller is queued behind it.
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(grant(&format!("tok-{n}"), Some(3600), None))
                    })
                    .await
                    .unwrap()
            }));
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), b"tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Just before the margin: still cached; past it: a new call.
        clock.advance(Duration::from_secs(3600) - EXPIRY_MARGIN - Duration::from_millis(1));
        let again = cache
            .token(1, "g", "fp", &*clock, |_| async {
                Ok(grant("tok-2", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(again.expose(), b"tok-1");
        clock.advance(Duration::from_millis(1));
        let renewed = cache
            .token(1, "g", "fp", &*clock, |_| async {
                Ok(grant("tok-2", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(renewed.expose(), b"tok-2");
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_used_next_and_a_new_value_starts_afresh() {
        let cache = TokenCache::default();
        let clock = ManualClock::new(0);
        // Shorter-lived than the margin: never cached.
        let t = cache
            .token(1, "g", "fp", &clock, |rotated| async move {
                assert!(rotated.is_none());
                Ok(grant("a", Some(30), Some("rt-2")))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"a");
        let t = cache
            .token(1, "g", "fp", &clock, |rotated| async move {
                assert_eq!(rotated.unwrap().expose(), b"rt-2");
                Ok(grant("b", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"b");
        // The operator set a new value: nothing of the old one is used.
        let t = cache
            .token(1, "g", "other", &clock, |rotated| async move {
                assert!(rotated.is_none());
                Ok(grant("c", Some(3600), None))
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), b"c");
        // Failures are not cached.
        let e = cache
            .token(2, "g", "fp", &clock, |_| async {
                Err(ProxyError::new(Reason::TokenEndpointError, "down"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.reason, Reason::TokenEndpointError);
    }
}
