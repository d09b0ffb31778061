//! Request ids: every answer carries `X-TAP-Request-Id`, which is also the
//! audit row's `request_id` (and, for approvals, the `txn_id`).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The request id of the current request; equals the `X-TAP-Request-Id` answered.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The middleware that assigns the id and answers it.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-tap-request-id", v);
    }
    resp
}
