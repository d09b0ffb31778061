//! Members: login sessions, the web approval page (SPEC §11, always on) and
//! the `/team/approvals` endpoints.
//!
//! Pages carry no script (CSP forbids it), every dynamic value is HTML-escaped,
//! forms carry a per-session, per-approval CSRF token and the session cookie is
//! `HttpOnly; SameSite=Strict`.

use argon2::{Argon2, PasswordVerifier};
use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::crypto::{ADMIN_TOKEN_PREFIX, ct_eq, generate_admin_token};
use tap_core::model::{ApprovalStatus, MemberRole, Team};

use tap_core::approval::approval_eligible;
use tap_core::approval::gate::{Decision, GateError};

use crate::agent_views::{ErrorBody, LoginTeamView, LoginView, LogoutView};
use crate::approval::captured::CapturedRequest;
use crate::approval::decide::decide;
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Session lifetime (SPEC §4: 24 h).
pub const SESSION_TTL_MS: i64 = 24 * 3600 * 1000;
/// Failed logins per e-mail within the rolling hour before logins are refused.
pub const MAX_LOGIN_FAILURES: usize = 10;
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tap_session";

/// An authenticated member account.
#[derive(Clone, Debug)]
pub struct MemberCtx {
    /// Account id.
    pub account_id: i64,
    /// E-mail.
    pub email: String,
    /// The presented token's keyed hash (binds CSRF tokens).
    pub token_hash: String,
}

/// An admin API or page error in the one dialect of [`ProxyError`].
pub fn api_error(reason: Reason, detail: impl Into<String>) -> Response {
    ProxyError::new(reason, detail).into_response()
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(t.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == SESSION_COOKIE).then(|| v.to_owned())
        })
}

/// Authenticates a member by admin token or session (bearer or cookie).
pub async fn member(state: &AppState, headers: &HeaderMap) -> Option<MemberCtx> {
    let token = presented_token(headers)?;
    if !token.starts_with(ADMIN_TOKEN_PREFIX) || token.len() > 128 {
        return None;
    }
    let hash = state.keys.mac().digest(&token);
    let account_id = match state.store.admin_token(&hash).await.ok()? {
        Some(t) if ct_eq(t.token_hash.as_bytes(), hash.as_bytes()) => t.account_id,
        _ => state
            .store
            .session_account(&hash, state.clock.now_ms())
            .await
            .ok()??,
    };
    let account = state.store.account(account_id).await.ok()??;
    Some(MemberCtx {
        account_id,
        email: account.email,
        token_hash: hash,
    })
}

/// The member's teams with their roles.
async fn member_teams(state: &AppState, m: &MemberCtx) -> Vec<(Team, MemberRole, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(teams) = state.store.teams().await else {
        return out;
    };
    for t in teams {
        if let Ok(members) = state.store.members(t.internal_id).await
            && let Some(me) = members.into_iter().find(|x| x.account_id == m.account_id)
        {
            out.push((t, me.role, me.credentials));
        }
    }
    out
}

/// `POST /login` body (JSON or form).
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn check_password(state: &AppState, email: &str, password: &str) -> Option<i64> {
    let email = email.trim().to_ascii_lowercase();
    let account = state.store.account_by_email(&email).await.ok()??;
    let hash = argon2::password_hash::phc::PasswordHash::new(&account.password_hash).ok()?;
    let pw = password.to_owned();
    // argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(pw.as_bytes(), &hash)
            .is_ok()
    })
    .await
    .unwrap_or(false);
    ok.then_some(account.id)
}

async fn start_session(state: &AppState, account_id: i64) -> Option<(String, i64)> {
    let token = generate_admin_token().ok()?;
    let expires = state.clock.now_ms() + SESSION_TTL_MS;
    state
        .store
        .create_session(account_id, &state.keys.mac().digest(&token), expires)
        .await
        .ok()?;
    Some((token.to_string(), expires))
}

fn session_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL_MS / 1000
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /login`: JSON `{"email","password"}` → `{"session_token","expires_at","teams"}`;
/// a form post from the approval page sets the cookie and goes back.
#[utoipa::path(
    post,
    path = "/login",
    tag = "members",
    summary = "Log in (JSON or form) and get a 24 h session",
    responses(
        (status = 200, description = "Session", body = LoginView),
        (status = 400, description = "Neither JSON nor a form with email and password", body = ErrorBody),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let parsed: Option<LoginBody> = if is_form {
        serde_urlencoded_form(&body)
    } else {
        serde_json::from_slice(&body).ok()
    };
    let Some(b) = parsed else {
        return api_error(Reason::InvalidRequest, "send {\"email\", \"password\"}");
    };
    let who = b.email.trim().to_ascii_lowercase();
    let now = std::time::Instant::now();
    if state.login_failures.recent(0, &who, now) >= MAX_LOGIN_FAILURES {
        tracing::warn!("login refused: too many failures for this account");
        return api_error(
            Reason::TooManyAttempts,
            "too many failed logins for this account; try again later",
        );
    }
    let Some(account_id) = check_password(&state, &b.email, &b.password).await else {
        // Counted per e-mail whether or not the account exists (no enumeration).
        let _ = state.login_failures.check(0, &who, u32::MAX, now);
        tracing::info!("failed login");
        if is_form {
            return page(
                StatusCode::UNAUTHORIZED,
                "Login failed",
                "<p>Wrong e-mail or password.</p>",
            );
        }
        return api_error(Reason::Unauthorized, "wrong e-mail or password");
    };
    let Some((token, expires)) = start_session(&state, account_id).await else {
        return api_error(Reason::StoreUnavailable, "session could not be stored");
    };
    if is_form {
        let next = b
            .next
            .filter(|n| n.starts_with("/approve/") && !n.contains("//") && n.len() < 200)
            .unwrap_or_else(|| "/".into());
        let mut resp = Redirect::to(&next).into_response();
        resp.headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&token));
        return resp;
    }
    let m = MemberCtx {
        account_id,
        email: b.email.trim().to_ascii_lowercase(),
        token_hash: String::new(),
    };
    let teams = member_teams(&state, &m)
        .await
        .into_iter()
        .map(|(t, role, _)| LoginTeamView {
            team: t.slug,
            role: role.as_str(),
        })
        .collect();
    let mut resp = Json(LoginView {
        session_token: token.clone(),
        expires_at: rfc3339_ms(expires),
        teams,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&token));
    resp
}

fn serde_urlencoded_form(body: &[u8]) -> Option<LoginBody> {
    let mut email = None;
    let mut password = None;
    let mut next = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "email" => email = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(LoginBody {
        email: email?,
        password: password?,
        next,
    })
}

/// `POST /logout`.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "members",
    summary = "End the session",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out", body = LogoutView),
    )
)]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = presented_token(&headers) {
        let _ = state
            .store
            .delete_session(&state.keys.mac().digest(&t))
            .await;
    }
    let mut resp = Json(LogoutView { logged_out: true }).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tap_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// A refusal as a page: the same reason, status, detail and fix as the JSON dialect.
fn error_page(e: &ProxyError, title: &str) -> Response {
    page(
        e.reason.status(),
        title,
        &format!("<p>{}</p><p>{}</p>", esc(&e.message), esc(e.reason.fix())),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t} · TAP</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}pre{{white-space:pre-wrap;background:#f4f4f4;padding:.6rem;overflow-wrap:anywhere}}\
         td{{padding:.2rem .6rem;vertical-align:top}}button{{font-size:1rem;padding:.5rem 1.4rem;margin-right:1rem}}.approve{{background:#1a7f37;color:#fff}}.deny{{background:#b42318;color:#fff}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn login_form(next: &str) -> String {
    format!(
        "<p>Log in as a team member to decide this request.</p>\
         <form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{n}\">\
         <p><label>E-mail <input name=\"email\" type=\"email\" required></label></p>\
         <p><label>Password <input name=\"password\" type=\"password\" required></label></p>\
         <p><button type=\"submit\">Log in</button></p></form>",
        n = esc(next)
    )
}

fn csrf_token(state: &AppState, m: &MemberCtx, txn: &str) -> String {
    state
        .keys
        .mac()
        .digest_bytes(format!("csrf|{}|{txn}", m.token_hash).as_bytes())
}

fn valid_txn(txn: &str) -> bool {
    !txn.is_empty()
        && txn.len() <= 64
        && txn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such request.</p>",
        );
    }
    let Some(m) = member(&state, &headers).await else {
        return page(
            StatusCode::OK,
            "Approval needed",
            &login_form(&format!("/approve/{txn}")),
        );
    };
    let Ok(Some(a)) = state.store.approval(&txn).await else {
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such request.</p>",
        );
    };
    let teams = member_teams(&state, &m).await;
    let Some((team, _, _)) = teams
        .iter()
        .find(|(t, _, _)| t.internal_id == a.team_internal_id)
    else {
        // Not a member of that team: indistinguishable from a missing request.
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such request.</p>",
        );
    };
    let captured: Option<CapturedRequest> = serde_json::from_str(&a.request).ok();
    let dir = state.directory.get();
    let scrub = |s: &str| -> String {
        dir.teams
            .get(&a.team_internal_id)
            .map_or_else(|| s.to_owned(), |t| t.all_secrets.scrub_str(s).0)
    };
    let preview = captured
        .as_ref()
        .map(|c| scrub(&c.body_preview(4096)))
        .unwrap_or_default();
    let headers_list = captured
        .as_ref()
        .map(|c| {
            c.headers
                .iter()
                .map(|(n, _)| esc(n))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let votes: Vec<String> = a
        .votes
        .iter()
        .map(|v| {
            format!(
                "{} {} via {}",
                esc(&v.email),
                esc(&v.decision),
                esc(&v.channel)
            )
        })
        .collect();
    let members = state
        .store
        .members(a.team_internal_id)
        .await
        .unwrap_or_default();
    let may_decide = approval_eligible(state.store.as_ref(), &a, &members)
        .await
        .unwrap_or_default()
        .contains(&m.email);
    let mut body = format!(
        "<table>\
         <tr><td>Status</td><td><b>{status}</b> ({n}/{min} approvals)</td></tr>\
         <tr><td>Team</td><td>{team}</td></tr>\
         <tr><td>Agent</td><td>{agent}</td></tr>\
         <tr><td>Credential</td><td>{cred}</td></tr>\
         <tr><td>Request</td><td><code>{method} {target}</code></td></tr>\
         <tr><td>Headers</td><td>{hdrs}</td></tr>\
         <tr><td>Why</td><td>{reason}</td></tr>\
         <tr><td>Expires</td><td>{exp}</td></tr>\
         <tr><td>Decisions</td><td>{votes}</td></tr></table><h2>Body</h2><pre>{preview}</pre>",
        status = esc(a.status.public_str()),
        n = a.approvers().len(),
        min = a.min_approvals,
        team = esc(&team.slug),
        agent = esc(&a.agent_id),
        cred = esc(&a.credential),
        method = esc(&a.method),
        target = esc(&scrub(&a.target)),
        hdrs = headers_list,
        reason = esc(&a.policy_reason),
        exp = esc(&rfc3339_ms(a.expires_at)),
        votes = if votes.is_empty() {
            "none yet".into()
        } else {
            votes.join("<br>")
        },
        preview = esc(&preview),
    );
    if a.status == ApprovalStatus::Pending {
        if may_decide {
            let csrf = csrf_token(&state, &m, &a.txn_id);
            body.push_str(&format!(
                "<form method=\"post\" action=\"/approve/{t}/approve\" style=\"display:inline\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button class=\"approve\" type=\"submit\">Approve</button></form>\
                 <form method=\"post\" action=\"/approve/{t}/deny\" style=\"display:inline\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button class=\"deny\" type=\"submit\">Deny</button></form>",
                t = esc(&a.txn_id),
                c = esc(&csrf)
            ));
        } else {
            body.push_str("<p>You are not an approver for this credential.</p>");
        }
    }
    page(StatusCode::OK, "Approval request", &body)
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
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such request.</p>",
        );
    }
    let Some(m) = member(&state, &headers).await else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Log in first",
            &login_form(&format!("/approve/{txn}")),
        );
    };
    if !ct_eq(
        csrf_token(&state, &m, &txn).as_bytes(),
        form.csrf.as_bytes(),
    ) {
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>The form expired; reload the page.</p>",
        );
    }
    match decide(
        state.store.as_ref(),
        state.clock.as_ref(),
        Decision {
            txn_id: &txn,
            email: &m.email,
            approve,
            channel: "web",
            passkey: None,
        },
    )
    .await
    {
        Ok(_) => {
            state.broker.changed.notify_waiters();
            Redirect::to(&format!("/approve/{txn}")).into_response()
        }
        Err(e) => error_page(
            &ProxyError::new(gate_reason(&e), e.to_string()),
            "Not decided",
        ),
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
    summary = "Deny from the page (form with csrf)",
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

fn gate_reason(e: &GateError) -> Reason {
    match e {
        GateError::NotFound(_) => Reason::NotFound,
        GateError::NotPending(_) => Reason::NotPending,
        GateError::AlreadyVoted(_) => Reason::AlreadyDecided,
        GateError::NotEligible(_) | GateError::NotRouted(_) => Reason::Forbidden,
        GateError::PasskeyRequired => Reason::PasskeyRequired,
        GateError::Store(_) => Reason::StoreUnavailable,
    }
}
