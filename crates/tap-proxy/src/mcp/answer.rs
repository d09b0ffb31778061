//! Router answers as MCP tool results. Refusals become tool errors carrying
//! the proxy's own `error_code`, `detail` and `fix`; nothing is added that
//! the HTTP answer did not hold (bodies and headers arrive scrubbed).

use base64::Engine as _;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};

use super::calls::Answer;
use crate::error::{ProxyError, Reason};

/// A refusal made by the MCP layer itself (bad arguments, no answer in time).
pub(crate) fn refusal(e: &ProxyError) -> CallToolResult {
    CallToolResult::structured_error(e.body())
}

/// A refusal the router answered (`X-TAP-Error`): its JSON body, plus the
/// HTTP status and the request id that names its audit row.
fn routed_refusal(a: &Answer) -> CallToolResult {
    let mut body = match a.json() {
        Value::Object(m) => m,
        _ => {
            // Every proxy-made error is JSON; keep the shape if one is not.
            let code = a
                .headers
                .get("x-tap-error")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("internal");
            let reason = Reason::from_code(code);
            match ProxyError::new(reason, "the proxy refused the request").body() {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        }
    };
    body.insert("http_status".into(), json!(a.status.as_u16()));
    if let Some(id) = a.request_id() {
        body.insert("request_id".into(), json!(id));
    }
    CallToolResult::structured_error(Value::Object(body))
}

/// Body bytes as the poll results spell them: text, or base64 when not UTF-8.
fn body_fields(body: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(body) {
        Ok(s) => (json!(s), "utf-8"),
        Err(_) => (
            json!(base64::engine::general_purpose::STANDARD.encode(body)),
            "base64",
        ),
    }
}

/// What `request` answers: the upstream's answer (`status: forwarded`, in the
/// shape of a forwarded poll result), a pending approval, or a refusal.
pub(crate) fn forward_result(a: &Answer) -> CallToolResult {
    if a.is_refusal() {
        return routed_refusal(a);
    }
    // The proxy's own 202: its txn id is the request id, which an upstream
    // never sees (an upstream's 202 passes through as an answer).
    if a.status == http::StatusCode::ACCEPTED
        && let Value::Object(mut pending) = a.json()
        && pending.get("status").and_then(Value::as_str) == Some("pending")
        && a.request_id()
            .is_some_and(|id| pending.get("txn_id") == Some(&json!(id)))
    {
        pending.insert(
            "next_step".into(),
            json!(
                "A human must approve this request. Show approval_url to your human, then call \
                 approval_status with this txn_id (wait_seconds waits there) until the status is \
                 forwarded. Do not send the same request again while it is pending."
            ),
        );
        return CallToolResult::structured(Value::Object(pending));
    }
    let headers: Vec<Value> = a
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() != "x-tap-request-id")
        .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let (body, encoding) = body_fields(&a.body);
    let mut out = json!({
        "status": "forwarded",
        "response": {
            "status": a.status.as_u16(),
            "headers": headers,
            "body": body,
            "body_encoding": encoding,
        },
    });
    if let Some(id) = a.request_id() {
        out["request_id"] = json!(id);
    }
    if a.truncated {
        out["truncated"] = json!(true);
        out["note"] = json!(format!(
            "the body was cut after {} bytes",
            super::calls::MAX_ANSWER_BYTES
        ));
    }
    CallToolResult::structured(out)
}

/// A JSON answer of an agent endpoint (services, logs), or its refusal.
pub(crate) fn json_result(a: &Answer) -> CallToolResult {
    if a.is_refusal() || !a.status.is_success() {
        return routed_refusal(a);
    }
    CallToolResult::structured(a.json())
}

/// Whether a poll answer is final (not `pending` and not `approved`).
pub(crate) fn poll_is_final(a: &Answer) -> bool {
    if a.is_refusal() || !a.status.is_success() {
        return true;
    }
    !matches!(
        a.json().get("status").and_then(Value::as_str),
        Some("pending" | "approved")
    )
}

/// What `approval_status` answers: the poll body while it is pending,
/// approved or forwarded; a tool error for denied, timed out or failed
/// requests (nothing was sent), with the poll body under `approval`.
pub(crate) fn poll_result(a: &Answer) -> CallToolResult {
    if a.is_refusal() || !a.status.is_success() {
        return routed_refusal(a);
    }
    let poll = a.json();
    let status = poll
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let txn = poll.get("txn_id").cloned().unwrap_or(Value::Null);
    let failure = match status.as_str() {
        "denied" => Some(ProxyError::new(
            Reason::ApprovalDenied,
            "a human denied this request; nothing was forwarded",
        )),
        "timed_out" => Some(ProxyError::new(
            Reason::ApprovalTimedOut,
            "nobody decided on this request in time; nothing was forwarded",
        )),
        "error" => {
            let code = poll
                .get("error_code")
                .and_then(Value::as_str)
                .unwrap_or("internal");
            Some(ProxyError::new(
                Reason::from_code(code),
                format!("the approved request was not completed ({code})"),
            ))
        }
        _ => None,
    };
    match failure {
        Some(e) => {
            let mut body = e.with("txn_id", txn).body();
            body["approval"] = poll;
            CallToolResult::structured_error(body)
        }
        None => {
            let mut poll = poll;
            if status == "pending" || status == "approved" {
                poll["next_step"] = json!(
                    "Not finished yet: call approval_status again later (wait_seconds waits here)."
                );
            }
            CallToolResult::structured(poll)
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &'static str)], body: Value) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_string()),
            truncated: false,
        }
    }

    #[test]
    fn only_the_proxys_own_202_is_a_pending_approval() {
        let pending = json!({"status": "pending", "txn_id": "abc", "approval_url": "u"});
        let ours = answer(202, &[("x-tap-request-id", "abc")], pending.clone());
        let r = forward_result(&ours);
        assert_eq!(r.structured_content.unwrap()["status"], "pending");
        let upstreams = answer(202, &[("x-tap-request-id", "other")], pending);
        let v = forward_result(&upstreams).structured_content.unwrap();
        assert_eq!(v["status"], "forwarded");
        assert_eq!(v["response"]["status"], 202);
    }

    #[test]
    fn a_refusal_is_a_tool_error_with_its_code_status_and_request_id() {
        let body = ProxyError::new(Reason::HostNotAllowed, "no").body();
        let a = answer(
            403,
            &[
                ("x-tap-error", "host_not_allowed"),
                ("x-tap-request-id", "r1"),
            ],
            body,
        );
        let r = forward_result(&a);
        assert_eq!(r.is_error, Some(true));
        let v = r.structured_content.unwrap();
        assert_eq!(v["error_code"], "host_not_allowed");
        assert_eq!(v["http_status"], 403);
        assert_eq!(v["request_id"], "r1");
        assert!(v["fix"].as_str().is_some());
    }

    #[test]
    fn a_denied_poll_is_a_tool_error_and_a_pending_one_is_not() {
        let denied = answer(200, &[], json!({"txn_id": "t", "status": "denied"}));
        let r = poll_result(&denied);
        assert_eq!(r.is_error, Some(true));
        let v = r.structured_content.unwrap();
        assert_eq!(v["error_code"], "approval_denied");
        assert_eq!(v["approval"]["status"], "denied");
        let pending = answer(200, &[], json!({"txn_id": "t", "status": "pending"}));
        assert!(!poll_is_final(&pending));
        assert_eq!(poll_result(&pending).is_error, Some(false));
    }
}
