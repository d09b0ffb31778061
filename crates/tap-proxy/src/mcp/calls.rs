//! Agent requests made for an MCP caller: built like an HTTP client would
//! send them, with the caller's key and address, and sent through the
//! proxy's own router (request id, guard, handler), then read within bounds.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::McpCaller;
use crate::error::{ProxyError, Reason};

/// Most answer bytes a tool result carries; the rest is cut off and the
/// result says so (a model's context is the limit, not the proxy's memory).
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// An answer of the router, read whole or up to [`MAX_ANSWER_BYTES`].
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The body was longer than [`MAX_ANSWER_BYTES`] and was cut.
    pub(crate) truncated: bool,
}

impl Answer {
    /// `X-TAP-Request-Id`: the audit row's id (and the txn id of an approval).
    pub(crate) fn request_id(&self) -> Option<String> {
        self.headers
            .get("x-tap-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// A refusal the proxy made itself (`X-TAP-Error`), not an upstream answer.
    pub(crate) fn is_refusal(&self) -> bool {
        self.headers.contains_key("x-tap-error")
    }

    /// The body as JSON, `Null` when it is not.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A request builder for `method path` carrying the caller's key and address.
pub(crate) fn agent_request(
    caller: &McpCaller,
    method: Method,
    path: &str,
) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-tap-key", caller.keys.clone())
        .extension(caller.addr)
}

/// Sends `req` through `routes` and reads the answer within `bound`.
pub(crate) async fn send(
    routes: &Router,
    req: http::Request<Body>,
    bound: Duration,
) -> Result<Answer, ProxyError> {
    let call = async {
        let resp = match routes.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let (body, truncated) = read_capped(body, MAX_ANSWER_BYTES).await?;
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            truncated,
        })
    };
    match tokio::time::timeout(bound, call).await {
        Ok(answer) => answer,
        Err(_) => Err(ProxyError::new(
            Reason::UpstreamError,
            format!("no complete answer within {} s", bound.as_secs()),
        )),
    }
}

/// Reads at most `cap` bytes of `body`; `true` when more was left unread.
async fn read_capped(mut body: Body, cap: usize) -> Result<(Bytes, bool), ProxyError> {
    let mut buf = Vec::with_capacity(
        usize::try_from(body.size_hint().lower())
            .unwrap_or(0)
            .min(cap),
    );
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ProxyError::new(
                Reason::UpstreamError,
                "the answer broke off before its end; what arrived was withheld",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let room = cap - buf.len();
        if data.len() > room {
            buf.extend_from_slice(&data[..room]);
            return Ok((Bytes::from(buf), true));
        }
        buf.extend_from_slice(&data);
    }
    Ok((Bytes::from(buf), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_within_the_cap_and_says_when_it_cut() {
        let (b, cut) = read_capped(Body::from("hello"), 10).await.unwrap();
        assert_eq!((&b[..], cut), (&b"hello"[..], false));
        let (b, cut) = read_capped(Body::from("hello world"), 5).await.unwrap();
        assert_eq!((&b[..], cut), (&b"hello"[..], true));
    }
}
