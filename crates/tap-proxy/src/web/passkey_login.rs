//! Sign-in with a passkey instead of the password (e-mail first):
//! `POST /login/passkey/begin {"email"}` → WebAuthn request options and a
//! ceremony id; `POST /login/passkey/finish?ceremony=ID` with the assertion →
//! the same session as `POST /login` (JSON and the cookie).
//!
//! An unknown e-mail, or one without passkeys, gets decoy options of the same
//! shape (a credential id derived from the e-mail with the proxy's key, a
//! random challenge) whose ceremony can only fail, so the answer does not
//! tell which e-mails have accounts or passkeys. A decoy ceremony is kept in
//! the store like a real one. Failures count against the same per-address
//! sign-in limit as passwords.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tap_core::model::CeremonyKind;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, Uuid};

use super::passkey::{account_passkeys, err, json_body, keep, record_use, take};
use super::passkey_service::Ceremony;
use super::session::{MAX_EMAIL_LEN, MemberCtx, member_teams, session_cookie, start_session};
use crate::agent_views::{LoginTeamView, LoginView};
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};
use crate::http::limiter::ClientAddr;
use crate::state::AppState;

/// `POST /login/passkey/begin` body.
#[derive(Debug, Deserialize)]
struct Begin {
    email: String,
}

/// `POST /login/passkey/finish` query.
#[derive(Debug, Deserialize)]
pub struct FinishQuery {
    ceremony: String,
}

fn too_many(retry: u64) -> Response {
    let mut e = ProxyError::new(
        Reason::TooManyAttempts,
        "too many failed sign-ins from this address; try again later",
    );
    e.retry_after = Some(retry);
    e.into_response()
}

fn failed() -> Response {
    err(Reason::Unauthorized, "passkey sign-in failed")
}

/// 429 when `client` used up its sign-in failures, 503 when the store cannot say.
async fn blocked(state: &AppState, client: ClientAddr) -> Option<Response> {
    match state.abuse.logins.blocked(client.0).await {
        Ok(None) => None,
        Ok(Some(retry)) => Some(too_many(retry)),
        Err(e) => Some(e.into_response()),
    }
}

/// Counts a failed sign-in of `client`: 401, or 429 when the address had
/// already used up its failures, or 503 when the store cannot count it.
async fn fail(state: &AppState, client: ClientAddr) -> Response {
    match state.abuse.logins.record_failure(client.0).await {
        Ok(None) => {
            tracing::info!(client = %client.0, "failed passkey sign-in");
            failed()
        }
        Ok(Some(retry)) => too_many(retry),
        Err(e) => e.into_response(),
    }
}

/// Options of the same shape as the library's, for an e-mail that cannot sign in.
fn decoy_options(state: &AppState, rp_id: &str, email: &str) -> serde_json::Value {
    let id = state.keys.mac().digest(&format!("passkey-decoy|{email}"));
    let id = hex_prefix_bytes(&id);
    let mut challenge = Uuid::new_v4().as_bytes().to_vec();
    challenge.extend_from_slice(Uuid::new_v4().as_bytes());
    serde_json::json!({
        "publicKey": {
            "challenge": URL_SAFE_NO_PAD.encode(challenge),
            "timeout": 300_000,
            "rpId": rp_id,
            "allowCredentials": [{"type": "public-key", "id": URL_SAFE_NO_PAD.encode(id)}],
            "userVerification": "required",
        }
    })
}

fn hex_prefix_bytes(h: &str) -> Vec<u8> {
    (0..h.len().min(64) / 2)
        .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// `POST /login/passkey/begin`.
#[utoipa::path(
    post,
    path = "/login/passkey/begin",
    tag = "members",
    summary = "Start signing in with a passkey (body {\"email\"}; answers WebAuthn request options and a ceremony id)",
    responses(
        (status = 200, description = "{\"publicKey\", \"ceremony\"}", body = Object),
        (status = 429, description = "Too many failed sign-ins from this address", body = crate::agent_views::ErrorBody),
        (status = 503, description = "WebAuthn not configured", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn begin(
    State(state): State<AppState>,
    client: ClientAddr,
    body: axum::body::Bytes,
) -> Response {
    let Some(service) = state.passkeys.clone() else {
        return err(
            Reason::PasskeyUnavailable,
            "passkeys are not configured on this proxy",
        );
    };
    if let Some(refused) = blocked(&state, client).await {
        return refused;
    }
    let b: Begin = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let email = b.email.trim().to_ascii_lowercase();
    if email.len() > MAX_EMAIL_LEN {
        return err(
            Reason::InvalidRequest,
            format!("the e-mail is longer than {MAX_EMAIL_LEN} characters"),
        );
    }
    let account = state.store.account_by_email(&email).await.ok().flatten();
    let keys: Vec<Passkey> = match &account {
        Some(a) => account_passkeys(&state, a.id)
            .await
            .map(|k| k.into_iter().map(|(_, p)| p).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let ceremony_id = Uuid::new_v4().to_string();
    let (options, ceremony) = match (&account, keys.is_empty()) {
        (Some(a), false) => match service.webauthn.start_passkey_authentication(&keys) {
            Ok((options, auth)) => (
                serde_json::to_value(options).unwrap_or_default(),
                Ceremony::SignIn {
                    state: Some(auth),
                    account_id: Some(a.id),
                },
            ),
            Err(e) => return err(Reason::Internal, format!("WebAuthn: {e}")),
        },
        _ => (
            decoy_options(&state, service.rp_id(), &email),
            Ceremony::SignIn {
                state: None,
                account_id: None,
            },
        ),
    };
    if let Err(r) = keep(&state, &service, &ceremony_id, &ceremony).await {
        return *r;
    }
    let mut v = options;
    v["ceremony"] = serde_json::Value::String(ceremony_id);
    Json(v).into_response()
}

/// `POST /login/passkey/finish?ceremony=ID`.
#[utoipa::path(
    post,
    path = "/login/passkey/finish",
    tag = "members",
    summary = "Finish signing in with a passkey: the assertion JSON; answers a session like POST /login",
    params(("ceremony" = String, Query, description = "The id from begin")),
    responses(
        (status = 200, description = "Session", body = LoginView),
        (status = 401, description = "Sign-in failed", body = crate::agent_views::ErrorBody),
        (status = 429, description = "Too many failed sign-ins from this address", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn finish(
    State(state): State<AppState>,
    client: ClientAddr,
    Query(q): Query<FinishQuery>,
    body: axum::body::Bytes,
) -> Response {
    let Some(service) = state.passkeys.clone() else {
        return err(
            Reason::PasskeyUnavailable,
            "passkeys are not configured on this proxy",
        );
    };
    if let Some(refused) = blocked(&state, client).await {
        return refused;
    }
    let assertion: PublicKeyCredential = match json_body(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let id: String = q.ceremony.chars().take(64).collect();
    let taken = match take(&state, &service, CeremonyKind::SignIn, &id).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(Ceremony::SignIn {
        state: Some(auth),
        account_id: Some(account_id),
    }) = taken
    else {
        return fail(&state, client).await;
    };
    let Ok(result) = service
        .webauthn
        .finish_passkey_authentication(&assertion, &auth)
    else {
        return fail(&state, client).await;
    };
    let now = state.clock.now_ms();
    record_use(&state, account_id, &result, now).await;
    let Some(account) = state.store.account(account_id).await.ok().flatten() else {
        return fail(&state, client).await;
    };
    let Some((token, expires)) = start_session(&state, account_id).await else {
        return err(Reason::StoreUnavailable, "session could not be stored");
    };
    let m = MemberCtx {
        account_id,
        email: account.email.clone(),
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
    tracing::info!(member = %account.email, "signed in with a passkey");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefixes_become_bytes() {
        assert_eq!(hex_prefix_bytes("00ff10"), vec![0, 255, 16]);
        assert_eq!(hex_prefix_bytes(&"ab".repeat(40)).len(), 32);
    }
}
