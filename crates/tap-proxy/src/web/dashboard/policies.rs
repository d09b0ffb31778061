//! `/dashboard/policies`: each credential's approval policy (SPEC §5), its
//! editor, and a live dry run: which decision `METHOD URL` would get now
//! (the policy engine's evaluation; nothing is sent).

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::credentials::decision_text;
use super::{Frame, TeamQuery, act, enter};
use crate::ops::policies::{PolicyRules, PolicyTest, SetPolicy};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "policies";
const LIST: &str = "/dashboard/policies";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list))
        .route("/dashboard/policies/{credential}", get(detail).post(save))
        .route("/dashboard/policies/{credential}/clear", post(clear))
}

/// One line of the list.
struct Row {
    credential: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "dashboard/policies.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    team_default: String,
    rows: Vec<Row>,
}

/// The rule fields as the form shows them.
#[derive(Default)]
struct RulesForm {
    auto_methods: String,
    require_methods: String,
    auto_urls: String,
    require_urls: String,
    restrict_approvers: bool,
    approvers: String,
    channel: String,
    chat: String,
    passkey: bool,
    min_approvals: u32,
}

impl From<&PolicyRules> for RulesForm {
    fn from(p: &PolicyRules) -> Self {
        Self {
            auto_methods: p.auto_approve_methods.join(", "),
            require_methods: p.require_approval_methods.join(", "),
            auto_urls: p.auto_approve_urls.join("\n"),
            require_urls: p.require_approval_urls.join("\n"),
            restrict_approvers: p.allowed_approvers.is_some(),
            approvers: p.allowed_approvers.clone().unwrap_or_default().join(", "),
            channel: p.approval_channel.clone().unwrap_or_default(),
            chat: p.telegram_chat_id.clone().unwrap_or_default(),
            passkey: p.require_passkey,
            min_approvals: p.min_approvals,
        }
    }
}

/// A dry run's question and answer.
struct DryRun {
    method: String,
    target: String,
    answer: Option<String>,
    error: Option<String>,
    normalized: String,
}

#[derive(Template)]
#[template(path = "dashboard/policy.html")]
struct DetailPage {
    title: String,
    nav: Option<Nav>,
    frame: Frame,
    credential: String,
    team_default: String,
    has_policy: bool,
    rules: RulesForm,
    dry: DryRun,
}

/// "own policy: GET auto; 2 require URLs; passkey".
fn summary(p: Option<&PolicyRules>, team_default: &str) -> String {
    let Some(p) = p else {
        return format!("team default ({team_default})");
    };
    let mut parts = Vec::new();
    if !p.auto_approve_methods.is_empty() {
        parts.push(format!("auto: {}", p.auto_approve_methods.join(",")));
    }
    if !p.require_approval_methods.is_empty() {
        parts.push(format!(
            "approval: {}",
            p.require_approval_methods.join(",")
        ));
    }
    if !p.auto_approve_urls.is_empty() {
        parts.push(format!("{} auto URL(s)", p.auto_approve_urls.len()));
    }
    if !p.require_approval_urls.is_empty() {
        parts.push(format!("{} approval URL(s)", p.require_approval_urls.len()));
    }
    if p.require_passkey {
        parts.push("passkey".into());
    }
    if p.min_approvals > 1 {
        parts.push(format!("{} approvers", p.min_approvals));
    }
    if parts.is_empty() {
        "own policy: everything needs approval".into()
    } else {
        format!("own policy: {}", parts.join("; "))
    }
}

/// `GET /dashboard/policies`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let creds = match state.ops.credentials(&d.scope).await {
        Ok(c) => c,
        Err(e) => return d.failed(e, "/dashboard"),
    };
    let team_default = d.scope.team.default_approval_mode.as_str().to_owned();
    let mut rows = Vec::with_capacity(creds.len());
    for c in creds {
        let v = match state.ops.policy(&d.scope, &c.name).await {
            Ok(v) => v,
            Err(e) => return d.failed(e, "/dashboard"),
        };
        rows.push(Row {
            summary: summary(v.policy.as_ref(), &team_default),
            credential: c.name,
        });
    }
    d.page(&ListPage {
        title: "Policies",
        nav: d.nav(),
        frame: d.frame.clone(),
        team_default,
        rows,
    })
}

/// `GET /dashboard/policies/{credential}` query: the team and a dry run.
#[derive(Debug, Default, Deserialize)]
pub struct DryQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

/// `GET /dashboard/policies/{credential}`: the policy, its editor and the dry run.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DryQuery>,
    Path(credential): Path<String>,
) -> Response {
    let back = format!("{LIST}/{credential}");
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, &back).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let v = match state.ops.policy(&d.scope, &credential).await {
        Ok(v) => v,
        Err(e) => return d.failed(e, LIST),
    };
    let method = q
        .method
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("GET")
        .to_owned();
    let target = q.target.as_deref().map(str::trim).unwrap_or("").to_owned();
    let mut dry = DryRun {
        method: method.clone(),
        target: target.clone(),
        answer: None,
        error: None,
        normalized: String::new(),
    };
    if !target.is_empty() {
        match state
            .ops
            .policy_test(
                &d.scope,
                &credential,
                PolicyTest {
                    method: Some(method),
                    target,
                },
            )
            .await
        {
            Ok(t) => {
                dry.answer = Some(format!("{}: {}", t.decision, decision_text(&t)));
                dry.normalized = t.target;
            }
            Err(e) => dry.error = Some(e.to_string()),
        }
    }
    d.page(&DetailPage {
        title: format!("Policy of {credential}"),
        nav: d.nav(),
        frame: d.frame.clone(),
        team_default: v.team_default,
        has_policy: v.policy.is_some(),
        rules: v.policy.as_ref().map(RulesForm::from).unwrap_or(RulesForm {
            min_approvals: 1,
            ..RulesForm::default()
        }),
        credential,
        dry,
    })
}

/// `POST /dashboard/policies/{credential}`: replaces the policy (the whole form).
pub async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(credential): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{credential}");
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let min = match f.number("min_approvals") {
        Ok(n) => n,
        Err(e) => return d.failed(e, &back),
    };
    let cmd = SetPolicy {
        auto_approve_methods: Some(f.list("auto_approve_methods")),
        require_approval_methods: Some(f.list("require_approval_methods")),
        auto_approve_urls: Some(f.list("auto_approve_urls")),
        require_approval_urls: Some(f.list("require_approval_urls")),
        allowed_approvers: f
            .checked("restrict_approvers")
            .then(|| f.list("allowed_approvers")),
        approval_channel: Some(f.get("approval_channel").unwrap_or_default()),
        telegram_chat_id: Some(f.get("telegram_chat_id").unwrap_or_default()),
        require_passkey: Some(f.checked("require_passkey")),
        min_approvals: min,
    };
    match state.ops.set_policy(&d.scope, &credential, cmd).await {
        Ok(v) => d.done(&back, &format!("Policy of {} saved.", v.credential)),
        Err(e) => d.failed(e, &back),
    }
}

/// `POST /dashboard/policies/{credential}/clear`: back to the team default.
pub async fn clear(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(credential): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("{LIST}/{credential}");
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, &back, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.clear_policy(&d.scope, &credential).await {
        Ok(v) if v.cleared => d.done(
            &back,
            &format!(
                "Policy of {} removed; the team default applies.",
                v.credential
            ),
        ),
        Ok(v) => d.done(&back, &format!("{} had no policy.", v.credential)),
        Err(e) => d.failed(e, &back),
    }
}
