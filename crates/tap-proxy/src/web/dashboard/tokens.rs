//! `/dashboard/tokens`: admin API tokens of the team's members: list
//! (admins), create (owners; the token shown once), revoke (owners).

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Frame, TeamQuery, act, enter};
use crate::ops::OpsError;
use crate::ops::tokens::{CreateToken, TokenView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "tokens";
const LIST: &str = "/dashboard/tokens";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/tokens/{id}/revoke", post(revoke))
}

#[derive(Template)]
#[template(path = "dashboard/tokens.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    tokens: Vec<TokenView>,
    members: Vec<String>,
}

/// `GET /dashboard/tokens`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let tokens = match state.ops.tokens(&d.scope).await {
        Ok(t) => t,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let members = state
        .ops
        .members(&d.scope)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.email)
        .collect();
    d.page(&ListPage {
        title: "Admin tokens",
        nav: d.nav(),
        frame: d.frame.clone(),
        tokens,
        members,
    })
}

/// `POST /dashboard/tokens`: the token is shown once.
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
    let cmd = CreateToken {
        member: f.get("member").unwrap_or_default(),
        label: f.get("label"),
    };
    match state.ops.create_token(&d.scope, cmd).await {
        Ok(t) => d.once(
            "Admin token created",
            &format!(
                "Token {} acts as {} with their full rights (send it as Authorization: Bearer):",
                t.id, t.member
            ),
            t.token,
            "Store this token now: it is shown only once.",
            LIST,
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return d.failed(OpsError::NotFound(format!("token {id}")), LIST);
    };
    match state.ops.revoke_token(&d.scope, id).await {
        Ok(v) => d.done(LIST, &format!("Token {} revoked.", v.id)),
        Err(e) => d.failed(e, LIST),
    }
}
