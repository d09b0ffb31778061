//! Ops API: links (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::clock::rfc3339_ms;
use crate::error::Reason;
use crate::state::AppState;
use crate::web::api_error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::model::Team;

use super::*;

/// A link as answered.
fn link_view(l: &tap_core::model::Link) -> Value {
    json!({"agent_id": l.agent_id, "home_team": l.home_team, "role": l.role, "created_at": rfc3339_ms(l.created_at)})
}

/// `GET /team/links`.
#[utoipa::path(
    get,
    path = "/team/links",
    tag = "links",
    summary = "List links made by this team",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Links"),
    )
)]
pub async fn list_links(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.links(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(link_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct LinkBody {
    agent_id: String,
    home_team: String,
    role: Option<String>,
}

/// Creates or replaces a link made by `team` (shared by the API and the CLI).
pub async fn make_link(
    store: &dyn tap_core::store::Store,
    team: &Team,
    agent_id: &str,
    home_team: &str,
    role: Option<&str>,
) -> Result<tap_core::model::Link, (Reason, String)> {
    let home = store
        .team(home_team)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
        .ok_or_else(|| (Reason::NotFound, format!("team {home_team} not found")))?;
    if home.internal_id == team.internal_id {
        return Err((
            Reason::InvalidRequest,
            "an agent cannot be linked to its own home team".into(),
        ));
    }
    if store
        .agent(home.internal_id, agent_id)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
        .is_none()
    {
        return Err((
            Reason::NotFound,
            format!("agent {agent_id} not found in team {home_team}"),
        ));
    }
    if let Some(r) = role
        && store
            .role(team.internal_id, r)
            .await
            .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
            .is_none()
    {
        return Err((
            Reason::NotFound,
            format!("role {r} not found in team {}", team.slug),
        ));
    }
    let link = tap_core::model::Link {
        team_internal_id: team.internal_id,
        home_team_internal_id: home.internal_id,
        home_team: home.slug,
        agent_id: agent_id.to_owned(),
        role: role.map(str::to_owned),
        created_at: 0,
    };
    store
        .set_link(&link)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?;
    Ok(link)
}

/// `POST /team/links` (owner or admin of the linking team).
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/links",
    tag = "links",
    summary = "Link another team's agent with a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Linked"),
    )
)]
pub async fn create_link(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: LinkBody = json_body!(body);
    match make_link(
        s.store.as_ref(),
        &c.team,
        &b.agent_id,
        &b.home_team,
        b.role.as_deref(),
    )
    .await
    {
        Ok(l) => (StatusCode::CREATED, Json(link_view(&l))).into_response(),
        Err((reason, msg)) => api_error(reason, msg),
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
        (status = 200, description = "Removed"),
    )
)]
pub async fn delete_link(
    State(s): State<AppState>,
    h: HeaderMap,
    Path((home_team, agent_id)): Path<(String, String)>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let home = match s.store.team(&home_team).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(format!("team {home_team}")),
        Err(e) => return store_err(e),
    };
    match s
        .store
        .delete_link(c.team.internal_id, home.internal_id, &agent_id)
        .await
    {
        Ok(true) => {
            Json(json!({"deleted": {"home_team": home_team, "agent_id": agent_id}})).into_response()
        }
        Ok(false) => not_found(format!("link of {home_team}/{agent_id}")),
        Err(e) => store_err(e),
    }
}
