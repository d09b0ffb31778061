//! The admin API's member roles (SPEC §4): owner (everything), admin
//! (everything but member roles), approver (approve and read assigned
//! credentials), viewer (read-only, audit included). Missing or invalid bearer →
//! 401 `unauthorized`; insufficient role → 403 `forbidden` naming the needed
//! role; invariant breaks → 409; values never returned.

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Served, TapHome};

use crate::support::{
    PW, add_cred, add_member, agent, agent_get, api, assert_forbidden, auth_seen, fwd,
    fwd_async_write, json as cli_json, login, run, session, token, txn_of, until_status,
};

const SECRET: &str = "rbac-echo-secret-value-424242";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Member,
    Read,
    Write,
    Owner,
}

impl Need {
    fn allows(self, role: &str) -> bool {
        match self {
            Need::Member => true,
            Need::Read => role != "approver",
            Need::Write => matches!(role, "owner" | "admin"),
            Need::Owner => role == "owner",
        }
    }

    fn role_name(self) -> &'static str {
        match self {
            Need::Member => "member",
            Need::Read => "viewer",
            Need::Write => "admin",
            Need::Owner => "owner",
        }
    }
}

fn names(v: &Value, field: &str) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect();
    n.sort();
    n
}

/// The read routes and what they need.
const READS: &[(&str, Need)] = &[
    ("/team", Need::Member),
    ("/team/credentials", Need::Member),
    ("/team/credentials/echo", Need::Member),
    ("/team/approvals?status=pending", Need::Member),
    ("/team/agents", Need::Read),
    ("/team/agents/bot", Need::Read),
    ("/team/roles", Need::Read),
    ("/team/policies/echo", Need::Read),
    ("/team/grants", Need::Read),
    ("/team/members", Need::Read),
    ("/team/links", Need::Read),
    ("/team/audit", Need::Read),
    ("/team/audit/export", Need::Read),
];

/// The write routes in an order that works for a permitted role, with the
/// status a permitted role gets. `s` makes every name unique to the role.
fn writes(s: &str, base: &str) -> Vec<(&'static str, String, Option<Value>, Need, u16)> {
    let c = format!("c-{s}");
    let ag = format!("ag-{s}");
    let role = format!("role-{s}");
    let inv = format!("inv-{s}@x.test");
    vec![
        (
            "POST",
            "/team/credentials".into(),
            Some(
                json!({"name": c, "value": format!("value-of-{c}-long"), "allowed_hosts": [base]}),
            ),
            Need::Write,
            201,
        ),
        (
            "PATCH",
            format!("/team/credentials/{c}"),
            Some(json!({"description": "patched"})),
            Need::Write,
            200,
        ),
        (
            "PUT",
            format!("/team/credentials/{c}/secret"),
            Some(json!({"value": format!("new-value-of-{c}")})),
            Need::Write,
            200,
        ),
        (
            "PUT",
            format!("/team/policies/{c}"),
            Some(json!({"auto_approve_methods": ["GET"]})),
            Need::Write,
            200,
        ),
        (
            "DELETE",
            format!("/team/policies/{c}"),
            None,
            Need::Write,
            200,
        ),
        (
            "POST",
            "/team/credentials/echo/grants".into(),
            Some(
                json!({"methods": ["POST"], "route_scope": format!("/echo/grant-{s}"), "ttl_minutes": 5}),
            ),
            Need::Write,
            201,
        ),
        // Past the role check a bogus id is simply not found.
        (
            "POST",
            "/team/grants/gnosuchgrant/revoke".into(),
            None,
            Need::Write,
            404,
        ),
        (
            "POST",
            "/team/roles".into(),
            Some(json!({"name": role, "credentials": [c]})),
            Need::Write,
            201,
        ),
        (
            "PUT",
            format!("/team/roles/{role}"),
            Some(json!({"credentials": []})),
            Need::Write,
            200,
        ),
        (
            "DELETE",
            format!("/team/roles/{role}"),
            None,
            Need::Write,
            200,
        ),
        (
            "DELETE",
            format!("/team/credentials/{c}"),
            None,
            Need::Write,
            200,
        ),
        (
            "POST",
            "/team/agents".into(),
            Some(json!({"id": ag, "credentials": ["echo"]})),
            Need::Write,
            201,
        ),
        (
            "PATCH",
            format!("/team/agents/{ag}"),
            Some(json!({"enabled": false})),
            Need::Write,
            200,
        ),
        (
            "POST",
            format!("/team/agents/{ag}/enable"),
            None,
            Need::Write,
            200,
        ),
        (
            "POST",
            format!("/team/agents/{ag}/disable"),
            None,
            Need::Write,
            200,
        ),
        (
            "POST",
            format!("/team/agents/{ag}/rotate-key"),
            None,
            Need::Write,
            200,
        ),
        (
            "DELETE",
            format!("/team/agents/{ag}"),
            None,
            Need::Write,
            200,
        ),
        (
            "PUT",
            "/team/settings".into(),
            Some(json!({"default_approval_mode": "gated"})),
            Need::Write,
            200,
        ),
        (
            "POST",
            "/team/members".into(),
            Some(json!({"email": inv, "role": "viewer"})),
            Need::Write,
            201,
        ),
        (
            "PUT",
            format!("/team/members/{inv}/credentials"),
            Some(json!({"credentials": ["echo"]})),
            Need::Write,
            200,
        ),
        (
            "PUT",
            format!("/team/members/{inv}/role"),
            Some(json!({"role": "approver"})),
            Need::Owner,
            200,
        ),
        (
            "DELETE",
            format!("/team/members/{inv}"),
            None,
            Need::Write,
            200,
        ),
        (
            "POST",
            "/team/links".into(),
            Some(json!({"agent_id": "linkme", "home_team": "b"})),
            Need::Write,
            201,
        ),
        (
            "DELETE",
            "/team/links/b/linkme".into(),
            None,
            Need::Write,
            200,
        ),
    ]
}

struct Deployment {
    tap: TapHome,
    init: Value,
    up: FakeUpstream,
    /// Key of `bot` (granted `echo`).
    bot: String,
    /// Key of `bot2` (granted `other`).
    bot2: String,
}

/// `default` with credentials `echo` and `other`, agents `bot` and `bot2`, members
/// of every role (the approver assigned `echo`); team `b` with agent `linkme`.
async fn deployment() -> Deployment {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = cli_json(&tap, &["init"]);
    cli_json(&tap, &["team", "create", "b"]);
    add_cred(&tap, "default", "echo", SECRET, &up.base());
    add_cred(
        &tap,
        "default",
        "other",
        "rbac-other-secret-value-1",
        &up.base(),
    );
    let bot = agent(&tap, "default", "bot", &["--credential", "echo"]);
    let bot2 = agent(&tap, "default", "bot2", &["--credential", "other"]);
    agent(&tap, "b", "linkme", &[]);
    add_member(&tap, "default", "own2@x.test", "owner");
    add_member(&tap, "default", "adm@x.test", "admin");
    add_member(&tap, "default", "apr@x.test", "approver");
    add_member(&tap, "default", "view@x.test", "viewer");
    cli_json(
        &tap,
        &["member", "assign", "apr@x.test", "--credential", "echo"],
    );
    Deployment {
        tap,
        init,
        up,
        bot,
        bot2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_member_role_gets_exactly_its_permissions() {
    let d = deployment().await;
    let served = d.tap.serve();
    let base = d.up.base();
    // Sessions for some, admin tokens for others: both carry the member's role.
    let bearers = [
        ("viewer", token(&d.tap, "default", "view@x.test")),
        ("approver", session(&served, "apr@x.test").await),
        ("admin", token(&d.tap, "default", "adm@x.test")),
        ("owner", session(&served, "own2@x.test").await),
    ];
    let txn_echo = txn_of(&fwd_async_write(&served, &d.bot, &d.up, "/echo/w-echo").await);
    let txn_other = txn_of(&d.bot2_write(&served).await);

    for (role, bearer) in &bearers {
        let v = api(&served, Some(bearer), None, "GET", "/team", None)
            .await
            .json();
        assert_eq!(v["your_role"], *role, "{v}");
        for (path, need) in READS {
            let r = api(&served, Some(bearer), None, "GET", path, None).await;
            if need.allows(role) {
                assert_eq!(r.status, 200, "{role} GET {path}: {}", r.text());
            } else {
                let msg = assert_forbidden(&r, &format!("{role} GET {path}"));
                assert!(
                    msg.contains(&format!("needs the {} role", need.role_name())),
                    "{role} GET {path}: {msg}"
                );
            }
        }
        // Approvers see only their assigned credentials and approvals.
        let creds = api(
            &served,
            Some(bearer),
            None,
            "GET",
            "/team/credentials",
            None,
        )
        .await
        .json();
        let other = api(
            &served,
            Some(bearer),
            None,
            "GET",
            "/team/credentials/other",
            None,
        )
        .await;
        let approvals = api(&served, Some(bearer), None, "GET", "/team/approvals", None)
            .await
            .json();
        let txns = names(&approvals, "txn_id");
        if *role == "approver" {
            assert_eq!(names(&creds, "name"), ["echo"], "{creds}");
            assert_eq!(other.status, 404, "{}", other.text());
            assert!(
                txns.contains(&txn_echo) && !txns.contains(&txn_other),
                "{approvals}"
            );
        } else {
            assert_eq!(names(&creds, "name"), ["echo", "other"], "{role}: {creds}");
            assert_eq!(other.status, 200, "{role}: {}", other.text());
            assert!(
                txns.contains(&txn_echo) && txns.contains(&txn_other),
                "{approvals}"
            );
        }

        for (method, path, body, need, ok_status) in writes(role, &base) {
            let r = api(&served, Some(bearer), None, method, &path, body.as_ref()).await;
            if need.allows(role) {
                assert_eq!(r.status, ok_status, "{role} {method} {path}: {}", r.text());
            } else {
                let msg = assert_forbidden(&r, &format!("{role} {method} {path}"));
                assert!(
                    msg.contains(&format!("needs the {} role", need.role_name())),
                    "{role} {method} {path}: {msg}"
                );
            }
        }
    }

    // An admin cannot raise anyone to owner, change roles, or remove an owner.
    let admin = &bearers[2].1;
    for (method, path, body) in [
        (
            "PUT",
            "/team/members/adm@x.test/role",
            Some(json!({"role": "owner"})),
        ),
        (
            "PUT",
            "/team/members/view@x.test/role",
            Some(json!({"role": "admin"})),
        ),
        (
            "POST",
            "/team/members",
            Some(json!({"email": "sneaky@x.test", "role": "owner"})),
        ),
        ("DELETE", "/team/members/own2@x.test", None),
    ] {
        let r = api(&served, Some(admin), None, method, path, body.as_ref()).await;
        let msg = assert_forbidden(&r, &format!("admin {method} {path}"));
        assert!(msg.contains("owner"), "{msg}");
    }

    // Approvals: a viewer cannot decide, an approver only for assigned credentials.
    let viewer = &bearers[0].1;
    let approver = &bearers[1].1;
    for (bearer, txn, who) in [
        (viewer, &txn_echo, "viewer"),
        (approver, &txn_other, "approver of echo on other"),
    ] {
        let r = api(
            &served,
            Some(bearer),
            None,
            "POST",
            &format!("/team/approvals/{txn}/approve"),
            None,
        )
        .await;
        assert_forbidden(&r, who);
    }
    assert_eq!(
        agent_get(
            &served,
            &format!("/agent/approvals/{txn_echo}"),
            &d.bot,
            None
        )
        .await
        .json()["status"],
        "pending"
    );
    let r = api(
        &served,
        Some(approver),
        None,
        "POST",
        &format!("/team/approvals/{txn_echo}/approve"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let outcome = served.approval_outcome(&d.bot, &txn_echo).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(
        auth_seen(&d.up, "/echo/w-echo"),
        [format!("Bearer {SECRET}")]
    );

    // Nothing a refused role tried was done.
    let owner = &bearers[3].1;
    let creds = api(&served, Some(owner), None, "GET", "/team/credentials", None)
        .await
        .json();
    assert_eq!(names(&creds, "name"), ["echo", "other"], "{creds}");
    let agents = api(&served, Some(owner), None, "GET", "/team/agents", None)
        .await
        .json();
    assert_eq!(names(&agents, "id"), ["bot", "bot2"], "{agents}");
    let members = api(&served, Some(owner), None, "GET", "/team/members", None)
        .await
        .json();
    let mut want = vec![
        "adm@x.test".to_owned(),
        "apr@x.test".into(),
        d.init["owner_email"].as_str().unwrap().into(),
        "own2@x.test".into(),
        "view@x.test".into(),
    ];
    want.sort();
    assert_eq!(names(&members, "email"), want, "{members}");
    let roles = api(&served, Some(owner), None, "GET", "/team/roles", None)
        .await
        .json();
    assert_eq!(roles, json!([]));
    let grants = api(&served, Some(owner), None, "GET", "/team/grants", None)
        .await
        .json();
    let scopes = names(&grants, "route_scope");
    assert_eq!(
        scopes,
        ["/echo/grant-admin", "/echo/grant-owner"],
        "{grants}"
    );
    assert_eq!(served.terminate(), Some(0));
}

impl Deployment {
    async fn bot2_write(&self, served: &Served) -> tap_testkit::Reply {
        served
            .forward(&self.bot2)
            .credential("other")
            .target(&format!("{}/echo/w-other", self.up.base()))
            .method("POST")
            .header("Prefer", "respond-async")
            .body("{}")
            .send()
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_two_teams_has_each_teams_role() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    cli_json(&tap, &["init"]);
    cli_json(&tap, &["team", "create", "b"]);
    add_cred(&tap, "b", "echo", SECRET, &up.base());
    add_member(&tap, "default", "dana@x.test", "viewer");
    add_member(&tap, "b", "dana@x.test", "admin");
    let served = tap.serve();
    let v = login(&served, "dana@x.test", PW).await;
    let mut teams: Vec<(String, String)> = v["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["team"].as_str().unwrap().to_owned(),
                t["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    teams.sort();
    assert_eq!(
        teams,
        [
            ("b".to_owned(), "admin".to_owned()),
            ("default".to_owned(), "viewer".to_owned())
        ],
        "{v}"
    );
    let dana = v["session_token"].as_str().unwrap().to_owned();
    let body = json!({"id": "made-by-dana", "credentials": []});
    let r = api(
        &served,
        Some(&dana),
        Some("default"),
        "POST",
        "/team/agents",
        Some(&body),
    )
    .await;
    let msg = assert_forbidden(&r, "dana writes in default");
    assert!(msg.contains("needs the admin role"), "{msg}");
    let r = api(
        &served,
        Some(&dana),
        Some("b"),
        "POST",
        "/team/agents",
        Some(&json!({"id": "made-by-dana", "credentials": ["echo"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["api_key"].as_str().unwrap().to_owned();
    let v = api(&served, Some(&dana), Some("b"), "GET", "/team/agents", None)
        .await
        .json();
    assert_eq!(names(&v, "id"), ["made-by-dana"], "{v}");
    let v = api(
        &served,
        Some(&dana),
        Some("default"),
        "GET",
        "/team/agents",
        None,
    )
    .await
    .json();
    assert_eq!(v, json!([]), "{v}");
    let v = until_status(200, "dana's agent", || {
        agent_get(&served, "/agent/config", &key, None)
    })
    .await
    .json();
    assert_eq!(v["team_id"], "b", "{v}");
    let r = api(&served, Some(&dana), Some("nowhere"), "GET", "/team", None).await;
    assert_forbidden(&r, "unknown team");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_invalid_bearer_is_401() {
    let d = deployment().await;
    let served = d.tap.serve();
    let routes: &[(&str, &str)] = &[
        ("GET", "/team"),
        ("GET", "/team/credentials"),
        ("POST", "/team/credentials"),
        ("GET", "/team/agents"),
        ("POST", "/team/agents"),
        ("DELETE", "/team/agents/bot"),
        ("GET", "/team/audit"),
        ("PUT", "/team/members/own2@x.test/role"),
        ("GET", "/team/approvals"),
        ("POST", "/team/approvals/abc/approve"),
    ];
    let view_token = token(&d.tap, "default", "view@x.test");
    let logged_out = session(&served, "view@x.test").await;
    let r = api(&served, Some(&logged_out), None, "POST", "/logout", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tokens = cli_json(&d.tap, &["token", "list"]);
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["member"] == "view@x.test")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    cli_json(&d.tap, &["token", "revoke", &id.to_string()]);
    let bad: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("nope".into()),
        Some("tapadm_not-a-real-token-00000000000000000000".into()),
        Some(d.bot.clone()),
        Some(logged_out),
        Some(view_token),
    ];
    for bearer in &bad {
        for (method, path) in routes {
            let r = api(
                &served,
                bearer.as_deref(),
                None,
                method,
                path,
                Some(&json!({})),
            )
            .await;
            assert_eq!(
                r.status,
                401,
                "{method} {path} with {bearer:?}: {}",
                r.text()
            );
            assert_eq!(r.json()["error_code"], "unauthorized", "{}", r.text());
        }
    }
    // Login failures.
    for (email, pw) in [("view@x.test", "wrong-password-1234"), ("ghost@x.test", PW)] {
        let r = api(
            &served,
            None,
            None,
            "POST",
            "/login",
            Some(&json!({"email": email, "password": pw})),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error_code"], "unauthorized", "{}", r.text());
        assert!(!r.text().contains("session_token"));
    }
    // Nothing was changed on the way.
    let v = cli_json(&d.tap, &["agent", "list"]);
    assert_eq!(names(&v, "id"), ["bot", "bot2"], "{v}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariant_breaks_are_409() {
    let d = deployment().await;
    // Only the init owner and own2 are owners; make own2 an admin so the init owner is the last.
    cli_json(&d.tap, &["member", "role", "own2@x.test", "admin"]);
    cli_json(
        &d.tap,
        &["role", "create", "keeper", "--credential", "echo"],
    );
    let served = d.tap.serve();
    let owner = d.init["admin_token"].as_str().unwrap().to_owned();
    let owner_email = d.init["owner_email"].as_str().unwrap().to_owned();

    for (method, body) in [("PUT", Some(json!({"role": "admin"}))), ("DELETE", None)] {
        let path = if method == "PUT" {
            format!("/team/members/{owner_email}/role")
        } else {
            format!("/team/members/{owner_email}")
        };
        let r = api(&served, Some(&owner), None, method, &path, body.as_ref()).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error_code"], "conflict", "{v}");
        assert!(v["detail"].as_str().unwrap().contains("last owner"), "{v}");
    }
    // The CLI refuses as well.
    assert_eq!(
        run(&d.tap, &["member", "role", &owner_email, "viewer"])
            .status
            .code(),
        Some(1)
    );
    let v = api(&served, Some(&owner), None, "GET", "/team", None)
        .await
        .json();
    assert_eq!(v["your_role"], "owner", "{v}");

    // With a second owner, the first can step down; then the second is the last.
    let r = api(
        &served,
        Some(&owner),
        None,
        "PUT",
        "/team/members/own2@x.test/role",
        Some(&json!({"role": "owner"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api(
        &served,
        Some(&owner),
        None,
        "PUT",
        &format!("/team/members/{owner_email}/role"),
        Some(&json!({"role": "admin"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let own2 = session(&served, "own2@x.test").await;
    let r = api(
        &served,
        Some(&own2),
        None,
        "DELETE",
        "/team/members/own2@x.test",
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // A credential a role still names cannot be deleted.
    let r = api(
        &served,
        Some(&own2),
        None,
        "DELETE",
        "/team/credentials/echo",
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error_code"], "conflict", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("keeper"), "{v}");
    let r = fwd(&served, &d.bot, "echo", &d.up, "/echo/still-there", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        run(&d.tap, &["cred", "rm", "echo"]).status.code(),
        Some(1),
        "the CLI refuses too"
    );
    let r = api(
        &served,
        Some(&own2),
        None,
        "PUT",
        "/team/roles/keeper",
        Some(&json!({"credentials": []})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api(
        &served,
        Some(&own2),
        None,
        "DELETE",
        "/team/credentials/echo",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api(
        &served,
        Some(&own2),
        None,
        "GET",
        "/team/credentials/echo",
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    until_status(404, "echo gone", || {
        fwd(&served, &d.bot, "echo", &d.up, "/echo/gone", None)
    })
    .await
    .assert_refused(404, "credential_not_found");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_values_are_never_returned() {
    let d = deployment().await;
    let served = d.tap.serve();
    let owner = d.init["admin_token"].as_str().unwrap().to_owned();
    let v1 = "FIRST-vault-value-7q3x9k2m8p";
    let v2 = "SECOND-vault-value-4r6t1y5u0w";
    let v3 = "THIRD-json-field-value-2b8n4c";
    // Distinct fragments of each value that must not show up either.
    let fragments = [v1, v2, v3, "7q3x9k2m8p", "4r6t1y5u0w", "2b8n4c", SECRET];
    let mut answers: Vec<(String, String)> = Vec::new();
    let r = call(
        &served,
        &owner,
        &mut answers,
        "POST",
        "/team/credentials",
        Some(json!({"name": "vault", "description": "d", "value": v1, "allowed_hosts": [d.up.base()]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["value_set"], true, "{}", r.text());
    let r = call(
        &served,
        &owner,
        &mut answers,
        "POST",
        "/team/credentials",
        Some(json!({"name": "multi", "value": {"api_key": v3, "region": "eu"}, "allowed_hosts": [d.up.base()]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        &served,
        &owner,
        &mut answers,
        "PATCH",
        "/team/credentials/vault",
        Some(json!({"description": "changed", "value": v1})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &served,
        &owner,
        &mut answers,
        "PUT",
        "/team/credentials/vault/secret",
        Some(json!({"value": v2})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &served,
        &owner,
        &mut answers,
        "POST",
        "/team/agents",
        Some(json!({"id": "vault-user", "credentials": ["vault"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["api_key"].as_str().unwrap().to_owned();

    // The value works (and is scrubbed from what the agent sees).
    let r = until_status(200, "vault-user forwards", || {
        fwd(&served, &key, "vault", &d.up, "/echo/vault", None)
    })
    .await;
    assert!(!r.text().contains(v2), "{}", r.text());
    assert_eq!(auth_seen(&d.up, "/echo/vault"), [format!("Bearer {v2}")]);
    // A refused leak attempt and a pending approval leave nothing readable either.
    let r = served
        .forward(&key)
        .credential("vault")
        .target(&format!("{}/echo/leak?x={v2}", d.up.base()))
        .send()
        .await;
    r.assert_refused(400, "secret_in_request");
    let r = served
        .forward(&key)
        .credential("vault")
        .target(&format!("{}/echo/pending", d.up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body(format!("body mentions {v2}"))
        .send()
        .await;
    assert_eq!(
        r.error_code().as_deref(),
        Some("secret_in_request"),
        "a body with the value is refused: {}",
        r.text()
    );
    let r = fwd(&served, &d.bot, "echo", &d.up, "/echo/plain", None).await;
    assert_eq!(r.status, 200);
    let _ = fwd_async_write(&served, &d.bot, &d.up, "/echo/pending-echo").await;

    for path in [
        "/team",
        "/team/credentials",
        "/team/credentials/vault",
        "/team/credentials/multi",
        "/team/credentials/echo",
        "/team/agents",
        "/team/agents/vault-user",
        "/team/roles",
        "/team/policies/vault",
        "/team/grants",
        "/team/members",
        "/team/links",
        "/team/audit?limit=1000",
        "/team/audit/export",
        "/team/approvals",
        "/openapi.json",
    ] {
        let r = call(&served, &owner, &mut answers, "GET", path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    }
    assert!(answers.len() > 15);
    for (what, text) in &answers {
        for f in fragments {
            assert!(
                !text.contains(f),
                "{what} returned (part of) a value: {text}"
            );
        }
    }
    // The key is shown once: not in any later answer.
    for (what, text) in answers.iter().skip(5) {
        assert!(!text.contains(&key), "{what} returned the agent key");
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_team_agents_returns_a_key_that_works() {
    let d = deployment().await;
    let served = d.tap.serve();
    let owner = d.init["admin_token"].as_str().unwrap().to_owned();
    let body = json!({"id": "api-bot", "description": "made by the API", "credentials": ["echo"]});

    let r = api(
        &served,
        Some(&owner),
        None,
        "POST",
        "/team/agents",
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["id"], "api-bot", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    let key = v["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tap_"), "{v}");

    let r = until_status(200, "the new key forwards", || {
        fwd(&served, &key, "echo", &d.up, "/echo/api-bot", None)
    })
    .await;
    assert!(!r.text().contains(SECRET));
    assert_eq!(
        auth_seen(&d.up, "/echo/api-bot"),
        [format!("Bearer {SECRET}")]
    );
    let v = agent_get(&served, "/agent/config", &key, None).await.json();
    assert_eq!(v["agent_id"], "api-bot", "{v}");
    assert_eq!(v["team_id"], "default", "{v}");

    // Never shown again.
    let r = api(
        &served,
        Some(&owner),
        None,
        "GET",
        "/team/agents/api-bot",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(&key));
    assert!(r.json().get("api_key").is_none(), "{}", r.text());
    // Same id again: conflict.
    let r = api(
        &served,
        Some(&owner),
        None,
        "POST",
        "/team/agents",
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // Same id in team b (by a member of both teams): a separate agent with its own key in b.
    add_member(&d.tap, "b", "own2@x.test", "admin");
    let own2 = token(&d.tap, "default", "own2@x.test");
    let r = api(
        &served,
        Some(&own2),
        Some("b"),
        "POST",
        "/team/agents",
        Some(&json!({"id": "api-bot"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key_b = r.json()["api_key"].as_str().unwrap().to_owned();
    assert_ne!(key, key_b);
    let v = until_status(200, "b's api-bot", || {
        agent_get(&served, "/agent/config", &key_b, None)
    })
    .await
    .json();
    assert_eq!(v["team_id"], "b", "{v}");
    // Rotating through the API: the old key stops, the new one works.
    let r = api(
        &served,
        Some(&owner),
        None,
        "POST",
        "/team/agents/api-bot/rotate-key",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = r.json()["api_key"].as_str().unwrap().to_owned();
    until_status(401, "old key revoked", || {
        agent_get(&served, "/agent/config", &key, None)
    })
    .await;
    until_status(200, "rotated key", || {
        agent_get(&served, "/agent/config", &rotated, None)
    })
    .await;
    // b's agent of the same id is untouched.
    let r = agent_get(&served, "/agent/config", &key_b, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served.terminate(), Some(0));
}

/// An admin call as `bearer` whose answer is kept for the value check.
async fn call(
    served: &Served,
    bearer: &str,
    answers: &mut Vec<(String, String)>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> tap_testkit::Reply {
    let r = api(served, Some(bearer), None, method, path, body.as_ref()).await;
    answers.push((format!("{method} {path}"), r.text()));
    r
}
