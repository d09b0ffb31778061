//! Admin API: approvals (SPEC §4, §11) over the admin service.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tap_core::model::ApprovalStatus;

use super::{Need, ctx};
use crate::ops::OpsError;
use crate::ops::views::{ApprovalDetailView, ApprovalView, DecidedView};
use crate::state::AppState;

/// Query of `GET /team/approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ApprovalsQuery {
    /// pending, approved, forwarded, denied, timed_out, error or all (default).
    status: Option<String>,
}

/// `GET /team/approvals?status=`.
#[utoipa::path(
    get,
    path = "/team/approvals",
    tag = "approvals",
    summary = "List approvals",
    params(ApprovalsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Approvals, newest first", body = Vec<ApprovalView>),
        (status = 401, description = "Unauthorized"),
    )
)]
pub async fn team_approvals(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Response {
    let c = match ctx(&state, &headers, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let status = match q.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => match s.parse::<ApprovalStatus>() {
            Ok(st) => Some(st),
            Err(e) => return OpsError::Invalid(e.to_string()).into_response(),
        },
    };
    match state.ops.approvals(&c.scope, status).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /team/approvals/{id}`: one approval with the whole request it would
/// forward, as an approver must see it before deciding.
#[utoipa::path(
    get,
    path = "/team/approvals/{txn}",
    tag = "approvals",
    summary = "Show one approval and its request",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The approval and its request", body = ApprovalDetailView),
        (status = 404, description = "No such approval in this team", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn team_approval(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    let c = match ctx(&state, &headers, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match state.ops.approval_detail(&c.scope, &txn).await {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn decide(state: AppState, headers: HeaderMap, txn: String, approve: bool) -> Response {
    let c = match ctx(&state, &headers, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match state.ops.decide(&c.scope, &txn, approve, "web").await {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/approvals/{id}/approve`.
#[utoipa::path(
    post,
    path = "/team/approvals/{txn}/approve",
    tag = "approvals",
    summary = "Approve",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counted", body = DecidedView),
        (status = 403, description = "Not eligible"),
        (status = 409, description = "Not pending or already decided"),
    )
)]
pub async fn team_approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    decide(state, headers, txn, true).await
}

/// `POST /team/approvals/{id}/deny`.
#[utoipa::path(
    post,
    path = "/team/approvals/{txn}/deny",
    tag = "approvals",
    summary = "Deny",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counted", body = DecidedView),
        (status = 403, description = "Not eligible"),
        (status = 409, description = "Not pending or already decided"),
    )
)]
pub async fn team_deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    decide(state, headers, txn, false).await
}
