//! Admin API: agent roles (SPEC §4) over the admin service.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::credentials::Deleted;
use crate::ops::roles::{CreateRole, PutRole, RoleView};
use crate::state::AppState;

/// `GET /team/roles`.
#[utoipa::path(
    get,
    path = "/team/roles",
    tag = "roles",
    summary = "List roles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Roles", body = Vec<RoleView>),
    )
)]
pub async fn list_roles(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.roles(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/roles`.
#[utoipa::path(
    post,
    request_body = CreateRole,
    path = "/team/roles",
    tag = "roles",
    summary = "Create a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = RoleView),
        (status = 404, description = "A named credential does not exist"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_role(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: CreateRole = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.create_role(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/roles/{name}`: replaces the role's credentials (creates the role when absent).
#[utoipa::path(
    put,
    request_body = PutRole,
    path = "/team/roles/{name}",
    tag = "roles",
    summary = "Create or replace a role",
    params(
        ("name" = String, Path, description = "Role name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Role", body = RoleView),
        (status = 404, description = "A named credential does not exist"),
    )
)]
pub async fn put_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: PutRole = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.put_role(&c.scope, &name, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
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
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "Not found"),
    )
)]
pub async fn delete_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.delete_role(&c.scope, &name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
