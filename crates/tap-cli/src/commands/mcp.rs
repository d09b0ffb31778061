//! `tap mcp` (an MCP server on stdin/stdout for clients that only launch
//! local processes, relaying every message to a running proxy's `/mcp`) and
//! `tap mcp-config` (configuration snippets for common MCP clients).
//!
//! The stdio server holds no logic of its own: `tools/list` and `tools/call`
//! are relayed to the proxy, which authenticates the agent key and runs each
//! call through its pipeline. The key comes from the environment, never
//! from an argument (process lists are world-readable).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceError, ServiceExt as _};
use serde_json::json;

use super::default_proxy_url;
use crate::env::Globals;

/// The variable `tap mcp` reads the agent key from.
pub(crate) const AGENT_KEY_ENV: &str = "TAP_AGENT_KEY";

/// Time to connect to the proxy; calls themselves are bounded by the proxy.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one relayed call: above the proxy's own bounds (sync approval
/// wait plus upstream time), so the proxy's answer always arrives first.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// `tap mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// The running proxy (default: TAP_PUBLIC_URL, else the listen address).
    #[arg(long, env = "TAP_PROXY_URL")]
    pub(crate) proxy_url: Option<String>,
}

/// `tap mcp-config`.
#[derive(Debug, Args)]
pub(crate) struct McpConfigArgs {
    /// generic, claude-code, claude-desktop, cursor, vscode or codex.
    #[arg(long, default_value = "generic")]
    pub(crate) client: String,
    /// The proxy URL agents reach (default: TAP_PUBLIC_URL, else the listen address).
    #[arg(long, env = "TAP_PROXY_URL")]
    pub(crate) proxy_url: Option<String>,
}

/// The clients `--client` knows.
const CLIENTS: &[&str] = &[
    "generic",
    "claude-code",
    "claude-desktop",
    "cursor",
    "vscode",
    "codex",
];

fn proxy_base(given: Option<String>) -> String {
    let base = given
        .or_else(|| std::env::var("TAP_PUBLIC_URL").ok())
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(default_proxy_url);
    base.trim().trim_end_matches('/').to_owned()
}

/// (where it goes, format, snippet) for one client. Never holds a key: the
/// snippets read it from `TAP_AGENT_KEY` or ask for it.
fn snippet(client: &str, base: &str) -> Option<(&'static str, &'static str, String)> {
    let url = format!("{base}/mcp");
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    Some(match client {
        "generic" => (
            "any MCP client with streamable HTTP: this URL, with the agent key as a bearer token",
            "json",
            pretty(json!({"mcpServers": {"tap": {
                "type": "http",
                "url": url,
                "headers": {"Authorization": "Bearer ${TAP_AGENT_KEY}"}
            }}})),
        ),
        "claude-code" => (
            "run in a shell where TAP_AGENT_KEY holds the agent key",
            "shell",
            format!(
                "claude mcp add --transport http tap {url} --header \"Authorization: Bearer $TAP_AGENT_KEY\""
            ),
        ),
        "claude-desktop" => (
            "claude_desktop_config.json (stdio: Claude Desktop launches `tap mcp`); put the agent key in env",
            "json",
            pretty(json!({"mcpServers": {"tap": {
                "command": "tap",
                "args": ["mcp", "--proxy-url", base],
                "env": {"TAP_AGENT_KEY": "<the agent key>"}
            }}})),
        ),
        "cursor" => (
            ".cursor/mcp.json (project) or ~/.cursor/mcp.json; Cursor reads TAP_AGENT_KEY from the environment",
            "json",
            pretty(json!({"mcpServers": {"tap": {
                "url": url,
                "headers": {"Authorization": "Bearer ${env:TAP_AGENT_KEY}"}
            }}})),
        ),
        "vscode" => (
            ".vscode/mcp.json; VS Code asks for the agent key once and stores it",
            "json",
            pretty(json!({
                "inputs": [{
                    "type": "promptString",
                    "id": "tap-agent-key",
                    "description": "TAP agent key",
                    "password": true
                }],
                "servers": {"tap": {
                    "type": "http",
                    "url": url,
                    "headers": {"Authorization": "Bearer ${input:tap-agent-key}"}
                }}
            })),
        ),
        "codex" => (
            "~/.codex/config.toml; Codex reads the key from TAP_AGENT_KEY",
            "toml",
            format!(
                "[mcp_servers.tap]\nurl = {}\nbearer_token_env_var = \"TAP_AGENT_KEY\"",
                serde_json::Value::String(url)
            ),
        ),
        _ => return None,
    })
}

/// `tap mcp-config [--client NAME]`.
pub(crate) fn mcp_config(g: &Globals, a: McpConfigArgs) -> Result<ExitCode> {
    let client = a.client.trim().to_ascii_lowercase();
    let base = proxy_base(a.proxy_url);
    let Some((place, format, text)) = snippet(&client, &base) else {
        bail!(
            "unknown MCP client {:?}; known: {}",
            a.client.chars().take(64).collect::<String>(),
            CLIENTS.join(", ")
        );
    };
    if g.json {
        println!(
            "{}",
            json!({
                "client": client,
                "url": format!("{base}/mcp"),
                "where": place,
                "format": format,
                "snippet": text,
                "clients": CLIENTS,
            })
        );
    } else {
        eprintln!("# {place}");
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The stdio server: every request relayed to the proxy's `/mcp`.
struct Relay {
    remote: Peer<RoleClient>,
}

fn relay_error(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        // Transport errors name the URL and the failure, never the key.
        other => ErrorData::internal_error(format!("the TAP proxy did not answer: {other}"), None),
    }
}

impl ServerHandler for Relay {
    fn get_info(&self) -> ServerConfig {
        let remote = self.remote.peer_info();
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                remote
                    .as_ref()
                    .and_then(|r| r.server_info.clone())
                    .unwrap_or_else(|| Implementation::new("tap", env!("CARGO_PKG_VERSION"))),
            );
        if let Some(i) = remote.as_ref().and_then(|r| r.instructions.clone()) {
            info = info.with_instructions(i);
        }
        info
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.remote.list_tools(request).await.map_err(relay_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.remote
            .call_tool_once(request)
            .await
            .map_err(relay_error)
    }
}

/// `tap mcp --proxy-url URL`.
pub(crate) async fn mcp(a: McpArgs) -> Result<ExitCode> {
    let key = std::env::var(AGENT_KEY_ENV)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .with_context(|| {
            format!("set {AGENT_KEY_ENV} to the agent key (tap agent create prints it)")
        })?;
    let url = format!("{}/mcp", proxy_base(a.proxy_url));
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")?;
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(key),
    );
    let remote = ClientConfig::default()
        .serve(transport)
        .await
        .with_context(|| format!("cannot open an MCP connection to {url}"))?;
    let relay = Relay {
        remote: remote.peer().clone(),
    };
    let server = relay
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client on stdin did not initialize")?;
    // Ends when the client closes stdin.
    let _ = server.waiting().await;
    let _ = remote.cancel().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_has_a_snippet_without_a_key() {
        for c in CLIENTS {
            let (_, format, text) = snippet(c, "http://127.0.0.1:3100").unwrap();
            assert!(text.contains("127.0.0.1:3100"), "{c}: {text}");
            assert!(
                text.contains("TAP_AGENT_KEY") || text.contains("tap-agent-key"),
                "{c}"
            );
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(&text).unwrap();
            }
        }
        assert!(snippet("nope", "http://x").is_none());
    }
}
