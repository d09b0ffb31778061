//! The admin API of SPEC §4: JSON under `/team/...`, bearer auth (sessions or
//! admin tokens), `X-TAP-Team` to pick among the member's teams, and a role
//! check on every route. Values are write-only: no answer ever holds one.

// Handlers return `Result<_, Response>` so a refusal is answered where it is found;
// a boxed error would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::audit::{AuditRecord, merge_rows};
use tap_core::inject::AuthBinding;
use tap_core::model::{Agent, Credential, Grant, MemberRole, Role, Team};
use tap_core::names::validate_name;
use tap_core::policy::{ApprovalMode, CompiledPolicy, Policy, UrlPattern, normalize_method};
use tap_core::store::{AuditQuery, StoreError};

use crate::admin::{Admin, AdminError, CredentialSpec};
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

// ---------- team ----------

/// `GET /team`.
#[utoipa::path(
    get,
    path = "/team",
    tag = "team",
    summary = "The selected team and your role",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Team"),
    )
)]
pub async fn get_team(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    Json(json!({
        "team": c.team.slug,
        "default_approval_mode": c.team.default_approval_mode.as_str(),
        "your_role": c.role.as_str(),
        "your_email": c.member.email,
        "created_at": rfc3339_ms(c.team.created_at),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct SettingsBody {
    default_approval_mode: String,
}

/// `PUT /team/settings`.
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/settings",
    tag = "team",
    summary = "Set default_approval_mode (gated or autonomous)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Settings"),
        (status = 403, description = "Needs admin"),
    )
)]
pub async fn put_settings(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: SettingsBody = json_body!(body);
    let Ok(mode) = b.default_approval_mode.parse::<ApprovalMode>() else {
        return bad("default_approval_mode must be gated or autonomous");
    };
    if let Err(e) = s.store.set_team_mode(c.team.internal_id, mode).await {
        return store_err(e);
    }
    Json(json!({"team": c.team.slug, "default_approval_mode": mode.as_str()})).into_response()
}

// ---------- credentials ----------

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
        Some(c) => c.parse().map_err(|e: String| bad(e))?,
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
    let value = match value.map(|v| Admin::parse_value(&v)).transpose() {
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
    let value = match value.map(|v| Admin::parse_value(&v)).transpose() {
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
    let value = match Admin::parse_value(&raw) {
        Ok(v) => v,
        Err(e) => return admin_err(e),
    };
    match c.admin.set_credential_value(&c.team, &name, &value).await {
        Ok(()) => Json(json!({"name": name, "value_set": true})).into_response(),
        Err(e) => admin_err(e),
    }
}

// ---------- agents ----------

/// `GET /team/agents`.
#[utoipa::path(
    get,
    path = "/team/agents",
    tag = "agents",
    summary = "List agents",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agents"),
    )
)]
pub async fn list_agents(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.agents(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(agent_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct AgentBody {
    id: Option<String>,
    description: Option<String>,
    roles: Option<Vec<String>>,
    credentials: Option<Vec<String>>,
    rate_limit_per_hour: Option<u32>,
}

/// `POST /team/agents` → `201 {"id", "api_key", "message"}`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/agents",
    tag = "agents",
    summary = "Create an agent; the key is shown once",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created with api_key"),
    )
)]
pub async fn create_agent(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: AgentBody = json_body!(body);
    let Some(id) = b.id else {
        return bad("id is required");
    };
    match c
        .admin
        .create_agent(
            &c.team,
            &id,
            b.description.as_deref().unwrap_or(""),
            &b.roles.unwrap_or_default(),
            &b.credentials.unwrap_or_default(),
            b.rate_limit_per_hour,
        )
        .await
    {
        Ok((a, key)) => (
            StatusCode::CREATED,
            Json(json!({
                "id": a.id,
                "team": a.team,
                "api_key": key.as_str(),
                "message": "Store this key now: it is shown only once."
            })),
        )
            .into_response(),
        Err(e) => admin_err(e),
    }
}

/// `GET /team/agents/{id}`.
#[utoipa::path(
    get,
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Show an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn get_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.agent(c.team.internal_id, &id).await {
        Ok(Some(a)) => Json(agent_view(&a)).into_response(),
        Ok(None) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

/// `PATCH /team/agents/{id}`: description is not stored separately yet; roles,
/// credentials and enabled are replaced when given.
#[utoipa::path(
    patch,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Update an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn patch_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: Value = json_body!(body);
    let t = c.team.internal_id;
    let agent = match s.store.agent(t, &id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(format!("agent {id}")),
        Err(e) => return store_err(e),
    };
    if let Some(en) = b.get("enabled").and_then(Value::as_bool)
        && let Err(e) = s.store.set_agent_enabled(t, &id, en).await
    {
        return store_err(e);
    }
    if let Some(list) = b.get("credentials").and_then(Value::as_array) {
        let want: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for cr in &want {
            match s.store.credential(t, cr).await {
                Ok(Some(_)) => {}
                Ok(None) => return not_found(format!("credential {cr}")),
                Err(e) => return store_err(e),
            }
        }
        for cr in agent.credentials.iter().filter(|x| !want.contains(x)) {
            if let Err(e) = s.store.set_agent_credential(t, &id, cr, false).await {
                return store_err(e);
            }
        }
        for cr in &want {
            if let Err(e) = s.store.set_agent_credential(t, &id, cr, true).await {
                return store_err(e);
            }
        }
    }
    if let Some(list) = b.get("roles").and_then(Value::as_array) {
        let want: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for r in agent.roles.iter().filter(|x| !want.contains(x)) {
            if let Err(e) = s.store.set_agent_role(t, &id, r, false).await {
                return store_err(e);
            }
        }
        for r in &want {
            if let Err(e) = s.store.set_agent_role(t, &id, r, true).await {
                return store_err(e);
            }
        }
    }
    match s.store.agent(t, &id).await {
        Ok(Some(a)) => Json(agent_view(&a)).into_response(),
        Ok(None) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

/// `DELETE /team/agents/{id}`.
#[utoipa::path(
    delete,
    path = "/team/agents/{id}",
    tag = "agents",
    summary = "Delete an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted"),
        (status = 404, description = "Not found"),
    )
)]
pub async fn delete_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_agent(c.team.internal_id, &id).await {
        Ok(true) => Json(json!({"deleted": id})).into_response(),
        Ok(false) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

async fn set_enabled(s: AppState, h: HeaderMap, id: String, enabled: bool) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s
        .store
        .set_agent_enabled(c.team.internal_id, &id, enabled)
        .await
    {
        Ok(true) => Json(json!({"id": id, "enabled": enabled})).into_response(),
        Ok(false) => not_found(format!("agent {id}")),
        Err(e) => store_err(e),
    }
}

/// `POST /team/agents/{id}/enable`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/enable",
    tag = "agents",
    summary = "Enable an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Enabled"),
    )
)]
pub async fn enable_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    set_enabled(s, h, id, true).await
}

/// `POST /team/agents/{id}/disable`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/disable",
    tag = "agents",
    summary = "Disable an agent",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disabled"),
    )
)]
pub async fn disable_agent(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    set_enabled(s, h, id, false).await
}

/// `POST /team/agents/{id}/rotate-key`.
#[utoipa::path(
    post,
    path = "/team/agents/{id}/rotate-key",
    tag = "agents",
    summary = "Rotate an agent's key",
    params(
        ("id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New api_key"),
    )
)]
pub async fn rotate_agent_key(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match c.admin.rotate_agent_key(&c.team, &id).await {
        Ok(key) => {
            Json(json!({"id": id, "team": c.team.slug, "api_key": key.as_str()})).into_response()
        }
        Err(e) => admin_err(e),
    }
}

// ---------- roles ----------

/// `GET /team/roles`.
#[utoipa::path(
    get,
    path = "/team/roles",
    tag = "roles",
    summary = "List roles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Roles"),
    )
)]
pub async fn list_roles(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.roles(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(role_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct RoleBody {
    name: Option<String>,
    description: Option<String>,
    credentials: Option<Vec<String>>,
    rate_limit_per_hour: Option<u32>,
}

async fn check_credentials(s: &AppState, team: i64, names: &[String]) -> Result<(), Response> {
    for n in names {
        match s.store.credential(team, n).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(not_found(format!("credential {n}"))),
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(())
}

/// `POST /team/roles`.
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/roles",
    tag = "roles",
    summary = "Create a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created"),
        (status = 409, description = "Exists"),
    )
)]
pub async fn create_role(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: RoleBody = json_body!(body);
    let Some(name) = b.name else {
        return bad("name is required");
    };
    if let Err(e) = validate_name("role", &name) {
        return bad(e.to_string());
    }
    let creds = b.credentials.unwrap_or_default();
    if let Err(r) = check_credentials(&s, c.team.internal_id, &creds).await {
        return r;
    }
    let role = Role {
        team_internal_id: c.team.internal_id,
        name,
        description: b.description.unwrap_or_default(),
        credentials: creds,
        rate_limit_per_hour: b.rate_limit_per_hour,
    };
    match s.store.create_role(&role).await {
        Ok(()) => (StatusCode::CREATED, Json(role_view(&role))).into_response(),
        Err(e) => store_err(e),
    }
}

/// `PUT /team/roles/{name}`: replaces the role's credentials (creates the role when absent).
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/roles/{name}",
    tag = "roles",
    summary = "Create or replace a role",
    params(
        ("name" = String, Path, description = "Role name"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Role"),
    )
)]
pub async fn put_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: RoleBody = json_body!(body);
    let t = c.team.internal_id;
    let want = b.credentials.unwrap_or_default();
    if let Err(r) = check_credentials(&s, t, &want).await {
        return r;
    }
    let existing = match s.store.role(t, &name).await {
        Ok(r) => r,
        Err(e) => return store_err(e),
    };
    match existing {
        None => {
            if let Err(e) = validate_name("role", &name) {
                return bad(e.to_string());
            }
            let role = Role {
                team_internal_id: t,
                name: name.clone(),
                description: b.description.unwrap_or_default(),
                credentials: want,
                rate_limit_per_hour: b.rate_limit_per_hour,
            };
            if let Err(e) = s.store.create_role(&role).await {
                return store_err(e);
            }
        }
        Some(r) => {
            for cr in r.credentials.iter().filter(|x| !want.contains(x)) {
                if let Err(e) = s.store.set_role_credential(t, &name, cr, false).await {
                    return store_err(e);
                }
            }
            for cr in &want {
                if let Err(e) = s.store.set_role_credential(t, &name, cr, true).await {
                    return store_err(e);
                }
            }
        }
    }
    match s.store.role(t, &name).await {
        Ok(Some(r)) => Json(role_view(&r)).into_response(),
        Ok(None) => not_found(format!("role {name}")),
        Err(e) => store_err(e),
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
        (status = 200, description = "Deleted"),
    )
)]
pub async fn delete_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_role(c.team.internal_id, &name).await {
        Ok(true) => Json(json!({"deleted": name})).into_response(),
        Ok(false) => not_found(format!("role {name}")),
        Err(e) => store_err(e),
    }
}

// ---------- policies ----------

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

// ---------- grants ----------

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

// ---------- members ----------

/// `GET /team/members`.
#[utoipa::path(
    get,
    path = "/team/members",
    tag = "members",
    summary = "List members",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Members"),
    )
)]
pub async fn list_members(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.members(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(
            list.iter()
                .map(|m| json!({"email": m.email, "role": m.role.as_str(), "credentials": m.credentials, "created_at": rfc3339_ms(m.created_at)}))
                .collect(),
        ))
        .into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct InviteBody {
    email: String,
    role: String,
    password: Option<String>,
}

/// `POST /team/members`: invites (creates the account with a generated password when new).
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/members",
    tag = "members",
    summary = "Invite a member",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Invited"),
    )
)]
pub async fn invite_member(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: InviteBody = json_body!(body);
    let Ok(role) = b.role.parse::<MemberRole>() else {
        return bad("role must be owner, admin, approver or viewer");
    };
    if role == MemberRole::Owner && c.role != MemberRole::Owner {
        return api_error(Reason::Forbidden, "making an owner needs the owner role");
    }
    match c
        .admin
        .add_member(&c.team, &b.email, role, b.password.as_deref())
        .await
    {
        Ok((email, generated)) => {
            let mut v = json!({"email": email, "role": role.as_str(), "team": c.team.slug});
            if let Some(pw) = generated {
                v["password"] = json!(pw.as_str());
            }
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => admin_err(e),
    }
}

#[derive(Deserialize)]
struct RoleChange {
    role: String,
}

/// `PUT /team/members/{email}/role` (owner only).
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/members/{email}/role",
    tag = "members",
    summary = "Change a member's role (owner)",
    params(
        ("email" = String, Path, description = "Member e-mail"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed"),
        (status = 409, description = "Last owner"),
    )
)]
pub async fn change_member_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Owner);
    let b: RoleChange = json_body!(body);
    let Ok(role) = b.role.parse::<MemberRole>() else {
        return bad("role must be owner, admin, approver or viewer");
    };
    let email = email.trim().to_ascii_lowercase();
    match s
        .store
        .set_member_role(c.team.internal_id, &email, role)
        .await
    {
        Ok(true) => Json(json!({"email": email, "role": role.as_str()})).into_response(),
        Ok(false) => not_found(format!("member {email}")),
        Err(e) => store_err(e),
    }
}

/// `DELETE /team/members/{email}`.
#[utoipa::path(
    delete,
    path = "/team/members/{email}",
    tag = "members",
    summary = "Remove a member",
    params(
        ("email" = String, Path, description = "Member e-mail"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed"),
        (status = 409, description = "Last owner"),
    )
)]
pub async fn remove_member(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let email = email.trim().to_ascii_lowercase();
    if c.role != MemberRole::Owner {
        // Admins may not remove owners.
        if let Ok(ms) = s.store.members(c.team.internal_id).await
            && ms
                .iter()
                .any(|m| m.email == email && m.role == MemberRole::Owner)
        {
            return api_error(Reason::Forbidden, "removing an owner needs the owner role");
        }
    }
    match s.store.remove_member(c.team.internal_id, &email).await {
        Ok(true) => Json(json!({"removed": email})).into_response(),
        Ok(false) => not_found(format!("member {email}")),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct MemberCredentials {
    credentials: Vec<String>,
}

/// `PUT /team/members/{email}/credentials`.
#[utoipa::path(
    put,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/members/{email}/credentials",
    tag = "members",
    summary = "Assign credentials to an approver",
    params(
        ("email" = String, Path, description = "Member e-mail"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Assigned"),
    )
)]
pub async fn set_member_credentials(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: MemberCredentials = json_body!(body);
    if let Err(r) = check_credentials(&s, c.team.internal_id, &b.credentials).await {
        return r;
    }
    let email = email.trim().to_ascii_lowercase();
    match s
        .store
        .set_member_credentials(c.team.internal_id, &email, &b.credentials)
        .await
    {
        Ok(true) => Json(json!({"email": email, "credentials": b.credentials})).into_response(),
        Ok(false) => not_found(format!("member {email}")),
        Err(e) => store_err(e),
    }
}

// ---------- audit ----------

/// Query of `GET /team/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    agent: Option<String>,
    credential: Option<String>,
    status: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

fn status_matches(r: &AuditRecord, status: Option<&str>) -> bool {
    match status {
        None | Some("") => true,
        Some("ok") => r.error_code.is_none(),
        Some("error") | Some("refused") => r.error_code.is_some(),
        Some(s) => {
            r.error_code.as_deref() == Some(s)
                || r.upstream_status.map(|n| n.to_string()).as_deref() == Some(s)
        }
    }
}

async fn audit_records(
    s: &AppState,
    c: &Ctx,
    p: &AuditParams,
    limit: u32,
) -> Result<Vec<AuditRecord>, Response> {
    // Agents are keyed by (home team, id): `agent=bot` is this team's own `bot`,
    // `agent=home/bot` a linked agent of team `home`.
    let (agent_home, agent_id) = match p.agent.as_deref().map(|a| a.split_once('/')) {
        Some(Some((home, id))) => (Some(home.to_owned()), Some(id.to_owned())),
        Some(None) => (None, p.agent.clone()),
        None => (None, None),
    };
    let rows = s
        .store
        .audit_rows(
            c.team.internal_id,
            &AuditQuery {
                agent: agent_id.clone(),
                credential: p.credential.clone(),
                after_seq: None,
                limit: Some(limit),
            },
        )
        .await
        .map_err(store_err)?;
    Ok(merge_rows(&rows)
        .into_iter()
        .filter(|r| {
            agent_id.is_none()
                || r.agent_home_team.as_deref().unwrap_or(&c.team.slug)
                    == agent_home.as_deref().unwrap_or(&c.team.slug)
        })
        .filter(|r| status_matches(r, p.status.as_deref()))
        .filter(|r| {
            p.since
                .as_deref()
                .is_none_or(|since| r.timestamp.as_str() >= since)
        })
        .collect())
}

/// `GET /team/audit`.
#[utoipa::path(
    get,
    path = "/team/audit",
    tag = "audit",
    summary = "Audit trail",
    params(
        ("agent" = String, Query, description = "Agent id"),
        ("credential" = String, Query, description = "Credential"),
        ("status" = String, Query, description = "ok, error or an error code"),
        ("since" = String, Query, description = "RFC 3339 time"),
        ("limit" = u32, Query, description = "Most entries"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries"),
    )
)]
pub async fn audit(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    match audit_records(&s, &c, &p, limit).await {
        Ok(list) => Json(json!(list)).into_response(),
        Err(r) => r,
    }
}

/// `GET /team/audit/export`: JSON lines.
#[utoipa::path(
    get,
    path = "/team/audit/export",
    tag = "audit",
    summary = "Audit trail as JSON lines",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "application/x-ndjson"),
    )
)]
pub async fn audit_export(
    State(s): State<AppState>,
    h: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let c = authorized!(s, h, Need::Read);
    match audit_records(&s, &c, &p, p.limit.unwrap_or(100_000).clamp(1, 100_000)).await {
        Ok(list) => {
            let mut out = String::new();
            for r in list {
                if let Ok(line) = serde_json::to_string(&r) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            ([(http::header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
        }
        Err(r) => r,
    }
}

// ---------- links ----------

/// A link as answered.
fn link_view(l: &tap_core::model::Link) -> Value {
    json!({"agent_id": l.agent_id, "home_team": l.home_team, "role": l.role, "created_at": rfc3339_ms(l.created_at)})
}

/// `GET /team/links`.
#[utoipa::path(
    get,
    path = "/team/links",
    tag = "links",
    summary = "List links made by this team",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Links"),
    )
)]
pub async fn list_links(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.links(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(link_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct LinkBody {
    agent_id: String,
    home_team: String,
    role: Option<String>,
}

/// Creates or replaces a link made by `team` (shared by the API and the CLI).
pub async fn make_link(
    store: &dyn tap_core::store::Store,
    team: &Team,
    agent_id: &str,
    home_team: &str,
    role: Option<&str>,
) -> Result<tap_core::model::Link, (Reason, String)> {
    let home = store
        .team(home_team)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
        .ok_or_else(|| (Reason::NotFound, format!("team {home_team} not found")))?;
    if home.internal_id == team.internal_id {
        return Err((
            Reason::InvalidRequest,
            "an agent cannot be linked to its own home team".into(),
        ));
    }
    if store
        .agent(home.internal_id, agent_id)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
        .is_none()
    {
        return Err((
            Reason::NotFound,
            format!("agent {agent_id} not found in team {home_team}"),
        ));
    }
    if let Some(r) = role
        && store
            .role(team.internal_id, r)
            .await
            .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?
            .is_none()
    {
        return Err((
            Reason::NotFound,
            format!("role {r} not found in team {}", team.slug),
        ));
    }
    let link = tap_core::model::Link {
        team_internal_id: team.internal_id,
        home_team_internal_id: home.internal_id,
        home_team: home.slug,
        agent_id: agent_id.to_owned(),
        role: role.map(str::to_owned),
        created_at: 0,
    };
    store
        .set_link(&link)
        .await
        .map_err(|e| (Reason::StoreUnavailable, e.to_string()))?;
    Ok(link)
}

/// `POST /team/links` (owner or admin of the linking team).
#[utoipa::path(
    post,
    request_body(content = Object, content_type = "application/json"),
    path = "/team/links",
    tag = "links",
    summary = "Link another team's agent with a role",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Linked"),
    )
)]
pub async fn create_link(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: LinkBody = json_body!(body);
    match make_link(
        s.store.as_ref(),
        &c.team,
        &b.agent_id,
        &b.home_team,
        b.role.as_deref(),
    )
    .await
    {
        Ok(l) => (StatusCode::CREATED, Json(link_view(&l))).into_response(),
        Err((reason, msg)) => api_error(reason, msg),
    }
}

/// `DELETE /team/links/{home_team}/{agent_id}`.
#[utoipa::path(
    delete,
    path = "/team/links/{home_team}/{agent_id}",
    tag = "links",
    summary = "Remove a link",
    params(
        ("home_team" = String, Path, description = "Agent's home team"),
        ("agent_id" = String, Path, description = "Agent id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed"),
    )
)]
pub async fn delete_link(
    State(s): State<AppState>,
    h: HeaderMap,
    Path((home_team, agent_id)): Path<(String, String)>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let home = match s.store.team(&home_team).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(format!("team {home_team}")),
        Err(e) => return store_err(e),
    };
    match s
        .store
        .delete_link(c.team.internal_id, home.internal_id, &agent_id)
        .await
    {
        Ok(true) => {
            Json(json!({"deleted": {"home_team": home_team, "agent_id": agent_id}})).into_response()
        }
        Ok(false) => not_found(format!("link of {home_team}/{agent_id}")),
        Err(e) => store_err(e),
    }
}

// ---------- notification channels ----------

fn channel_view(c: &tap_core::model::Channel) -> Value {
    json!({"name": c.name, "type": c.kind, "chat_id": c.chat_id, "created_at": rfc3339_ms(c.created_at)})
}

/// `GET /team/notification-channels`.
#[utoipa::path(
    get,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "List notification channels",
    security(("bearer" = [])),
    responses((status = 200, description = "Channels"))
)]
pub async fn list_channels(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Read);
    match s.store.channels(c.team.internal_id).await {
        Ok(list) => Json(Value::Array(list.iter().map(channel_view).collect())).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct ChannelBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    chat_id: String,
}

/// Validates and stores a channel (shared by the API and the CLI).
pub async fn put_channel(
    store: &dyn tap_core::store::Store,
    team: &Team,
    name: &str,
    kind: &str,
    chat_id: &str,
) -> Result<tap_core::model::Channel, String> {
    validate_name("channel", name).map_err(|e| e.to_string())?;
    if kind != "telegram" {
        return Err(format!("unknown channel type {kind:?}: use telegram"));
    }
    let chat = chat_id.trim();
    let valid = !chat.is_empty()
        && chat.len() <= 64
        && (chat
            .strip_prefix('-')
            .unwrap_or(chat)
            .bytes()
            .all(|b| b.is_ascii_digit())
            || (chat.starts_with('@')
                && chat[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')));
    if !valid {
        return Err("chat_id must be a numeric Telegram chat id or @channelname".into());
    }
    let ch = tap_core::model::Channel {
        team_internal_id: team.internal_id,
        name: name.to_owned(),
        kind: kind.to_owned(),
        chat_id: chat.to_owned(),
        created_at: 0,
    };
    store.set_channel(&ch).await.map_err(|e| e.to_string())?;
    Ok(ch)
}

/// `POST /team/notification-channels` `{"name"?, "type": "telegram", "chat_id"}`.
#[utoipa::path(
    post,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "Add or replace a notification channel",
    request_body(content = Object, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored"), (status = 400, description = "Invalid"))
)]
pub async fn create_channel(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Write);
    let b: ChannelBody = json_body!(body);
    let kind = b.kind.unwrap_or_else(|| "telegram".into());
    let name = b.name.unwrap_or_else(|| kind.clone());
    match put_channel(s.store.as_ref(), &c.team, &name, &kind, &b.chat_id).await {
        Ok(ch) => (StatusCode::CREATED, Json(channel_view(&ch))).into_response(),
        Err(m) => bad(m),
    }
}

/// `DELETE /team/notification-channels/{name}`.
#[utoipa::path(
    delete,
    path = "/team/notification-channels/{name}",
    tag = "channels",
    summary = "Remove a notification channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses((status = 200, description = "Removed"), (status = 404, description = "Not found"))
)]
pub async fn delete_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    match s.store.delete_channel(c.team.internal_id, &name).await {
        Ok(true) => Json(json!({"deleted": name})).into_response(),
        Ok(false) => not_found(format!("channel {name}")),
        Err(e) => store_err(e),
    }
}

/// `POST /team/notification-channels/{name}/test`: sends a test message.
#[utoipa::path(
    post,
    path = "/team/notification-channels/{name}/test",
    tag = "channels",
    summary = "Send a test message through a channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Delivered"),
        (status = 404, description = "Not found"),
        (status = 502, description = "Telegram refused or unreachable"),
        (status = 503, description = "Telegram not configured")
    )
)]
pub async fn test_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Write);
    let ch = match s.store.channels(c.team.internal_id).await {
        Ok(list) => match list.into_iter().find(|x| x.name == name) {
            Some(ch) => ch,
            None => return not_found(format!("channel {name}")),
        },
        Err(e) => return store_err(e),
    };
    let text = format!(
        "TAP test message for team {} (channel {}).",
        c.team.slug, ch.name
    );
    match crate::telegram::send_message(
        &s.client,
        &s.resolver,
        &s.config.telegram,
        &ch.chat_id,
        &text,
    )
    .await
    {
        Ok(()) => Json(json!({"name": ch.name, "delivered": true})).into_response(),
        Err(crate::telegram::TelegramError::NotConfigured) => api_error(
            Reason::ChannelUnavailable,
            "Telegram is not configured: set TELEGRAM_BOT_TOKEN",
        ),
        Err(e) => api_error(Reason::ChannelError, e.to_string()),
    }
}
