//! What agents and members get back: poll bodies, stored answers, final errors.

use base64::Engine as _;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;
use tap_core::model::{Approval, ApprovalStatus};

use crate::agent_views::ApprovalPollView;
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};

/// The poll answer of SPEC §3.3.
pub fn poll_body(a: &Approval) -> ApprovalPollView {
    let deciders: Vec<String> = a.votes.iter().map(|v| v.email.clone()).collect();
    ApprovalPollView {
        txn_id: a.txn_id.clone(),
        status: a.status.public_str(),
        created_at: rfc3339_ms(a.created_at),
        expires_at: rfc3339_ms(a.expires_at),
        approvals: a.approvers().len(),
        min_approvals: a.min_approvals,
        decided_by: (!deciders.is_empty()).then_some(deciders),
        error_code: a.error_code.clone(),
        response: if a.status == ApprovalStatus::Forwarded {
            a.response
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
        } else {
            None
        },
    }
}

/// The stored, scrubbed upstream answer as an HTTP response (sync callers).
pub fn stored_response(a: &Approval) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(v) = a
        .response
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    else {
        return ProxyError::new(Reason::Internal, "approved request has no stored answer")
            .into_response();
    };
    let status = v["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match v["body_encoding"].as_str() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(v["body"].as_str().unwrap_or(""))
            .unwrap_or_default(),
        _ => v["body"].as_str().unwrap_or("").as_bytes().to_vec(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    if let Some(hs) = v["headers"].as_array() {
        for pair in hs {
            let (Some(n), Some(val)) = (pair[0].as_str(), pair[1].as_str()) else {
                continue;
            };
            if let (Ok(n), Ok(val)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(val),
            ) {
                resp.headers_mut().append(n, val);
            }
        }
    }
    resp
}

/// The error an agent gets for a final, unsuccessful approval.
pub fn final_error(a: &Approval) -> ProxyError {
    match a.status {
        ApprovalStatus::Denied => ProxyError::new(
            Reason::ApprovalDenied,
            "a human denied this request; nothing was forwarded",
        )
        .with("txn_id", a.txn_id.clone()),
        ApprovalStatus::TimedOut => ProxyError::new(
            Reason::ApprovalTimedOut,
            "nobody decided on this request in time; nothing was forwarded",
        )
        .with("txn_id", a.txn_id.clone()),
        _ => {
            let code = a.error_code.as_deref().unwrap_or("internal");
            ProxyError::new(
                Reason::from_code(code),
                format!("the approved request was not completed ({code})"),
            )
            .with("txn_id", a.txn_id.clone())
        }
    }
}
