//! Admin API: policies (SPEC §4, §5) over the admin service.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::policies::{PolicyClearedView, PolicyView, SetPolicy};
use crate::state::AppState;

/// `GET /team/policies/{credential}`.
#[utoipa::path(
    get,
    path = "/team/policies/{credential}",
    tag = "policies",
    summary = "Show a credential's policy",
    params(
        ("credential" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Policy (null when the team default applies)", body = PolicyView),
        (status = 404, description = "No such credential"),
    )
)]
pub async fn get_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.policy(&c.scope, &cred).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/policies/{credential}` with a §5 policy body (the whole policy:
/// fields left out take their defaults).
#[utoipa::path(
    put,
    request_body = SetPolicy,
    path = "/team/policies/{credential}",
    tag = "policies",
    summary = "Set a credential's policy",
    params(
        ("credential" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Policy", body = PolicyView),
        (status = 400, description = "Invalid"),
        (status = 404, description = "No such credential"),
    )
)]
pub async fn put_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: SetPolicy = json_body!(body);
    match s.ops.set_policy(&c.scope, &cred, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /team/policies/{credential}`.
#[utoipa::path(
    delete,
    path = "/team/policies/{credential}",
    tag = "policies",
    summary = "Clear a credential's policy",
    params(
        ("credential" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cleared (false when there was none)", body = PolicyClearedView),
        (status = 404, description = "No such credential"),
    )
)]
pub async fn delete_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.clear_policy(&c.scope, &cred).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
