//! HTTP adapters over the admin service and the proxy, and the guards every
//! request passes: browser-origin and media-type checks, bounded body reads,
//! per-address abuse limits, connection bounds.

pub mod admin;
pub mod agent_keys;
pub mod body;
pub mod connection;
pub mod csrf;
pub mod forwarded;
pub mod limiter;
pub mod metrics_endpoint;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The one guard middleware, in order: browser-origin and media-type checks
/// ([`csrf`]), per-address agent-key limits ([`limiter`]), the bounded body
/// read ([`body`]); after the handler, invalid keys are counted and a 408
/// closes its connection. One layer, so the hot `/forward` path pays for one.
pub async fn guard(
    State(state): State<AppState>,
    addr: limiter::ClientAddr,
    req: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = csrf::check(&state, &req) {
        return refusal.into_response();
    }
    if let Err(refusal) = agent_keys::check_agent_key(&state, addr, &req) {
        return refusal.into_response();
    }
    let req = match body::buffer(&state, req).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let resp = next.run(req).await;
    let mut resp = agent_keys::count_agent_key(&state, addr, resp).await;
    body::after(&mut resp);
    resp
}
