//! `/dashboard`: the team at a glance and its default approval mode.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Frame, TeamQuery, act, enter};
use crate::ops::team::TeamSettings;
use crate::state::AppState;
use crate::web::pages::Nav;

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/settings", post(settings))
}

#[derive(Template)]
#[template(path = "dashboard/home.html")]
struct HomePage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    mode: String,
    counts: Vec<(&'static str, &'static str, String)>,
}

fn count<T, E>(r: Result<Vec<T>, E>) -> String {
    r.map_or_else(|_| "—".to_owned(), |v| v.len().to_string())
}

/// `GET /dashboard`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), "home", "/dashboard").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let ops = &state.ops;
    let view = match ops.team_view(&d.scope).await {
        Ok(v) => v,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let counts = vec![
        (
            "Credentials",
            "/dashboard/credentials",
            count(ops.credentials(&d.scope).await),
        ),
        (
            "Agents",
            "/dashboard/agents",
            count(ops.agents(&d.scope).await),
        ),
        (
            "Roles",
            "/dashboard/roles",
            count(ops.roles(&d.scope).await),
        ),
        (
            "Grants",
            "/dashboard/grants",
            count(ops.grants(&d.scope).await),
        ),
        (
            "Members",
            "/dashboard/members",
            count(ops.members(&d.scope).await),
        ),
    ];
    d.page(&HomePage {
        title: "Dashboard",
        nav: d.nav(),
        frame: d.frame.clone(),
        mode: view.default_approval_mode,
        counts,
    })
}

/// `POST /dashboard/settings`: the team's default approval mode.
pub async fn settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(
        &state,
        &headers,
        q.team.as_deref(),
        "home",
        "/dashboard",
        &body,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = TeamSettings {
        default_approval_mode: f.get("default_approval_mode").unwrap_or_default(),
    };
    match state.ops.set_team_settings(&d.scope, cmd).await {
        Ok(v) => d.done(
            "/dashboard",
            &format!("Default approval mode is now {}.", v.default_approval_mode),
        ),
        Err(e) => d.failed(e, "/dashboard"),
    }
}
