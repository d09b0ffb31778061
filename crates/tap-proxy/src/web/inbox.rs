//! The approvals inbox (`/inbox`): what waits for the signed-in member's
//! decision across their teams, newest first, and recent decisions below.
//! The page script re-fetches the list (`?fragment=1`) every few seconds.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tap_core::model::{Approval, ApprovalStatus};

use super::approve::{may_decide, needs_passkey};
use super::pages::{self, Nav};
use super::session::{MemberCtx, member, member_teams, nav};
use crate::approval::display::visible;
use crate::state::AppState;

/// Pending approvals read per team.
const PENDING_PER_TEAM: u32 = 200;
/// Approvals read per team to find the recent decisions.
const RECENT_READ_PER_TEAM: u32 = 100;
/// Recent decisions shown.
const RECENT_SHOWN: usize = 20;

/// One line of the inbox.
#[derive(Debug)]
struct Row {
    txn_id: String,
    method: String,
    target: String,
    agent: String,
    credential: String,
    team: String,
    age: String,
    progress: String,
    passkey: bool,
    status: &'static str,
    deciders: String,
    at: i64,
}

#[derive(Template)]
#[template(path = "inbox_list.html")]
struct InboxList {
    pending: Vec<Row>,
    recent: Vec<Row>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    title: &'static str,
    nav: Option<Nav>,
    teams: Vec<String>,
    selected: Option<String>,
    refresh_url: String,
    list: String,
}

/// `GET /inbox` query.
#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    /// Only this team (a slug of one of the member's teams).
    #[serde(default)]
    team: Option<String>,
    /// Only the list, for the page's refresh.
    #[serde(default)]
    fragment: Option<String>,
}

/// "just now", "4 min ago", "3 h ago", "2 d ago".
fn age(now: i64, then: i64) -> String {
    let secs = (now - then).max(0) / 1000;
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn row(state: &AppState, a: &Approval, team: &str, now: i64, passkey: bool) -> Row {
    let dir = state.directory.get();
    let target = dir.teams.get(&a.team_internal_id).map_or_else(
        || a.target.clone(),
        |t| t.all_secrets.scrub_str(&a.target).0,
    );
    let at = a.decided_at.unwrap_or(a.created_at);
    Row {
        txn_id: a.txn_id.clone(),
        method: a.method.clone(),
        target: visible(&target),
        agent: a.agent_id.clone(),
        credential: a.credential_names().collect::<Vec<_>>().join(", "),
        team: team.to_owned(),
        age: age(now, at),
        progress: format!("{}/{} approvals", a.approvers().len(), a.min_approvals),
        passkey,
        status: a.status.public_str(),
        deciders: a
            .votes
            .iter()
            .map(|v| format!("{} {}", v.email, v.decision))
            .collect::<Vec<_>>()
            .join(", "),
        at,
    }
}

async fn list(state: &AppState, m: &MemberCtx, only: Option<&str>) -> InboxList {
    let now = state.clock.now_ms();
    let mut pending = Vec::new();
    let mut recent = Vec::new();
    for (team, _, _) in member_teams(state, m).await {
        if only.is_some_and(|s| s != team.slug) {
            continue;
        }
        let waiting = state
            .store
            .approvals(
                team.internal_id,
                Some(ApprovalStatus::Pending),
                PENDING_PER_TEAM,
            )
            .await
            .unwrap_or_default();
        for a in waiting.iter().filter(|a| a.expires_at > now) {
            if may_decide(state, m, a).await && !a.votes.iter().any(|v| v.email == m.email) {
                let passkey = needs_passkey(state, a).await;
                pending.push(row(state, a, &team.slug, now, passkey));
            }
        }
        let all = state
            .store
            .approvals(team.internal_id, None, RECENT_READ_PER_TEAM)
            .await
            .unwrap_or_default();
        recent.extend(
            all.iter()
                .filter(|a| a.status != ApprovalStatus::Pending)
                .map(|a| row(state, a, &team.slug, now, false)),
        );
    }
    pending.sort_by_key(|r| std::cmp::Reverse(r.at));
    recent.sort_by_key(|r| std::cmp::Reverse(r.at));
    recent.truncate(RECENT_SHOWN);
    InboxList { pending, recent }
}

/// `GET /inbox`: the member's approvals inbox (HTML; `?fragment=1` for the list alone).
pub async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<InboxQuery>,
) -> Response {
    let Some(m) = member(&state, &headers).await else {
        if q.fragment.is_some() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return Redirect::to("/login?next=/inbox").into_response();
    };
    let teams: Vec<String> = member_teams(&state, &m)
        .await
        .into_iter()
        .map(|(t, _, _)| t.slug)
        .collect();
    let selected = q.team.filter(|t| teams.contains(t));
    let body = list(&state, &m, selected.as_deref()).await;
    let html = match body.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "inbox template failed");
            String::new()
        }
    };
    if q.fragment.is_some() {
        return pages::with_headers((StatusCode::OK, Html(html)).into_response());
    }
    let refresh_url = match &selected {
        Some(t) => format!("/inbox?fragment=1&team={t}"),
        None => "/inbox?fragment=1".to_owned(),
    };
    pages::render(
        StatusCode::OK,
        &InboxPage {
            title: "Approvals",
            nav: Some(nav(&state, &m)),
            teams,
            selected,
            refresh_url,
            list: html,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_human_would_say_them() {
        let now = 10_000_000;
        assert_eq!(age(now, now - 5_000), "just now");
        assert_eq!(age(now, now - 4 * 60_000), "4 min ago");
        assert_eq!(age(now, now - 3 * 3_600_000), "3 h ago");
        assert_eq!(age(now + 200_000_000, now), "2 d ago");
        assert_eq!(age(now, now + 5_000), "just now", "clock skew");
    }
}
