//! Ops API: agents (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

/// `GET /team/agents`.
#[utoipa::path(
    get,
    path = "/team/agents",
    tag = "agents",
    summary = "List agents",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agents"),
    )
)]
pub async fn list_agents(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.agents(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(agent_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct AgentBody {
    id: Option<String>,
    description: Option<String>,
    roles: Option<Vec<String>>,
    credentials: Option<Vec<String>>,
    rate_limit_per_hour: Option<u32>,
}

/// `POST /team/agents` → `201 {"id", "api_key", "message"}`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/agents",
    tag = "agents",
    summary = "Create an agent; the key is shown once",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created with api_key"),
    )
)]
pub async fn create_agent(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: AgentBody = json_body!(body);
    let Some(id) = b.id else {
        return bad("id is required");
    };
    match c
        .admin
        .create_agent(
            &c.team,
            &id,
            b.description.as_deref().unwrap_or(""),
            &b.roles.unwrap_or_default(),
            &b.credentials.unwrap_or_default(),
            b.rate_limit_per_hour,
        )
        .await
    {
        Ok((a, key)) => (
            StatusCode::CREATED,
            Json(json!({
                "id": a.id,
                "team": a.team,
                "api_key": key.as_str(),
                "message": "Store this key now: it is shown only once."
            })),
        )
            .into_response(),
        Err(e) => admin_err(e),
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
        (status = 200, description = "Agent"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn get_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.agent(c.team.internal_id, &id).await {
        Ok(Some(a)) => Json(agent_view(&a)).into_response(),
        Ok(None) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

/// `PATCH /team/agents/{id}`: description is not stored separately yet; roles,
/// credentials and enabled are replaced when given.
#[utoipa::path(
    patch,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Update an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn patch_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: Value = json_body!(body);
    let t = c.team.internal_id;
    let agent = match s.store.agent(t, &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(format!("agent {id}")),
        Err(e) => return store_err(e),
    };
    if let Some(en) = b.get("enabled").and_then(Value::as_bool)
        && let Err(e) = s.store.set_agent_enabled(t, &id, en).await
    {
        return store_err(e);
    }
    if let Some(list) = b.get("credentials").and_then(Value::as_array) {
        let want: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for cr in &want {
            match s.store.credential(t, cr).await {
                Ok(Some(_)) => {}
                Ok(None) => return not_found(format!("credential {cr}")),
                Err(e) => return store_err(e),
            }
        }
        for cr in agent.credentials.iter().filter(|x| !want.contains(x)) {
            if let Err(e) = s.store.set_agent_credential(t, &id, cr, false).await {
                return store_err(e);
            }
        }
        for cr in &want {
            if let Err(e) = s.store.set_agent_credential(t, &id, cr, true).await {
                return store_err(e);
            }
        }
    }
    if let Some(list) = b.get("roles").and_then(Value::as_array) {
        let want: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for r in agent.roles.iter().filter(|x| !want.contains(x)) {
            if let Err(e) = s.store.set_agent_role(t, &id, r, false).await {
                return store_err(e);
            }
        }
        for r in &want {
            if let Err(e) = s.store.set_agent_role(t, &id, r, true).await {
                return store_err(e);
            }
        }
    }
    match s.store.agent(t, &id).await {
        Ok(Some(a)) => Json(agent_view(&a)).into_response(),
        Ok(None) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
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
        (status = 200, description = "Deleted"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn delete_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_agent(c.team.internal_id, &id).await {
        Ok(true) => Json(json!({"deleted": id})).into_response(),
        Ok(false) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

async fn set_enabled(s: AppState, h: HeaderMap, id: String, enabled: bool) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s
        .store
        .set_agent_enabled(c.team.internal_id, &id, enabled)
        .await
    {
        Ok(true) => Json(json!({"id": id, "enabled": enabled})).into_response(),
        Ok(false) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
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
        (status = 200, description = "Enabled"),
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
        (status = 200, description = "Disabled"),
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
        (status = 200, description = "New api_key"),
    )
)]
pub async fn rotate_agent_key(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match c.admin.rotate_agent_key(&c.team, &id).await {
        Ok(key) => {
            Json(json!({"id": id, "team": c.team.slug, "api_key": key.as_str()})).into_response()
        }
        Err(e) => admin_err(e),
    }
}
