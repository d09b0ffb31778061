//! Admin API: members (SPEC §4) over the admin service.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::members::{
    ChangeRole, InviteMember, InvitedView, MemberCredentials, MemberRemovedView, MemberView,
};
use crate::state::AppState;

/// `GET /team/members`.
#[utoipa::path(
    get,
    path = "/team/members",
    tag = "members",
    summary = "List members",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Members", body = Vec<MemberView>),
    )
)]
pub async fn list_members(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.members(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/members`: invites (creates the account with a generated password when new).
#[utoipa::path(
    post,
    request_body = InviteMember,
    path = "/team/members",
    tag = "members",
    summary = "Invite a member",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Invited; `password` only when generated (shown once)", body = InvitedView),
        (status = 409, description = "Already a member"),
    )
)]
pub async fn invite_member(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: InviteMember = json_body!(body);
    match s.ops.invite_member(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/members/{email}/role` (owner only).
#[utoipa::path(
    put,
    request_body = ChangeRole,
    path = "/team/members/{email}/role",
    tag = "members",
    summary = "Change a member's role (owner)",
    params(
        ("email" = String, Path, description = "Member e-mail"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = MemberView),
        (status = 409, description = "Last owner"),
    )
)]
pub async fn change_member_role(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: ChangeRole = json_body!(body);
    match s.ops.change_member_role(&c.scope, &email, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
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
        (status = 200, description = "Removed", body = MemberRemovedView),
        (status = 409, description = "Last owner"),
    )
)]
pub async fn remove_member(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.remove_member(&c.scope, &email).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT /team/members/{email}/credentials`: replaces the credentials assigned to an approver.
#[utoipa::path(
    put,
    request_body = MemberCredentials,
    path = "/team/members/{email}/credentials",
    tag = "members",
    summary = "Assign credentials to an approver",
    params(
        ("email" = String, Path, description = "Member e-mail"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Assigned", body = MemberView),
        (status = 404, description = "No such member or credential"),
    )
)]
pub async fn set_member_credentials(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: MemberCredentials = json_body!(body);
    match s.ops.set_member_credentials(&c.scope, &email, cmd).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
