//! Bounded request-body reads (THREATS §K, §P): every body must arrive whole
//! within `TAP_BODY_TIMEOUT_SECS` and within its size limit. `/forward` reads
//! its own body in the pipeline (SPEC row 4a) with [`read_body`]; every other
//! route is buffered here before its handler runs, so no handler can wait on a
//! slow client.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Largest `/login` body: an e-mail, a password and a `next` link fit many times over.
pub const MAX_LOGIN_BODY_BYTES: usize = 16 * 1024;

fn too_large(limit: usize) -> ProxyError {
    ProxyError::new(
        Reason::BodyTooLarge,
        format!("request body is larger than {limit} bytes"),
    )
    .with("limit_bytes", limit)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Reads a whole body: 408 `request_timeout` when it does not arrive within
/// `timeout`, 413 `body_too_large` above `limit`, 400 when the client broke
/// the connection mid-body.
pub async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ProxyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large(limit));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ProxyError::new(
            Reason::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large(limit)),
        Ok(Err(_)) => Err(ProxyError::new(
            Reason::InvalidRequest,
            "the request body could not be read (the connection broke mid-body)",
        )),
    }
}

/// The refusal for a body that was not read to its end: the connection
/// cannot be reused, so it is closed after the answer.
pub fn unread_body_refusal(e: ProxyError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Buffers the body of every route but `/forward` within the time and size
/// bounds (`/login`: [`MAX_LOGIN_BODY_BYTES`], others `TAP_MAX_BODY_BYTES`);
/// `Err` holds the refusal.
pub(crate) async fn buffer(state: &AppState, req: Request) -> Result<Request, Response> {
    let path = req.uri().path();
    if path == "/forward" || req.body().is_end_stream() {
        return Ok(req);
    }
    let limit = if path == "/login" {
        MAX_LOGIN_BODY_BYTES
    } else {
        state.config.max_body_bytes
    };
    let (parts, body) = req.into_parts();
    match read_body(body, limit, state.config.body_timeout).await {
        Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Err(e) => {
            tracing::info!(path = %parts.uri.path(), reason = e.reason.code(), "request body refused");
            Err(unread_body_refusal(e))
        }
    }
}

/// After the handler: a 408 (`/forward` gave up on its body) closes the
/// connection, so the rest of that body is never read as a request.
pub(crate) fn after(resp: &mut Response) {
    if resp.status() == StatusCode::REQUEST_TIMEOUT {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
