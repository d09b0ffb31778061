//! Admin API: the audit trail (SPEC §4) over the admin service.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{Need, ctx};
use crate::ops::audit::{AuditEntry, AuditFilter};
use crate::state::AppState;

/// `GET /team/audit`.
#[utoipa::path(
    get,
    path = "/team/audit",
    tag = "audit",
    summary = "Audit trail",
    params(AuditFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries, oldest first", body = Vec<AuditEntry>),
    )
)]
pub async fn audit(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.audit(&c.scope, &filter).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /team/audit/export`: JSON lines.
#[utoipa::path(
    get,
    path = "/team/audit/export",
    tag = "audit",
    summary = "Audit trail as JSON lines",
    params(AuditFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One entry per line, oldest first", body = AuditEntry, content_type = "application/x-ndjson"),
    )
)]
pub async fn audit_export(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.audit_export(&c.scope, &filter).await {
        Ok(page) => {
            let mut out = String::new();
            for e in page.entries {
                if let Ok(line) = serde_json::to_string(&e) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            ([(http::header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
        }
        Err(e) => e.into_response(),
    }
}
