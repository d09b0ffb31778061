//! `/dashboard/grants`: time-boxed auto-approvals (SPEC §5 step 7): list,
//! create, revoke.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Frame, TeamQuery, act, enter};
use crate::ops::OpsError;
use crate::ops::grants::{CreateGrant, GrantView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "grants";
const LIST: &str = "/dashboard/grants";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/grants/{id}/revoke", post(revoke))
}

#[derive(Template)]
#[template(path = "dashboard/grants.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    grants: Vec<GrantView>,
    credentials: Vec<String>,
}

/// `GET /dashboard/grants`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let grants = match state.ops.grants(&d.scope).await {
        Ok(g) => g,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let credentials = d.credential_names(&state).await;
    d.page(&ListPage {
        title: "Grants",
        nav: d.nav(),
        frame: d.frame.clone(),
        grants,
        credentials,
    })
}

/// `POST /dashboard/grants`.
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
    let (ttl, max) = match (f.number("ttl_minutes"), f.number("max_uses")) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return d.failed(e, LIST),
    };
    let Some(ttl) = ttl else {
        return d.failed(OpsError::Invalid("ttl_minutes is required".into()), LIST);
    };
    let credential = f.get("credential").unwrap_or_default();
    let cmd = CreateGrant {
        methods: f.list("methods"),
        route_scope: f.get("route_scope").unwrap_or_default(),
        ttl_minutes: ttl,
        max_uses: max,
    };
    match state.ops.create_grant(&d.scope, &credential, cmd).await {
        Ok(g) => d.done(
            LIST,
            &format!(
                "Grant {} on {} created: {} {} until {}.",
                g.id,
                g.credential,
                g.methods.join(","),
                g.route_scope,
                g.expires_at
            ),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/grants/{id}/revoke`.
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
    match state.ops.revoke_grant(&d.scope, &id).await {
        Ok(g) => d.done(LIST, &format!("Grant {} revoked.", g.id)),
        Err(e) => d.failed(e, LIST),
    }
}
