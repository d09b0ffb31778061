//! The CLI and the admin API are two adapters over one admin service (issue 11).
//!
//! - `cli_and_api_make_the_same_state_and_views`: one set of governance
//!   operations through `tap ... --json` in one deployment and through the
//!   HTTP API in a second; the stored state read back through both adapters
//!   in both deployments is identical, and so is each operation's answer.
//! - `api_writes_apply_on_the_next_request`: a policy and a grant written
//!   through the admin API decide the very next `/forward`, with no retry and
//!   no sleep (read your writes; the proxy's own reload runs every 200 ms, so
//!   each step is checked right after its write, several times over).
//!
//! Real binary, real HTTP over loopback, real SQLite.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "teams/support.rs"]
mod support;

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Reply, Served, TapHome};

use support::{PW, add_cred, agent, api, json as cli_json};

/// Value of `echo` in both deployments.
const SECRET: &str = "parity-secret-value-0123456789";
/// The member the operations add.
const MEMBER: &str = "apr@x.test";

/// Fields that differ between two deployments by construction: timestamps and
/// generated grant ids.
const VOLATILE: &[&str] = &["created_at", "expires_at", "id"];

/// `v` without volatile fields, at any depth.
fn stable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// A deployment: team `default` with credential `echo` and agent `bot`, a
/// role `r` naming `echo`; team `b` with agent `linkme`.
fn deployment(up: &FakeUpstream) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = cli_json(&tap, &["init"]);
    let token = init["admin_token"].as_str().unwrap().to_owned();
    cli_json(&tap, &["team", "create", "b"]);
    add_cred(&tap, "default", "echo", SECRET, &up.base());
    agent(&tap, "default", "bot", &["--credential", "echo"]);
    agent(&tap, "b", "linkme", &[]);
    cli_json(&tap, &["role", "create", "r", "--credential", "echo"]);
    (tap, token)
}

/// An admin API call as the init owner that must answer `status`.
async fn call(
    served: &Served,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let r: Reply = api(served, Some(token), None, method, path, body.as_ref()).await;
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

/// What a deployment holds, read back through one adapter.
#[derive(Debug, PartialEq)]
struct State {
    policy: Value,
    grants: Value,
    members: Value,
    links: Value,
    channels: Value,
}

impl State {
    fn stable(self) -> Self {
        Self {
            policy: stable(&self.policy),
            grants: stable(&self.grants),
            members: stable(&self.members),
            links: stable(&self.links),
            channels: stable(&self.channels),
        }
    }
}

fn read_cli(tap: &TapHome) -> State {
    State {
        policy: cli_json(tap, &["policy", "show", "echo"]),
        grants: cli_json(tap, &["grant", "list"]),
        members: cli_json(tap, &["member", "list"]),
        links: cli_json(tap, &["link", "list"]),
        channels: cli_json(tap, &["channel", "list"]),
    }
}

async fn read_api(served: &Served, token: &str) -> State {
    State {
        policy: call(served, token, "GET", "/team/policies/echo", None, 200).await,
        grants: call(served, token, "GET", "/team/grants", None, 200).await,
        members: call(served, token, "GET", "/team/members", None, 200).await,
        links: call(served, token, "GET", "/team/links", None, 200).await,
        channels: call(
            served,
            token,
            "GET",
            "/team/notification-channels",
            None,
            200,
        )
        .await,
    }
}

/// The answers of the operations, in order.
type Answers = Vec<(&'static str, Value)>;

fn operate_cli(tap: &TapHome) -> Answers {
    let mut out = Vec::new();
    out.push((
        "policy set",
        cli_json(
            tap,
            &[
                "policy",
                "set",
                "echo",
                "--auto-approve-methods",
                "get, post",
                "--require-approval-methods",
                "DELETE",
                "--auto-approve-urls",
                "/echo/public",
                "--require-approval-urls",
                "/echo/admin,/echo/*/secret",
                "--allowed-approvers",
                "APR@x.test",
                "--approval-channel",
                "ops",
                "--telegram-chat-id=-100777",
                "--require-passkey",
                "--min-approvals",
                "2",
            ],
        ),
    ));
    out.push((
        "grant create",
        cli_json(
            tap,
            &[
                "grant",
                "create",
                "echo",
                "--methods",
                "post,GET",
                "--route",
                "/echo/granted",
                "--ttl-minutes",
                "30",
                "--max-uses",
                "3",
            ],
        ),
    ));
    let doomed = cli_json(
        tap,
        &[
            "grant",
            "create",
            "echo",
            "--methods",
            "PUT",
            "--route",
            "/echo/doomed",
            "--ttl-minutes",
            "5",
        ],
    );
    out.push(("grant create (to revoke)", doomed.clone()));
    out.push((
        "grant revoke",
        cli_json(tap, &["grant", "revoke", doomed["id"].as_str().unwrap()]),
    ));
    let added = tokio::task::block_in_place(|| {
        tap.run_stdin(
            &[
                "--json",
                "member",
                "add",
                MEMBER,
                "--role",
                "viewer",
                "--password-stdin",
            ],
            PW.as_bytes(),
        )
    });
    assert!(added.status.success(), "{added:?}");
    out.push(("member add", serde_json::from_slice(&added.stdout).unwrap()));
    out.push((
        "member role",
        cli_json(tap, &["member", "role", MEMBER, "approver"]),
    ));
    out.push((
        "member assign",
        cli_json(tap, &["member", "assign", MEMBER, "--credential", "echo"]),
    ));
    out.push((
        "link add",
        cli_json(
            tap,
            &[
                "link",
                "add",
                "--agent",
                "linkme",
                "--home-team",
                "b",
                "--role",
                "r",
            ],
        ),
    ));
    out.push((
        "channel telegram set",
        cli_json(
            tap,
            &[
                "channel",
                "telegram",
                "set",
                "--name",
                "ops",
                "--chat-id=-100123",
            ],
        ),
    ));
    out
}

async fn operate_api(served: &Served, token: &str) -> Answers {
    let mut out = Vec::new();
    out.push((
        "policy set",
        call(
            served,
            token,
            "PUT",
            "/team/policies/echo",
            Some(json!({
                "auto_approve_methods": ["get", " post"],
                "require_approval_methods": ["DELETE"],
                "auto_approve_urls": ["/echo/public"],
                "require_approval_urls": ["/echo/admin", "/echo/*/secret"],
                "allowed_approvers": ["APR@x.test"],
                "approval_channel": "ops",
                "telegram_chat_id": "-100777",
                "require_passkey": true,
                "min_approvals": 2,
            })),
            200,
        )
        .await,
    ));
    out.push((
        "grant create",
        call(
            served,
            token,
            "POST",
            "/team/credentials/echo/grants",
            Some(json!({"methods": ["post", "GET"], "route_scope": "/echo/granted", "ttl_minutes": 30, "max_uses": 3})),
            201,
        )
        .await,
    ));
    let doomed = call(
        served,
        token,
        "POST",
        "/team/credentials/echo/grants",
        Some(json!({"methods": ["PUT"], "route_scope": "/echo/doomed", "ttl_minutes": 5})),
        201,
    )
    .await;
    out.push(("grant create (to revoke)", doomed.clone()));
    let id = doomed["id"].as_str().unwrap();
    out.push((
        "grant revoke",
        call(
            served,
            token,
            "POST",
            &format!("/team/grants/{id}/revoke"),
            None,
            200,
        )
        .await,
    ));
    out.push((
        "member add",
        call(
            served,
            token,
            "POST",
            "/team/members",
            Some(json!({"email": MEMBER, "role": "viewer", "password": PW})),
            201,
        )
        .await,
    ));
    out.push((
        "member role",
        call(
            served,
            token,
            "PUT",
            &format!("/team/members/{MEMBER}/role"),
            Some(json!({"role": "approver"})),
            200,
        )
        .await,
    ));
    out.push((
        "member assign",
        call(
            served,
            token,
            "PUT",
            &format!("/team/members/{MEMBER}/credentials"),
            Some(json!({"credentials": ["echo"]})),
            200,
        )
        .await,
    ));
    out.push((
        "link add",
        call(
            served,
            token,
            "POST",
            "/team/links",
            Some(json!({"agent_id": "linkme", "home_team": "b", "role": "r"})),
            201,
        )
        .await,
    ));
    out.push((
        "channel telegram set",
        call(
            served,
            token,
            "POST",
            "/team/notification-channels",
            Some(json!({"name": "ops", "type": "telegram", "chat_id": "-100123"})),
            201,
        )
        .await,
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_api_make_the_same_state_and_views() {
    let up = FakeUpstream::start().await;
    let (via_cli, cli_token) = deployment(&up);
    let (via_api, api_token) = deployment(&up);

    let cli_answers = operate_cli(&via_cli);
    let served_api = via_api.serve();
    let api_answers = operate_api(&served_api, &api_token).await;

    // The same operation answers the same view through either adapter.
    assert_eq!(cli_answers.len(), api_answers.len());
    for ((op, cli), (_, http)) in cli_answers.iter().zip(&api_answers) {
        assert_eq!(stable(cli), stable(http), "{op}: CLI {cli} / API {http}");
    }
    // Generated and timed fields are there, in the same spelling.
    let (_, g) = &api_answers[1];
    assert!(g["id"].as_str().is_some_and(|i| i.starts_with('g')), "{g}");
    assert!(
        g["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{g}"
    );
    assert_eq!(g["methods"], json!(["POST", "GET"]), "{g}");
    assert_eq!(g["active"], true, "{g}");
    assert_eq!(g["created_by"], "admin@localhost.localdomain", "{g}");
    let (_, revoked) = &api_answers[3];
    assert_eq!(revoked["revoked"], true, "{revoked}");
    assert_eq!(revoked["active"], false, "{revoked}");
    let (_, p) = &cli_answers[0];
    assert_eq!(
        p["policy"]["auto_approve_methods"],
        json!(["GET", "POST"]),
        "{p}"
    );
    assert_eq!(p["policy"]["allowed_approvers"], json!([MEMBER]), "{p}");
    let (_, added) = &cli_answers[4];
    assert!(
        added.get("password").is_none(),
        "given, never echoed: {added}"
    );

    // The same state, read back through both adapters in both deployments.
    let served_cli = via_cli.serve();
    let a = read_cli(&via_cli).stable();
    let b = read_api(&served_cli, &cli_token).await.stable();
    let c = read_cli(&via_api).stable();
    let d = read_api(&served_api, &api_token).await.stable();
    assert_eq!(a, b, "deployment 1: CLI read / API read");
    assert_eq!(c, d, "deployment 2: CLI read / API read");
    assert_eq!(a, c, "CLI-made / API-made");
    // And it is the state the operations asked for.
    assert_eq!(a.policy["policy"]["min_approvals"], 2, "{:?}", a.policy);
    assert_eq!(a.policy["team_default"], "gated", "{:?}", a.policy);
    assert_eq!(a.grants.as_array().map(Vec::len), Some(2), "{:?}", a.grants);
    let apr = a
        .members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == MEMBER)
        .cloned()
        .unwrap();
    assert_eq!(
        apr,
        json!({"email": MEMBER, "role": "approver", "credentials": ["echo"]})
    );
    assert_eq!(
        a.links,
        json!([{"team": "default", "agent_id": "linkme", "home_team": "b", "role": "r"}])
    );
    assert_eq!(
        a.channels,
        json!([{"name": "ops", "type": "telegram", "chat_id": "-100123"}])
    );

    // Refusals agree too: an empty method list, a blank method and a zero
    // use limit are 400 through the API and exit 1 through the CLI.
    for body in [
        json!({"methods": [], "route_scope": "/echo", "ttl_minutes": 5}),
        json!({"methods": [" "], "route_scope": "/echo", "ttl_minutes": 5}),
        json!({"methods": ["GET"], "route_scope": "/echo", "ttl_minutes": 5, "max_uses": 0}),
    ] {
        let v = call(
            &served_api,
            &api_token,
            "POST",
            "/team/credentials/echo/grants",
            Some(body.clone()),
            400,
        )
        .await;
        assert_eq!(v["error_code"], "invalid_request", "{body}: {v}");
        assert_eq!(v["error"], "invalid_request", "{body}: {v}");
    }
    for methods in [",", " "] {
        let out = tokio::task::block_in_place(|| {
            via_cli.run(&[
                "grant",
                "create",
                "echo",
                "--methods",
                methods,
                "--route",
                "/echo",
                "--ttl-minutes",
                "5",
            ])
        });
        assert_eq!(out.status.code(), Some(1), "--methods {methods:?}: {out:?}");
    }
    let r = api(
        &served_api,
        Some(&api_token),
        None,
        "PUT",
        "/team/policies/echo",
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error_code"], "invalid_request", "{}", r.text());
    // Nothing a refusal tried was stored.
    assert_eq!(read_cli(&via_api).stable(), c);
    assert_eq!(served_cli.terminate(), Some(0));
    assert_eq!(served_api.terminate(), Some(0));
}

/// A POST on `path` with `Prefer: respond-async`: 200 when it proceeds, 202 when it waits.
async fn post(served: &Served, key: &str, up: &FakeUpstream, path: &str) -> u16 {
    let r = served
        .forward(key)
        .credential("echo")
        .target(&format!("{}{path}", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await;
    assert!(r.status == 200 || r.status == 202, "{path}: {}", r.text());
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_apply_on_the_next_request() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let token = cli_json(&tap, &["init"])["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    add_cred(&tap, "default", "echo", SECRET, &up.base());
    let key = agent(&tap, "default", "bot", &["--credential", "echo"]);
    let served = tap.serve();
    let auto = json!({"auto_approve_methods": ["POST"]});
    let gated = json!({"auto_approve_methods": ["GET"], "require_approval_methods": ["POST"]});

    // Gated team default: a POST waits.
    assert_eq!(post(&served, &key, &up, "/echo/before").await, 202);
    // Each write flips the outcome of the very next request; a proxy still on
    // the previous configuration would answer the other status. Several
    // rounds, so a reload tick landing in between cannot pass the test alone.
    for round in 0..4 {
        call(
            &served,
            &token,
            "PUT",
            "/team/policies/echo",
            Some(auto.clone()),
            200,
        )
        .await;
        assert_eq!(
            post(&served, &key, &up, &format!("/echo/auto-{round}")).await,
            200,
            "round {round}: auto-approved POST"
        );
        call(
            &served,
            &token,
            "PUT",
            "/team/policies/echo",
            Some(gated.clone()),
            200,
        )
        .await;
        assert_eq!(
            post(&served, &key, &up, &format!("/echo/gated-{round}")).await,
            202,
            "round {round}: POST needs approval again"
        );
        // A grant created through the API applies at once; revoked, at once no more.
        let g = call(
            &served,
            &token,
            "POST",
            "/team/credentials/echo/grants",
            Some(json!({"methods": ["POST"], "route_scope": "/echo/granted", "ttl_minutes": 5})),
            201,
        )
        .await;
        assert_eq!(
            post(&served, &key, &up, "/echo/granted").await,
            200,
            "round {round}: granted"
        );
        let id = g["id"].as_str().unwrap();
        call(
            &served,
            &token,
            "POST",
            &format!("/team/grants/{id}/revoke"),
            None,
            200,
        )
        .await;
        assert_eq!(
            post(&served, &key, &up, "/echo/granted").await,
            202,
            "round {round}: revoked"
        );
        // Cleared while auto-approving: the gated default at once.
        call(
            &served,
            &token,
            "PUT",
            "/team/policies/echo",
            Some(auto.clone()),
            200,
        )
        .await;
        call(&served, &token, "DELETE", "/team/policies/echo", None, 200).await;
        assert_eq!(
            post(&served, &key, &up, &format!("/echo/cleared-{round}")).await,
            202,
            "round {round}: cleared"
        );
    }
    assert_eq!(served.terminate(), Some(0));
}
