//! Per-address agent-key limits applied around the handlers (THREATS §K): the
//! state-aware half of [`super::limiter`], which holds the counters.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::limiter::ClientAddr;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Agent-key failures per address, before the handler. An address that
/// presented too many invalid keys gets 429 `rate_limited` instead of 401 for
/// further invalid keys; a valid key still works from it, so one misconfigured
/// agent cannot lock out the healthy agents sharing its host or NAT (keys are
/// 256-bit random: counting guesses protects the proxy's work and logs, not
/// the keys). Only what this process knows is read here: when replicas count
/// in the store, a request with a valid key must not touch it, so the store's
/// first refusal of an address comes after the handler ([`count_agent_key`])
/// and this replica refuses the address up front from then on.
pub(crate) fn check_agent_key(
    state: &AppState,
    addr: ClientAddr,
    req: &Request,
) -> Result<(), ProxyError> {
    check_agent_key_headers(state, addr, req.headers())
}

/// [`check_agent_key`] on the key headers alone (`/mcp` reads its key from
/// `Authorization` too and checks the `X-TAP-Key` it derives).
pub(crate) fn check_agent_key_headers(
    state: &AppState,
    addr: ClientAddr,
    headers: &http::HeaderMap,
) -> Result<(), ProxyError> {
    if !headers.contains_key("x-tap-key") {
        return Ok(());
    }
    let Some(retry) = state.abuse.agent_keys.blocked_in_process(addr.0) else {
        return Ok(());
    };
    let dir = state.directory.get();
    if crate::proxy::authenticate::authenticate(&dir, state.keys.mac(), headers).is_ok() {
        return Ok(());
    }
    Err(too_many(retry))
}

fn too_many(retry: u64) -> ProxyError {
    let mut e = ProxyError::new(
        Reason::RateLimited,
        "too many invalid agent keys from this address",
    );
    e.retry_after = Some(retry);
    e
}

/// After the handler: an `invalid_tap_key` answer counts against the address.
/// When the address had already used up its invalid keys (counted by another
/// replica, or concurrently), the answer becomes 429 `rate_limited`; when the
/// store cannot count it, 503 `store_unavailable` (never an uncounted 401).
pub(crate) async fn count_agent_key(
    state: &AppState,
    addr: ClientAddr,
    resp: Response,
) -> Response {
    let invalid_key = resp
        .headers()
        .get("x-tap-error")
        .is_some_and(|v| v.as_bytes() == Reason::InvalidTapKey.code().as_bytes());
    if !invalid_key {
        return resp;
    }
    match state.abuse.agent_keys.record_failure(addr.0).await {
        Ok(None) => {
            tracing::info!(client = %addr.0, "invalid agent key");
            resp
        }
        Ok(Some(retry)) => {
            tracing::info!(client = %addr.0, "invalid agent key refused: too many from this address");
            too_many(retry).into_response()
        }
        Err(e) => e.into_response(),
    }
}
