//! The CLI and the admin API are two adapters over one admin service (issue 11):
//! the same configuration operations, done once through `tap ... --json` and
//! once through the HTTP API in a second deployment, leave identical stored
//! state, and the CLI's `--json` views equal the API's answers for the same
//! object. Also: a write through the API is visible to the proxy that made it
//! on the very next request (read your writes), without retry or sleep.
//!
//! Real binary, real HTTP over loopback, real SQLite.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "teams/support.rs"]
mod support;

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Served, TapHome};

use support::{api, auth_seen, fwd, json as cli_json};

const VALUE_1: &str = "parity-first-value-0123456789";
const VALUE_2: &str = "parity-second-value-9876543210";
const OTHER: &str = "parity-other-value-5555555555";

/// Drops what differs between two deployments by nature: times and keys.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "created_at" | "updated_at" | "api_key"))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// `tap ARGS --json` with `stdin`; must succeed; returns the parsed answer.
fn cli_stdin(tap: &TapHome, args: &[&str], stdin: &str) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = tokio::task::block_in_place(|| tap.run_stdin(&a, stdin.as_bytes()));
    assert!(
        out.status.success(),
        "tap {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An admin API call that must answer `status`; returns the JSON answer.
async fn call(
    served: &Served,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let r = api(served, Some(token), None, method, path, body.as_ref()).await;
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

/// Every operation through the CLI; returns each write's `--json` answer.
fn configure_by_cli(tap: &TapHome, base: &str) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let mut created = cli_stdin(
        tap,
        &[
            "add",
            "echo",
            "--description",
            "Echo API",
            "--allowed-host",
            base,
            "--bind",
            "X-Api-Key={value}",
            "--value-stdin",
        ],
        VALUE_1,
    );
    assert_eq!(created["created"], true, "{created}");
    // `tap add` says whether it created; the rest is the credential view.
    created.as_object_mut().unwrap().remove("created");
    out.push(("create credential echo", created));
    let mut other = cli_stdin(
        tap,
        &["add", "other", "--allowed-host", base, "--value-stdin"],
        OTHER,
    );
    other.as_object_mut().unwrap().remove("created");
    out.push(("create credential other", other));
    out.push((
        "set value of echo",
        cli_stdin(
            tap,
            &["cred", "set-value", "echo", "--value-stdin"],
            VALUE_2,
        ),
    ));
    out.push((
        "create role reader",
        cli_json(
            tap,
            &[
                "role",
                "create",
                "reader",
                "--credential",
                "echo",
                "--description",
                "Reads echo",
            ],
        ),
    ));
    out.push((
        "create agent bot",
        cli_json(
            tap,
            &[
                "agent",
                "create",
                "bot",
                "--role",
                "reader",
                "--credential",
                "echo",
                "--rate-limit",
                "100",
                "--description",
                "The bot",
            ],
        ),
    ));
    // PATCH {"roles": [], "credentials": ["other"], "enabled": false}, one field at a time.
    cli_json(tap, &["role", "unassign", "reader", "bot"]);
    cli_json(tap, &["agent", "ungrant", "bot", "echo"]);
    cli_json(tap, &["agent", "grant", "bot", "other"]);
    cli_json(tap, &["agent", "disable", "bot"]);
    // PUT role reader {"credentials": ["other"]}.
    cli_json(tap, &["role", "add-credential", "reader", "other"]);
    cli_json(tap, &["role", "remove-credential", "reader", "echo"]);
    out.push((
        "team settings",
        cli_json(
            tap,
            &["team", "settings", "--default-approval-mode", "autonomous"],
        ),
    ));
    out
}

/// The same operations through the admin API; returns each write's answer.
async fn configure_by_api(served: &Served, token: &str, base: &str) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let body = json!({
        "name": "echo",
        "description": "Echo API",
        "allowed_hosts": [base],
        "auth_bindings": [{"header": "X-Api-Key", "format": "{value}"}],
        "value": VALUE_1,
    });
    out.push((
        "create credential echo",
        call(served, token, "POST", "/team/credentials", Some(body), 201).await,
    ));
    let body = json!({"name": "other", "allowed_hosts": [base], "value": OTHER});
    out.push((
        "create credential other",
        call(served, token, "POST", "/team/credentials", Some(body), 201).await,
    ));
    out.push((
        "set value of echo",
        call(
            served,
            token,
            "PUT",
            "/team/credentials/echo/secret",
            Some(json!({"value": VALUE_2})),
            200,
        )
        .await,
    ));
    let body = json!({"name": "reader", "credentials": ["echo"], "description": "Reads echo"});
    out.push((
        "create role reader",
        call(served, token, "POST", "/team/roles", Some(body), 201).await,
    ));
    let body = json!({
        "id": "bot",
        "roles": ["reader"],
        "credentials": ["echo"],
        "rate_limit_per_hour": 100,
        "description": "The bot",
    });
    out.push((
        "create agent bot",
        call(served, token, "POST", "/team/agents", Some(body), 201).await,
    ));
    let body = json!({"roles": [], "credentials": ["other"], "enabled": false});
    let patched = call(served, token, "PATCH", "/team/agents/bot", Some(body), 200).await;
    assert_eq!(patched["enabled"], false, "{patched}");
    let body = json!({"credentials": ["other"]});
    let put = call(served, token, "PUT", "/team/roles/reader", Some(body), 200).await;
    assert_eq!(put["credentials"], json!(["other"]), "{put}");
    out.push((
        "team settings",
        call(
            served,
            token,
            "PUT",
            "/team/settings",
            Some(json!({"default_approval_mode": "autonomous"})),
            200,
        )
        .await,
    ));
    out
}

/// The stored state of a deployment, read through the API and through the CLI.
async fn views(tap: &TapHome, served: &Served, token: &str) -> Vec<(&'static str, Value, Value)> {
    let reads: [(&str, &str, &[&str]); 8] = [
        ("credentials", "/team/credentials", &["cred", "list"]),
        (
            "credential echo",
            "/team/credentials/echo",
            &["cred", "show", "echo"],
        ),
        (
            "credential other",
            "/team/credentials/other",
            &["cred", "show", "other"],
        ),
        ("agents", "/team/agents", &["agent", "list"]),
        ("agent bot", "/team/agents/bot", &["agent", "show", "bot"]),
        ("roles", "/team/roles", &["role", "list"]),
        ("role reader", "/team/roles", &["role", "show", "reader"]),
        ("team", "/team", &["team", "show"]),
    ];
    let mut out = Vec::new();
    for (what, path, args) in reads {
        let mut by_api = call(served, token, "GET", path, None, 200).await;
        if what == "role reader" {
            // The API has no GET of one role: take it from the list.
            by_api = by_api
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "reader")
                .cloned()
                .unwrap();
        }
        let by_cli = cli_json(tap, args);
        out.push((what, strip(&by_api), strip(&by_cli)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_api_configure_identically_and_show_the_same_views() {
    let up = FakeUpstream::start().await;
    let base = up.base();

    let by_cli = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init_cli = cli_json(&by_cli, &["init"]);
    let cli_answers = configure_by_cli(&by_cli, &base);
    let served_cli = by_cli.serve();

    let by_api = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init_api = cli_json(&by_api, &["init"]);
    let served_api = by_api.serve();
    let token_api = init_api["admin_token"].as_str().unwrap();
    let api_answers = configure_by_api(&served_api, token_api, &base).await;

    // The writes answered the same views.
    assert_eq!(cli_answers.len(), api_answers.len());
    for ((what, c), (_, a)) in cli_answers.iter().zip(&api_answers) {
        assert_eq!(strip(c), strip(a), "answer of {what}: CLI vs API");
    }
    let created = &api_answers[4].1;
    assert!(
        created["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("tap_")),
        "{created}"
    );
    assert_eq!(created["id"], "bot");
    assert_eq!(created["team"], "default");
    assert!(created["message"].is_string(), "{created}");

    // Each deployment: the CLI and the API show the same views.
    let token_cli = init_cli["admin_token"].as_str().unwrap();
    let state_cli = views(&by_cli, &served_cli, token_cli).await;
    let state_api = views(&by_api, &served_api, token_api).await;
    for (what, api_view, cli_view) in state_cli.iter().chain(&state_api) {
        assert_eq!(api_view, cli_view, "{what}: API vs CLI --json");
    }
    // Both deployments hold the same state.
    for ((what, a, _), (_, b, _)) in state_cli.iter().zip(&state_api) {
        assert_eq!(a, b, "{what}: configured by CLI vs by API");
    }

    // And what they hold is what was asked for.
    let echo = &state_api[1].1;
    assert_eq!(echo["value_set"], true, "{echo}");
    assert_eq!(echo["value_kind"], "text", "{echo}");
    assert_eq!(
        echo["auth_bindings"],
        json!([{"header": "X-Api-Key", "format": "{value}"}]),
        "{echo}"
    );
    let bot = &state_api[4].1;
    assert_eq!(
        *bot,
        json!({
            "id": "bot",
            "team": "default",
            "description": "The bot",
            "enabled": false,
            "roles": [],
            "credentials": ["other"],
            "rate_limit_per_hour": 100,
        }),
        "{bot}"
    );
    assert_eq!(state_api[6].1["credentials"], json!(["other"]));
    assert_eq!(state_api[7].1["default_approval_mode"], "autonomous");
    assert_eq!(state_api[7].1["your_role"], "owner");

    // No answer or view holds a value.
    let everything = format!("{cli_answers:?}{api_answers:?}{state_cli:?}{state_api:?}");
    for secret in [VALUE_1, VALUE_2, OTHER] {
        assert!(!everything.contains(secret), "a value leaked into a view");
    }
    assert_eq!(served_cli.terminate(), Some(0));
    assert_eq!(served_api.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_created_and_granted_through_the_api_works_on_the_next_request() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = cli_json(&tap, &["init"]);
    let served = tap.serve();
    let token = init["admin_token"].as_str().unwrap();
    let base = up.base();

    // No retry and no sleep below: each request follows the write's answer at once.
    let body = json!({"name": "echo", "allowed_hosts": [base], "value": VALUE_1});
    call(&served, token, "POST", "/team/credentials", Some(body), 201).await;
    let made = call(
        &served,
        token,
        "POST",
        "/team/agents",
        Some(json!({"id": "fresh"})),
        201,
    )
    .await;
    let key = made["api_key"].as_str().unwrap();
    // Known to the proxy (not 401), not yet granted.
    fwd(&served, key, "echo", &up, "/echo/before", None)
        .await
        .assert_refused(403, "credential_not_granted");

    let body = json!({"credentials": ["echo"]});
    call(
        &served,
        token,
        "PATCH",
        "/team/agents/fresh",
        Some(body),
        200,
    )
    .await;
    let r = fwd(&served, key, "echo", &up, "/echo/granted", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        auth_seen(&up, "/echo/granted"),
        [format!("Bearer {VALUE_1}")]
    );

    // A replaced value is the one injected next.
    let body = json!({"value": VALUE_2});
    call(
        &served,
        token,
        "PUT",
        "/team/credentials/echo/secret",
        Some(body),
        200,
    )
    .await;
    let r = fwd(&served, key, "echo", &up, "/echo/replaced", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        auth_seen(&up, "/echo/replaced"),
        [format!("Bearer {VALUE_2}")]
    );

    // A disabled agent is refused on the next request.
    call(
        &served,
        token,
        "POST",
        "/team/agents/fresh/disable",
        None,
        200,
    )
    .await;
    fwd(&served, key, "echo", &up, "/echo/disabled", None)
        .await
        .assert_refused(401, "invalid_tap_key");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_typed_bodies_and_views() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    cli_json(&tap, &["init"]);
    let served = tap.serve();
    let doc = served.get("/openapi.json", None).await.json();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "CredentialFields",
        "CredentialView",
        "SetSecret",
        "CreateAgent",
        "PatchAgent",
        "AgentView",
        "AgentKeyView",
        "CreateRole",
        "PutRole",
        "RoleView",
        "TeamView",
        "TeamSettings",
        "TeamSettingsView",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    let props = &schemas["CredentialView"]["properties"];
    assert!(props["value_kind"].is_object(), "{props}");
    assert!(
        props.get("value").is_none(),
        "a view documents no value: {props}"
    );
    let key_props = &schemas["AgentKeyView"]["properties"];
    for f in ["id", "team", "api_key", "message"] {
        assert!(key_props[f].is_object(), "AgentKeyView.{f}: {key_props}");
    }
    let paths = &doc["paths"];
    let body = paths["/team/agents"]["post"]["requestBody"].to_string();
    assert!(body.contains("#/components/schemas/CreateAgent"), "{body}");
    let ok = paths["/team/agents/{id}"]["get"]["responses"]["200"].to_string();
    assert!(ok.contains("#/components/schemas/AgentView"), "{ok}");
    let put = paths["/team/roles/{name}"]["put"]["requestBody"].to_string();
    assert!(put.contains("#/components/schemas/PutRole"), "{put}");
    assert_eq!(served.terminate(), Some(0));
}
