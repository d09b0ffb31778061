//! Ops API: team (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::clock::rfc3339_ms;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tap_core::policy::ApprovalMode;

use super::*;

/// `GET /team`.
#[utoipa::path(
    get,
    path = "/team",
    tag = "team",
    summary = "The selected team and your role",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Team"),
    )
)]
pub async fn get_team(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    Json(json!({
        "team": c.team.slug,
        "default_approval_mode": c.team.default_approval_mode.as_str(),
        "your_role": c.role.as_str(),
        "your_email": c.member.email,
        "created_at": rfc3339_ms(c.team.created_at),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct SettingsBody {
    default_approval_mode: String,
}

/// `PUT /team/settings`.
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/settings",
    tag = "team",
    summary = "Set default_approval_mode (gated or autonomous)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Settings"),
        (status = 403, description = "Needs admin"),
    )
)]
pub async fn put_settings(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: SettingsBody = json_body!(body);
    let Ok(mode) = b.default_approval_mode.parse::<ApprovalMode>() else {
        return bad("default_approval_mode must be gated or autonomous");
    };
    if let Err(e) = s.store.set_team_mode(c.team.internal_id, mode).await {
        return store_err(e);
    }
    Json(json!({"team": c.team.slug, "default_approval_mode": mode.as_str()})).into_response()
}
