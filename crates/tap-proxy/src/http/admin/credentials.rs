//! Admin API: credentials (SPEC §4) over the admin service. Values are
//! write-only: bodies may carry one, answers never do.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::credentials::{CredentialFields, CredentialView, Deleted, SetSecret, ValueSet};
use crate::state::AppState;

/// `GET /team/credentials`.
#[utoipa::path(
    get,
    path = "/team/credentials",
    tag = "credentials",
    summary = "List credentials (never values)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credentials (approvers: their assigned ones)", body = Vec<CredentialView>),
    )
)]
pub async fn list_credentials(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.credentials(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/credentials`.
#[utoipa::path(
    post,
    request_body = CredentialFields,
    path = "/team/credentials",
    tag = "credentials",
    summary = "Create a credential",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CredentialView),
        (status = 400, description = "Invalid"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_credential(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: CredentialFields = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.create_credential(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /team/credentials/{name}`.
#[utoipa::path(
    get,
    path = "/team/credentials/{name}",
    tag = "credentials",
    summary = "Show a credential (and its policy, to viewers and above)",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credential", body = CredentialView),
        (status = 404, description = "Not found"),
    )
)]
pub async fn get_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.credential(&c.scope, &name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /team/credentials/{name}`.
#[utoipa::path(
    patch,
    request_body = CredentialFields,
    path = "/team/credentials/{name}",
    tag = "credentials",
    summary = "Update a credential",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credential", body = CredentialView),
        (status = 404, description = "Not found"),
    )
)]
pub async fn patch_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: CredentialFields = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.patch_credential(&c.scope, &name, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /team/credentials/{name}`.
#[utoipa::path(
    delete,
    path = "/team/credentials/{name}",
    tag = "credentials",
    summary = "Delete a credential",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "Not found"),
        (status = 409, description = "Still named by a role"),
    )
)]
pub async fn delete_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.admin.delete_credential(&c.scope, &name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/credentials/{name}/secret`.
#[utoipa::path(
    put,
    request_body = SetSecret,
    path = "/team/credentials/{name}/secret",
    tag = "credentials",
    summary = "Replace a credential's value",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Value set", body = ValueSet),
        (status = 404, description = "Not found"),
    )
)]
pub async fn put_secret(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = match ctx(&s, &h, Need::Member).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cmd: SetSecret = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match c.admin.set_credential_value(&c.scope, &name, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
