//! Ops API: roles (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::model::Role;
use tap_core::names::validate_name;

use super::*;

/// `GET /team/roles`.
#[utoipa::path(
    get,
    path = "/team/roles",
    tag = "roles",
    summary = "List roles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Roles"),
    )
)]
pub async fn list_roles(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.roles(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(role_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct RoleBody {
    name: Option<String>,
    description: Option<String>,
    credentials: Option<Vec<String>>,
    rate_limit_per_hour: Option<u32>,
}

pub(super) async fn check_credentials(
    s: &AppState,
    team: i64,
    names: &[String],
) -> Result<(), Response> {
    for n in names {
        match s.store.credential(team, n).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(not_found(format!("credential {n}"))),
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(())
}

/// `POST /team/roles`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/roles",
    tag = "roles",
    summary = "Create a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_role(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: RoleBody = json_body!(body);
    let Some(name) = b.name else {
        return bad("name is required");
    };
    if let Err(e) = validate_name("role", &name) {
        return bad(e.to_string());
    }
    let creds = b.credentials.unwrap_or_default();
    if let Err(r) = check_credentials(&s, c.team.internal_id, &creds).await {
        return r;
    }
    let role = Role {
        team_internal_id: c.team.internal_id,
        name,
        description: b.description.unwrap_or_default(),
        credentials: creds,
        rate_limit_per_hour: b.rate_limit_per_hour,
    };
    match s.store.create_role(&role).await {
        Ok(()) => (StatusCode::CREATED, Json(role_view(&role))).into_response(),
        Err(e) => store_err(e),
    }
}

/// `PUT /team/roles/{name}`: replaces the role's credentials (creates the role when absent).
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/roles/{name}",
    tag = "roles",
    summary = "Create or replace a role",
    params(
        ("name" = String, Path, description = "Role name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Role"),
    )
)]
pub async fn put_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: RoleBody = json_body!(body);
    let t = c.team.internal_id;
    let want = b.credentials.unwrap_or_default();
    if let Err(r) = check_credentials(&s, t, &want).await {
        return r;
    }
    let existing = match s.store.role(t, &name).await {
        Ok(r) => r,
        Err(e) => return store_err(e),
    };
    match existing {
        None => {
            if let Err(e) = validate_name("role", &name) {
                return bad(e.to_string());
            }
            let role = Role {
                team_internal_id: t,
                name: name.clone(),
                description: b.description.unwrap_or_default(),
                credentials: want,
                rate_limit_per_hour: b.rate_limit_per_hour,
            };
            if let Err(e) = s.store.create_role(&role).await {
                return store_err(e);
            }
        }
        Some(r) => {
            for cr in r.credentials.iter().filter(|x| !want.contains(x)) {
                if let Err(e) = s.store.set_role_credential(t, &name, cr, false).await {
                    return store_err(e);
                }
            }
            for cr in &want {
                if let Err(e) = s.store.set_role_credential(t, &name, cr, true).await {
                    return store_err(e);
                }
            }
        }
    }
    match s.store.role(t, &name).await {
        Ok(Some(r)) => Json(role_view(&r)).into_response(),
        Ok(None) => not_found(format!("role {name}")),
        Err(e) => store_err(e),
    }
}

/// `DELETE /team/roles/{name}`.
#[utoipa::path(
    delete,
    path = "/team/roles/{name}",
    tag = "roles",
    summary = "Delete a role",
    params(
        ("name" = String, Path, description = "Role name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted"),
    )
)]
pub async fn delete_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_role(c.team.internal_id, &name).await {
        Ok(true) => Json(json!({"deleted": name})).into_response(),
        Ok(false) => not_found(format!("role {name}")),
        Err(e) => store_err(e),
    }
}
