//! Members: login sessions, the web approval page (SPEC §11, always on) and
//! the `/team/approvals` endpoints.
//!
//! Pages carry no script (CSP forbids it), every dynamic value is HTML-escaped,
//! forms carry a per-session, per-approval CSRF token and the session cookie is
//! `HttpOnly; SameSite=Strict` (and `Secure` when `TAP_PUBLIC_URL` is https).
//! The cookie is honoured only by these pages; `/team/...` takes bearer
//! tokens alone ([`bearer_member`]).

use argon2::{Argon2, PasswordVerifier};
use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::crypto::{ADMIN_TOKEN_PREFIX, ct_eq, generate_admin_token};
use tap_core::model::{ApprovalStatus, MemberRole, Team};

use tap_core::approval::approval_eligible;

use crate::agent_views::{ErrorBody, LoginTeamView, LoginView, LogoutView};
use crate::approval::captured::CapturedRequest;
use crate::approval::display::{RequestDisplay, visible};
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Session lifetime (SPEC §4: 24 h).
pub const SESSION_TTL_MS: i64 = 24 * 3600 * 1000;
/// Longest e-mail address accepted at login (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest password checked at login; longer ones fail without hashing.
pub const MAX_PASSWORD_LEN: usize = 1024;
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

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_owned())
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

/// Authenticates a member of the web pages by admin token or session (bearer
/// or cookie). Only for pages whose state-changing forms carry a CSRF token.
pub async fn member(state: &AppState, headers: &HeaderMap) -> Option<MemberCtx> {
    member_by_token(state, presented_token(headers)?).await
}

/// Authenticates an admin API caller by `Authorization: Bearer` alone (an
/// admin token or a session token): a cookie a browser attaches to a forged
/// cross-site request authorises nothing under `/team`.
pub async fn bearer_member(state: &AppState, headers: &HeaderMap) -> Option<MemberCtx> {
    member_by_token(state, bearer_token(headers)?).await
}

async fn member_by_token(state: &AppState, token: String) -> Option<MemberCtx> {
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

/// The hash a login attempt is checked against: the account's, or for an
/// unknown e-mail the dummy hash, so both cost the same argon2 work and the
/// answer time does not tell which e-mails have accounts.
fn hash_to_check<'a>(account: Option<&'a (i64, String)>, dummy: &'a str) -> (Option<i64>, &'a str) {
    match account {
        Some((id, hash)) => (Some(*id), hash.as_str()),
        None => (None, dummy),
    }
}

/// `Ok(Some(account))` for the right password, `Ok(None)` for a wrong one or
/// an unknown e-mail, `Err` when too many checks are already running: each
/// argon2 check holds ~19 MiB, so their number is bounded
/// ([`crate::http::limiter::MAX_PASSWORD_CHECKS`]) and so is the wait for one.
async fn check_password(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<Option<i64>, ProxyError> {
    let busy = || {
        let mut e = ProxyError::new(
            Reason::TooManyAttempts,
            "too many logins are being checked right now",
        );
        e.retry_after = Some(1);
        e
    };
    let _permit = tokio::time::timeout(
        crate::http::limiter::PASSWORD_CHECK_WAIT,
        state.abuse.password_checks.acquire(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())?;
    let email = email.trim().to_ascii_lowercase();
    let account = state
        .store
        .account_by_email(&email)
        .await
        .ok()
        .flatten()
        .map(|a| (a.id, a.password_hash));
    let (id, phc) = hash_to_check(account.as_ref(), &state.abuse.dummy_password_hash);
    let phc = phc.to_owned();
    let pw = zeroize::Zeroizing::new(password.to_owned());
    // argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || {
        argon2::password_hash::phc::PasswordHash::new(&phc).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(pw.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    // The dummy hash matches no password, and `id` is None for it anyway.
    Ok(id.filter(|_| ok))
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

/// `; Secure` when browsers reach the proxy over https.
fn secure_attr(state: &AppState) -> &'static str {
    if state.config.serves_https() {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        secure_attr(state)
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
        (status = 400, description = "Neither JSON nor a form with email and password, or an e-mail over 254 characters", body = ErrorBody),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 403, description = "Posted from another origin", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this address (Retry-After)", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    client: crate::http::limiter::ClientAddr,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Counted per client address, never per e-mail: strangers' failures cannot
    // lock the owner out, and no attacker-chosen string is kept.
    let limiter = &state.abuse.logins;
    if let Some(retry) = limiter.blocked(client.0) {
        tracing::warn!(client = %client.0, "login refused: too many failures from this address");
        let mut e = ProxyError::new(
            Reason::TooManyAttempts,
            "too many failed logins from this address; try again later",
        );
        e.retry_after = Some(retry);
        return e.into_response();
    }
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
    if b.email.trim().len() > MAX_EMAIL_LEN {
        limiter.record_failure(client.0);
        return api_error(
            Reason::InvalidRequest,
            format!("the e-mail is longer than {MAX_EMAIL_LEN} characters"),
        );
    }
    let checked = if b.password.len() > MAX_PASSWORD_LEN {
        None
    } else {
        match check_password(&state, &b.email, &b.password).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        }
    };
    let Some(account_id) = checked else {
        limiter.record_failure(client.0);
        tracing::info!(client = %client.0, "failed login");
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
            .insert(header::SET_COOKIE, session_cookie(&state, &token));
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
        .insert(header::SET_COOKIE, session_cookie(&state, &token));
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
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_attr(&state)
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
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
         <style>body{{font:16px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}pre{{white-space:pre-wrap;background:#f4f4f4;padding:.6rem;overflow-wrap:anywhere}}pre.body{{max-height:32rem;overflow:auto}}\
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
    let team_dir = dir.teams.get(&a.team_internal_id);
    let display = captured.as_ref().map(|c| {
        RequestDisplay::new(
            c,
            team_dir
                .and_then(|t| t.credentials.get(&a.credential))
                .map(|c| &**c),
            scrub,
        )
    });
    let request_html = display.as_ref().map_or_else(
        || "<p>The stored request could not be read.</p>".to_owned(),
        request_html,
    );
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
         <tr><td>Why</td><td>{reason}</td></tr>\
         <tr><td>Expires</td><td>{exp}</td></tr>\
         <tr><td>Decisions</td><td>{votes}</td></tr></table>{request_html}",
        status = esc(a.status.public_str()),
        n = a.approvers().len(),
        min = a.min_approvals,
        team = esc(&team.slug),
        agent = esc(&a.agent_id),
        cred = esc(&a.credential),
        method = esc(&a.method),
        target = esc(&visible(&scrub(&a.target))),
        reason = esc(&a.policy_reason),
        exp = esc(&rfc3339_ms(a.expires_at)),
        votes = if votes.is_empty() {
            "none yet".into()
        } else {
            votes.join("<br>")
        },
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

/// The whole request as the approver must see it: every forwarded header with
/// its value, the injected header names, and the full body (scrollable) with
/// its exact size and digest.
fn request_html(d: &RequestDisplay) -> String {
    let mut h = String::from("<h2>Headers forwarded</h2>");
    if d.headers.is_empty() {
        h.push_str("<p>none</p>");
    } else {
        h.push_str("<table class=\"headers\">");
        for l in &d.headers {
            h.push_str(&format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(&l.name),
                esc(&l.value)
            ));
        }
        h.push_str("</table>");
    }
    h.push_str(&format!(
        "<p>Added by the credential (values never shown): <code>{}</code></p>",
        if d.injected.is_empty() {
            "nothing".to_owned()
        } else {
            esc(&d.injected.join(", "))
        }
    ));
    h.push_str(&format!(
        "<h2>Body</h2><p>{fmt}, {n} bytes, SHA-256 <code>{sha}</code></p><pre class=\"body\">{body}</pre>",
        fmt = esc(d.body_format),
        n = d.body_bytes,
        sha = esc(&d.body_sha256),
        body = esc(&d.body),
    ));
    h
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
    match state
        .ops
        .decide_as_member(m.account_id, &txn, approve, "web")
        .await
    {
        Ok(_) => Redirect::to(&format!("/approve/{txn}")).into_response(),
        Err(e) => error_page(&ProxyError::from(e), "Not decided"),
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

#[cfg(test)]
mod login_tests {
    use super::*;

    #[test]
    fn an_unknown_email_is_checked_against_the_dummy_hash() {
        let account = (7, "$argon2id$account".to_owned());
        assert_eq!(
            hash_to_check(Some(&account), "$argon2id$dummy"),
            (Some(7), "$argon2id$account")
        );
        assert_eq!(
            hash_to_check(None, "$argon2id$dummy"),
            (None, "$argon2id$dummy")
        );
    }

    #[test]
    fn bearer_only_ignores_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("tap_session=tapa_x"),
        );
        assert_eq!(bearer_token(&h), None);
        assert_eq!(presented_token(&h).as_deref(), Some("tapa_x"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tapa_y"),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("tapa_y"));
    }
}
