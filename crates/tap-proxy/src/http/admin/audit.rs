//! Ops API: audit (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tap_core::audit::{AuditRecord, merge_rows};
use tap_core::store::AuditQuery;

use super::*;

/// Query of `GET /team/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    agent: Option<String>,
    credential: Option<String>,
    status: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

fn status_matches(r: &AuditRecord, status: Option<&str>) -> bool {
    match status {
        None | Some("") => true,
        Some("ok") => r.error_code.is_none(),
        Some("error") | Some("refused") => r.error_code.is_some(),
        Some(s) => {
            r.error_code.as_deref() == Some(s)
                || r.upstream_status.map(|n| n.to_string()).as_deref() == Some(s)
        }
    }
}

async fn audit_records(
    s: &AppState,
    c: &Ctx,
    p: &AuditParams,
    limit: u32,
) -> Result<Vec<AuditRecord>, Response> {
    // Agents are keyed by (home team, id): `agent=bot` is this team's own `bot`,
    // `agent=home/bot` a linked agent of team `home`.
    let (agent_home, agent_id) = match p.agent.as_deref().map(|a| a.split_once('/')) {
        Some(Some((home, id))) => (Some(home.to_owned()), Some(id.to_owned())),
        Some(None) => (None, p.agent.clone()),
        None => (None, None),
    };
    let rows = s
        .store
        .audit_rows(
            c.team.internal_id,
            &AuditQuery {
                agent: agent_id.clone(),
                credential: p.credential.clone(),
                after_seq: None,
                limit: Some(limit),
            },
        )
        .await
        .map_err(store_err)?;
    Ok(merge_rows(&rows)
        .into_iter()
        .filter(|r| {
            agent_id.is_none()
                || r.agent_home_team.as_deref().unwrap_or(&c.team.slug)
                    == agent_home.as_deref().unwrap_or(&c.team.slug)
        })
        .filter(|r| status_matches(r, p.status.as_deref()))
        .filter(|r| {
            p.since
                .as_deref()
                .is_none_or(|since| r.timestamp.as_str() >= since)
        })
        .collect())
}

/// `GET /team/audit`.
#[utoipa::path(
    get,
    path = "/team/audit",
    tag = "audit",
    summary = "Audit trail",
    params(
        ("agent" = String, Query, description = "Agent id"),
        ("credential" = String, Query, description = "Credential"),
        ("status" = String, Query, description = "ok, error or an error code"),
        ("since" = String, Query, description = "RFC 3339 time"),
        ("limit" = u32, Query, description = "Most entries"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries"),
    )
)]
pub async fn audit(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    match audit_records(&s, &c, &p, limit).await {
        Ok(list) => Json(json!(list)).into_response(),
        Err(r) => r,
    }
}

/// `GET /team/audit/export`: JSON lines.
#[utoipa::path(
    get,
    path = "/team/audit/export",
    tag = "audit",
    summary = "Audit trail as JSON lines",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "application/x-ndjson"),
    )
)]
pub async fn audit_export(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    match audit_records(&s, &c, &p, p.limit.unwrap_or(100_000).clamp(1, 100_000)).await {
        Ok(list) => {
            let mut out = String::new();
            for r in list {
                if let Ok(line) = serde_json::to_string(&r) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            ([(http::header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
        }
        Err(r) => r,
    }
}
