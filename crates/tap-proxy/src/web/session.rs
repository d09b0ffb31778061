//! Members' sign-in: sessions, `/login` (the page, the form and JSON),
//! `/logout`, and the CSRF tokens of the member pages.
//!
//! The session cookie is `HttpOnly; SameSite=Strict` (and `Secure` when
//! `TAP_PUBLIC_URL` is https) and honoured only by the member pages;
//! `/team/...` takes bearer tokens alone ([`bearer_member`]). Every form
//! carries a CSRF token: bound to the session (and its purpose) once signed
//! in, double-submitted with a short-lived cookie on the sign-in form.

use argon2::{Argon2, PasswordVerifier};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::crypto::{ADMIN_TOKEN_PREFIX, ct_eq, generate_admin_token};
use tap_core::model::{MemberRole, Team};

use super::pages::{self, LoginPage, Nav};
use crate::agent_views::{ErrorBody, LoginTeamView, LoginView, LogoutView};
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
/// Name of the sign-in form's CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "tap_login_csrf";

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

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    bearer_token(headers).or_else(|| cookie(headers, SESSION_COOKIE))
}

/// Whether the request authenticated with `Authorization` (which a foreign
/// page cannot make a browser send) rather than the session cookie.
pub fn used_bearer(headers: &HeaderMap) -> bool {
    bearer_token(headers).is_some()
}

/// The CSRF token of the member's session for `purpose` (an approval's txn
/// id, `logout`, `api`): a keyed digest, so it cannot be guessed and is
/// useless with any other session.
pub fn csrf_token(state: &AppState, m: &MemberCtx, purpose: &str) -> String {
    state
        .keys
        .mac()
        .digest_bytes(format!("csrf|{}|{purpose}", m.token_hash).as_bytes())
}

/// Whether `presented` is the session's CSRF token for `purpose`.
pub fn csrf_ok(state: &AppState, m: &MemberCtx, purpose: &str, presented: &str) -> bool {
    ct_eq(
        csrf_token(state, m, purpose).as_bytes(),
        presented.as_bytes(),
    )
}

/// The header of a signed-in page.
pub fn nav(state: &AppState, m: &MemberCtx) -> Nav {
    Nav {
        email: m.email.clone(),
        logout_csrf: csrf_token(state, m, "logout"),
        api_csrf: csrf_token(state, m, "api"),
    }
}

/// Where a sign-in may send the browser next: a path on this proxy (never
/// another host, never a scheme), else the inbox.
pub fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && n.len() < 200
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&".contains(&b))
    })
    .map_or_else(|| "/inbox".to_owned(), str::to_owned)
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
pub(crate) async fn member_teams(
    state: &AppState,
    m: &MemberCtx,
) -> Vec<(Team, MemberRole, Vec<String>)> {
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
    #[serde(default)]
    csrf: Option<String>,
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
    client: crate::http::limiter::ClientAddr,
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
    // Asked again now that this attempt may check a password: attempts sent
    // at once all passed the first look before any failure was counted, and
    // would otherwise each get a guess (at most the permits in use do).
    if let Some(retry) = state.abuse.logins.blocked(client.0).await? {
        return Err(too_many_logins_error(client, retry));
    }
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

pub(super) async fn start_session(state: &AppState, account_id: i64) -> Option<(String, i64)> {
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
pub(super) fn secure_attr(state: &AppState) -> &'static str {
    if state.config.serves_https() {
        "; Secure"
    } else {
        ""
    }
}

pub(super) fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        secure_attr(state)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn too_many_logins_error(client: crate::http::limiter::ClientAddr, retry: u64) -> ProxyError {
    tracing::warn!(client = %client.0, "login refused: too many failures from this address");
    let mut e = ProxyError::new(
        Reason::TooManyAttempts,
        "too many failed logins from this address; try again later",
    );
    e.retry_after = Some(retry);
    e
}

fn too_many_logins(client: crate::http::limiter::ClientAddr, retry: u64) -> Response {
    too_many_logins_error(client, retry).into_response()
}

/// Counts a failed login of `client`; `Err` is the answer instead of the
/// failure's own: 429 when the address had already used up its failures
/// (counted elsewhere meanwhile), 503 when the store cannot count it.
async fn count_login_failure(
    state: &AppState,
    client: crate::http::limiter::ClientAddr,
) -> Result<(), Response> {
    match state.abuse.logins.record_failure(client.0).await {
        Ok(None) => Ok(()),
        Ok(Some(retry)) => Err(too_many_logins(client, retry)),
        Err(e) => Err(e.into_response()),
    }
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
    match limiter.blocked(client.0).await {
        Ok(None) => {}
        Ok(Some(retry)) => return too_many_logins(client, retry),
        Err(e) => return e.into_response(),
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
    if is_form && !login_csrf_ok(&state, &headers, b.csrf.as_deref()) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            &b.next,
            Some("The sign-in form expired; please try again."),
            &b.email,
        );
    }
    if b.email.trim().len() > MAX_EMAIL_LEN {
        if let Err(refused) = count_login_failure(&state, client).await {
            return refused;
        }
        return api_error(
            Reason::InvalidRequest,
            format!("the e-mail is longer than {MAX_EMAIL_LEN} characters"),
        );
    }
    let checked = if b.password.len() > MAX_PASSWORD_LEN {
        None
    } else {
        match check_password(&state, client, &b.email, &b.password).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        }
    };
    let Some(account_id) = checked else {
        if let Err(refused) = count_login_failure(&state, client).await {
            return refused;
        }
        tracing::info!(client = %client.0, "failed login");
        if is_form {
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &b.next,
                Some("Wrong e-mail or password."),
                &b.email,
            );
        }
        return api_error(Reason::Unauthorized, "wrong e-mail or password");
    };
    let Some((token, expires)) = start_session(&state, account_id).await else {
        return api_error(Reason::StoreUnavailable, "session could not be stored");
    };
    if is_form {
        let next = safe_next(b.next.as_deref());
        let mut resp = Redirect::to(&next).into_response();
        resp.headers_mut()
            .append(header::SET_COOKIE, session_cookie(&state, &token));
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{LOGIN_CSRF_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
            secure_attr(&state)
        )) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
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
    let mut csrf = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "email" => email = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            "next" => next = Some(v.into_owned()),
            "csrf" => csrf = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(LoginBody {
        email: email?,
        password: password?,
        next,
        csrf,
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
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        // The page's sign-out form: only with the session's own token, so a
        // foreign page cannot sign a member out.
        let presented = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match member(&state, &headers).await {
            Some(m) if csrf_ok(&state, &m, "logout", &presented) => {}
            Some(m) => {
                return pages::message(
                    StatusCode::FORBIDDEN,
                    Some(nav(&state, &m)),
                    "Refused",
                    &["The form expired; reload the page."],
                    Some(("/inbox", "Back to the inbox")),
                );
            }
            None => return Redirect::to("/login").into_response(),
        }
    }
    if let Some(t) = presented_token(&headers) {
        let _ = state
            .store
            .delete_session(&state.keys.mac().digest(&t))
            .await;
    }
    let mut resp = if is_form {
        Redirect::to("/login").into_response()
    } else {
        Json(LogoutView { logged_out: true }).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_attr(&state)
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The sign-in form's token for the browser's CSRF cookie value.
fn login_csrf_for(state: &AppState, nonce: &str) -> String {
    state
        .keys
        .mac()
        .digest_bytes(format!("login-csrf|{nonce}").as_bytes())
}

/// The sign-in form must carry the token of the CSRF cookie this proxy set
/// when it showed the form: a foreign page can neither read nor set it.
fn login_csrf_ok(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> bool {
    match (cookie(headers, LOGIN_CSRF_COOKIE), presented) {
        (Some(nonce), Some(p)) if !nonce.is_empty() && nonce.len() <= 128 => {
            ct_eq(login_csrf_for(state, &nonce).as_bytes(), p.as_bytes())
        }
        _ => false,
    }
}

/// The sign-in page, with a fresh CSRF cookie and token.
pub fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &Option<String>,
    message: Option<&str>,
    email: &str,
) -> Response {
    login_page_with(
        state,
        status,
        "Sign in as a team member to see and decide requests.",
        &safe_next(next.as_deref()),
        message,
        email,
    )
}

/// [`login_page`] with its own intro line and destination.
pub fn login_page_with(
    state: &AppState,
    status: StatusCode,
    intro: &'static str,
    next: &str,
    message: Option<&str>,
    email: &str,
) -> Response {
    let nonce = match generate_admin_token() {
        Ok(t) => t.to_string(),
        Err(_) => return api_error(Reason::Internal, "no randomness for the sign-in form"),
    };
    let mut resp = pages::render(
        status,
        &LoginPage {
            title: "Sign in",
            nav: None,
            intro,
            next: next.to_owned(),
            csrf: login_csrf_for(state, &nonce),
            message: message.map(str::to_owned),
            email: email.chars().take(MAX_EMAIL_LEN).collect(),
            passkeys: state.passkeys.is_some(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={nonce}; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600{}",
        secure_attr(state)
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /login` query.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /login`: the sign-in form (a signed-in member goes on at once).
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if member(&state, &headers).await.is_some() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    login_page(&state, StatusCode::OK, &q.next, None, "")
}

/// `GET /`: the inbox for a signed-in member, else the sign-in form.
pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if member(&state, &headers).await.is_some() {
        Redirect::to("/inbox").into_response()
    } else {
        Redirect::to("/login").into_response()
    }
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
    fn next_stays_on_this_proxy() {
        assert_eq!(safe_next(Some("/approve/abc-1")), "/approve/abc-1");
        assert_eq!(safe_next(Some("/inbox?team=ops")), "/inbox?team=ops");
        for bad in [
            "//evil.test/x",
            "https://evil.test",
            "/\\evil.test",
            "javascript:alert(1)",
            "/x\"onload",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/inbox", "{bad}");
        }
        assert_eq!(safe_next(None), "/inbox");
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
