//! The admin API of SPEC §4: JSON under `/team/...`, bearer auth (sessions or
//! admin tokens), `X-TAP-Team` to pick among the member's teams, and a role
//! check on every route. Values are write-only: no answer ever holds one.

// Handlers return `Result<_, Response>` so a refusal is answered where it is found;
// a boxed error would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tap_core::model::{Agent, Credential, MemberRole, Role, Team};
use tap_core::store::StoreError;

use crate::approval::rfc3339_ms;
use crate::error::Reason;
use crate::ops::{Ops, OpsError, Scope};
use crate::state::AppState;
use crate::web::{MemberCtx, api_error, member};

/// Authenticates and authorises an admin request, or answers the refusal.
macro_rules! authorized {
    ($state:expr, $headers:expr, $need:expr) => {
        match ctx(&$state, &$headers, $need).await {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
}

/// Parses a JSON body, or answers 400.
macro_rules! json_body {
    ($body:expr) => {
        match parse_body(&$body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

pub use crate::ops::Need;

/// An authorised admin request.
pub struct Ctx {
    /// The member.
    pub member: MemberCtx,
    /// The team acted on.
    pub team: Team,
    /// The member's role there.
    pub role: MemberRole,
    /// Credentials assigned to an approver.
    pub assigned: Vec<String>,
    /// Who acts where, for the admin service.
    pub scope: Scope,
    /// Operations.
    pub admin: Ops,
}

/// Authenticates, picks the team (`X-TAP-Team`) and checks the role.
pub async fn ctx(state: &AppState, headers: &HeaderMap, need: Need) -> Result<Ctx, Response> {
    let Some(m) = member(state, headers).await else {
        return Err(OpsError::Unauthorized.into_response());
    };
    let wanted = headers
        .get("x-tap-team")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let scope = state
        .ops
        .member_scope(m.account_id, wanted)
        .await
        .map_err(IntoResponse::into_response)?;
    scope.require(need).map_err(IntoResponse::into_response)?;
    Ok(Ctx {
        member: m,
        team: scope.team.clone(),
        role: scope.role,
        assigned: scope.assigned.clone(),
        scope,
        admin: state.ops.clone(),
    })
}

fn store_err(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(w) => api_error(Reason::NotFound, format!("{w} not found")),
        StoreError::Conflict(w) => api_error(Reason::Conflict, w),
        other => {
            tracing::error!(error = %other, "store error in admin API");
            api_error(Reason::StoreUnavailable, "the store is unavailable")
        }
    }
}

fn admin_err(e: OpsError) -> Response {
    e.into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    api_error(Reason::InvalidRequest, msg)
}

fn not_found(what: impl Into<String>) -> Response {
    api_error(Reason::NotFound, format!("{} not found", what.into()))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// A credential as answered: never the value.
pub fn credential_view(c: &Credential) -> Value {
    json!({
        "name": c.name,
        "description": c.description,
        "connector": c.connector.as_str(),
        "api_base": c.api_base,
        "relative_target": c.relative_target,
        "auth_header_format": c.auth_header_format,
        "auth_bindings": c.auth_bindings,
        "allowed_hosts": c.allowed_hosts,
        "allow_any_host": c.allow_any_host,
        "value_set": c.sealed_value.is_some(),
        "created_at": rfc3339_ms(c.created_at),
        "updated_at": rfc3339_ms(c.updated_at),
    })
}

/// An agent as answered: never the key.
pub fn agent_view(a: &Agent) -> Value {
    json!({
        "id": a.id,
        "team": a.team,
        "description": a.description,
        "enabled": a.enabled,
        "roles": a.roles,
        "credentials": a.credentials,
        "rate_limit_per_hour": a.rate_limit_per_hour,
        "created_at": rfc3339_ms(a.created_at),
    })
}

fn role_view(r: &Role) -> Value {
    json!({"name": r.name, "description": r.description, "credentials": r.credentials, "rate_limit_per_hour": r.rate_limit_per_hour})
}

mod agents;
mod approvals;
mod audit;
mod channels;
mod credentials;
mod grants;
mod links;
mod members;
mod policies;
mod roles;
mod team;
pub use agents::*;
pub use approvals::*;
pub use audit::*;
pub use channels::*;
pub use credentials::*;
pub use grants::*;
pub use links::*;
pub use members::*;
pub use policies::*;
pub use roles::*;
pub use team::*;
