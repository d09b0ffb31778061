//! Ops API: credentials (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::error::Reason;
use crate::ops::{CredentialSpec, Ops};
use crate::state::AppState;
use crate::web::api_error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::inject::AuthBinding;
use tap_core::model::{Credential, MemberRole};

use super::*;

/// `GET /team/credentials`.
#[utoipa::path(
    get,
    path = "/team/credentials",
    tag = "credentials",
    summary = "List credentials (never values)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credentials"),
    )
)]
pub async fn list_credentials(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.store.credentials(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(
            list.iter()
                .filter(|cr| c.role != MemberRole::Approver || c.assigned.contains(&cr.name))
                .map(credential_view)
                .collect(),
        ))
        .into_response(),
        Err(e) => store_err(e),
    }
}

/// Credential create / update body.
#[derive(Debug, Deserialize, Default)]
pub struct CredentialBody {
    name: Option<String>,
    description: Option<String>,
    connector: Option<String>,
    api_base: Option<String>,
    relative_target: Option<bool>,
    auth_header_format: Option<String>,
    auth_bindings: Option<Vec<AuthBinding>>,
    allowed_hosts: Option<Vec<String>>,
    allow_any_host: Option<bool>,
    value: Option<Value>,
}

fn value_bytes(v: &Value) -> Result<Vec<u8>, Response> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(_) => Ok(v.to_string().into_bytes()),
        _ => Err(bad("value must be a string or a JSON object")),
    }
}

fn spec_from(
    name: String,
    b: &CredentialBody,
    base: Option<&Credential>,
) -> Result<CredentialSpec, Response> {
    let connector = match b.connector.as_deref() {
        Some(c) => c
            .parse()
            .map_err(|e: tap_core::model::ParseEnumError| bad(e.to_string()))?,
        None => base.map(|c| c.connector).unwrap_or_default(),
    };
    Ok(CredentialSpec {
        name,
        description: b
            .description
            .clone()
            .or_else(|| base.map(|c| c.description.clone()))
            .unwrap_or_default(),
        connector,
        api_base: b
            .api_base
            .clone()
            .or_else(|| base.and_then(|c| c.api_base.clone())),
        relative_target: b
            .relative_target
            .or(base.map(|c| c.relative_target))
            .unwrap_or(false),
        auth_header_format: b
            .auth_header_format
            .clone()
            .or_else(|| base.and_then(|c| c.auth_header_format.clone())),
        auth_bindings: b
            .auth_bindings
            .clone()
            .or_else(|| base.map(|c| c.auth_bindings.clone()))
            .unwrap_or_default(),
        allowed_hosts: b
            .allowed_hosts
            .clone()
            .or_else(|| base.map(|c| c.allowed_hosts.clone()))
            .unwrap_or_default(),
        allow_any_host: b
            .allow_any_host
            .or(base.map(|c| c.allow_any_host))
            .unwrap_or(false),
    })
}

/// `POST /team/credentials`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/credentials",
    tag = "credentials",
    summary = "Create a credential",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created"),
        (status = 400, description = "Invalid"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_credential(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: CredentialBody = json_body!(body);
    let Some(name) = b.name.clone() else {
        return bad("name is required");
    };
    match s.store.credential(c.team.internal_id, &name).await {
        Ok(Some(_)) => {
            return api_error(
                Reason::Conflict,
                format!("credential {name} already exists"),
            );
        }
        Ok(None) => {}
        Err(e) => return store_err(e),
    }
    let spec = match spec_from(name.clone(), &b, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let value = match b.value.as_ref().map(value_bytes).transpose() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let value = match value.map(|v| Ops::parse_value(&v)).transpose() {
        Ok(v) => v,
        Err(e) => return admin_err(e),
    };
    if let Err(e) = c.admin.put_credential(&c.team, spec, value.as_ref()).await {
        return admin_err(e);
    }
    match s.store.credential(c.team.internal_id, &name).await {
        Ok(Some(cr)) => (StatusCode::CREATED, Json(credential_view(&cr))).into_response(),
        Ok(None) => not_found(format!("credential {name}")),
        Err(e) => store_err(e),
    }
}

/// `GET /team/credentials/{name}`.
#[utoipa::path(
    get,
    path = "/team/credentials/{name}",
    tag = "credentials",
    summary = "Show a credential",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credential"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn get_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    if c.role == MemberRole::Approver && !c.assigned.contains(&name) {
        return not_found(format!("credential {name}"));
    }
    match s.store.credential(c.team.internal_id, &name).await {
        Ok(Some(cr)) => Json(credential_view(&cr)).into_response(),
        Ok(None) => not_found(format!("credential {name}")),
        Err(e) => store_err(e),
    }
}

/// `PATCH /team/credentials/{name}`.
#[utoipa::path(
    patch,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/credentials/{name}",
    tag = "credentials",
    summary = "Update a credential",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Credential"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn patch_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: CredentialBody = json_body!(body);
    if b.name.as_deref().is_some_and(|n| n != name) {
        return bad("renaming a credential is not supported; create a new one");
    }
    let existing = match s.store.credential(c.team.internal_id, &name).await {
        Ok(Some(cr)) => cr,
        Ok(None) => return not_found(format!("credential {name}")),
        Err(e) => return store_err(e),
    };
    let spec = match spec_from(name.clone(), &b, Some(&existing)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let value = match b.value.as_ref().map(value_bytes).transpose() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let value = match value.map(|v| Ops::parse_value(&v)).transpose() {
        Ok(v) => v,
        Err(e) => return admin_err(e),
    };
    if let Err(e) = c.admin.put_credential(&c.team, spec, value.as_ref()).await {
        return admin_err(e);
    }
    match s.store.credential(c.team.internal_id, &name).await {
        Ok(Some(cr)) => Json(credential_view(&cr)).into_response(),
        Ok(None) => not_found(format!("credential {name}")),
        Err(e) => store_err(e),
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
        (status = 200, description = "Deleted"),
        (status = 409, description = "Still named by a role"),
    )
)]
pub async fn delete_credential(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_credential(c.team.internal_id, &name).await {
        Ok(true) => Json(json!({"deleted": name})).into_response(),
        Ok(false) => not_found(format!("credential {name}")),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct SecretBody {
    value: Value,
}

/// `PUT /team/credentials/{name}/secret`.
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/credentials/{name}/secret",
    tag = "credentials",
    summary = "Replace a credential's value",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Value set"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn put_secret(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: SecretBody = json_body!(body);
    let raw = match value_bytes(&b.value) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let value = match Ops::parse_value(&raw) {
        Ok(v) => v,
        Err(e) => return admin_err(e),
    };
    match c.admin.set_credential_value(&c.team, &name, &value).await {
        Ok(()) => Json(json!({"name": name, "value_set": true})).into_response(),
        Err(e) => admin_err(e),
    }
}
