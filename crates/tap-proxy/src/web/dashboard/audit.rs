//! The dashboard's audit browser: `GET /dashboard/audit` (filters by agent,
//! credential, outcome and time; pages of [`PAGE_SIZE`]; the chain status),
//! `GET /dashboard/audit/{request_id}` (one request's timeline) and
//! `GET /dashboard/audit/export` (the filtered rows as JSON lines, the same
//! answer as `GET /team/audit/export`).
//!
//! Every read goes through the admin service with the member's scope, so the
//! role check is the API's: viewers and above read, approvers are refused.
//! Nothing here changes anything: the pages hold no form but the filter (a
//! GET) and the header's sign-out.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::audit::AuditRecord;
use tap_core::model::Approval;

use crate::approval::display::visible;
use crate::clock::rfc3339_ms;
use crate::error::ProxyError;
use crate::ops::audit::{AUDIT_PAGE_MAX, AuditEntry, AuditFilter};
use crate::ops::{OpsError, Scope};
use crate::state::AppState;
use crate::web::pages::{self, Nav};
use crate::web::session::{MemberCtx, member, member_teams, nav};

/// Requests shown per page of the audit list.
pub const PAGE_SIZE: u32 = 50;
/// Longest filter value taken from the query (anything longer matches nothing anyway).
const MAX_FILTER_LEN: usize = 200;

/// `GET /dashboard/audit` and `/dashboard/audit/export` query. Every field
/// is text so that a malformed value is a message on the page, never a
/// bare extractor rejection; empty fields (an unfilled form) mean "any".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditParams {
    /// Team slug (one of the member's teams; default their first).
    #[serde(default)]
    team: Option<String>,
    /// Agent id (`home/bot` for a linked agent).
    #[serde(default)]
    agent: Option<String>,
    /// Credential name.
    #[serde(default)]
    credential: Option<String>,
    /// `ok`, `error`, `refused`, an error code or an upstream status.
    #[serde(default, alias = "status")]
    outcome: Option<String>,
    /// RFC 3339 (UTC), a date, or `YYYY-MM-DDTHH:MM`.
    #[serde(default)]
    since: Option<String>,
    /// Like `since`; inclusive.
    #[serde(default)]
    until: Option<String>,
    /// Page, from 0 (newest first).
    #[serde(default)]
    page: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(MAX_FILTER_LEN).collect())
}

/// A time bound as the stored RFC 3339 timestamps compare: a date or a
/// minute is widened to its start (`since`) or end (`until`). `None` for
/// text that is not a time.
fn time_bound(raw: &str, end: bool) -> Option<String> {
    let ok_chars = raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b"-:.TZ".contains(&b));
    if !ok_chars || raw.len() < 10 || !raw.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let raw = raw.trim_end_matches('Z');
    Some(match (raw.len(), end) {
        (10, false) => format!("{raw}T00:00:00Z"),
        (10, true) => format!("{raw}T23:59:59.999Z"),
        (13, false) => format!("{raw}:00:00Z"),
        (13, true) => format!("{raw}:59:59.999Z"),
        (16, false) => format!("{raw}:00Z"),
        (16, true) => format!("{raw}:59.999Z"),
        (19, true) => format!("{raw}.999Z"),
        _ => format!("{raw}Z"),
    })
}

/// The parsed filter.
#[derive(Clone, Debug, Default)]
struct Wanted {
    agent: Option<String>,
    credential: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: u32,
    /// What could not be read, for the page.
    problems: Vec<String>,
}

impl Wanted {
    fn parse(p: &AuditParams) -> Self {
        let mut problems = Vec::new();
        let mut bound = |name: &str, v: &Option<String>, end: bool| {
            let raw = given(v)?;
            let b = time_bound(&raw, end);
            if b.is_none() {
                problems.push(format!(
                    "{name}: \"{raw}\" is not a time; use 2026-01-31, 2026-01-31T09:30 or 2026-01-31T09:30:00Z (UTC)"
                ));
            }
            b
        };
        let since = bound("since", &p.since, false);
        let until = bound("until", &p.until, true);
        let page = match given(&p.page) {
            None => 0,
            Some(s) => s.parse::<u32>().unwrap_or_else(|_| {
                problems.push(format!("page: \"{s}\" is not a page number"));
                0
            }),
        };
        Self {
            agent: given(&p.agent),
            credential: given(&p.credential),
            outcome: given(&p.outcome),
            since,
            until,
            page,
            problems,
        }
    }

    /// The admin service's filter reading the newest `limit` requests.
    fn filter(&self, limit: Option<u32>) -> AuditFilter {
        AuditFilter {
            agent: self.agent.clone(),
            credential: self.credential.clone(),
            status: self.outcome.clone(),
            since: self.since.clone(),
            limit,
        }
    }

    /// `until` is the dashboard's own bound (the API has only `since`).
    fn keeps(&self, r: &AuditRecord) -> bool {
        self.until
            .as_deref()
            .is_none_or(|u| r.timestamp.as_str() <= u)
    }

    /// The query string of this filter (for links), with `page` when given.
    fn query(&self, team: &str, page: Option<u32>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("team", team);
        for (k, v) in [
            ("agent", &self.agent),
            ("credential", &self.credential),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(p) = page {
            q.append_pair("page", &p.to_string());
        }
        q.finish()
    }
}

/// How a request ended, as `/metrics` counts it (plus `pending` for one
/// still waiting or in flight).
pub fn outcome(r: &AuditRecord) -> &'static str {
    match (r.error_code.is_some(), r.decision.as_str()) {
        (false, _) if r.upstream_status.is_some() => "ok",
        (false, "refused" | "error") => "error",
        (false, _) => "pending",
        (true, "refused") => "refused",
        (true, "approval") => "approval",
        (true, _) => "error",
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(ms) if ms >= 10_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.1} ms"),
    }
}

fn agent_of(r: &AuditRecord) -> String {
    match &r.agent_home_team {
        Some(home) => format!("{home}/{}", r.agent_id),
        None => r.agent_id.clone(),
    }
}

/// One line of the audit list.
#[derive(Debug)]
struct Row {
    request_id: String,
    time: String,
    agent: String,
    credentials: String,
    method: String,
    target: String,
    outcome: &'static str,
    detail: String,
    upstream: String,
    total: String,
}

impl Row {
    fn of(r: &AuditRecord) -> Self {
        Self {
            request_id: r.request_id.clone(),
            time: r.timestamp.clone(),
            agent: agent_of(r),
            credentials: r.credential_names.join(", "),
            method: r.method.clone(),
            target: visible(&r.target_url),
            outcome: outcome(r),
            detail: r
                .error_code
                .clone()
                .or_else(|| r.approval_status.clone())
                .unwrap_or_default(),
            upstream: r.upstream_status.map(|s| s.to_string()).unwrap_or_default(),
            total: ms(r.latency_total_ms),
        }
    }
}

/// The chain status line of the list.
#[derive(Debug)]
struct Chain {
    ok: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    team: String,
    teams: Vec<String>,
    agent: String,
    credential: String,
    outcome: String,
    since: String,
    until: String,
    problems: Vec<String>,
    rows: Vec<Row>,
    chain: Chain,
    export_url: String,
    newer_url: Option<String>,
    older_url: Option<String>,
    page: u32,
}

/// The member's scope in the requested team, or the answer to give.
async fn scope(
    state: &AppState,
    headers: &HeaderMap,
    team: Option<&str>,
    next: &str,
) -> Result<(MemberCtx, Scope), Response> {
    let Some(m) = member(state, headers).await else {
        return Err(Redirect::to(&format!("/login?next={next}")).into_response());
    };
    match state.ops.member_scope(m.account_id, team).await {
        Ok(s) => Ok((m, s)),
        Err(e) => Err(refusal(state, &m, e)),
    }
}

fn refusal(state: &AppState, m: &MemberCtx, e: OpsError) -> Response {
    let e: ProxyError = e.into();
    pages::error_page(Some(nav(state, m)), &e, "Audit")
}

/// `GET /dashboard/audit`: the team's requests, newest first, filtered.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let team = given(&p.team);
    let (m, scope) = match scope(&state, &headers, team.as_deref(), "/dashboard/audit").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let w = Wanted::parse(&p);
    // The store reads the newest `limit` requests; a page further back reads more.
    let want = (w.page.saturating_add(1)).saturating_mul(PAGE_SIZE);
    let limit = want.min(AUDIT_PAGE_MAX);
    let entries = if w.problems.is_empty() {
        match state.ops.audit(&scope, &w.filter(Some(limit))).await {
            Ok(v) => v,
            Err(e) => return refusal(&state, &m, e),
        }
    } else {
        Vec::new()
    };
    let read = entries.len();
    let mut rows: Vec<Row> = entries
        .iter()
        .rev()
        .map(|AuditEntry(r)| r)
        .filter(|r| w.keeps(r))
        .map(Row::of)
        .collect();
    let skip = (w.page.saturating_mul(PAGE_SIZE)) as usize;
    let more = rows.len() > skip + PAGE_SIZE as usize
        || (read as u32 >= limit && limit < AUDIT_PAGE_MAX && !rows.is_empty());
    rows = rows
        .into_iter()
        .skip(skip)
        .take(PAGE_SIZE as usize)
        .collect();
    let chain = match state.ops.verify_audit(&scope, None).await {
        Ok(v) if v.ok => Chain {
            ok: true,
            text: format!("intact: {} rows verify", v.rows),
        },
        Ok(v) => Chain {
            ok: false,
            text: format!(
                "BROKEN at row {}: {}",
                v.first_bad_row.map(|r| r.to_string()).unwrap_or_default(),
                v.error.unwrap_or_default()
            ),
        },
        Err(e) => Chain {
            ok: false,
            text: format!("could not be checked: {e}"),
        },
    };
    let slug = scope.team.slug.clone();
    let teams = member_teams(&state, &m)
        .await
        .into_iter()
        .map(|(t, _, _)| t.slug)
        .collect();
    pages::render(
        StatusCode::OK,
        &ListPage {
            title: "Audit",
            nav: Some(nav(&state, &m)),
            export_url: format!("/dashboard/audit/export?{}", w.query(&slug, None)),
            newer_url: (w.page > 0)
                .then(|| format!("/dashboard/audit?{}", w.query(&slug, Some(w.page - 1)))),
            older_url: (more && !rows.is_empty())
                .then(|| format!("/dashboard/audit?{}", w.query(&slug, Some(w.page + 1)))),
            page: w.page,
            team: slug,
            teams,
            agent: w.agent.clone().unwrap_or_default(),
            credential: w.credential.clone().unwrap_or_default(),
            outcome: w.outcome.clone().unwrap_or_default(),
            since: given(&p.since).unwrap_or_default(),
            until: given(&p.until).unwrap_or_default(),
            problems: w.problems,
            rows,
            chain,
        },
    )
}

/// `GET /dashboard/audit/export`: the filtered rows as JSON lines, oldest
/// first, exactly as `GET /team/audit/export` answers the same filter.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<AuditParams>,
) -> Response {
    let team = given(&p.team);
    let (m, scope) = match scope(&state, &headers, team.as_deref(), "/dashboard/audit").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let w = Wanted::parse(&p);
    if let Some(problem) = w.problems.first() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            Some(nav(&state, &m)),
            "Audit",
            &[problem],
            Some(("/dashboard/audit", "Back to the audit trail")),
        );
    }
    let page = match state.ops.audit_export(&scope, &w.filter(None)).await {
        Ok(v) => v,
        Err(e) => return refusal(&state, &m, e),
    };
    let mut out = String::new();
    for e in page.entries.iter().filter(|AuditEntry(r)| w.keeps(r)) {
        if let Ok(line) = serde_json::to_string(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let mut resp = out.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    // The slug pattern keeps the file name a plain token.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"tap-audit-{}.jsonl\"",
        scope.team.slug
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// One step of a request's timeline.
#[derive(Debug)]
struct Step {
    name: &'static str,
    /// `done`, `failed` or `skipped`.
    state: &'static str,
    lines: Vec<String>,
}

/// One segment of the timeline bar (SVG attributes, in tenths of a percent).
#[derive(Debug)]
struct Segment {
    class: &'static str,
    x: u32,
    width: u32,
    label: String,
}

#[derive(Template)]
#[template(path = "dashboard/timeline.html")]
struct TimelinePage {
    title: &'static str,
    nav: Option<Nav>,
    team: String,
    request_id: String,
    method: String,
    target: String,
    outcome: &'static str,
    steps: Vec<Step>,
    segments: Vec<Segment>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    back_url: String,
}

fn seconds(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The steps of a request: authenticated → policy → approval (who, how long)
/// → upstream (status, latency) → scrubbing.
fn steps(r: &AuditRecord, approval: Option<&Approval>) -> Vec<Step> {
    let mut out = Vec::new();
    let home = r
        .agent_home_team
        .as_deref()
        .map(|h| format!(" (home team {h})"))
        .unwrap_or_default();
    out.push(Step {
        name: "Authenticated",
        state: "done",
        lines: vec![
            format!("agent {}{home} at {}", r.agent_id, r.timestamp),
            format!(
                "credential {}",
                if r.credential_names.is_empty() {
                    "none".to_owned()
                } else {
                    r.credential_names.join(", ")
                }
            ),
        ],
    });
    let refused_before_upstream = r.error_code.is_some() && r.upstream_status.is_none();
    let policy_ran = r.policy_reason.is_some();
    out.push(Step {
        name: "Policy",
        state: if r.decision == "refused" {
            "failed"
        } else if policy_ran || r.decision == "proceed" || r.decision == "approval" {
            "done"
        } else {
            "skipped"
        },
        lines: {
            let mut l = vec![format!("decision {}", r.decision)];
            if let Some(why) = &r.policy_reason {
                l.push(format!("reason {why}"));
            }
            if r.decision == "refused"
                && let Some(code) = &r.error_code
            {
                l.push(format!("refused: {code}"));
            }
            l
        },
    });
    if r.approval_status.is_some() || approval.is_some() || r.decision == "approval" {
        let mut l = Vec::new();
        if let Some(s) = &r.approval_status {
            l.push(format!("status {s}"));
        }
        match approval {
            Some(a) if !a.votes.is_empty() => {
                for v in &a.votes {
                    let verb = if v.decision == "approve" {
                        "approved"
                    } else {
                        "denied"
                    };
                    l.push(format!(
                        "{verb} by {} via {} at {} ({} after the request)",
                        v.email,
                        v.channel,
                        rfc3339_ms(v.at),
                        seconds((v.at - a.created_at).max(0))
                    ));
                }
            }
            _ if !r.approvers.is_empty() => {
                l.push(format!("approved by {}", r.approvers.join(", ")));
            }
            _ => l.push("no decision recorded".to_owned()),
        }
        if let Some(wait) = r.latency_approval_ms {
            l.push(format!("waited {}", ms(Some(wait))));
        }
        let ok = matches!(
            r.approval_status.as_deref(),
            Some("approved" | "forwarded" | "completed")
        );
        out.push(Step {
            name: "Approval",
            state: if ok {
                "done"
            } else if r.approval_status.as_deref() == Some("pending") {
                "skipped"
            } else {
                "failed"
            },
            lines: l,
        });
    }
    out.push(match r.upstream_status {
        Some(status) => Step {
            name: "Upstream",
            state: if status < 400 { "done" } else { "failed" },
            lines: vec![format!(
                "HTTP {status} in {}",
                ms(r.latency_upstream_ms.or(Some(0.0)))
            )],
        },
        None => Step {
            name: "Upstream",
            state: if refused_before_upstream && r.decision != "refused" {
                "failed"
            } else {
                "skipped"
            },
            lines: vec![match &r.error_code {
                Some(code) if r.decision != "refused" => format!("not answered: {code}"),
                _ => "not called".to_owned(),
            }],
        },
    });
    out.push(Step {
        name: "Scrubbing",
        state: if r.upstream_status.is_some() {
            "done"
        } else {
            "skipped"
        },
        lines: vec![if r.response_scrubbed {
            "a secret was found in the response and redacted".to_owned()
        } else if r.upstream_status.is_some() {
            "no secret in the response".to_owned()
        } else {
            "no response".to_owned()
        }],
    });
    out.push(Step {
        name: "Finished",
        state: match outcome(r) {
            "ok" => "done",
            "pending" => "skipped",
            _ => "failed",
        },
        lines: vec![format!(
            "{} in {}",
            r.error_code.as_deref().unwrap_or(outcome(r)),
            ms(r.latency_total_ms.or(Some(0.0)))
        )],
    });
    out
}

/// The timeline bar: proxy time, approval wait and upstream call as shares
/// of the total (in thousandths, the SVG's viewBox width).
fn segments(r: &AuditRecord) -> Vec<Segment> {
    let total = r.latency_total_ms.unwrap_or(0.0);
    if total <= 0.0 {
        return Vec::new();
    }
    let approval = r.latency_approval_ms.unwrap_or(0.0).clamp(0.0, total);
    let upstream = r
        .latency_upstream_ms
        .unwrap_or(0.0)
        .clamp(0.0, total - approval);
    let proxy = (total - approval - upstream).max(0.0);
    let mut x = 0u32;
    let mut out = Vec::new();
    for (class, part, name) in [
        ("seg-proxy", proxy, "proxy"),
        ("seg-approval", approval, "approval"),
        ("seg-upstream", upstream, "upstream"),
    ] {
        if part <= 0.0 {
            continue;
        }
        let width = ((part / total * 1000.0).round() as u32).clamp(1, 1000 - x.min(999));
        out.push(Segment {
            class,
            x,
            width,
            label: format!("{name} {}", ms(Some(part))),
        });
        x = (x + width).min(1000);
    }
    out
}

/// Whether `id` looks like a request id (anything else is not looked up).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `GET /dashboard/audit/{request_id}`: one request's timeline.
pub async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<AuditParams>,
) -> Response {
    let team = given(&p.team);
    let next = if valid_id(&id) {
        format!("/dashboard/audit/{id}")
    } else {
        "/dashboard/audit".to_owned()
    };
    let (m, scope) = match scope(&state, &headers, team.as_deref(), &next).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let not_found = || {
        pages::message(
            StatusCode::NOT_FOUND,
            Some(nav(&state, &m)),
            "Not found",
            &["No such request in this team's audit trail."],
            Some(("/dashboard/audit", "Back to the audit trail")),
        )
    };
    if !valid_id(&id) {
        return not_found();
    }
    // The newest requests first; the whole export only when it is older.
    let recent = match state
        .ops
        .audit(
            &scope,
            &AuditFilter {
                limit: Some(AUDIT_PAGE_MAX),
                ..Default::default()
            },
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return refusal(&state, &m, e),
    };
    let found = match recent.into_iter().find(|AuditEntry(r)| r.request_id == id) {
        Some(e) => Some(e),
        None => match state
            .ops
            .audit_export(&scope, &AuditFilter::default())
            .await
        {
            Ok(page) => page
                .entries
                .into_iter()
                .find(|AuditEntry(r)| r.request_id == id),
            Err(e) => return refusal(&state, &m, e),
        },
    };
    let Some(AuditEntry(r)) = found else {
        return not_found();
    };
    let approval = match state.store.approval(&id).await {
        Ok(Some(a)) if a.team_internal_id == scope.team.internal_id => Some(a),
        _ => None,
    };
    pages::render(
        StatusCode::OK,
        &TimelinePage {
            title: "Request",
            nav: Some(nav(&state, &m)),
            back_url: format!("/dashboard/audit?team={}", scope.team.slug),
            team: scope.team.slug.clone(),
            request_id: r.request_id.clone(),
            method: r.method.clone(),
            target: visible(&r.target_url),
            outcome: outcome(&r),
            steps: steps(&r, approval.as_ref()),
            segments: segments(&r),
            headers: r
                .request_headers
                .iter()
                .map(|(k, v)| (visible(k), visible(v)))
                .collect(),
            body: r.request_body.as_deref().map(visible),
        },
    )
}

#[cfg(test)]
mod tests;
