//! Per-address agent-key limits applied around the handlers (THREATS §K): the
//! state-aware half of [`super::limiter`], which holds the counters.

use axum::extract::Request;
use axum::response::Response;

use super::limiter::ClientAddr;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Agent-key failures per address, before the handler. An address that
/// presented too many invalid keys gets 429 `rate_limited` instead of 401 for
/// further invalid keys; a valid key still works from it, so one misconfigured
/// agent cannot lock out the healthy agents sharing its host or NAT (keys are
/// 256-bit random: counting guesses protects the proxy's work and logs, not
/// the keys).
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
    let Some(retry) = state.abuse.agent_keys.blocked(addr.0) else {
        return Ok(());
    };
    let dir = state.directory.get();
    if crate::proxy::authenticate::authenticate(&dir, state.keys.mac(), headers).is_ok() {
        return Ok(());
    }
    let mut e = ProxyError::new(
        Reason::RateLimited,
        "too many invalid agent keys from this address",
    );
    e.retry_after = Some(retry);
    Err(e)
}

/// After the handler: an `invalid_tap_key` answer counts against the address.
pub(crate) fn count_agent_key(state: &AppState, addr: ClientAddr, resp: &Response) {
    if resp
        .headers()
        .get("x-tap-error")
        .is_some_and(|v| v.as_bytes() == Reason::InvalidTapKey.code().as_bytes())
    {
        state.abuse.agent_keys.record_failure(addr.0);
        tracing::info!(client = %addr.0, "invalid agent key");
    }
}
