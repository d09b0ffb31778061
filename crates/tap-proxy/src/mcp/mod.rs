//! `/mcp`: TAP as a Model Context Protocol server (streamable HTTP, the
//! official `rmcp` SDK), so agents whose runtime speaks MCP need no curl
//! template.
//!
//! The MCP layer is an adapter and nothing more. Every tool call becomes an
//! ordinary agent request (`POST /forward`, `GET /agent/services`,
//! `GET /agent/approvals/{txn}`, `GET /agent/logs`) sent through the same
//! router, guard and request-id layers an HTTP client meets, with the caller's
//! own agent key and client address: authentication, rate and abuse limits,
//! policy, approvals, injection, scrubbing, leak blocking and the audit rows
//! are the pipeline's, unchanged, and nothing is reachable here that is not
//! reachable over HTTP.
//!
//! Before the SDK sees a message, [`entry`] checks:
//! - `Origin`: absent (not a browser) or this proxy's own origin, else 403
//!   `origin_not_allowed`, as for the admin routes ([`crate::http::csrf`]):
//!   a web page must not drive an agent's key (DNS rebinding gains nothing
//!   either, as the key is required too);
//! - the agent key, as `/forward` reads it: `X-TAP-Key` or
//!   `Authorization: Bearer tap_…`, comma-separated lists included, with the
//!   same per-address limit on invalid keys (the guard counts this route's
//!   `invalid_tap_key` answers like any other).
//!
//! Sessions are bounded by having none: the SDK runs stateless (one
//! short-lived service per POST, JSON answers), so the proxy keeps no MCP state
//! between requests and every request is authenticated on its own.

mod answer;
mod calls;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::error::{ProxyError, Reason};
use crate::http::limiter::ClientAddr;
use crate::state::AppState;

pub use self::tools::TOOL_NAMES;

/// The path of the endpoint.
pub const MCP_PATH: &str = "/mcp";

/// Who called, as the entry verified it: the key header `/forward` will get
/// and the client address the limits count against. The key never reaches
/// `Debug` or a log.
#[derive(Clone)]
pub(crate) struct McpCaller {
    /// The agent key(s) as one `X-TAP-Key` value (marked sensitive).
    pub(crate) keys: HeaderValue,
    /// The TCP peer of the MCP request.
    pub(crate) addr: ClientAddr,
}

impl std::fmt::Debug for McpCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpCaller")
            .field("keys", &"[redacted]")
            .field("addr", &self.addr)
            .finish()
    }
}

type Service = StreamableHttpService<tools::TapMcp, NeverSessionManager>;

/// The `/mcp` route. `agent_routes` is the proxy's router without `/mcp`:
/// the tools send their requests through it.
pub fn routes(state: &AppState, agent_routes: Router) -> Router<AppState> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Host checks would tie the proxy to loopback names; the key and the
        // Origin check in `entry` are what protect this route.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(state.config.max_body_bytes);
    let factory_state = state.clone();
    let service: Arc<Service> = Arc::new(StreamableHttpService::new(
        move || {
            Ok(tools::TapMcp::new(
                factory_state.clone(),
                agent_routes.clone(),
            ))
        },
        Arc::new(NeverSessionManager::default()),
        config,
    ));
    Router::new().route(
        MCP_PATH,
        axum::routing::any(
            move |State(state): State<AppState>, addr: ClientAddr, req: Request| {
                let service = Arc::clone(&service);
                async move { entry(&state, addr, &service, req).await }
            },
        ),
    )
}

/// Origin and key checks, then the SDK.
async fn entry(
    state: &AppState,
    addr: ClientAddr,
    service: &Service,
    mut req: Request,
) -> Response {
    if let Err(e) = crate::http::csrf::check_origin(req.headers(), &state.config.allowed_origins())
    {
        tracing::info!(client = %addr.0, "MCP request from a foreign origin refused");
        return e.into_response();
    }
    let keys = match agent_keys(req.headers()) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let mut key_headers = HeaderMap::new();
    key_headers.insert("x-tap-key", keys.clone());
    if let Err(e) = crate::http::agent_keys::check_agent_key_headers(state, addr, &key_headers) {
        return e.into_response();
    }
    let dir = state.directory.get();
    if let Err(e) = crate::proxy::authenticate::authenticate(&dir, state.keys.mac(), &key_headers) {
        return e.into_response();
    }
    req.extensions_mut().insert(McpCaller { keys, addr });
    service.handle(req).await.map(Body::new)
}

/// The agent key(s): every `X-TAP-Key` value, else the `Authorization`
/// bearer, joined into one comma-separated, sensitive header value.
fn agent_keys(headers: &HeaderMap) -> Result<HeaderValue, ProxyError> {
    let invalid = || ProxyError::new(Reason::InvalidTapKey, "the agent key is not valid");
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all("x-tap-key") {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if joined.is_empty() {
        for v in headers.get_all(header::AUTHORIZATION) {
            let Ok(s) = v.to_str() else {
                return Err(invalid());
            };
            let s = s.trim();
            let Some((scheme, token)) = s.split_once(' ') else {
                continue;
            };
            if !scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(token.trim().as_bytes());
        }
    }
    if joined.iter().all(|b| *b == b',' || b.is_ascii_whitespace()) {
        return Err(ProxyError::new(
            Reason::MissingTapKey,
            "MCP requests need the agent key: Authorization: Bearer tap_... or X-TAP-Key",
        ));
    }
    let mut value = HeaderValue::from_bytes(&joined).map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn reads_the_key_from_x_tap_key_or_the_bearer() {
        let k = agent_keys(&headers(&[("x-tap-key", "tap_a"), ("x-tap-key", "tap_b")])).unwrap();
        assert_eq!(k.as_bytes(), b"tap_a,tap_b");
        assert!(k.is_sensitive());
        let k = agent_keys(&headers(&[("authorization", "Bearer tap_a, tap_b")])).unwrap();
        assert_eq!(k.as_bytes(), b"tap_a, tap_b");
        let k = agent_keys(&headers(&[
            ("authorization", "Bearer tap_bearer"),
            ("x-tap-key", "tap_header"),
        ]))
        .unwrap();
        assert_eq!(k.as_bytes(), b"tap_header", "X-TAP-Key wins");
    }

    #[test]
    fn no_key_is_missing_tap_key() {
        for h in [
            headers(&[]),
            headers(&[("authorization", "Basic dXNlcjpwdw==")]),
            headers(&[("authorization", "Bearer  ")]),
            headers(&[("x-tap-key", ",")]),
        ] {
            assert_eq!(agent_keys(&h).unwrap_err().reason, Reason::MissingTapKey);
        }
    }

    #[test]
    fn the_caller_never_prints_its_key() {
        let c = McpCaller {
            keys: HeaderValue::from_static("tap_secret_key"),
            addr: ClientAddr(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        assert!(!format!("{c:?}").contains("tap_secret"));
    }
}
