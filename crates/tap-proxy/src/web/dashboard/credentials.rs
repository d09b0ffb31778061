//! `/dashboard/credentials`: list, create, edit (hosts, bindings), set the
//! value (write-only: never rendered back), check, delete with confirmation.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tap_core::target::TargetUrl;
use zeroize::Zeroizing;

use super::{Dash, FormData, Frame, TeamQuery, act, enter};
use crate::ops::OpsError;
use crate::ops::credentials::{
    AuthBindingView, CredentialFields, CredentialView, SetSecret, ValueInput,
};
use crate::ops::grants::GrantView;
use crate::ops::policies::{PolicyTest, PolicyTestView};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "credentials";
const LIST: &str = "/dashboard/credentials";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/credentials/{name}", get(detail).post(edit))
        .route(
            "/dashboard/credentials/{name}/value",
            axum::routing::post(set_value),
        )
        .route("/dashboard/credentials/{name}/test", get(test))
        .route(
            "/dashboard/credentials/{name}/delete",
            get(confirm_delete).post(delete),
        )
}

#[derive(Template)]
#[template(path = "dashboard/credentials.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    credentials: Vec<CredentialView>,
}

#[derive(Template)]
#[template(path = "dashboard/credential.html")]
struct DetailPage {
    title: String,
    nav: Option<Nav>,
    frame: Frame,
    c: CredentialView,
    hosts: String,
    bindings: String,
    grants: Vec<GrantView>,
    default_target: String,
}

/// One line of a credential check.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Template)]
#[template(path = "dashboard/credential_test.html")]
struct TestPage {
    title: String,
    nav: Option<Nav>,
    frame: Frame,
    name: String,
    method: String,
    target: String,
    checks: Vec<Check>,
}

/// Bindings as typed in the form: `Header: format` per line.
fn bindings_text(b: &[AuthBindingView]) -> String {
    b.iter()
        .map(|b| match (&b.header, &b.query) {
            (Some(h), _) => format!("{h}: {}", b.format),
            (None, Some(q)) => format!("?{q}: {}", b.format),
            (None, None) => b.format.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `Header: format` lines (`?key: format` binds a query parameter).
fn parse_bindings(text: &str) -> Result<Vec<AuthBindingView>, OpsError> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, format)) = line.split_once(':') else {
            return Err(OpsError::Invalid(format!(
                "binding {line:?}: write `Header-Name: format`, e.g. `X-Api-Key: {{value}}`"
            )));
        };
        let (name, format) = (name.trim(), format.trim().to_owned());
        out.push(match name.strip_prefix('?') {
            Some(q) => AuthBindingView {
                header: None,
                query: Some(q.to_owned()),
                format,
            },
            None => AuthBindingView {
                header: Some(name.to_owned()),
                query: None,
                format,
            },
        });
    }
    Ok(out)
}

/// The fields of the create and edit forms.
fn fields(f: &FormData, name: Option<String>) -> Result<CredentialFields, OpsError> {
    Ok(CredentialFields {
        name,
        description: Some(f.get("description").unwrap_or_default()),
        connector: None,
        api_base: f.get("api_base"),
        relative_target: Some(f.checked("relative_target")),
        auth_header_format: f.get("auth_header_format"),
        auth_bindings: match f.raw("auth_bindings") {
            Some(t) => Some(parse_bindings(t)?),
            None => Some(Vec::new()),
        },
        allowed_hosts: Some(f.list("allowed_hosts")),
        allow_any_host: Some(f.checked("allow_any_host")),
        value: f
            .raw("value")
            .map(|v| ValueInput::from_bytes(Zeroizing::new(v.as_bytes().to_vec()))),
    })
}

/// The target `tap test` would use: the API base, else the first allowed host.
fn default_target(c: &CredentialView) -> String {
    if let Some(b) = &c.api_base {
        return b.clone();
    }
    match c.allowed_hosts.first() {
        Some(h) if h.starts_with("http://") || h.starts_with("https://") => format!("{h}/"),
        Some(h) => format!("https://{}/", h.trim_start_matches("*.")),
        None => String::new(),
    }
}

/// `GET /dashboard/credentials`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match state.ops.credentials(&d.scope).await {
        Ok(credentials) => d.page(&ListPage {
            title: "Credentials",
            nav: d.nav(),
            frame: d.frame.clone(),
            credentials,
        }),
        Err(e) => d.failed(e, "/dashboard"),
    }
}

/// `POST /dashboard/credentials`: creates a credential (with its value when given).
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
    let name = f.get("name").unwrap_or_default();
    let cmd = match fields(&f, Some(name.clone())) {
        Ok(c) => c,
        Err(e) => return d.failed(e, LIST),
    };
    match state.ops.create_credential(&d.scope, cmd).await {
        Ok(c) => d.done(
            &format!("{LIST}/{}", c.name),
            &format!("Credential {} created.", c.name),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

async fn open(
    state: &AppState,
    headers: &HeaderMap,
    q: &TeamQuery,
    name: &str,
) -> Result<Dash, Response> {
    enter(
        state,
        headers,
        q.team.as_deref(),
        SECTION,
        &format!("{LIST}/{name}"),
    )
    .await
}

/// `GET /dashboard/credentials/{name}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
) -> Response {
    let d = match open(&state, &headers, &q, &name).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let c = match state.ops.credential(&d.scope, &name).await {
        Ok(c) => c,
        Err(e) => return d.failed(e, LIST),
    };
    // Grants are for viewers and up; an approver sees the credential alone.
    let grants = state
        .ops
        .grants(&d.scope)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|g| g.credential == name)
        .collect();
    d.page(&DetailPage {
        title: format!("Credential {}", c.name),
        nav: d.nav(),
        frame: d.frame.clone(),
        hosts: c.allowed_hosts.join("\n"),
        bindings: bindings_text(&c.auth_bindings),
        default_target: default_target(&c),
        grants,
        c,
    })
}

/// `POST /dashboard/credentials/{name}`: replaces the fields of the edit form.
pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{name}");
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut cmd = match fields(&f, None) {
        Ok(c) => c,
        Err(e) => return d.failed(e, &back),
    };
    // The edit form has no value field; a value is set with its own form.
    cmd.value = None;
    match state.ops.patch_credential(&d.scope, &name, cmd).await {
        Ok(c) => d.done(&back, &format!("Credential {} saved.", c.name)),
        Err(e) => d.failed(e, &back),
    }
}

/// `POST /dashboard/credentials/{name}/value`: replaces the value (write-only).
pub async fn set_value(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{name}");
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(raw) = f.raw("value") else {
        return d.failed(OpsError::Invalid("type the value to store".into()), &back);
    };
    let cmd = SetSecret {
        value: ValueInput::from_bytes(Zeroizing::new(raw.as_bytes().to_vec())),
    };
    match state.ops.set_credential_value(&d.scope, &name, cmd).await {
        Ok(v) => d.done(&back, &format!("The value of {} was replaced.", v.name)),
        Err(e) => d.failed(e, &back),
    }
}

/// `GET /dashboard/credentials/{name}/test` query.
#[derive(Debug, Default, Deserialize)]
pub struct TestQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

/// `GET /dashboard/credentials/{name}/test`: what the proxy would do with a
/// request on this credential, checked without sending anything: a value is
/// stored and opens, the target is within `allowed_hosts`, and the policy's
/// decision (the dry run of `tap policy test`).
pub async fn test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TestQuery>,
    Path(name): Path<String>,
) -> Response {
    let back = format!("{LIST}/{name}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let c = match state.ops.credential(&d.scope, &name).await {
        Ok(c) => c,
        Err(e) => return d.failed(e, LIST),
    };
    let method = q
        .method
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("GET")
        .to_owned();
    let target = q
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or_else(|| default_target(&c), str::to_owned);
    let checks = checks(&state, &d, &c, &method, &target).await;
    d.page(&TestPage {
        title: format!("Check {}", c.name),
        nav: d.nav(),
        frame: d.frame.clone(),
        name: c.name,
        method,
        target,
        checks,
    })
}

async fn checks(
    state: &AppState,
    d: &Dash,
    c: &CredentialView,
    method: &str,
    target: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let dir = state.directory.get();
    let entry = dir
        .teams
        .get(&d.scope.team.internal_id)
        .and_then(|t| t.credentials.get(&c.name));
    out.push(match entry.map(|e| &e.value) {
        Some(Ok(Some(_))) => Check {
            name: "value",
            ok: true,
            detail: format!(
                "a {} value is stored and opens",
                c.value_kind.as_deref().unwrap_or("text")
            ),
        },
        Some(Ok(None)) | None => Check {
            name: "value",
            ok: false,
            detail: "no value is stored: requests get credential_value_missing".into(),
        },
        Some(Err(_)) => Check {
            name: "value",
            ok: false,
            detail: "the stored value cannot be opened".into(),
        },
    });
    let url = match TargetUrl::parse(target) {
        Ok(u) => u,
        Err(e) => {
            out.push(Check {
                name: "target",
                ok: false,
                detail: format!("invalid target: {e}"),
            });
            return out;
        }
    };
    out.push(match entry {
        Some(e) if e.allowed_hosts.matches(&url) => Check {
            name: "host",
            ok: true,
            detail: format!("{} is within allowed_hosts", url.host_str()),
        },
        _ => Check {
            name: "host",
            ok: false,
            detail: format!(
                "{} is not in allowed_hosts: requests get host_not_allowed",
                url.host_str()
            ),
        },
    });
    let dry = state
        .ops
        .policy_test(
            &d.scope,
            &c.name,
            PolicyTest {
                method: Some(method.to_owned()),
                target: target.to_owned(),
            },
        )
        .await;
    out.push(match dry {
        Ok(v) => Check {
            name: "policy",
            ok: true,
            detail: decision_text(&v),
        },
        Err(e) => Check {
            name: "policy",
            ok: false,
            detail: e.to_string(),
        },
    });
    out
}

/// "would proceed (auto_approve_method, rule GET)".
pub fn decision_text(v: &PolicyTestView) -> String {
    let what = if v.decision == "proceed" {
        "would proceed without approval"
    } else {
        "would wait for a human's approval"
    };
    match &v.rule {
        Some(r) => format!("{what} ({}, rule {r})", v.policy_reason),
        None => format!("{what} ({})", v.policy_reason),
    }
}

/// `GET /dashboard/credentials/{name}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
) -> Response {
    let d = match open(&state, &headers, &q, &name).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = state.ops.credential(&d.scope, &name).await;
    d.confirm_delete(
        found,
        LIST,
        &name,
        &format!("Delete credential {name}?"),
        &format!(
            "Credential {name}, its stored value, its policy and its grants are removed. Agents using it are refused from the next request on."
        ),
    )
}

/// `POST /dashboard/credentials/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{name}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.delete_credential(&d.scope, &name).await {
        Ok(v) => d.done(LIST, &format!("Credential {} deleted.", v.deleted)),
        Err(e) => d.failed(e, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_round_trip_through_the_form() {
        let b = parse_bindings("X-Api-Key: {value}\n\n?key: {value}\n").unwrap();
        assert_eq!(b[0].header.as_deref(), Some("X-Api-Key"));
        assert_eq!(b[1].query.as_deref(), Some("key"));
        assert_eq!(bindings_text(&b), "X-Api-Key: {value}\n?key: {value}");
        assert!(parse_bindings("no colon").is_err());
    }
}
