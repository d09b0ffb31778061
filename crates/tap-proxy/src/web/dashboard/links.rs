//! `/dashboard/links`: agents of other teams linked into this one with a
//! role (SPEC §3.6): list, link, unlink.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Frame, TeamQuery, act, enter};
use crate::ops::links::{CreateLink, LinkView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "links";
const LIST: &str = "/dashboard/links";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/links/delete", post(delete))
}

#[derive(Template)]
#[template(path = "dashboard/links.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    links: Vec<LinkView>,
    roles: Vec<String>,
}

/// `GET /dashboard/links`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let links = match state.ops.links(&d.scope).await {
        Ok(l) => l,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let roles = d.role_names(&state).await;
    d.page(&ListPage {
        title: "Links",
        nav: d.nav(),
        frame: d.frame.clone(),
        links,
        roles,
    })
}

/// `POST /dashboard/links`.
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
    let cmd = CreateLink {
        agent_id: f.get("agent_id").unwrap_or_default(),
        home_team: f.get("home_team").unwrap_or_default(),
        role: f.get("role"),
    };
    match state.ops.create_link(&d.scope, cmd).await {
        Ok(l) => d.done(
            LIST,
            &format!("Agent {}/{} is linked.", l.home_team, l.agent_id),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/links/delete` (`home_team`, `agent_id` fields).
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let home = f.get("home_team").unwrap_or_default();
    let agent = f.get("agent_id").unwrap_or_default();
    match state.ops.delete_link(&d.scope, &home, &agent).await {
        Ok(v) => d.done(
            LIST,
            &format!(
                "Agent {}/{} is no longer linked.",
                v.deleted.home_team, v.deleted.agent_id
            ),
        ),
        Err(e) => d.failed(e, LIST),
    }
}
