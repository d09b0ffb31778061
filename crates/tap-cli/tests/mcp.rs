//! TAP as an MCP server (issue 19), end to end through the real `tap`
//! binary: rmcp's own client over streamable HTTP on loopback, and the
//! stdio relay `tap mcp`, against a fake upstream. Every `request` must
//! leave the same audit rows as the same call sent to `/forward`.
//!
//! Every wait is bounded (`eventually`, timeouts); nothing asserts on
//! wall-clock time.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Served, TapHome, eventually, http_client};

const SECRET: &str = "mcp-s3cr3t-value-never-shown-0123";
const TRIES: u32 = 150;
const EVERY: Duration = Duration::from_millis(100);
/// Bound on one MCP call.
const CALL: Duration = Duration::from_secs(60);

type Client = RunningService<RoleClient, ClientConfig>;

/// One credential `echo` bound to the fake upstream, an agent `bot` granted it.
fn setup(up: &FakeUpstream) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (tap, key)
}

/// rmcp's client on the proxy's `/mcp`, the key as a bearer token.
async fn connect(served: &Served, key: &str) -> Result<Client, String> {
    let transport = StreamableHttpClientTransport::with_client(
        http_client(),
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", served.url))
            .auth_header(key),
    );
    tokio::time::timeout(CALL, ClientConfig::default().serve(transport))
        .await
        .map_err(|_| "initialize timed out".to_owned())?
        .map_err(|e| e.to_string())
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    tokio::time::timeout(CALL, client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{tool} timed out"))
        .unwrap_or_else(|e| panic!("{tool} failed: {e}"))
}

fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().expect("structured content")
}

fn assert_ok(r: &CallToolResult) -> Value {
    let v = structured(r);
    assert_ne!(r.is_error, Some(true), "tool error: {v}");
    v
}

/// A tool error carrying the proxy's `error_code`, `detail` and `fix`.
fn assert_tool_error(r: &CallToolResult, code: &str) -> Value {
    let v = structured(r);
    assert_eq!(r.is_error, Some(true), "expected a tool error: {v}");
    assert_eq!(v["error_code"], code, "{v}");
    assert!(v["detail"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v["fix"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    v
}

/// `tap approve TXN --json` as the owner.
fn approve(tap: &TapHome, txn: &str) {
    let out = tokio::task::block_in_place(|| tap.run(&["approve", txn, "--json"]));
    assert!(
        out.status.success(),
        "tap approve {txn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The merged audit row of `request_id` once `pred` holds (bounded).
async fn audit_row(tap: &TapHome, request_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let got = eventually(TRIES, EVERY, || async {
        let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "500"]));
        rows.into_iter()
            .find(|r| r["request_id"] == request_id)
            .filter(|r| pred(r))
    })
    .await;
    got.unwrap_or_else(|| panic!("no finished audit row for {request_id}"))
}

/// An audit row without what differs between any two requests (ids, times,
/// chain hashes) and without the transport headers an HTTP client adds.
fn comparable(row: &Value) -> Value {
    let mut row = row.clone();
    let obj = row.as_object_mut().unwrap();
    obj.retain(|k, _| {
        !(k == "request_id"
            || k == "timestamp"
            || k.contains("latency")
            || k.ends_with("_ms")
            || k.ends_with("_at")
            || k.contains("hash"))
    });
    if let Some(Value::Array(headers)) = obj.get_mut("request_headers") {
        headers.retain(|h| {
            let name = h[0].as_str().unwrap_or("");
            !["host", "content-length", "accept", "user-agent"].contains(&name)
        });
        headers.sort_by_key(|h| h.to_string());
    }
    row
}

/// What the calls of one flow left: (auto GET request id, approved POST txn).
struct Flow {
    get_id: String,
    txn: String,
    /// The refused leak attempt.
    leak_id: String,
}

/// The flow through any MCP client: tools, a scrubbed read, a write
/// that waits for a human, approved with `tap approve`, polled to its result.
async fn mcp_flow(client: &Client, tap: &TapHome, up: &FakeUpstream) -> Flow {
    let info = client.peer_info().expect("server info");
    assert!(
        info.instructions
            .as_deref()
            .is_some_and(|i| i.contains("list_services")),
        "instructions teach the tools: {info:?}"
    );
    let tools = tokio::time::timeout(CALL, client.list_all_tools())
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        ["list_services", "request", "approval_status", "recent_logs"]
    );
    let request_tool = tools.iter().find(|t| t.name == "request").unwrap();
    let teach = request_tool.description.as_deref().unwrap_or("");
    for rule in ["credential", "approval_status", "fix", "pending"] {
        assert!(teach.contains(rule), "request's description names {rule}");
    }

    let services = assert_ok(&call(client, "list_services", json!({})).await);
    assert!(services["services"]["echo"].is_object(), "{services}");
    assert!(!services.to_string().contains(SECRET));

    // An auto-approved read: the upstream reflects the injected secret, the
    // tool result holds it redacted.
    let get = call(
        client,
        "request",
        json!({"credential": "echo", "method": "GET", "target": format!("{}/echo/mcp", up.base())}),
    )
    .await;
    let got = assert_ok(&get);
    assert_eq!(got["status"], "forwarded", "{got}");
    assert_eq!(got["response"]["status"], 200, "{got}");
    let body = got["response"]["body"].as_str().unwrap();
    assert!(body.contains("[REDACTED:echo]"), "{body}");
    assert!(!got.to_string().contains(SECRET), "secret in a tool result");
    for content in &get.content {
        assert!(!format!("{content:?}").contains(SECRET));
    }
    let get_id = got["request_id"].as_str().unwrap().to_owned();

    // A write pauses for a human.
    let before = up.count();
    let post = call(
        client,
        "request",
        json!({
            "credential": "echo",
            "method": "post",
            "target": format!("{}/echo/mcp-write", up.base()),
            "headers": {"Content-Type": "application/json"},
            "body": "{\"n\":1}"
        }),
    )
    .await;
    let pending = assert_ok(&post);
    assert_eq!(pending["status"], "pending", "{pending}");
    let txn = pending["txn_id"].as_str().unwrap().to_owned();
    assert!(
        pending["approval_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/approve/{txn}"))),
        "{pending}"
    );
    assert!(pending["next_step"].as_str().is_some());
    assert_eq!(up.count(), before, "nothing forwarded before approval");
    let still = assert_ok(&call(client, "approval_status", json!({"txn_id": txn})).await);
    assert_eq!(still["status"], "pending", "{still}");

    approve(tap, &txn);
    let done = eventually(TRIES, EVERY, || async {
        let r = call(client, "approval_status", json!({"txn_id": txn})).await;
        let v = assert_ok(&r);
        (v["status"] == "forwarded").then_some(v)
    })
    .await
    .expect("the approved write is forwarded");
    assert_eq!(done["response"]["status"], 200, "{done}");
    let body = done["response"]["body"].as_str().unwrap();
    assert!(
        body.contains("[REDACTED:echo]") && !body.contains(SECRET),
        "{body}"
    );
    assert_eq!(up.count(), before + 1, "forwarded exactly once");

    let logs = assert_ok(&call(client, "recent_logs", json!({"limit": 10})).await);
    assert!(logs.to_string().contains(&get_id), "{logs}");

    // Refusals are tool errors with the pipeline's code, detail and fix.
    let nope = call(
        client,
        "request",
        json!({"credential": "nope", "target": format!("{}/echo", up.base())}),
    )
    .await;
    assert_tool_error(&nope, "credential_not_found");
    let leak = call(
        client,
        "request",
        json!({"credential": "echo", "method": "POST", "target": format!("{}/echo", up.base()), "body": SECRET}),
    )
    .await;
    let v = assert_tool_error(&leak, "secret_in_request");
    assert!(!v.to_string().contains(SECRET));
    let leak_id = v["request_id"].as_str().unwrap().to_owned();
    assert_tool_error(
        &call(client, "approval_status", json!({"txn_id": "not-mine"})).await,
        "not_found",
    );
    assert_tool_error(
        &call(client, "request", json!({"target": 1})).await,
        "invalid_request",
    );
    Flow {
        get_id,
        txn,
        leak_id,
    }
}

/// The same calls through `/forward`; returns (GET request id, POST txn, leak request id).
async fn forward_flow(
    served: &Served,
    tap: &TapHome,
    key: &str,
    up: &FakeUpstream,
) -> (String, String, String) {
    let get = served
        .forward(key)
        .credential("echo")
        .method("GET")
        .target(&format!("{}/echo/mcp", up.base()))
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(get.status, 200, "{}", get.text());
    let post = served
        .forward(key)
        .credential("echo")
        .method("post")
        .target(&format!("{}/echo/mcp-write", up.base()))
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .body("{\"n\":1}")
        .send()
        .await;
    assert_eq!(post.status, 202, "{}", post.text());
    let txn = post.json()["txn_id"].as_str().unwrap().to_owned();
    approve(tap, &txn);
    eventually(TRIES, EVERY, || async {
        let r = served
            .get(&format!("/agent/approvals/{txn}"), Some(key))
            .await;
        (r.json()["status"] == "forwarded").then_some(())
    })
    .await
    .expect("forwarded");
    let leak = served
        .forward(key)
        .credential("echo")
        .method("POST")
        .target(&format!("{}/echo", up.base()))
        .header("Prefer", "respond-async")
        .body(SECRET)
        .send()
        .await;
    leak.assert_refused(400, "secret_in_request");
    (get.request_id(), txn, leak.request_id())
}

/// The audit rows of the MCP flow equal those of the `/forward` flow.
async fn assert_same_audit(tap: &TapHome, flow: &Flow, via_forward: &(String, String, String)) {
    let mcp_get = audit_row(tap, &flow.get_id, |r| r["upstream_status"] == 200).await;
    let fwd_get = audit_row(tap, &via_forward.0, |r| r["upstream_status"] == 200).await;
    assert_eq!(comparable(&mcp_get), comparable(&fwd_get));
    let done = |r: &Value| r["approval_status"] == "forwarded" && r["upstream_status"] == 200;
    let mcp_post = audit_row(tap, &flow.txn, done).await;
    let fwd_post = audit_row(tap, &via_forward.1, done).await;
    assert_eq!(comparable(&mcp_post), comparable(&fwd_post));
    assert_eq!(mcp_post["method"], "POST");
    let refused = |r: &Value| r["error_code"] == "secret_in_request";
    let mcp_leak = audit_row(tap, &flow.leak_id, refused).await;
    let fwd_leak = audit_row(tap, &via_forward.2, refused).await;
    assert_eq!(comparable(&mcp_leak), comparable(&fwd_leak));
    assert!(!mcp_leak.to_string().contains(SECRET), "{mcp_leak}");
    assert!(!mcp_post.to_string().contains(SECRET));
    let v = tokio::task::block_in_place(|| tap.json(&["audit", "verify"]));
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_runs_the_forward_pipeline_with_the_same_audit_rows() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    // Debug logs too: neither the secret nor the key may reach them.
    let served = tap.serve_with(&[("RUST_LOG", "debug")]);
    let client = connect(&served, &key).await.unwrap();
    let flow = mcp_flow(&client, &tap, &up).await;
    let via_forward = forward_flow(&served, &tap, &key, &up).await;
    assert_same_audit(&tap, &flow, &via_forward).await;
    let _ = client.cancel().await;
    assert!(!served.log().contains(SECRET), "secret in the proxy log");
    assert!(!served.log().contains(&key), "agent key in the proxy log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_missing_or_foreign_origin_key_is_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let wrong = format!("tap_{}", "0".repeat(43));
    assert!(
        connect(&served, &wrong).await.is_err(),
        "a wrong key initializes"
    );

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = http_client()
            .post(format!("{}/mcp", served.url))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(init.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = post(vec![("Authorization", format!("Bearer {wrong}"))])
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-tap-error"], "invalid_tap_key");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "invalid_tap_key", "{body}");
    assert!(body["fix"].as_str().is_some());

    let r = post(vec![]).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-tap-error"], "missing_tap_key");

    // The right key in X-TAP-Key, in a comma list, and as a bearer all work.
    for h in [
        ("X-TAP-Key", key.clone()),
        ("Authorization", format!("Bearer {key}")),
        ("X-TAP-Key", format!("{key}, {key}")),
    ] {
        let r = post(vec![h]).await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let r = post(vec![
        ("X-TAP-Key", key.clone()),
        ("Origin", "http://evil.test".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-tap-error"], "origin_not_allowed");
    let r = post(vec![
        ("X-TAP-Key", key.clone()),
        ("Sec-Fetch-Site", "cross-site".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "a cross-site fetch without Origin");
    let own = served.url.clone();
    let r = post(vec![("X-TAP-Key", key.clone()), ("Origin", own)])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Invalid keys count against the address like on /forward: the limit
    // (20 a minute) answers 429 after it, and a valid key still works.
    let mut limited = false;
    for _ in 0..25 {
        let r = post(vec![("X-TAP-Key", wrong.clone())]).await.unwrap();
        if r.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "invalid keys on /mcp are never limited");
    let r = served
        .forward(&wrong)
        .credential("echo")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    assert_eq!(
        r.status,
        429,
        "the limit is shared with /forward: {}",
        r.text()
    );
    let r = post(vec![("X-TAP-Key", key.clone())]).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!served.log().contains(&key), "agent key in the proxy log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_relay_passes_the_same_flow() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tap"))
        .args(["mcp", "--proxy-url", &served.url])
        .env_clear()
        .env("TAP_AGENT_KEY", &key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let client = tokio::time::timeout(CALL, ClientConfig::default().serve((stdout, stdin)))
        .await
        .unwrap()
        .unwrap();
    let flow = mcp_flow(&client, &tap, &up).await;
    let via_forward = forward_flow(&served, &tap, &key, &up).await;
    assert_same_audit(&tap, &flow, &via_forward).await;
    let _ = client.cancel().await;
    let status = tokio::time::timeout(CALL, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "tap mcp exits 0 when stdin closes");
}

#[test]
fn the_stdio_relay_needs_a_key_from_the_environment() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let out = tap.run_bounded(
        &["mcp", "--proxy-url", "http://127.0.0.1:9"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TAP_AGENT_KEY"));
}

#[test]
fn mcp_config_prints_snippets_that_hold_no_key() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    for client in [
        "generic",
        "claude-code",
        "claude-desktop",
        "cursor",
        "vscode",
        "codex",
    ] {
        let v = tap.json(&[
            "mcp-config",
            "--client",
            client,
            "--proxy-url",
            "https://tap.example.com/",
        ]);
        assert_eq!(v["client"], client);
        assert_eq!(v["url"], "https://tap.example.com/mcp");
        let snippet = v["snippet"].as_str().unwrap();
        assert!(snippet.contains("tap.example.com"), "{client}: {snippet}");
        assert!(!snippet.contains("tap_"), "{client}: no key in a snippet");
    }
    let out = tap.run(&["mcp-config", "--client", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_team_links_are_the_pipelines() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo", "--rate-limit", "3"]);
    let served = tap.serve_with(&[("TAP_MAX_BODY_BYTES", "4096")]);
    let client = connect(&served, &key).await.unwrap();
    let target = format!("{}/echo/limited", up.base());

    // A team the agent is not linked to: refused and audited like /forward.
    let r = call(
        &client,
        "request",
        json!({"credential": "echo", "target": target, "team": "elsewhere"}),
    )
    .await;
    let v = assert_tool_error(&r, "team_not_linked");
    let id = v["request_id"].as_str().unwrap().to_owned();
    audit_row(&tap, &id, |r| r["error_code"] == "team_not_linked").await;

    // An hour's limit of 3 (the refusal above counted: the limit is row 3,
    // the team row 5), shared by both doors.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = call(
        &client,
        "request",
        json!({"credential": "echo", "target": target}),
    )
    .await;
    assert_eq!(assert_ok(&ok)["response"]["status"], 200);
    let limited = call(
        &client,
        "request",
        json!({"credential": "echo", "target": target}),
    )
    .await;
    let v = assert_tool_error(&limited, "rate_limited");
    assert_eq!(v["http_status"], 429, "{v}");
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .send()
        .await;
    r.assert_refused(429, "rate_limited");

    // Other methods and oversize bodies meet the same bounds as every route.
    let r = http_client()
        .get(format!("{}/mcp", served.url))
        .header("X-TAP-Key", &key)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = http_client()
        .post(format!("{}/mcp", served.url))
        .header("X-TAP-Key", &key)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(vec![b' '; 8 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "TAP_MAX_BODY_BYTES bounds /mcp too");
    let _ = client.cancel().await;
}

#[test]
fn the_stdio_relay_says_when_the_proxy_is_unreachable() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let url = format!("http://127.0.0.1:{}", tap_testkit::closed_port());
    let out = tap.run_bounded(
        &["mcp", "--proxy-url", &url],
        &[("TAP_AGENT_KEY", "tap_not_checked_here")],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{url}/mcp")), "{err}");
    assert!(
        !err.contains("tap_not_checked_here"),
        "the key in an error: {err}"
    );
    assert!(out.stdout.is_empty(), "stdout is the MCP channel");
}
