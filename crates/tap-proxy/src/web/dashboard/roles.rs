//! `/dashboard/roles`: agent roles (named sets of credentials): list,
//! create, edit, delete with confirmation.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::agents::Choice;
use super::{Frame, TeamQuery, act, enter};
use crate::ops::roles::{CreateRole, PutRole, RoleView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "roles";
const LIST: &str = "/dashboard/roles";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/roles/{name}", get(detail).post(edit))
        .route(
            "/dashboard/roles/{name}/delete",
            get(confirm_delete).post(delete),
        )
}

#[derive(Template)]
#[template(path = "dashboard/roles.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    roles: Vec<RoleView>,
    credentials: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "dashboard/role.html")]
struct DetailPage {
    title: String,
    nav: Option<Nav>,
    frame: Frame,
    r: RoleView,
    credentials: Vec<Choice>,
}

async fn credential_choices(state: &AppState, d: &super::Dash, on: &[String]) -> Vec<Choice> {
    d.credential_names(state)
        .await
        .into_iter()
        .map(|name| Choice {
            on: on.contains(&name),
            name,
        })
        .collect()
}

/// `GET /dashboard/roles`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let roles = match state.ops.roles(&d.scope).await {
        Ok(r) => r,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let credentials = credential_choices(&state, &d, &[]).await;
    d.page(&ListPage {
        title: "Roles",
        nav: d.nav(),
        frame: d.frame.clone(),
        roles,
        credentials,
    })
}

/// `POST /dashboard/roles`.
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
    let cmd = CreateRole {
        name: f.get("name").unwrap_or_default(),
        description: f.get("description"),
        credentials: Some(f.all("credential")),
        rate_limit_per_hour: rate,
    };
    match state.ops.create_role(&d.scope, cmd).await {
        Ok(r) => d.done(LIST, &format!("Role {} created.", r.name)),
        Err(e) => d.failed(e, LIST),
    }
}

/// `GET /dashboard/roles/{name}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
) -> Response {
    let back = format!("{LIST}/{name}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let r = match state.ops.role(&d.scope, &name).await {
        Ok(r) => r,
        Err(e) => return d.failed(e, LIST),
    };
    let credentials = credential_choices(&state, &d, &r.credentials).await;
    d.page(&DetailPage {
        title: format!("Role {}", r.name),
        nav: d.nav(),
        frame: d.frame.clone(),
        r,
        credentials,
    })
}

/// `POST /dashboard/roles/{name}`: description, credentials, rate limit.
pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{name}");
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rate = match f.number("rate_limit_per_hour") {
        Ok(r) => r,
        Err(e) => return d.failed(e, &back),
    };
    let cmd = PutRole {
        description: Some(f.get("description").unwrap_or_default()),
        credentials: Some(f.all("credential")),
        rate_limit_per_hour: rate,
    };
    match state.ops.put_role(&d.scope, &name, cmd).await {
        Ok(r) => d.done(&back, &format!("Role {} saved.", r.name)),
        Err(e) => d.failed(e, &back),
    }
}

/// `GET /dashboard/roles/{name}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
) -> Response {
    let back = format!("{LIST}/{name}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = state.ops.role(&d.scope, &name).await;
    d.confirm_delete(
        found,
        LIST,
        &name,
        &format!("Delete role {name}?"),
        &format!(
            "Role {name} is removed; agents holding it lose its credentials on the next request."
        ),
    )
}

/// `POST /dashboard/roles/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{name}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.delete_role(&d.scope, &name).await {
        Ok(v) => d.done(LIST, &format!("Role {} deleted.", v.deleted)),
        Err(e) => d.failed(e, &back),
    }
}
