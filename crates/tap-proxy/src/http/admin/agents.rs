//! Admin API: agents (SPEC §4) over the admin service. Keys appear only in
//! the answer that made them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::agents::{AgentEnabled, AgentKeyView, AgentView, CreateAgent, PatchAgent};
use crate::ops::credentials::Deleted;
use crate::state::AppState;

/// `GET /team/agents`.
#[utoipa::path(
    get,
    path = "/team/agents",
    tag = "agents",
    summary = "List agents",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agents", body = Vec<AgentView>),
    )
)]
pub async fn list_agents(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.agents(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/agents` → `201 {"id", "team", "api_key", "message"}`.
#[utoipa::path(
    post,
    request_body = CreateAgent,
    path = "/team/agents",
    tag = "agents",
    summary = "Create an agent; the key is shown once",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created with api_key", body = AgentKeyView),
        (status = 404, description = "A named credential or role does not exist"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_agent(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: CreateAgent = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.create_agent(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /team/agents/{id}`.
#[utoipa::path(
    get,
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Show an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent", body = AgentView),
        (status = 404, description = "Not found"),
    )
)]
pub async fn get_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.agent(&c.scope, &id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /team/agents/{id}`: roles, credentials and enabled are replaced when given.
#[utoipa::path(
    patch,
    request_body = PatchAgent,
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Update an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent", body = AgentView),
        (status = 404, description = "Not found"),
    )
)]
pub async fn patch_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: PatchAgent = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.patch_agent(&c.scope, &id, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /team/agents/{id}`.
#[utoipa::path(
    delete,
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Delete an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "Not found"),
    )
)]
pub async fn delete_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.delete_agent(&c.scope, &id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn set_enabled(s: AppState, h: HeaderMap, id: String, enabled: bool) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.set_agent_enabled(&c.scope, &id, enabled).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/agents/{id}/enable`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/enable",
    tag = "agents",
    summary = "Enable an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Enabled", body = AgentEnabled),
        (status = 404, description = "Not found"),
    )
)]
pub async fn enable_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    set_enabled(s, h, id, true).await
}

/// `POST /team/agents/{id}/disable`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/disable",
    tag = "agents",
    summary = "Disable an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disabled", body = AgentEnabled),
        (status = 404, description = "Not found"),
    )
)]
pub async fn disable_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    set_enabled(s, h, id, false).await
}

/// `POST /team/agents/{id}/rotate-key`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/rotate-key",
    tag = "agents",
    summary = "Rotate an agent's key",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New api_key", body = AgentKeyView),
        (status = 404, description = "Not found"),
    )
)]
pub async fn rotate_agent_key(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.rotate_agent_key(&c.scope, &id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
