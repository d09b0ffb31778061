//! `/dashboard/members`: the team's members and their roles: invite (a
//! generated password shown once), change role (owners), assign credentials
//! to approvers, remove with confirmation. Members are named by e-mail in a
//! form field, never in the path.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Frame, TeamQuery, act, enter};
use crate::ops::members::{ChangeRole, InviteMember, MemberCredentials, MemberView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "members";
const LIST: &str = "/dashboard/members";
const ROLES: &[&str] = &["owner", "admin", "approver", "viewer"];

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(invite))
        .route("/dashboard/members/role", post(change_role))
        .route("/dashboard/members/credentials", post(assign))
        .route(
            "/dashboard/members/remove",
            get(confirm_remove).post(remove),
        )
}

#[derive(Template)]
#[template(path = "dashboard/members.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    members: Vec<MemberView>,
    roles: &'static [&'static str],
    credentials: Vec<String>,
}

/// `GET /dashboard/members`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let members = match state.ops.members(&d.scope).await {
        Ok(m) => m,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let credentials = d.credential_names(&state).await;
    d.page(&ListPage {
        title: "Members",
        nav: d.nav(),
        frame: d.frame.clone(),
        members,
        roles: ROLES,
        credentials,
    })
}

/// `POST /dashboard/members`: invites a member (a new account's generated
/// password is shown once).
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = InviteMember {
        email: f.get("email").unwrap_or_default(),
        role: f.get("role").unwrap_or_default(),
        password: None,
    };
    match state.ops.invite_member(&d.scope, cmd).await {
        Ok(v) => match v.password {
            Some(p) => d.once(
                &format!("{} invited", v.email),
                &format!(
                    "{} is now {} in team {}. Their password (give it to them privately):",
                    v.email, v.role, v.team
                ),
                p,
                "This password is shown only once.",
                LIST,
            ),
            None => d.done(
                LIST,
                &format!("{} (an existing account) is now {}.", v.email, v.role),
            ),
        },
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/members/role`.
pub async fn change_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let email = f.get("email").unwrap_or_default();
    let cmd = ChangeRole {
        role: f.get("role").unwrap_or_default(),
    };
    match state.ops.change_member_role(&d.scope, &email, cmd).await {
        Ok(m) => d.done(LIST, &format!("{} is now {}.", m.email, m.role)),
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/members/credentials`: the credentials an approver decides.
pub async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let email = f.get("email").unwrap_or_default();
    let cmd = MemberCredentials {
        credentials: f.all("credential"),
    };
    match state
        .ops
        .set_member_credentials(&d.scope, &email, cmd)
        .await
    {
        Ok(m) => d.done(
            LIST,
            &format!(
                "{} now decides: {}.",
                m.email,
                if m.credentials.is_empty() {
                    "nothing".to_owned()
                } else {
                    m.credentials.join(", ")
                }
            ),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `GET /dashboard/members/remove` query.
#[derive(Debug, Default, Deserialize)]
pub struct MemberQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    email: String,
}

/// `GET /dashboard/members/remove?email=`: the confirmation step.
pub async fn confirm_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<MemberQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let email = q.email.trim().to_owned();
    d.confirm_with(
        &format!("Remove {email}?"),
        &format!(
            "{email} leaves team {}; their sessions and tokens no longer reach it.",
            d.frame.team
        ),
        "/dashboard/members/remove",
        LIST,
        vec![("email".to_owned(), email)],
    )
}

/// `POST /dashboard/members/remove`.
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let email = f.get("email").unwrap_or_default();
    match state.ops.remove_member(&d.scope, &email).await {
        Ok(v) => d.done(LIST, &format!("{} removed.", v.removed)),
        Err(e) => d.failed(e, LIST),
    }
}
