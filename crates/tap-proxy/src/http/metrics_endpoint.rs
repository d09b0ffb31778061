//! `GET /metrics`: the proxy's counters in Prometheus text format, behind the
//! admin bearer unless `TAP_METRICS_PUBLIC=true` (the counters themselves live
//! in [`crate::metrics`]).

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

/// Most pending approvals read per team for the gauge.
const PENDING_READ_PER_TEAM: u32 = 10_000;

/// Unexpired pending approvals across all teams, from the store (the
/// `tap_pending_approvals` gauge and the dashboard's status page).
pub async fn pending_approvals(state: &crate::state::AppState) -> i64 {
    let now = state.clock.now_ms();
    let mut pending = 0i64;
    for team in state.directory.get().teams.values() {
        if let Ok(rows) = state
            .store
            .approvals(
                team.internal_id,
                Some(tap_core::model::ApprovalStatus::Pending),
                PENDING_READ_PER_TEAM,
            )
            .await
        {
            pending += rows.iter().filter(|a| a.expires_at > now).count() as i64;
        }
    }
    pending
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (OpenMetrics text)",
    description = "Needs the admin bearer (a session or admin token) unless TAP_METRICS_PUBLIC=true.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Missing or invalid bearer", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn metrics_handler(
    State(state): State<crate::state::AppState>,
    headers: HeaderMap,
) -> Response {
    if !state.config.metrics_public && crate::web::member(&state, &headers).await.is_none() {
        return crate::ops::OpsError::Unauthorized.into_response();
    }
    let pending = pending_approvals(&state).await;
    let body = state
        .journal
        .metrics()
        .render(pending, state.journal.queued() as u64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
