//! Admin API: grants (SPEC §4) over the admin service.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::grants::{CreateGrant, GrantView};
use crate::state::AppState;

/// `POST /team/credentials/{name}/grants`.
#[utoipa::path(
    post,
    request_body = CreateGrant,
    path = "/team/credentials/{name}/grants",
    tag = "grants",
    summary = "Create a grant",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = GrantView),
        (status = 400, description = "Invalid (no methods, a blank method, ttl 0, bad route)"),
        (status = 404, description = "No such credential"),
    )
)]
pub async fn create_grant(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: CreateGrant = json_body!(body);
    match s.ops.create_grant(&c.scope, &cred, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /team/grants`.
#[utoipa::path(
    get,
    path = "/team/grants",
    tag = "grants",
    summary = "List grants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Grants", body = Vec<GrantView>),
    )
)]
pub async fn list_grants(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.grants(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/grants/{id}/revoke`.
#[utoipa::path(
    post,
    path = "/team/grants/{id}/revoke",
    tag = "grants",
    summary = "Revoke a grant",
    params(
        ("id" = String, Path, description = "Grant id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = GrantView),
        (status = 404, description = "Not found or already revoked"),
    )
)]
pub async fn revoke_grant(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.revoke_grant(&c.scope, &id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
