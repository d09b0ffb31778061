//! The approval page (`/approve/{txn}`, SPEC §11 Web): the whole request as
//! it will be forwarded, its progress, and Approve / Deny for members who may
//! decide it (Approve with a passkey when its policy requires one).

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::approval::{approval_eligible, approval_policies};
use tap_core::model::{Approval, ApprovalStatus};

use super::pages::{self, Nav};
use super::session::{MemberCtx, csrf_ok, csrf_token, login_page_with, member, member_teams, nav};
use crate::approval::captured::CapturedRequest;
use crate::approval::display::{RequestDisplay, visible};
use crate::clock::rfc3339_ms;
use crate::error::ProxyError;
use crate::state::AppState;

/// `/approve/{txn}`.
#[derive(Template)]
#[template(path = "approve.html")]
struct ApprovePage {
    title: &'static str,
    nav: Option<Nav>,
    txn: String,
    status: &'static str,
    approvals: usize,
    min_approvals: u32,
    team: String,
    agent: String,
    credential: String,
    method: String,
    target: String,
    reason: String,
    expires: String,
    votes: Vec<String>,
    request: Option<RequestDisplay>,
    pending: bool,
    may_decide: bool,
    passkey_required: bool,
    has_passkey: bool,
    csrf: String,
}

/// Whether `txn` looks like a transaction id (anything else is not looked up).
pub fn valid_txn(txn: &str) -> bool {
    !txn.is_empty()
        && txn.len() <= 64
        && txn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether any credential the approval names requires a passkey.
pub async fn needs_passkey(state: &AppState, a: &Approval) -> bool {
    approval_policies(state.store.as_ref(), a)
        .await
        .map(|ps| ps.iter().flatten().any(|p| p.require_passkey))
        // Unknown: ask for the stronger proof (the gate decides anyway).
        .unwrap_or(true)
}

/// The approval and its team's slug when `m` is a member of that team;
/// `None` alike for a missing approval and another team's.
pub async fn visible_approval(
    state: &AppState,
    m: &MemberCtx,
    txn: &str,
) -> Option<(Approval, String)> {
    let a = state.store.approval(txn).await.ok()??;
    let slug = member_teams(state, m)
        .await
        .into_iter()
        .find(|(t, _, _)| t.internal_id == a.team_internal_id)
        .map(|(t, _, _)| t.slug)?;
    Some((a, slug))
}

/// Whether `m` may decide `a` now.
pub async fn may_decide(state: &AppState, m: &MemberCtx, a: &Approval) -> bool {
    let members = state
        .store
        .members(a.team_internal_id)
        .await
        .unwrap_or_default();
    approval_eligible(state.store.as_ref(), a, &members)
        .await
        .unwrap_or_default()
        .contains(&m.email)
}

/// `GET /approve/{txn}`.
#[utoipa::path(
    get,
    path = "/approve/{txn}",
    tag = "approvals",
    summary = "Approval page for members",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    responses(
        (status = 200, description = "HTML page"),
    )
)]
pub async fn approve_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    if !valid_txn(&txn) {
        return pages::not_found(None);
    }
    let Some(m) = member(&state, &headers).await else {
        return login_page_with(
            &state,
            StatusCode::OK,
            "Sign in as a team member to decide this request.",
            &format!("/approve/{txn}"),
            None,
            "",
        );
    };
    let nav = nav(&state, &m);
    let Some((a, team)) = visible_approval(&state, &m, &txn).await else {
        return pages::not_found(Some(nav));
    };
    let captured: Option<CapturedRequest> = serde_json::from_str(&a.request).ok();
    let dir = state.directory.get();
    let team_dir = dir.teams.get(&a.team_internal_id);
    let scrub = |s: &str| -> String {
        team_dir.map_or_else(|| s.to_owned(), |t| t.all_secrets.scrub_str(s).0)
    };
    let request = captured.as_ref().map(|c| {
        RequestDisplay::new(
            c,
            team_dir
                .and_then(|t| t.credentials.get(&a.credential))
                .map(|c| &**c),
            scrub,
        )
    });
    let pending = a.status == ApprovalStatus::Pending;
    let passkey_required = needs_passkey(&state, &a).await;
    let has_passkey = state.passkeys.is_some()
        && state
            .store
            .passkeys(m.account_id)
            .await
            .is_ok_and(|p| !p.is_empty());
    let page = ApprovePage {
        title: "Approval request",
        txn: a.txn_id.clone(),
        status: a.status.public_str(),
        approvals: a.approvers().len(),
        min_approvals: a.min_approvals,
        team,
        agent: a.agent_id.clone(),
        credential: a.credential.clone(),
        method: a.method.clone(),
        target: visible(&scrub(&a.target)),
        reason: a.policy_reason.clone(),
        expires: rfc3339_ms(a.expires_at),
        votes: a
            .votes
            .iter()
            .map(|v| format!("{} {} via {}", v.email, v.decision, v.channel))
            .collect(),
        request,
        pending,
        may_decide: pending && may_decide(&state, &m, &a).await,
        passkey_required,
        has_passkey,
        csrf: csrf_token(&state, &m, &a.txn_id),
        nav: Some(nav),
    };
    pages::render(StatusCode::OK, &page)
}

/// The decision form.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
}

async fn web_decide(
    state: AppState,
    headers: HeaderMap,
    txn: String,
    form: DecisionForm,
    approve: bool,
) -> Response {
    if !valid_txn(&txn) {
        return pages::not_found(None);
    }
    let Some(m) = member(&state, &headers).await else {
        return login_page_with(
            &state,
            StatusCode::UNAUTHORIZED,
            "Sign in first.",
            &format!("/approve/{txn}"),
            None,
            "",
        );
    };
    let nav = nav(&state, &m);
    if !csrf_ok(&state, &m, &txn, &form.csrf) {
        return pages::message(
            StatusCode::FORBIDDEN,
            Some(nav),
            "Refused",
            &["The form expired; reload the page."],
            Some((&format!("/approve/{txn}"), "Reload")),
        );
    }
    match state
        .ops
        .decide_as_member(m.account_id, &txn, approve, "web")
        .await
    {
        Ok(_) => Redirect::to(&format!("/approve/{txn}")).into_response(),
        Err(e) => pages::error_page(Some(nav), &ProxyError::from(e), "Not decided"),
    }
}

/// `POST /approve/{txn}/approve`.
#[utoipa::path(
    post,
    path = "/approve/{txn}/approve",
    tag = "approvals",
    summary = "Approve from the page (form with csrf)",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 303, description = "Back to the page"),
        (status = 403, description = "Refused"),
    )
)]
pub async fn approve_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    web_decide(state, headers, txn, form, true).await
}

/// `POST /approve/{txn}/deny`.
#[utoipa::path(
    post,
    path = "/approve/{txn}/deny",
    tag = "approvals",
    summary = "Deny from the page (form with csrf); no passkey needed",
    params(
        ("txn" = String, Path, description = "Transaction id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 303, description = "Back to the page"),
        (status = 403, description = "Refused"),
    )
)]
pub async fn deny_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    web_decide(state, headers, txn, form, false).await
}
