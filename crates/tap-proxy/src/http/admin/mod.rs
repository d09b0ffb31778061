//! The admin API of SPEC §4: JSON under `/team/...`, bearer auth (sessions or
//! admin tokens), `X-TAP-Team` to pick among the member's teams, and a role
//! check on every route. Values are write-only: no answer ever holds one.

// Handlers return `Result<_, Response>` so a refusal is answered where it is found;
// a boxed error would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tap_core::model::{MemberRole, Team};

use crate::error::Reason;
use crate::ops::{Ops, OpsError, Scope};
use crate::state::AppState;
use crate::web::{MemberCtx, api_error, bearer_member};

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
    let Some(m) = bearer_member(state, headers).await else {
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

fn bad(msg: impl Into<String>) -> Response {
    api_error(Reason::InvalidRequest, msg)
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
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
