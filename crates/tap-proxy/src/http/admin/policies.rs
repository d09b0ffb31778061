//! Ops API: policies (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tap_core::policy::{CompiledPolicy, Policy};

use super::*;

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
        (status = 200, description = "Policy"),
    )
)]
pub async fn get_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.credential(c.team.internal_id, &cred).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(format!("credential {cred}")),
        Err(e) => return store_err(e),
    }
    match s.store.policy(c.team.internal_id, &cred).await {
        Ok(p) => Json(json!({"credential": cred, "policy": p, "team_default": c.team.default_approval_mode.as_str()})).into_response(),
        Err(e) => store_err(e),
    }
}

/// `PUT /team/policies/{credential}` with a §5 policy body.
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/policies/{credential}",
    tag = "policies",
    summary = "Set a credential's policy",
    params(
        ("credential" = String, Path, description = "Credential name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Policy"),
        (status = 400, description = "Invalid"),
    )
)]
pub async fn put_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.credential(c.team.internal_id, &cred).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(format!("credential {cred}")),
        Err(e) => return store_err(e),
    }
    let p: Policy = json_body!(body);
    let p = match p.normalized() {
        Ok(p) => p,
        Err(e) => return bad(format!("invalid policy: {e}")),
    };
    if let Err(e) = CompiledPolicy::new(&p) {
        return bad(format!("invalid policy: {e}"));
    }
    match s.store.set_policy(c.team.internal_id, &cred, &p).await {
        Ok(()) => Json(json!({"credential": cred, "policy": p})).into_response(),
        Err(e) => store_err(e),
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
        (status = 200, description = "Cleared"),
    )
)]
pub async fn delete_policy(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(cred): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.clear_policy(c.team.internal_id, &cred).await {
        Ok(true) => Json(json!({"credential": cred, "cleared": true})).into_response(),
        Ok(false) => not_found(format!("policy of {cred}")),
        Err(e) => store_err(e),
    }
}
