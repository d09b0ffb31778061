//! Helpers shared by the team tests (kept here: `tap-testkit` is edited by others).

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually, http_client};

/// Bound for anything the proxy does on its own (config reload ticks every 200 ms).
pub(crate) const TRIES: u32 = 150;
pub(crate) const EVERY: Duration = Duration::from_millis(100);

/// Password of every member the tests add.
pub(crate) const PW: &str = "a-long-member-password-1234";

/// Value of credential `echo` in team `default`.
pub(crate) const SECRET_A: &str = "team-a-secret-value-0123456789";
/// Value of credential `echo` in team `b`.
pub(crate) const SECRET_B: &str = "team-b-secret-value-9876543210";
/// Value of credential `only-b` in team `b`.
pub(crate) const SECRET_B2: &str = "team-b-other-secret-value-5555";

/// Runs a CLI command from async code without starving the runtime.
pub(crate) fn run(tap: &TapHome, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| tap.run(args))
}

/// Runs a CLI command that must succeed; returns stdout.
pub(crate) fn ok(tap: &TapHome, args: &[&str]) -> String {
    tokio::task::block_in_place(|| tap.ok(args))
}

/// Runs a `--json` CLI command that must succeed.
pub(crate) fn json(tap: &TapHome, args: &[&str]) -> Value {
    tokio::task::block_in_place(|| tap.json(args))
}

/// Runs a CLI command with stdin that must succeed.
pub(crate) fn stdin_ok(tap: &TapHome, args: &[&str], stdin: &str) {
    let out = tokio::task::block_in_place(|| tap.run_stdin(args, stdin.as_bytes()));
    assert!(
        out.status.success(),
        "tap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tap --team TEAM add NAME --value-stdin --allowed-host HOST`.
pub(crate) fn add_cred(tap: &TapHome, team: &str, name: &str, value: &str, host: &str) {
    stdin_ok(
        tap,
        &[
            "--team",
            team,
            "add",
            name,
            "--value-stdin",
            "--allowed-host",
            host,
        ],
        value,
    );
}

/// `tap --team TEAM agent create ID EXTRA... --json`; returns the key.
pub(crate) fn agent(tap: &TapHome, team: &str, id: &str, extra: &[&str]) -> String {
    let mut args = vec!["--team", team, "agent", "create", id];
    args.extend_from_slice(extra);
    let v = json(tap, &args);
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["team"], team, "{v}");
    v["api_key"].as_str().unwrap().to_owned()
}

/// `tap --team TEAM member add EMAIL --role ROLE --password-stdin`.
pub(crate) fn add_member(tap: &TapHome, team: &str, email: &str, role: &str) {
    stdin_ok(
        tap,
        &[
            "--team",
            team,
            "member",
            "add",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
        &format!("{PW}\n"),
    );
}

/// `tap --team TEAM token create --member EMAIL --json` → the token.
pub(crate) fn token(tap: &TapHome, team: &str, email: &str) -> String {
    let v = json(tap, &["--team", team, "token", "create", "--member", email]);
    assert_eq!(v["member"], email, "{v}");
    assert!(v["id"].is_i64(), "{v}");
    let t = v["token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("tapadm_"), "{v}");
    t
}

/// `tap --team TEAM logs --json`: every audit record of the team.
pub(crate) fn logs(tap: &TapHome, team: &str) -> Vec<Value> {
    tokio::task::block_in_place(|| tap.logs(&["--team", team, "--limit", "1000"]))
}

/// Two teams on one deployment, both with a credential named `echo` bound to
/// the upstream (different values) and an agent named `bot` granted it.
/// Team `b` also has `only-b`, granted to its `bot`.
pub(crate) struct TwoTeams {
    pub(crate) tap: TapHome,
    /// Key of `default/bot`.
    pub(crate) key_a: String,
    /// Key of `b/bot`.
    pub(crate) key_b: String,
    /// Admin token of the init owner (a member of `default`).
    pub(crate) owner_a: String,
    /// Admin token of `owner-b@b.test`, owner of `b` (and eligible approver there).
    pub(crate) owner_b: String,
}

pub(crate) fn two_teams(up: &FakeUpstream, extra_a: &[&str], extra_b: &[&str]) -> TwoTeams {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = json(&tap, &["init"]);
    json(&tap, &["team", "create", "b"]);
    add_cred(&tap, "default", "echo", SECRET_A, &up.base());
    add_cred(&tap, "b", "echo", SECRET_B, &up.base());
    add_cred(&tap, "b", "only-b", SECRET_B2, &up.base());
    let mut a = vec!["--credential", "echo"];
    a.extend_from_slice(extra_a);
    let key_a = agent(&tap, "default", "bot", &a);
    let mut b = vec!["--credential", "echo,only-b"];
    b.extend_from_slice(extra_b);
    let key_b = agent(&tap, "b", "bot", &b);
    assert_ne!(key_a, key_b);
    add_member(&tap, "b", "owner-b@b.test", "owner");
    let owner_b = token(&tap, "b", "owner-b@b.test");
    let owner_a = init["admin_token"].as_str().unwrap().to_owned();
    TwoTeams {
        tap,
        key_a,
        key_b,
        owner_a,
        owner_b,
    }
}

/// The value the upstream saw in `Authorization` for the request to `path`.
pub(crate) fn auth_seen(up: &FakeUpstream, path: &str) -> Vec<String> {
    up.requests()
        .iter()
        .filter(|r| r.uri == path)
        .map(|r| r.header("authorization").unwrap_or_default())
        .collect()
}

/// A GET through `/forward` of `credential` to `up/path`, with an optional `X-TAP-Team`.
pub(crate) async fn fwd(
    served: &Served,
    key: &str,
    credential: &str,
    up: &FakeUpstream,
    path: &str,
    team: Option<&str>,
) -> Reply {
    let mut f = served
        .forward(key)
        .credential(credential)
        .target(&format!("{}{path}", up.base()));
    if let Some(t) = team {
        f = f.header("X-TAP-Team", t);
    }
    f.send().await
}

/// A POST through `/forward` with `Prefer: respond-async`: needs approval by default.
pub(crate) async fn fwd_async_write(
    served: &Served,
    key: &str,
    up: &FakeUpstream,
    path: &str,
) -> Reply {
    served
        .forward(key)
        .credential("echo")
        .target(&format!("{}{path}", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await
}

/// The txn id of a 202.
pub(crate) fn txn_of(r: &Reply) -> String {
    assert_eq!(r.status, 202, "expected 202: {}", r.text());
    r.json()["txn_id"].as_str().unwrap().to_owned()
}

/// An agent `GET` with optional `X-TAP-Team`.
pub(crate) async fn agent_get(served: &Served, path: &str, key: &str, team: Option<&str>) -> Reply {
    let mut req = http_client()
        .get(format!("{}{path}", served.url))
        .header("X-TAP-Key", key);
    if let Some(t) = team {
        req = req.header("X-TAP-Team", t);
    }
    read(req).await
}

async fn read(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// An admin API call: `Authorization: Bearer` when given, `X-TAP-Team` when given,
/// a JSON body when given.
pub(crate) async fn api(
    served: &Served,
    bearer: Option<&str>,
    team: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http_client().request(m, format!("{}{path}", served.url));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(t) = team {
        req = req.header("X-TAP-Team", t);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    read(req).await
}

/// `POST /login` as JSON; returns the whole answer, asserting its shape.
pub(crate) async fn login(served: &Served, email: &str, password: &str) -> Value {
    let r = read(
        http_client()
            .post(format!("{}/login", served.url))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"email": email, "password": password}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "login of {email}: {}", r.text());
    let v = r.json();
    assert!(
        v["session_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("tapadm_")),
        "{v}"
    );
    assert!(v["expires_at"].is_string(), "{v}");
    assert!(v["teams"].is_array(), "{v}");
    v
}

/// A session token for a member.
pub(crate) async fn session(served: &Served, email: &str) -> String {
    login(served, email, PW).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts an admin-API 403 `forbidden` and returns its error sentence.
pub(crate) fn assert_forbidden(r: &Reply, what: &str) -> String {
    assert_eq!(r.status, 403, "{what}: expected 403, got {}", r.text());
    let v = r.json();
    assert_eq!(v["error_code"], "forbidden", "{what}: {v}");
    v["detail"].as_str().unwrap_or_default().to_owned()
}

/// Polls (bounded) until `f` gives a reply with `status`; panics with the last reply otherwise.
pub(crate) async fn until_status<F, Fut>(status: u16, what: &str, mut f: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Reply>,
{
    let mut last = None;
    for _ in 0..TRIES {
        let r = f().await;
        if r.status == status {
            return r;
        }
        last = Some((r.status, r.text()));
        tokio::time::sleep(EVERY).await;
    }
    panic!("{what}: never answered {status}; last: {last:?}")
}

/// Polls the team's audit trail (CLI) until a record matches.
pub(crate) async fn audit_row(tap: &TapHome, team: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(TRIES, EVERY, || {
        let found = logs(tap, team).into_iter().find(|r| pred(r));
        async move { found }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no matching audit row in team {team}: {:?}",
            logs(tap, team)
        )
    })
}
