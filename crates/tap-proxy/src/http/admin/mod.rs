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
use tap_core::model::{Agent, Credential, Grant, MemberRole, Role, Team};
use tap_core::store::StoreError;

use crate::admin::{Admin, AdminError};
use crate::approval::rfc3339_ms;
use crate::error::Reason;
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

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any member (approvers see only their credentials).
    Member,
    /// Viewer or above (not approver-only reads).
    Read,
    /// Admin or owner.
    Write,
    /// Owner.
    Owner,
}

impl Need {
    fn allows(self, role: MemberRole) -> bool {
        match self {
            Need::Member => true,
            Need::Read => role != MemberRole::Approver,
            Need::Write => matches!(role, MemberRole::Owner | MemberRole::Admin),
            Need::Owner => role == MemberRole::Owner,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Need::Member => "member",
            Need::Read => "viewer",
            Need::Write => "admin",
            Need::Owner => "owner",
        }
    }
}

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
    /// Operations.
    pub admin: Admin,
}

fn admin_of(state: &AppState) -> Admin {
    Admin {
        store: state.store.clone(),
        keys: (*state.keys).clone(),
    }
}

/// Authenticates, picks the team and checks the role.
pub async fn ctx(state: &AppState, headers: &HeaderMap, need: Need) -> Result<Ctx, Response> {
    let Some(m) = member(state, headers).await else {
        return Err(api_error(
            Reason::Unauthorized,
            "missing or invalid bearer token; log in with POST /login or use an admin token",
        ));
    };
    let teams = state.store.teams().await.map_err(store_err)?;
    let wanted = headers
        .get("x-tap-team")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut found = None;
    for t in teams {
        if wanted.is_some_and(|w| w != t.slug) {
            continue;
        }
        let members = state
            .store
            .members(t.internal_id)
            .await
            .map_err(store_err)?;
        if let Some(me) = members.into_iter().find(|x| x.account_id == m.account_id) {
            found = Some((t, me.role, me.credentials));
            break;
        }
    }
    let Some((team, role, assigned)) = found else {
        return Err(api_error(
            Reason::Forbidden,
            match wanted {
                Some(w) => format!("you are not a member of team {w}"),
                None => "you are not a member of any team".into(),
            },
        ));
    };
    if !need.allows(role) {
        return Err(api_error(
            Reason::Forbidden,
            format!(
                "this needs the {} role; you are {} in team {}",
                need.name(),
                role.as_str(),
                team.slug
            ),
        )
        .into_response());
    }
    Ok(Ctx {
        member: m,
        team,
        role,
        assigned,
        admin: admin_of(state),
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

fn admin_err(e: AdminError) -> Response {
    match e {
        AdminError::Invalid(m) => api_error(Reason::InvalidRequest, m),
        AdminError::NotFound(w) => api_error(Reason::NotFound, format!("{w} not found")),
        AdminError::Conflict(m) => api_error(Reason::Conflict, m),
        AdminError::Keys(k) => {
            tracing::error!(error = %k, "key error in admin API");
            api_error(Reason::Internal, "key material problem")
        }
        AdminError::Store(s) => store_err(s),
    }
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

fn grant_view(g: &Grant) -> Value {
    json!({
        "id": g.id, "credential": g.credential, "methods": g.methods, "route_scope": g.route_scope,
        "expires_at": rfc3339_ms(g.expires_at * 1000), "max_uses": g.max_uses, "uses": g.uses,
        "created_by": g.created_by, "revoked": g.revoked_at.is_some(),
    })
}

mod agents;
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
pub use audit::*;
pub use channels::*;
pub use credentials::*;
pub use grants::*;
pub use links::*;
pub use members::*;
pub use policies::*;
pub use roles::*;
pub use team::*;
