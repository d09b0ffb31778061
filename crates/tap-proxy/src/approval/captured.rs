//! The request as captured when approval was asked, and the audit record of its end.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tap_core::audit::AuditRecord;
use tap_core::model::{Approval, ApprovalStatus};
use tap_core::target::TargetUrl;

use crate::error::{ProxyError, Reason};

/// The request as captured when approval was asked; forwarded byte for byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapturedRequest {
    /// Upper-cased method.
    pub method: String,
    /// Target URL before injection.
    pub url: String,
    /// Headers to forward (after stripping, before injection), values base64.
    pub headers: Vec<(String, String)>,
    /// Body, base64.
    pub body: String,
    /// The audit record so far (completed when the approval ends).
    pub audit: AuditRecord,
    /// Legacy placeholder mode: the headers hold `<CREDENTIAL:…>`
    /// placeholders, substituted when the approved request is forwarded
    /// (the captured request never holds a secret).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
    /// `X-TAP-Auth-Mode` when not `auto` (a hybrid credential's `bearer`
    /// or `oauth1`), applied when the approved request is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
}

impl CapturedRequest {
    /// Captures a request.
    pub fn new(
        method: &str,
        url: &TargetUrl,
        headers: &HeaderMap,
        body: &[u8],
        audit: AuditRecord,
    ) -> Self {
        let b64 = &base64::engine::general_purpose::STANDARD;
        Self {
            method: method.to_owned(),
            url: url.as_str().to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), b64.encode(v.as_bytes())))
                .collect(),
            body: b64.encode(body),
            audit,
            legacy: false,
            auth_mode: None,
        }
    }

    pub(crate) fn header_map(&self) -> Result<HeaderMap, ProxyError> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut h = HeaderMap::with_capacity(self.headers.len());
        for (n, v) in &self.headers {
            let bad = || {
                ProxyError::new(
                    Reason::RequestTampered,
                    "stored request headers are damaged",
                )
            };
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad())?;
            let raw = b64.decode(v).map_err(|_| bad())?;
            let value = HeaderValue::from_bytes(&raw).map_err(|_| bad())?;
            h.append(name, value);
        }
        Ok(h)
    }

    pub(crate) fn body_bytes(&self) -> Result<Bytes, ProxyError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .map(Bytes::from)
            .map_err(|_| ProxyError::new(Reason::RequestTampered, "stored request body is damaged"))
    }

    /// Body preview for humans: at most `max` bytes, cut on a character boundary.
    pub fn body_preview(&self, max: usize) -> String {
        let body = self.body_bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let cut = tap_core::audit::cut_on_char_boundary(&text, max);
        if cut.len() < text.len() {
            format!("{cut}…")
        } else {
            cut.to_owned()
        }
    }
}

/// The finish record of an approval that ended.
pub(crate) fn final_record(
    a: &Approval,
    captured: &CapturedRequest,
    status: ApprovalStatus,
    upstream: Option<(u16, f64, bool)>,
    now: i64,
) -> AuditRecord {
    let mut rec = captured.audit.clone();
    rec.approval_status = Some(status.public_str().to_owned());
    // A denial records who decided it; every other outcome who approved.
    rec.approvers = match status {
        ApprovalStatus::Denied => a.votes.iter().map(|v| v.email.clone()).collect(),
        _ => a.approvers(),
    };
    rec.decision = match status {
        ApprovalStatus::Forwarded => "proceed".into(),
        _ => "refused".into(),
    };
    rec.error_code = match status {
        ApprovalStatus::Denied => Some("approval_denied".into()),
        ApprovalStatus::TimedOut => Some("approval_timed_out".into()),
        ApprovalStatus::Error => a.error_code.clone(),
        _ => None,
    };
    let decided = a.decided_at.unwrap_or(now);
    rec.latency_approval_ms = Some((decided - a.created_at).max(0) as f64);
    rec.latency_total_ms = Some((now - a.created_at).max(0) as f64);
    if let Some((status, upstream_ms, scrubbed)) = upstream {
        rec.upstream_status = Some(status);
        rec.latency_upstream_ms = Some(upstream_ms);
        rec.response_scrubbed = scrubbed;
    }
    rec
}
