//! Ops API: members (SPEC §4).

#![allow(clippy::result_large_err)]

use crate::clock::rfc3339_ms;
use crate::error::Reason;
use crate::state::AppState;
use crate::web::api_error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tap_core::model::MemberRole;

use super::*;

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
