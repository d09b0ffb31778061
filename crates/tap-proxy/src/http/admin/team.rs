//! Admin API: the team (SPEC §4) over the admin service.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::team::{TeamSettings, TeamSettingsView, TeamView};
use crate::state::AppState;

/// `GET /team`.
#[utoipa::path(
    get,
    path = "/team",
    tag = "team",
    summary = "The selected team and your role",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Team", body = TeamView),
    )
)]
pub async fn get_team(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.team_view(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/settings`.
#[utoipa::path(
    put,
    request_body = TeamSettings,
    path = "/team/settings",
    tag = "team",
    summary = "Set default_approval_mode (gated or autonomous)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Settings", body = TeamSettingsView),
        (status = 403, description = "Needs admin"),
    )
)]
pub async fn put_settings(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: TeamSettings = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.set_team_settings(&c.scope, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
