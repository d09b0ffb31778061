//! The JSON answers of the agent endpoints (SPEC §3), typed so the OpenAPI
//! document describes exactly what is sent. Public TAP clients parse these
//! shapes, so the field names are theirs.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::ops::audit::AuditEntry;

/// The error body of every answer the proxy makes itself (SPEC §3): `error`
/// and `error_code` carry the stable code, `detail` the sentence, `fix` the
/// remedy. Some codes add fields (`txn_id`, `team`, `retry_after`…).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The stable code (public clients compare this field).
    pub error: String,
    /// The same code.
    pub error_code: String,
    /// What happened, in one sentence.
    pub detail: String,
    /// What to do about it.
    pub fix: String,
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`, or `error` when the store is unreachable.
    pub status: &'static str,
    /// The proxy's version.
    pub version: &'static str,
    /// `unreachable` when the store is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<&'static str>,
}

/// One credential of `GET /agent/config`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConfigCredentialView {
    /// Its name, for `X-TAP-Credential`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The base URL relative targets are appended to, when it has one.
    pub api_base: Option<String>,
}

/// `GET /agent/config`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentConfigView {
    /// The agent's id.
    pub agent_id: String,
    /// The team it acts in (slug).
    pub team_id: String,
    /// The credentials it may use, by name.
    pub credentials: Vec<ConfigCredentialView>,
}

/// `GET /agent/bootstrap`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BootstrapView {
    /// Always `tap`.
    pub protocol: &'static str,
    /// Protocol version.
    pub version: u32,
    /// `ready`, or `needs_credentials` when nothing is granted.
    pub status: &'static str,
    /// The agent's id.
    pub agent_id: String,
    /// The team it acts in (slug).
    pub team_id: String,
    /// How many credentials it may use.
    pub credential_count: usize,
    /// Where to read them.
    pub services_url: &'static str,
    /// Where to send calls.
    pub forward_url: &'static str,
    /// Where to read the agent's own audit entries.
    pub logs_url: &'static str,
    /// Reading this endpoint has no effect.
    pub safe_to_retry: bool,
}

/// `GET /agent/logs`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentLogsView {
    /// The agent's id.
    pub agent_id: String,
    /// The team (slug).
    pub team_id: String,
    /// Entries returned.
    pub count: usize,
    /// The agent's latest audited requests.
    pub entries: Vec<AuditEntry>,
}

/// The 202 of SPEC §3.3: the request waits for a human.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PendingView {
    /// The transaction to poll.
    pub txn_id: String,
    /// `pending`.
    pub status: &'static str,
    /// Poll this with the agent key.
    pub poll_url: String,
    /// Show this to the human.
    pub approval_url: String,
    /// Seconds until the approval expires.
    pub expires_in: i64,
    /// How the humans were told (`web`, `telegram`…).
    pub notification_channel: String,
    /// Set when a notification could not be sent: the request stays pending
    /// and decidable on the web page and the terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// What an agent should do next.
    pub agent_hint: &'static str,
}

/// The poll answer of SPEC §3.3 (`GET /agent/approvals/{txn_id}`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApprovalPollView {
    /// The transaction.
    pub txn_id: String,
    /// `pending`, `approved`, `forwarded`, `denied`, `timed_out` or `error`.
    pub status: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Approving votes so far.
    pub approvals: usize,
    /// Votes needed.
    pub min_approvals: u32,
    /// Who voted, once anyone has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Vec<String>>,
    /// Why it ended, for `error` and `timed_out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The scrubbed upstream answer (`status`, `headers`, `body`), once forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
}

/// One approval rule of a service: the first match decides.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RuleView {
    /// A URL pattern (SPEC §5) or `*`.
    pub target: String,
    /// Methods, or `*`.
    pub methods: Vec<String>,
    /// `proceeds_immediately` or `pauses_for_human`.
    pub decision: &'static str,
    /// `url_override` for the policy's URL lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<&'static str>,
}

/// What an agent meets when it writes through one service.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServiceApprovalView {
    /// The decision when no rule matches.
    pub default_decision: &'static str,
    /// How rule targets match.
    pub url_match: &'static str,
    /// In evaluation order.
    pub rules: Vec<RuleView>,
    /// Votes a paused request needs.
    pub min_approvals: u32,
    /// How pausing works.
    pub note: &'static str,
}

/// A request to send through `/forward`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RequestTemplateView {
    /// The proxy's `/forward` URL.
    pub url: String,
    /// `POST`.
    pub method: &'static str,
    /// The `X-TAP-*` headers to send.
    pub headers: BTreeMap<&'static str, String>,
}

/// One service (credential) of `GET /agent/services`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServiceView {
    /// The credential's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// `full_url` or `relative_path`.
    pub target_shape: &'static str,
    /// True when targets are paths under the service's base.
    pub target_is_relative_path: bool,
    /// The base URL of a direct credential with one (never a sidecar's).
    pub target_base: Option<String>,
    /// Hosts targets may name.
    pub allowed_hosts: Vec<String>,
    /// `authorization_header`, `custom_headers` or `oauth_sidecar`.
    pub auth_mode: &'static str,
    /// The headers the proxy sets (names only).
    pub auth_header_names: Vec<String>,
    /// Whether a value is stored.
    pub value_set: bool,
    /// A ready request.
    pub request_template: RequestTemplateView,
    /// The approval rules.
    pub approval: ServiceApprovalView,
    /// The account (agent id) a service belongs to, with several keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One account of a request made with several keys.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The agent id.
    pub agent_id: String,
    /// Its position in `X-TAP-Key`.
    pub key_index: usize,
}

/// How asynchronous approval works.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AsyncApprovalView {
    /// The header asking for an immediate 202.
    pub request_header: &'static str,
    /// The poll URL template.
    pub poll_url: &'static str,
    /// Statuses after which nothing changes.
    pub final_statuses: [&'static str; 4],
    /// What to do.
    pub note: &'static str,
}

/// Approval in general, for this deployment.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApprovalInfoView {
    /// How long a human has.
    pub timeout_seconds: u64,
    /// How long a call without `Prefer` blocks before answering 202.
    pub sync_wait_seconds: u64,
    /// The channels humans are reached on.
    pub channels: Vec<String>,
    /// Health of the Telegram channel, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramHealthView>,
    /// Polling.
    #[serde(rename = "async")]
    pub async_: AsyncApprovalView,
}

/// Health of the Telegram channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TelegramHealthView {
    /// `polling` or `webhook`.
    pub mode: &'static str,
    /// True when the last Bot API call succeeded.
    pub ok: bool,
    /// The last failure, without secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How to call `/forward`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// `POST`.
    pub method: &'static str,
    /// `/forward`.
    pub url: &'static str,
    /// The headers, explained.
    pub headers: BTreeMap<&'static str, &'static str>,
    /// Every `X-TAP-*` header the proxy reads.
    pub supported_tap_headers: &'static [&'static str],
    /// Where the upstream body goes.
    pub request_body: &'static str,
}

/// `GET /agent/services` in the public TAP shape (SPEC §3.4).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServicesView {
    /// The first key's agent.
    pub agent_id: String,
    /// The team acted in (slug).
    pub team_id: String,
    /// Services keyed by the name to send in `X-TAP-Credential`.
    pub services: BTreeMap<String, ServiceView>,
    /// Approval in general.
    pub approval: ApprovalInfoView,
    /// How to call.
    pub usage: UsageView,
    /// Other teams the agent is linked to.
    pub linked_teams: Vec<String>,
    /// With several keys: the accounts, keyed by agent id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<BTreeMap<String, AccountView>>,
    /// With one key: the agent's home team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_team_id: Option<String>,
}

/// `POST /logout`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogoutView {
    /// Always true.
    pub logged_out: bool,
}

/// A team of the member, in the `POST /login` answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LoginTeamView {
    /// The team's slug.
    pub team: String,
    /// `owner`, `admin`, `approver` or `viewer`.
    pub role: &'static str,
}

/// `POST /login` (JSON): a 24 h session for `Authorization: Bearer`.
#[derive(Clone, Serialize, ToSchema)]
pub struct LoginView {
    /// The session token, shown once.
    pub session_token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The member's teams.
    pub teams: Vec<LoginTeamView>,
}

impl std::fmt::Debug for LoginView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginView")
            .field("session_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("teams", &self.teams)
            .finish()
    }
}
