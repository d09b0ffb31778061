//! Passkeys (SPEC §11 Passkey): members register WebAuthn credentials at
//! `/passkeys`, and a `require_passkey` approval needs a fresh assertion
//! made for that one request.
//!
//! Binding: `POST /approve/{txn}/passkey/begin` asks the WebAuthn library for
//! a random single-use challenge and keeps, beside the library's ceremony
//! state, the request hash the approval had (team, agent, credential, method,
//! target, forwarded headers and body digest — the hash the executor checks
//! before forwarding) and who began it. `finish` takes that state out once
//! (a replayed assertion finds none), never after
//! [`CEREMONY_TTL_MS`](super::passkey_service::CEREMONY_TTL_MS), verifies
//! the assertion (user verification required, only the member's own
//! passkeys allowed), checks that the approval still has the same request
//! hash, and only then builds the [`PasskeyProof`] the gate accepts for
//! exactly this txn, member and hash.
//!
//! Ceremony state lives in the store (bounded, expiring, taken out once), so
//! begin and finish may reach different replicas; the decision itself goes
//! through the store like every other.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tap_core::approval::gate::PasskeyProof;
use tap_core::model::{ApprovalStatus, CeremonyKind, PasskeyRecord};
use tap_core::store::StoreError;
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
};

use super::approve::{may_decide, valid_txn, visible_approval};
use super::pages::{self, Nav};
use super::passkey_service::{Ceremony, KeepError, PasskeyService};
use super::session::{MemberCtx, csrf_ok, member, nav, used_bearer};
use crate::approval::display::visible;
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Passkeys one member may register.
pub const MAX_PASSKEYS_PER_MEMBER: usize = 20;
/// Longest passkey name.
const MAX_NAME_CHARS: usize = 64;
/// `Retry-After` when every ceremony slot is taken.
const CEREMONY_RETRY_SECS: u64 = 60;

/// What a member's ceremony is kept under: the session and the purpose
/// (one registration per session, one approval per session and request).
fn key(m: &MemberCtx, what: &str) -> String {
    format!("{}|{what}", m.token_hash)
}

/// Keeps a ceremony just begun; the refusal to answer when it cannot be kept.
pub(super) async fn keep(
    state: &AppState,
    service: &PasskeyService,
    key: &str,
    ceremony: &Ceremony,
) -> Result<(), Refusal> {
    let now = state.clock.now_ms();
    match service
        .keep(state.store.as_ref(), &state.keys, key, ceremony, now)
        .await
    {
        Ok(()) => Ok(()),
        Err(KeepError::Full) => {
            let mut e = ProxyError::new(
                Reason::TooManyAttempts,
                "too many passkey ceremonies in progress; try again in a minute",
            );
            e.retry_after = Some(CEREMONY_RETRY_SECS);
            Err(Box::new(e.into_response()))
        }
        Err(KeepError::Encode) => Err(refuse(
            Reason::Internal,
            "the passkey ceremony could not be stored",
        )),
        Err(KeepError::Store(e)) => Err(Box::new(ProxyError::from(e).into_response())),
    }
}

/// Takes a ceremony out for its finish; a store failure as the refusal.
pub(super) async fn take(
    state: &AppState,
    service: &PasskeyService,
    kind: CeremonyKind,
    key: &str,
) -> Result<Option<Ceremony>, Refusal> {
    service
        .take(
            state.store.as_ref(),
            &state.keys,
            kind,
            key,
            state.clock.now_ms(),
        )
        .await
        .map_err(|e| Box::new(ProxyError::from(e).into_response()))
}

/// The WebAuthn user handle of an account: stable, opaque, not the e-mail.
fn user_handle(state: &AppState, account_id: i64) -> Uuid {
    let h = state
        .keys
        .mac()
        .digest(&format!("webauthn-user|{account_id}"));
    Uuid::parse_str(h.get(..32).unwrap_or_default()).unwrap_or_else(|_| Uuid::nil())
}

fn credential_id_of(p: &Passkey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p.cred_id())
}

pub(super) fn err(reason: Reason, detail: impl Into<String>) -> Response {
    ProxyError::new(reason, detail).into_response()
}

/// A refusal on its way to becoming the answer (boxed: a `Response` is large).
pub(super) type Refusal = Box<Response>;

fn refuse(reason: Reason, detail: impl Into<String>) -> Refusal {
    Box::new(err(reason, detail))
}

/// The member of a passkey call and the service: a session (bearer, or the
/// cookie with the page's `X-TAP-CSRF` token) and WebAuthn configured.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(MemberCtx, Arc<PasskeyService>), Refusal> {
    let Some(service) = state.passkeys.clone() else {
        return Err(refuse(
            Reason::PasskeyUnavailable,
            "passkeys are not configured on this proxy (TAP_WEBAUTHN_RP_ID, TAP_WEBAUTHN_ORIGIN)",
        ));
    };
    let Some(m) = member(state, headers).await else {
        return Err(refuse(Reason::Unauthorized, "sign in first"));
    };
    if !used_bearer(headers) {
        let presented = headers
            .get("x-tap-csrf")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !csrf_ok(state, &m, "api", presented) {
            return Err(refuse(
                Reason::Forbidden,
                "missing or wrong X-TAP-CSRF token; reload the page",
            ));
        }
    }
    Ok((m, service))
}

pub(super) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|_| {
        refuse(
            Reason::InvalidRequest,
            "the body is not the WebAuthn JSON this step expects",
        )
    })
}

pub(super) async fn member_passkeys(
    state: &AppState,
    m: &MemberCtx,
) -> Result<Vec<(PasskeyRecord, Passkey)>, Refusal> {
    account_passkeys(state, m.account_id).await
}

/// The passkeys of an account, parsed.
pub(super) async fn account_passkeys(
    state: &AppState,
    account_id: i64,
) -> Result<Vec<(PasskeyRecord, Passkey)>, Refusal> {
    let rows = state
        .store
        .passkeys(account_id)
        .await
        .map_err(|e| Box::new(ProxyError::from(e).into_response()))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let p = serde_json::from_str::<Passkey>(&r.passkey).ok()?;
            Some((r, p))
        })
        .collect())
}

/// Stores the used passkey's new signature counter and `last_used_at`: a
/// cloned authenticator then shows up as a counter going backwards, which the
/// library refuses next time.
pub(super) async fn record_use(
    state: &AppState,
    account_id: i64,
    result: &AuthenticationResult,
    now: i64,
) {
    let Ok(keys) = account_passkeys(state, account_id).await else {
        return;
    };
    for (rec, mut pk) in keys {
        if pk.cred_id() == result.cred_id() {
            pk.update_credential(result);
            if let Ok(s) = serde_json::to_string(&pk) {
                let _ = state.store.update_passkey(&rec.id, &s, now).await;
            }
        }
    }
}

/// One passkey as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasskeyView {
    /// Id (for `DELETE /passkeys/{id}`).
    pub id: String,
    /// The member's name for it.
    pub name: String,
    /// Registration time.
    pub created_at: String,
    /// Last approval or sign-in with it.
    pub last_used_at: Option<String>,
}

impl From<&PasskeyRecord> for PasskeyView {
    fn from(r: &PasskeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created_at: rfc3339_ms(r.created_at),
            last_used_at: r.last_used_at.map(rfc3339_ms),
        }
    }
}

struct KeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage {
    title: &'static str,
    nav: Option<Nav>,
    enabled: bool,
    keys: Vec<KeyRow>,
}

/// `GET /passkeys`: the member's passkeys (HTML, or JSON for `Accept: application/json`).
pub async fn passkeys_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(m) = member(&state, &headers).await else {
        return Redirect::to("/login?next=/passkeys").into_response();
    };
    let rows = state.store.passkeys(m.account_id).await.unwrap_or_default();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return Json(rows.iter().map(PasskeyView::from).collect::<Vec<_>>()).into_response();
    }
    pages::render(
        StatusCode::OK,
        &PasskeysPage {
            title: "Passkeys",
            nav: Some(nav(&state, &m)),
            enabled: state.passkeys.is_some(),
            keys: rows
                .iter()
                .map(|r| KeyRow {
                    id: r.id.clone(),
                    name: visible(&r.name),
                    created: rfc3339_ms(r.created_at),
                    last_used: r.last_used_at.map_or_else(|| "never".into(), rfc3339_ms),
                })
                .collect(),
        },
    )
}

/// `POST /passkeys/register/begin` body.
#[derive(Debug, Default, Deserialize)]
struct RegisterBegin {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /passkeys/register/begin`: WebAuthn creation options (`publicKey`).
#[utoipa::path(
    post,
    path = "/passkeys/register/begin",
    tag = "passkeys",
    summary = "Start registering a passkey (body {\"name\"}; answers WebAuthn creation options)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "PublicKeyCredentialCreationOptions as {\"publicKey\"}", body = Object),
        (status = 401, description = "No member session", body = crate::agent_views::ErrorBody),
        (status = 403, description = "Missing X-TAP-CSRF with the cookie", body = crate::agent_views::ErrorBody),
        (status = 503, description = "WebAuthn not configured (passkey_unavailable)", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn register_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (m, service) = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let b: RegisterBegin = if body.is_empty() {
        RegisterBegin::default()
    } else {
        match json_body(&body) {
            Ok(b) => b,
            Err(r) => return *r,
        }
    };
    let name: String = b
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("passkey")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let existing = match member_passkeys(&state, &m).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if existing.len() >= MAX_PASSKEYS_PER_MEMBER {
        return err(
            Reason::Conflict,
            format!("at most {MAX_PASSKEYS_PER_MEMBER} passkeys per member; remove one first"),
        );
    }
    let exclude = existing.iter().map(|(_, p)| p.cred_id().clone()).collect();
    match service.webauthn.start_passkey_registration(
        user_handle(&state, m.account_id),
        &m.email,
        &m.email,
        Some(exclude),
    ) {
        Ok((options, reg)) => {
            let ceremony = Ceremony::Register {
                state: reg,
                account_id: m.account_id,
                name,
            };
            match keep(&state, &service, &key(&m, "register"), &ceremony).await {
                Ok(()) => Json(options).into_response(),
                Err(r) => *r,
            }
        }
        Err(e) => err(Reason::Internal, format!("WebAuthn: {e}")),
    }
}

/// `POST /passkeys/register/finish`: the browser's credential JSON → the stored passkey.
#[utoipa::path(
    post,
    path = "/passkeys/register/finish",
    tag = "passkeys",
    summary = "Finish registering: the browser's credential JSON",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The passkey", body = PasskeyView),
        (status = 400, description = "No registration in progress, or not credential JSON", body = crate::agent_views::ErrorBody),
        (status = 403, description = "The authenticator's answer was refused", body = crate::agent_views::ErrorBody),
        (status = 409, description = "Registered already", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn register_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (m, service) = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let cred: RegisterPublicKeyCredential = match json_body(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let taken = match take(
        &state,
        &service,
        CeremonyKind::Register,
        &key(&m, "register"),
    )
    .await
    {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(Ceremony::Register {
        state: reg,
        account_id,
        name,
    }) = taken
    else {
        return err(
            Reason::InvalidRequest,
            "no passkey registration in progress for this session (it expired or was used); start again",
        );
    };
    if account_id != m.account_id {
        return err(
            Reason::InvalidRequest,
            "no passkey registration in progress for this session",
        );
    }
    let now = state.clock.now_ms();
    let passkey = match service.webauthn.finish_passkey_registration(&cred, &reg) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(member = %m.email, error = %e, "passkey registration refused");
            return err(
                Reason::Forbidden,
                format!("the passkey was not accepted: {e}"),
            );
        }
    };
    let record = PasskeyRecord {
        id: Uuid::new_v4().to_string(),
        account_id: m.account_id,
        name,
        credential_id: credential_id_of(&passkey),
        passkey: match serde_json::to_string(&passkey) {
            Ok(s) => s,
            Err(_) => return err(Reason::Internal, "passkey could not be stored"),
        },
        created_at: now,
        last_used_at: None,
    };
    match state.store.add_passkey(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return err(Reason::Conflict, "this passkey is registered already");
        }
        Err(e) => return ProxyError::from(e).into_response(),
    }
    tracing::info!(member = %m.email, passkey = %record.id, "passkey registered");
    (StatusCode::CREATED, Json(PasskeyView::from(&record))).into_response()
}

/// `DELETE /passkeys/{id}`.
#[utoipa::path(
    delete,
    path = "/passkeys/{id}",
    tag = "passkeys",
    summary = "Remove one of your passkeys",
    params(("id" = String, Path, description = "Passkey id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{\"id\", \"deleted\": true}", body = Object),
        (status = 404, description = "Not one of your passkeys", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn delete_passkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    // Removing needs no WebAuthn configuration: a member can always drop a key.
    let Some(m) = member(&state, &headers).await else {
        return err(Reason::Unauthorized, "sign in first");
    };
    if !used_bearer(&headers) {
        let presented = headers
            .get("x-tap-csrf")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !csrf_ok(&state, &m, "api", presented) {
            return err(Reason::Forbidden, "missing or wrong X-TAP-CSRF token");
        }
    }
    match state.store.delete_passkey(m.account_id, &id).await {
        Ok(true) => {
            tracing::info!(member = %m.email, passkey = %id, "passkey removed");
            Json(serde_json::json!({"id": id, "deleted": true})).into_response()
        }
        Ok(false) => err(Reason::NotFound, format!("passkey {id} not found")),
        Err(e) => ProxyError::from(e).into_response(),
    }
}

/// `POST /approve/{txn}/passkey/begin`: WebAuthn request options for
/// approving this one request with one of the member's passkeys.
#[utoipa::path(
    post,
    path = "/approve/{txn}/passkey/begin",
    tag = "passkeys",
    summary = "Start a passkey approval of one request (answers WebAuthn request options)",
    params(("txn" = String, Path, description = "Transaction id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "PublicKeyCredentialRequestOptions as {\"publicKey\"}", body = Object),
        (status = 400, description = "No passkey registered yet", body = crate::agent_views::ErrorBody),
        (status = 403, description = "This member may not decide the request", body = crate::agent_views::ErrorBody),
        (status = 404, description = "No such request in the member's teams", body = crate::agent_views::ErrorBody),
        (status = 409, description = "Not pending", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn approve_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Response {
    let (m, service) = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let missing = || err(Reason::NotFound, format!("approval {txn} not found"));
    if !valid_txn(&txn) {
        return missing();
    }
    let Some((a, _)) = visible_approval(&state, &m, &txn).await else {
        return missing();
    };
    if a.status != ApprovalStatus::Pending || a.expires_at <= state.clock.now_ms() {
        return err(
            Reason::NotPending,
            format!("approval is {}, not pending", a.status.public_str()),
        );
    }
    if !may_decide(&state, &m, &a).await {
        return err(
            Reason::Forbidden,
            format!("{} may not decide this request", m.email),
        );
    }
    let keys = match member_passkeys(&state, &m).await {
        Ok(k) => k,
        Err(r) => return *r,
    };
    if keys.is_empty() {
        return err(
            Reason::InvalidRequest,
            "you have no passkey yet: register one at /passkeys",
        );
    }
    let creds: Vec<Passkey> = keys.into_iter().map(|(_, p)| p).collect();
    match service.webauthn.start_passkey_authentication(&creds) {
        Ok((options, auth)) => {
            // A new begin replaces an older one: only the latest challenge counts.
            let ceremony = Ceremony::Approve {
                state: auth,
                account_id: m.account_id,
                txn_id: a.txn_id.clone(),
                request_hash: a.request_hash.clone(),
            };
            let k = key(&m, &format!("approve|{txn}"));
            match keep(&state, &service, &k, &ceremony).await {
                Ok(()) => Json(options).into_response(),
                Err(r) => *r,
            }
        }
        Err(e) => err(Reason::Internal, format!("WebAuthn: {e}")),
    }
}

/// `POST /approve/{txn}/passkey/finish`: the browser's assertion → the
/// approval counted (through the one gate, with the passkey proof).
#[utoipa::path(
    post,
    path = "/approve/{txn}/passkey/finish",
    tag = "passkeys",
    summary = "Finish a passkey approval: the browser's assertion JSON",
    params(("txn" = String, Path, description = "Transaction id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The vote counted", body = crate::ops::views::DecidedView),
        (status = 400, description = "No ceremony in progress (used, replaced or expired)", body = crate::agent_views::ErrorBody),
        (status = 403, description = "The assertion was refused", body = crate::agent_views::ErrorBody),
        (status = 409, description = "The request changed, or is no longer pending", body = crate::agent_views::ErrorBody),
    )
)]
pub async fn approve_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (m, service) = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !valid_txn(&txn) {
        return err(Reason::NotFound, format!("approval {txn} not found"));
    }
    let assertion: PublicKeyCredential = match json_body(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let k = key(&m, &format!("approve|{txn}"));
    let taken = match take(&state, &service, CeremonyKind::Approve, &k).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let Some(Ceremony::Approve {
        state: auth,
        account_id,
        txn_id,
        request_hash,
    }) = taken
    else {
        return err(
            Reason::InvalidRequest,
            "no passkey approval in progress for this request (it expired or was used); start again",
        );
    };
    if account_id != m.account_id || txn_id != txn {
        return err(Reason::InvalidRequest, "no passkey approval in progress");
    }
    let (txn_id, request_hash) = (&txn_id, &request_hash);
    let now = state.clock.now_ms();
    let result = match service
        .webauthn
        .finish_passkey_authentication(&assertion, &auth)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(member = %m.email, txn = %txn, error = %e, "passkey assertion refused");
            return err(
                Reason::Forbidden,
                format!("the passkey assertion was not accepted: {e}"),
            );
        }
    };
    record_use(&state, m.account_id, &result, now).await;
    // The request must still be the one the challenge was made for.
    match state.store.approval(txn_id).await {
        Ok(Some(a)) if a.request_hash == *request_hash => {}
        Ok(_) => {
            return err(
                Reason::Conflict,
                "the request changed since the passkey challenge; nothing was approved",
            );
        }
        Err(e) => return ProxyError::from(e).into_response(),
    }
    let proof = PasskeyProof::from_verified_assertion(txn_id, &m.email, request_hash);
    let channel = match state.store.approval(txn_id).await {
        Ok(Some(a)) if a.channels.iter().any(|c| c == "passkey") => "passkey",
        _ => "web",
    };
    match state
        .ops
        .decide_as_member_with(m.account_id, txn_id, true, channel, Some(&proof))
        .await
    {
        Ok(d) => {
            tracing::info!(member = %m.email, txn = %txn, "approved with a passkey");
            Json(d).into_response()
        }
        Err(e) => ProxyError::from(e).into_response(),
    }
}
