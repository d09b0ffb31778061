//! `GET /agent/services` in the public TAP shape (SPEC §3.4): public clients
//! (the MCP bridge, agent frameworks) parse it, so the spelling is theirs.
//!
//! Never a value, never a sidecar's internals: what an agent learns here is
//! names, hosts, header names and the approval rules it will meet.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use tap_core::model::Connector;
use tap_core::policy::{ApprovalMode, Policy};

use crate::agent_views::{
    AccountView, ApprovalInfoView, AsyncApprovalView, ErrorBody, RequestTemplateView, RuleView,
    ServiceApprovalView, ServiceView, ServicesView, UsageView,
};
use crate::directory::{AgentEntry, CredentialEntry, Directory, TeamEntry};
use crate::error::{ProxyError, Reason};
use crate::proxy::authenticate::authenticate;
use crate::state::AppState;

/// The public token naming the URL-pattern rule of SPEC §5.
const URL_MATCH: &str = "path_prefix_or_exact_host_path_prefix_with_star_segments";
const PROCEEDS: &str = "proceeds_immediately";
const PAUSES: &str = "pauses_for_human";

/// The `X-TAP-*` headers, as agents spell them.
const SUPPORTED: &[&str] = &[
    "X-TAP-Key",
    "X-TAP-Credential",
    "X-TAP-Target",
    "X-TAP-Method",
    "X-TAP-Team",
    "X-TAP-Auth-Mode",
];

fn rule(target: &str, methods: &[&str], decision: &'static str) -> RuleView {
    RuleView {
        target: target.to_owned(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        decision,
        priority: None,
    }
}

/// The approval rules an agent meets for one credential, in evaluation order:
/// require-URL overrides, auto-URL overrides, auto methods (GET implies HEAD),
/// require methods, then the team default. Returns the rules and the default decision.
fn approval_rules(mode: ApprovalMode, policy: Option<&Policy>) -> (Vec<RuleView>, &'static str) {
    let Some(p) = policy else {
        return match mode {
            ApprovalMode::Gated => (
                vec![
                    rule("*", &["GET", "HEAD"], PROCEEDS),
                    rule("*", &["*"], PAUSES),
                ],
                PAUSES,
            ),
            ApprovalMode::Autonomous => (vec![rule("*", &["*"], PROCEEDS)], PROCEEDS),
        };
    };
    let mut rules = Vec::new();
    for (urls, decision) in [
        (&p.require_approval_urls, PAUSES),
        (&p.auto_approve_urls, PROCEEDS),
    ] {
        for u in urls {
            let mut r = rule(u, &["*"], decision);
            r.priority = Some("url_override");
            rules.push(r);
        }
    }
    let mut auto: Vec<&str> = p.auto_approve_methods.iter().map(String::as_str).collect();
    if auto.contains(&"GET") && !auto.contains(&"HEAD") {
        auto.push("HEAD");
    }
    if !auto.is_empty() {
        rules.push(rule("*", &auto, PROCEEDS));
    }
    let require: Vec<&str> = p
        .require_approval_methods
        .iter()
        .map(String::as_str)
        .collect();
    if !require.is_empty() {
        rules.push(rule("*", &require, PAUSES));
    }
    rules.push(rule("*", &["*"], PAUSES));
    (rules, PAUSES)
}

/// An example target for the request template.
fn target_example(c: &CredentialEntry) -> String {
    if c.relative_target {
        return "/path/on/the/api".into();
    }
    let host = c
        .allowed_hosts_raw
        .first()
        .map_or("api.example.com", String::as_str)
        .trim_start_matches("*.");
    if host.starts_with("http://") || host.starts_with("https://") {
        format!("{host}/path")
    } else {
        format!("https://{host}/path")
    }
}

fn service(state: &AppState, team: &TeamEntry, c: &CredentialEntry, name: &str) -> ServiceView {
    let (auth_mode, header_names): (&str, Vec<String>) = if c.connector == Connector::Sidecar {
        ("oauth_sidecar", Vec::new())
    } else if c.bindings.is_empty() {
        ("authorization_header", vec!["Authorization".to_owned()])
    } else {
        (
            "custom_headers",
            c.bindings.iter().filter_map(|b| b.header.clone()).collect(),
        )
    };
    let policy = team.policies.get(&c.name).map(|p| p.policy());
    let (rules, default_decision) = approval_rules(team.mode, policy);
    ServiceView {
        name: c.name.clone(),
        description: c.description.clone(),
        target_shape: if c.relative_target {
            "relative_path"
        } else {
            "full_url"
        },
        target_is_relative_path: c.relative_target,
        // A sidecar's base is its internals: never shown to agents.
        target_base: if c.connector == Connector::Direct {
            c.api_base_raw.clone()
        } else {
            None
        },
        allowed_hosts: c.allowed_hosts_raw.clone(),
        auth_mode,
        auth_header_names: header_names,
        value_set: matches!(c.value, Ok(Some(_))),
        request_template: RequestTemplateView {
            url: format!("{}/forward", state.config.public_base()),
            method: "POST",
            headers: BTreeMap::from([
                ("X-TAP-Key", "<your agent key>".to_owned()),
                ("X-TAP-Credential", name.to_owned()),
                ("X-TAP-Target", target_example(c)),
                ("X-TAP-Method", "GET".to_owned()),
            ]),
        },
        approval: ServiceApprovalView {
            default_decision,
            url_match: URL_MATCH,
            rules,
            min_approvals: policy.map_or(1, |p| p.min_approvals.max(1)),
            note: "The first matching rule decides. A paused request waits for a human: without Prefer the call blocks up to the sync wait, then answers 202 with a txn_id to poll; with Prefer: respond-async it answers 202 at once.",
        },
        account: None,
    }
}

/// The credentials `agent` may use in `team`, sorted by name.
pub(crate) fn granted<'t>(
    agent: &AgentEntry,
    team: &'t TeamEntry,
) -> Vec<&'t Arc<CredentialEntry>> {
    let Some(mine) = agent.credentials_in(team.internal_id) else {
        return Vec::new();
    };
    let mut v: Vec<_> = team
        .credentials
        .values()
        .filter(|c| mine.contains(&c.name))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The team a key's agent acts in: `X-TAP-Team` when it is linked there, else its home.
fn team_for<'d>(
    dir: &'d Directory,
    agent: &AgentEntry,
    wanted: Option<&str>,
) -> Option<&'d Arc<TeamEntry>> {
    match wanted {
        None => dir.teams.get(&agent.team_internal_id),
        Some(slug) => dir
            .team_by_slug(slug)
            .filter(|t| agent.credentials_in(t.internal_id).is_some()),
    }
}

fn linked_teams(dir: &Directory, agent: &AgentEntry) -> Vec<String> {
    let mut v: Vec<String> = agent
        .links
        .keys()
        .filter_map(|id| dir.teams.get(id).map(|t| t.slug.clone()))
        .collect();
    v.sort();
    v
}

/// `GET /agent/services`.
#[utoipa::path(
    get,
    path = "/agent/services",
    tag = "agent",
    summary = "What this agent may use and how (public TAP shape)",
    security(("agent_key" = [])),
    responses(
        (status = 200, description = "Services keyed by credential name", body = ServicesView),
        (status = 401, description = "Missing or invalid agent key", body = ErrorBody),
        (status = 403, description = "X-TAP-Team names a team no key is linked to", body = ErrorBody),
    )
)]
pub async fn services(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let dir = state.directory.get();
    let auth = match authenticate(&dir, state.keys.mac(), &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let wanted = headers
        .get("x-tap-team")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let several = auth.agents.len() > 1;
    let primary = auth.primary();
    let mut services = BTreeMap::new();
    let mut accounts = BTreeMap::new();
    let mut team_id = None;
    for (index, agent) in auth.agents.iter().enumerate() {
        let Some(team) = team_for(&dir, agent, wanted) else {
            continue;
        };
        if team_id.is_none() {
            team_id = Some(team.slug.clone());
        }
        if several {
            accounts
                .entry(agent.id.clone())
                .or_insert_with(|| AccountView {
                    agent_id: agent.id.clone(),
                    key_index: index,
                });
        }
        for c in granted(agent, team) {
            let name = if index == 0 || agent.id == primary.id {
                c.name.clone()
            } else {
                format!("{}.{}", agent.id, c.name)
            };
            if services.contains_key(&name) {
                continue;
            }
            let mut s = service(&state, team, c, &name);
            if several {
                s.account = Some(agent.id.clone());
            }
            services.insert(name, s);
        }
    }
    let Some(team_id) = team_id else {
        let slug = wanted.unwrap_or_default();
        return ProxyError::new(
            Reason::TeamNotLinked,
            format!("agent {} is not linked to team {slug}", primary.id),
        )
        .with("team", slug)
        .into_response();
    };
    let several_accounts = several.then_some(accounts);
    let home_team_id = if several {
        None
    } else {
        dir.teams
            .get(&primary.team_internal_id)
            .map(|h| h.slug.clone())
    };
    Json(ServicesView {
        agent_id: primary.id.clone(),
        team_id,
        services,
        approval: ApprovalInfoView {
            timeout_seconds: state.config.approval_timeout.as_secs(),
            sync_wait_seconds: state.config.sync_wait.as_secs(),
            channels: state.broker.names(None),
            telegram: state.telegram.as_ref().map(|t| {
                let h = t.health();
                crate::agent_views::TelegramHealthView {
                    mode: h.mode,
                    ok: h.ok,
                    last_error: h.last_error,
                }
            }),
            async_: AsyncApprovalView {
                request_header: "Prefer: respond-async",
                poll_url: "/agent/approvals/{txn_id}",
                final_statuses: ["forwarded", "denied", "timed_out", "error"],
                note: "Poll poll_url with your X-TAP-Key until the status is final; show approval_url to your human.",
            },
        },
        usage: UsageView {
            method: "POST",
            url: "/forward",
            headers: BTreeMap::from([
                (
                    "X-TAP-Key",
                    "your agent key (several, comma-separated, for several accounts)",
                ),
                ("X-TAP-Credential", "a key of services"),
                (
                    "X-TAP-Target",
                    "the upstream URL (or a path for relative-path services)",
                ),
                ("X-TAP-Method", "the upstream method, default GET"),
            ]),
            supported_tap_headers: SUPPORTED,
            request_body: "the upstream request body, sent as the body of POST /forward; upstream headers are sent as plain headers",
        },
        linked_teams: linked_teams(&dir, primary),
        accounts: several_accounts,
        home_team_id,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_default_lets_reads_through_and_pauses_the_rest() {
        let (rules, default) = approval_rules(ApprovalMode::Gated, None);
        assert_eq!(default, PAUSES);
        assert_eq!(rules[0], rule("*", &["GET", "HEAD"], PROCEEDS));
        assert_eq!(rules[1], rule("*", &["*"], PAUSES));
    }

    #[test]
    fn policy_rules_follow_the_evaluation_order() {
        let p = Policy {
            auto_approve_methods: vec!["GET".into(), "POST".into()],
            require_approval_methods: vec!["DELETE".into()],
            auto_approve_urls: vec!["/public".into()],
            require_approval_urls: vec!["/admin".into()],
            ..Policy::default()
        };
        let (rules, default) = approval_rules(ApprovalMode::Autonomous, Some(&p));
        assert_eq!(default, PAUSES);
        let targets: Vec<&str> = rules.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/admin", "/public", "*", "*", "*"]);
        assert_eq!(rules[0].decision, PAUSES);
        assert_eq!(rules[0].priority, Some("url_override"));
        assert_eq!(rules[1].decision, PROCEEDS);
        assert_eq!(rules[2].methods, ["GET", "POST", "HEAD"]);
        assert_eq!(rules[3].methods, ["DELETE"]);
        assert_eq!(rules[4], rule("*", &["*"], PAUSES));
    }
}
