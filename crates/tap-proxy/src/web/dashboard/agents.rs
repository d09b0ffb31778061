//! `/dashboard/agents`: list, create (the key shown once), grant credentials
//! and roles, enable/disable, rotate the key (shown once), delete.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Dash, Frame, TeamQuery, act, enter};
use crate::ops::agents::{AgentView, CreateAgent, PatchAgent};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "agents";
const LIST: &str = "/dashboard/agents";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/agents/{id}", get(detail).post(edit))
        .route("/dashboard/agents/{id}/enable", post(enable))
        .route("/dashboard/agents/{id}/disable", post(disable))
        .route("/dashboard/agents/{id}/rotate", post(rotate))
        .route(
            "/dashboard/agents/{id}/delete",
            get(confirm_delete).post(delete),
        )
}

/// A checkbox of a name list.
pub struct Choice {
    /// The name.
    pub name: String,
    /// Ticked.
    pub on: bool,
}

fn choices(all: &[String], on: &[String]) -> Vec<Choice> {
    all.iter()
        .map(|n| Choice {
            name: n.clone(),
            on: on.contains(n),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/agents.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    agents: Vec<AgentView>,
    credentials: Vec<Choice>,
    roles: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "dashboard/agent.html")]
struct DetailPage {
    title: String,
    nav: Option<Nav>,
    frame: Frame,
    a: AgentView,
    credentials: Vec<Choice>,
    roles: Vec<Choice>,
}

/// Names of the team's credentials and roles (empty when not readable).
async fn names(state: &AppState, d: &Dash) -> (Vec<String>, Vec<String>) {
    (d.credential_names(state).await, d.role_names(state).await)
}

/// `GET /dashboard/agents`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let agents = match state.ops.agents(&d.scope).await {
        Ok(a) => a,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let (creds, roles) = names(&state, &d).await;
    d.page(&ListPage {
        title: "Agents",
        nav: d.nav(),
        frame: d.frame.clone(),
        agents,
        credentials: choices(&creds, &[]),
        roles: choices(&roles, &[]),
    })
}

/// `POST /dashboard/agents`: creates an agent; its key is shown once.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rate = match f.number("rate_limit_per_hour") {
        Ok(r) => r,
        Err(e) => return d.failed(e, LIST),
    };
    let cmd = CreateAgent {
        id: f.get("id").unwrap_or_default(),
        description: f.get("description"),
        roles: Some(f.all("role")),
        credentials: Some(f.all("credential")),
        rate_limit_per_hour: rate,
    };
    match state.ops.create_agent(&d.scope, cmd).await {
        Ok(k) => d.once(
            &format!("Agent {} created", k.id),
            &format!("The API key of agent {} (send it as X-TAP-Key):", k.id),
            k.api_key.to_string(),
            &k.message,
            &format!("{LIST}/{}", k.id),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `GET /dashboard/agents/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
) -> Response {
    let back = format!("{LIST}/{id}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let a = match state.ops.agent(&d.scope, &id).await {
        Ok(a) => a,
        Err(e) => return d.failed(e, LIST),
    };
    let (creds, roles) = names(&state, &d).await;
    d.page(&DetailPage {
        title: format!("Agent {}", a.id),
        nav: d.nav(),
        frame: d.frame.clone(),
        credentials: choices(&creds, &a.credentials),
        roles: choices(&roles, &a.roles),
        a,
    })
}

/// `POST /dashboard/agents/{id}`: description, credentials and roles.
pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{id}");
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = PatchAgent {
        description: Some(f.get("description").unwrap_or_default()),
        enabled: None,
        roles: Some(f.all("role")),
        credentials: Some(f.all("credential")),
    };
    match state.ops.patch_agent(&d.scope, &id, cmd).await {
        Ok(a) => d.done(&back, &format!("Agent {} saved.", a.id)),
        Err(e) => d.failed(e, &back),
    }
}

async fn set_enabled(
    state: AppState,
    headers: HeaderMap,
    q: TeamQuery,
    id: String,
    body: Bytes,
    enabled: bool,
) -> Response {
    let back = format!("{LIST}/{id}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.set_agent_enabled(&d.scope, &id, enabled).await {
        Ok(v) => d.done(
            &back,
            &format!(
                "Agent {} {}.",
                v.id,
                if v.enabled { "enabled" } else { "disabled" }
            ),
        ),
        Err(e) => d.failed(e, &back),
    }
}

/// `POST /dashboard/agents/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(state, headers, q, id, body, true).await
}

/// `POST /dashboard/agents/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(state, headers, q, id, body, false).await
}

/// `POST /dashboard/agents/{id}/rotate`: a new key, shown once; the old one
/// stops working on the next request.
pub async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{id}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.rotate_agent_key(&d.scope, &id).await {
        Ok(k) => d.once(
            &format!("New key for {}", k.id),
            &format!(
                "The new API key of agent {}; the old key no longer works:",
                k.id
            ),
            k.api_key.to_string(),
            &k.message,
            &back,
        ),
        Err(e) => d.failed(e, &back),
    }
}

/// `GET /dashboard/agents/{id}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
) -> Response {
    let back = format!("{LIST}/{id}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = state.ops.agent(&d.scope, &id).await;
    d.confirm_delete(
        found,
        LIST,
        &id,
        &format!("Delete agent {id}?"),
        &format!(
            "Agent {id} and its grants are removed; its key stops working on the next request."
        ),
    )
}

/// `POST /dashboard/agents/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{id}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.delete_agent(&d.scope, &id).await {
        Ok(v) => d.done(LIST, &format!("Agent {} deleted.", v.deleted)),
        Err(e) => d.failed(e, &back),
    }
}
