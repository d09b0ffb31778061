//! The MCP tools: what each one tells the model, the arguments it takes, and
//! the agent request it becomes. Every tool call is one or more ordinary
//! agent requests through the proxy's router (see [`super::calls`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method};
use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::McpCaller;
use super::answer;
use super::calls::{self, Answer};
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// The tools, in the order `tools/list` gives them.
pub const TOOL_NAMES: &[&str] = &["list_services", "request", "approval_status", "recent_logs"];

/// Longest `approval_status` wait in one call.
const MAX_POLL_WAIT_SECS: u64 = 30;
/// Pause between polls while `approval_status` waits.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Bound on one agent-endpoint call other than `/forward`.
const AGENT_CALL_BOUND: Duration = Duration::from_secs(30);
/// Longest accepted `txn_id` (ids are 32 hex digits).
const MAX_TXN_ID_LEN: usize = 100;

const INSTRUCTIONS: &str = "TAP lets you call external APIs without holding their secrets. \
Call list_services first: it names the credentials you may use, the hosts each one reaches and \
which requests proceed at once or pause for a human. Then call request with a credential name, \
method and target; the proxy injects the secret and removes it from the answer. Writes often \
need a human's approval: request then answers status pending with a txn_id and an approval_url; \
show the link to your human and call approval_status until the request is forwarded. A refusal \
comes back as a tool error with error_code, detail and fix: follow fix instead of retrying \
unchanged.";

const LIST_SERVICES: &str = "List what you may use through TAP: one entry per credential name \
with its description, the hosts it reaches (allowed_hosts), whether target is a full URL or a \
path (target_shape), the headers the proxy injects, and the approval rules (approval.rules, \
first match wins: proceeds_immediately or pauses_for_human). Call this before request. You never \
see or send secret values: you name a credential and the proxy injects it.";

const REQUEST: &str = "Call an external API through TAP with a credential the proxy injects. \
Give the credential name (from list_services), the HTTP method and the target: a full https URL \
on one of the credential's allowed hosts, or a path for relative-target credentials. Never put a \
secret, token or Authorization header in the request yourself: the proxy injects it, and a \
request that already carries a secret is refused (secret_in_request). Reads usually proceed at \
once; writes may pause for a human: the result is then status \"pending\" with a txn_id and an \
approval_url. Show the approval_url to your human, then call approval_status with the txn_id \
until it is forwarded; never send the same write again while it is pending. Otherwise the result \
is status \"forwarded\" with the upstream's response (status, headers, body); secrets in it appear \
as [REDACTED:<credential>]. A refusal is a tool error with error_code, detail and fix: do what \
fix says rather than retrying unchanged.";

const APPROVAL_STATUS: &str = "Check a request that paused for human approval, by the txn_id \
request returned. status is pending (nobody decided yet: ask again later, or set wait_seconds to \
wait here up to 30 s), approved (being sent now) or forwarded (done: the upstream's scrubbed \
answer is in response). A denied, timed out or failed request is a tool error with error_code \
approval_denied, approval_timed_out or the failure's code: nothing was sent; do not resend it \
unless your human asks.";

const RECENT_LOGS: &str = "Your own latest requests through TAP as the audit trail recorded \
them (oldest first): method, target, credential, decision, policy reason, approval status, \
upstream status and error code. Use it to find out what happened to earlier calls.";

/// The MCP server of one HTTP request (the SDK runs stateless).
#[derive(Clone)]
pub(crate) struct TapMcp {
    state: AppState,
    routes: Router,
}

impl TapMcp {
    pub(crate) fn new(state: AppState, routes: Router) -> Self {
        Self { state, routes }
    }
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn team_property() -> Value {
    json!({
        "type": "string",
        "description": "Another team you are linked to (as X-TAP-Team); leave out for your own team"
    })
}

fn annotated(tool: Tool, read_only: bool) -> Tool {
    let mut a = ToolAnnotations::default();
    a.read_only_hint = Some(read_only);
    a.open_world_hint = Some(!read_only);
    tool.annotate(a)
}

/// The tool list of `tools/list`.
pub(crate) fn tool_list() -> Vec<Tool> {
    vec![
        annotated(
            Tool::new(
                "list_services",
                LIST_SERVICES,
                schema(json!({
                    "type": "object",
                    "properties": { "team": team_property() },
                    "additionalProperties": false
                })),
            ),
            true,
        ),
        annotated(
            Tool::new(
                "request",
                REQUEST,
                schema(json!({
                    "type": "object",
                    "properties": {
                        "credential": {"type": "string", "description": "Credential name from list_services, e.g. github"},
                        "method": {"type": "string", "description": "HTTP method; default GET"},
                        "target": {"type": "string", "description": "Full upstream URL (https://host/path?query) or, for relative-target credentials, a path"},
                        "headers": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "Headers for the upstream, e.g. {\"Content-Type\": \"application/json\"}; never Authorization or a secret: the proxy injects the credential"
                        },
                        "body": {"type": "string", "description": "Request body (JSON goes here as a string)"},
                        "body_encoding": {"type": "string", "enum": ["utf-8", "base64"], "description": "How body is written; default utf-8"},
                        "team": team_property(),
                        "wait_seconds": {"type": "integer", "minimum": 0, "description": "When the request needs approval, wait up to this many seconds for the decision (capped by the proxy) before answering pending; default 0"}
                    },
                    "required": ["credential", "target"],
                    "additionalProperties": false
                })),
            ),
            false,
        ),
        annotated(
            Tool::new(
                "approval_status",
                APPROVAL_STATUS,
                schema(json!({
                    "type": "object",
                    "properties": {
                        "txn_id": {"type": "string", "description": "The txn_id a pending request returned"},
                        "wait_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_POLL_WAIT_SECS, "description": "Wait up to this many seconds for a decision before answering; default 0"}
                    },
                    "required": ["txn_id"],
                    "additionalProperties": false
                })),
            ),
            true,
        ),
        annotated(
            Tool::new(
                "recent_logs",
                RECENT_LOGS,
                schema(json!({
                    "type": "object",
                    "properties": {
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many entries; default 20"},
                        "team": team_property()
                    },
                    "additionalProperties": false
                })),
            ),
            true,
        ),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamArgs {
    team: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestArgs {
    credential: String,
    method: Option<String>,
    target: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    body_encoding: Option<String>,
    team: Option<String>,
    wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollArgs {
    txn_id: String,
    wait_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    limit: Option<u32>,
    team: Option<String>,
}

/// Parses tool arguments; the error names what is wrong, never a value.
fn args<T: DeserializeOwned>(raw: Option<JsonObject>) -> Result<T, ProxyError> {
    serde_json::from_value(Value::Object(raw.unwrap_or_default())).map_err(|e| {
        // serde's messages name fields and types, not the values given.
        ProxyError::new(Reason::InvalidRequest, format!("invalid arguments: {e}")).with(
            "fix",
            "Call the tool with the arguments its input schema lists.",
        )
    })
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        ProxyError::new(
            Reason::InvalidHeader,
            format!("{name} holds CR, LF or another byte a header cannot carry"),
        )
    })
}

impl TapMcp {
    fn caller<'c>(&self, ctx: &'c RequestContext<RoleServer>) -> Option<&'c McpCaller> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>())
    }

    async fn get_json(
        &self,
        caller: &McpCaller,
        path: &str,
        team: Option<&str>,
    ) -> Result<Answer, ProxyError> {
        let mut b = calls::agent_request(caller, Method::GET, path);
        if let Some(t) = team {
            b = b.header("x-tap-team", header_value("team", t)?);
        }
        let req = b
            .body(Body::empty())
            .map_err(|_| ProxyError::new(Reason::InvalidRequest, "invalid request"))?;
        calls::send(&self.routes, req, AGENT_CALL_BOUND).await
    }

    async fn list_services(&self, caller: &McpCaller, a: TeamArgs) -> CallToolResult {
        match self
            .get_json(caller, "/agent/services", a.team.as_deref())
            .await
        {
            Ok(answer) => answer::json_result(&answer),
            Err(e) => answer::refusal(&e),
        }
    }

    async fn recent_logs(&self, caller: &McpCaller, a: LogsArgs) -> CallToolResult {
        let path = format!("/agent/logs?limit={}", a.limit.unwrap_or(20).clamp(1, 100));
        match self.get_json(caller, &path, a.team.as_deref()).await {
            Ok(answer) => answer::json_result(&answer),
            Err(e) => answer::refusal(&e),
        }
    }

    async fn approval_status(&self, caller: &McpCaller, a: PollArgs) -> CallToolResult {
        let txn = a.txn_id.trim();
        let well_formed = !txn.is_empty()
            && txn.len() <= MAX_TXN_ID_LEN
            && txn
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            // What the route answers for any id that is not this agent's.
            return answer::refusal(
                &ProxyError::new(Reason::NotFound, "no such approval for this agent")
                    .with("fix", "Pass the txn_id exactly as request returned it."),
            );
        }
        let path = format!("/agent/approvals/{txn}");
        let wait = Duration::from_secs(a.wait_seconds.unwrap_or(0).min(MAX_POLL_WAIT_SECS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let answer = match self.get_json(caller, &path, None).await {
                Ok(a) => a,
                Err(e) => return answer::refusal(&e),
            };
            if answer::poll_is_final(&answer) || tokio::time::Instant::now() >= deadline {
                return answer::poll_result(&answer);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// `request`: one `POST /forward`, built as an HTTP agent would send it.
    async fn request(&self, caller: &McpCaller, a: RequestArgs) -> CallToolResult {
        let wait_cap = self.state.config.sync_wait;
        let wait = a.wait_seconds.unwrap_or(0).min(wait_cap.as_secs());
        let req = match forward_request(caller, a, wait) {
            Ok(r) => r,
            Err(e) => return answer::refusal(&e),
        };
        // The pipeline bounds itself (approval wait, upstream timeout); this
        // bound only guards the tool against a body that never ends.
        let bound = wait_cap + self.state.config.forward_timeout * 2;
        match calls::send(&self.routes, req, bound).await {
            Ok(answer) => answer::forward_result(&answer),
            Err(e) => answer::refusal(&e),
        }
    }
}

/// The `POST /forward` request for `request`'s arguments. `X-TAP-*` and
/// `Prefer` come from the arguments only: an upstream header of those names
/// is refused rather than merged.
fn forward_request(
    caller: &McpCaller,
    a: RequestArgs,
    wait: u64,
) -> Result<http::Request<Body>, ProxyError> {
    let mut b = calls::agent_request(caller, Method::POST, "/forward")
        .header(
            "x-tap-credential",
            header_value("credential", &a.credential)?,
        )
        .header("x-tap-target", header_value("target", &a.target)?);
    if let Some(m) = &a.method {
        b = b.header("x-tap-method", header_value("method", m)?);
    }
    if let Some(t) = &a.team {
        b = b.header("x-tap-team", header_value("team", t)?);
    }
    b = b.header(
        "prefer",
        if wait == 0 {
            HeaderValue::from_static("respond-async")
        } else {
            header_value("wait", &format!("wait={wait}"))?
        },
    );
    for (name, value) in &a.headers {
        let n = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            ProxyError::new(
                Reason::InvalidHeader,
                "a header name is not a valid HTTP token",
            )
        })?;
        if n.as_str().starts_with("x-tap-") || n == "prefer" {
            return Err(ProxyError::new(
                Reason::InvalidHeader,
                format!("header {n} is set from the tool's arguments"),
            )
            .with("header", n.as_str())
            .with(
                "fix",
                "Use the credential, method, target, team and wait_seconds arguments instead of X-TAP-* or Prefer headers.",
            ));
        }
        b = b.header(n.clone(), header_value(n.as_str(), value)?);
    }
    let body = match (a.body, a.body_encoding.as_deref()) {
        (None, _) => Vec::new(),
        (Some(s), None | Some("utf-8")) => s.into_bytes(),
        (Some(s), Some("base64")) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| {
                ProxyError::new(Reason::InvalidRequest, "body is not valid base64").with(
                    "fix",
                    "Send base64 (standard alphabet) or set body_encoding to utf-8.",
                )
            })?,
        (Some(_), Some(_)) => {
            return Err(ProxyError::new(
                Reason::InvalidRequest,
                "body_encoding must be utf-8 or base64",
            )
            .with("fix", "Set body_encoding to utf-8 or base64."));
        }
    };
    b.body(Body::from(body))
        .map_err(|_| ProxyError::new(Reason::InvalidRequest, "the request could not be built"))
}

impl ServerHandler for TapMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tap", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(caller) = self.caller(&context) else {
            // Only reachable if a route skipped `entry`: refuse, never guess.
            return Ok(answer::refusal(&ProxyError::new(
                Reason::MissingTapKey,
                "MCP requests need the agent key",
            ))
            .into());
        };
        let name: Cow<'_, str> = request.name.clone();
        let raw = request.arguments;
        let result = match name.as_ref() {
            "list_services" => match args::<TeamArgs>(raw) {
                Ok(a) => self.list_services(caller, a).await,
                Err(e) => answer::refusal(&e),
            },
            "request" => match args::<RequestArgs>(raw) {
                Ok(a) => self.request(caller, a).await,
                Err(e) => answer::refusal(&e),
            },
            "approval_status" => match args::<PollArgs>(raw) {
                Ok(a) => self.approval_status(caller, a).await,
                Err(e) => answer::refusal(&e),
            },
            "recent_logs" => match args::<LogsArgs>(raw) {
                Ok(a) => self.recent_logs(caller, a).await,
                Err(e) => answer::refusal(&e),
            },
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "unknown tool {}",
                        other.chars().take(64).collect::<String>()
                    ),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_tools_in_order_with_object_schemas() {
        let tools = tool_list();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, TOOL_NAMES);
        for t in &tools {
            assert_eq!(
                t.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                t.name
            );
            assert!(t.description.as_ref().is_some_and(|d| d.len() > 80));
        }
    }

    #[test]
    fn bad_arguments_are_invalid_request_with_a_fix() {
        let mut raw = JsonObject::new();
        raw.insert("credential".into(), json!(1));
        let e = args::<RequestArgs>(Some(raw)).err().unwrap();
        assert_eq!(e.reason, Reason::InvalidRequest);
        assert!(e.body()["fix"].as_str().is_some_and(|f| !f.is_empty()));
        let e = args::<PollArgs>(None).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidRequest);
    }
}
