//! Admin API: links (SPEC §3.6, §4) over the admin service.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::links::{CreateLink, LinkRemovedView, LinkView};
use crate::state::AppState;

/// `GET /team/links`.
#[utoipa::path(
    get,
    path = "/team/links",
    tag = "links",
    summary = "List links made by this team",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Links", body = Vec<LinkView>),
    )
)]
pub async fn list_links(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.links(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/links` (owner or admin of the linking team).
#[utoipa::path(
    post,
    request_body = CreateLink,
    path = "/team/links",
    tag = "links",
    summary = "Link another team's agent with a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Linked", body = LinkView),
        (status = 400, description = "The agent's own team"),
        (status = 404, description = "No such team, agent or role"),
    )
)]
pub async fn create_link(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: CreateLink = json_body!(body);
    match s.ops.create_link(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /team/links/{home_team}/{agent_id}`.
#[utoipa::path(
    delete,
    path = "/team/links/{home_team}/{agent_id}",
    tag = "links",
    summary = "Remove a link",
    params(
        ("home_team" = String, Path, description = "Agent's home team"),
        ("agent_id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = LinkRemovedView),
        (status = 404, description = "No such link"),
    )
)]
pub async fn delete_link(
    State(s): State<AppState>,
    h: HeaderMap,
    Path((home_team, agent_id)): Path<(String, String)>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.delete_link(&c.scope, &home_team, &agent_id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
