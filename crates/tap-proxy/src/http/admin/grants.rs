//! Ops API: grants (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::model::Grant;
use tap_core::policy::{UrlPattern, normalize_method};

use super::*;

#[derive(Deserialize)]
struct GrantBody {
    methods: Vec<String>,
    route_scope: String,
    ttl_minutes: u32,
    max_uses: Option<u32>,
}

/// A random grant id.
pub fn new_grant_id() -> String {
    let raw = tap_core::crypto::generate_password()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let tail: String = raw
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .take(11)
        .collect();
    format!("g{tail}")
}

/// `POST /team/credentials/{name}/grants`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/credentials/{name}/grants",
    tag = "grants",
    summary = "Create a grant",
    params(
        ("name" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created"),
    )
)]
pub async fn create_grant(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: GrantBody = json_body!(body);
    match s.store.credential(c.team.internal_id, &cred).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(format!("credential {cred}")),
        Err(e) => return store_err(e),
    }
    let mut methods = Vec::new();
    for m in &b.methods {
        match normalize_method(m) {
            Ok(m) => methods.push(m),
            Err(e) => return bad(e.to_string()),
        }
    }
    if methods.is_empty() || b.ttl_minutes == 0 {
        return bad("methods must not be empty and ttl_minutes must be at least 1");
    }
    if let Err(e) = UrlPattern::parse(&b.route_scope) {
        return bad(format!("invalid route_scope: {e}"));
    }
    let g = Grant {
        id: new_grant_id(),
        team_internal_id: c.team.internal_id,
        credential: cred,
        methods,
        route_scope: b.route_scope,
        expires_at: s.clock.now_secs() + i64::from(b.ttl_minutes) * 60,
        max_uses: b.max_uses,
        uses: 0,
        created_by: c.member.email.clone(),
        created_at: 0,
        revoked_at: None,
    };
    match s.store.create_grant(&g).await {
        Ok(()) => (StatusCode::CREATED, Json(grant_view(&g))).into_response(),
        Err(e) => store_err(e),
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
        (status = 200, description = "Grants"),
    )
)]
pub async fn list_grants(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.grants(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(grant_view).collect())).into_response(),
        Err(e) => store_err(e),
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
        (status = 200, description = "Revoked"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn revoke_grant(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.revoke_grant(c.team.internal_id, &id).await {
        Ok(true) => Json(json!({"id": id, "revoked": true})).into_response(),
        Ok(false) => not_found(format!("grant {id}")),
        Err(e) => store_err(e),
    }
}
