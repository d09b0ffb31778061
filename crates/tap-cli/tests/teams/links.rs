//! Multi-account links (SPEC §3.6): another team's owner/admin links an agent
//! with a role; with `X-TAP-Team` the agent uses exactly that role's
//! credentials of the linking team, audited there. A link without a role grants
//! nothing; removing the link revokes within about a second.

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Served};

use crate::support::{
    SECRET_A, SECRET_B, agent_get, api, audit_row, auth_seen, fwd, json as cli_json, logs, ok, run,
    two_teams, txn_of, until_status,
};

fn cred_names(config: &Value) -> Vec<String> {
    config["credentials"]
        .as_array()
        .unwrap_or_else(|| panic!("no credentials: {config}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn approval_listed(served: &Served, bearer: &str, team: &str, txn: &str) -> bool {
    let v = api(
        served,
        Some(bearer),
        Some(team),
        "GET",
        "/team/approvals",
        None,
    )
    .await
    .json();
    v.as_array().unwrap().iter().any(|a| a["txn_id"] == txn)
}

fn ends_with(row: &Value, path: &str) -> bool {
    row["target_url"]
        .as_str()
        .is_some_and(|t| t.ends_with(path))
}

fn ends(rows: &[Value], path: &str) -> Vec<Value> {
    rows.iter()
        .filter(|r| ends_with(r, path))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_agent_uses_exactly_its_link_roles_credentials() {
    let up = FakeUpstream::start().await;
    // Team b: credentials echo and only-b, its own agent also named bot, role r = [echo].
    let t = two_teams(&up, &[], &[]);
    cli_json(
        &t.tap,
        &["--team", "b", "role", "create", "r", "--credential", "echo"],
    );
    let served = t.tap.serve();

    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/early", Some("b")).await;
    r.assert_refused(403, "team_not_linked");

    let v = cli_json(
        &t.tap,
        &[
            "--team",
            "b",
            "link",
            "add",
            "--agent",
            "bot",
            "--home-team",
            "default",
            "--role",
            "r",
        ],
    );
    assert_eq!(v["team"], "b", "{v}");
    assert_eq!(v["agent_id"], "bot", "{v}");
    assert_eq!(v["home_team"], "default", "{v}");
    assert_eq!(v["role"], "r", "{v}");
    let mut list = cli_json(&t.tap, &["--team", "b", "link", "list"]);
    // One link view for the CLI and the API (issue 11): it names the linking
    // team and carries the stored creation time.
    assert!(list[0]["created_at"].is_string(), "{list}");
    list[0].as_object_mut().unwrap().remove("created_at");
    assert_eq!(
        list,
        json!([{"team": "b", "agent_id": "bot", "home_team": "default", "role": "r"}]),
        "{list}"
    );
    assert_eq!(cli_json(&t.tap, &["link", "list"]), json!([]));

    // Linked (within a reload): team b's echo, with b's value.
    let r = until_status(200, "linked forward", || {
        fwd(&served, &t.key_a, "echo", &up, "/echo/linked", Some("b"))
    })
    .await;
    let linked_id = r.request_id();
    assert!(!r.text().contains(SECRET_B), "{}", r.text());
    assert_eq!(
        auth_seen(&up, "/echo/linked"),
        [format!("Bearer {SECRET_B}")]
    );
    // Another credential of b, not in the role: refused.
    let r = fwd(
        &served,
        &t.key_a,
        "only-b",
        &up,
        "/echo/not-granted",
        Some("b"),
    )
    .await;
    let body = r.assert_refused(403, "credential_not_granted");
    assert_eq!(body["credential"], "only-b", "{body}");
    let refused_id = r.request_id();
    assert!(auth_seen(&up, "/echo/not-granted").is_empty());
    // Without X-TAP-Team the home team's credential applies, as before.
    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/home", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(auth_seen(&up, "/echo/home"), [format!("Bearer {SECRET_A}")]);
    let r = fwd(
        &served,
        &t.key_a,
        "echo",
        &up,
        "/echo/home2",
        Some("default"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // b's own bot works as it did.
    let r = fwd(&served, &t.key_b, "only-b", &up, "/echo/b-own", None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Agent endpoints in team b show the role's credentials only.
    let v = agent_get(&served, "/agent/config", &t.key_a, Some("b"))
        .await
        .json();
    assert_eq!(v["team_id"], "b", "{v}");
    assert_eq!(v["agent_id"], "bot", "{v}");
    assert_eq!(cred_names(&v), ["echo"], "{v}");
    let v = agent_get(&served, "/agent/services", &t.key_a, Some("b"))
        .await
        .json();
    assert_eq!(v["services"].as_object().map(|s| s.len()), Some(1), "{v}");
    assert_eq!(v["services"]["echo"]["name"], "echo", "{v}");

    // Audit: the linked requests are in b's trail, marked with the home team; not in default's.
    // The CLI reads what the proxy has folded: wait for each team's last request.
    audit_row(&t.tap, "b", |r| ends_with(r, "/echo/b-own")).await;
    audit_row(&t.tap, "default", |r| ends_with(r, "/echo/home2")).await;
    let b_rows = logs(&t.tap, "b");
    let row = b_rows
        .iter()
        .find(|r| r["request_id"] == linked_id)
        .unwrap_or_else(|| panic!("linked request not in b's trail: {b_rows:?}"));
    assert_eq!(row["team_id"], "b", "{row}");
    assert_eq!(row["agent_id"], "bot", "{row}");
    assert_eq!(row["agent_home_team"], "default", "{row}");
    assert_eq!(row["upstream_status"], 200, "{row}");
    let row = b_rows
        .iter()
        .find(|r| r["request_id"] == refused_id)
        .unwrap_or_else(|| panic!("refusal not in b's trail: {b_rows:?}"));
    assert_eq!(row["error_code"], "credential_not_granted", "{row}");
    assert_eq!(row["agent_home_team"], "default", "{row}");
    let own = ends(&b_rows, "/echo/b-own");
    assert_eq!(own.len(), 1, "{b_rows:?}");
    assert!(own[0].get("agent_home_team").is_none_or(Value::is_null));
    let a_rows = logs(&t.tap, "default");
    assert!(
        a_rows
            .iter()
            .all(|r| r["request_id"] != linked_id && r["request_id"] != refused_id),
        "{a_rows:?}"
    );
    assert_eq!(ends(&a_rows, "/echo/home").len(), 1);

    // /agent/logs is keyed by (team, agent): the linked bot and b's own bot see their own rows.
    let v = agent_get(&served, "/agent/logs?limit=100", &t.key_a, Some("b"))
        .await
        .json();
    assert_eq!(v["team_id"], "b", "{v}");
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["request_id"] == linked_id), "{v}");
    assert!(ends(entries, "/echo/b-own").is_empty(), "{v}");
    let v = agent_get(&served, "/agent/logs?limit=100", &t.key_b, None)
        .await
        .json();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(ends(entries, "/echo/b-own").len(), 1, "{v}");
    assert!(entries.iter().all(|e| e["request_id"] != linked_id), "{v}");
    let v = agent_get(&served, "/agent/logs?limit=100", &t.key_a, None)
        .await
        .json();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["request_id"] != linked_id), "{v}");
    assert_eq!(ends(entries, "/echo/home").len(), 1, "{v}");

    // The admin API shows the link to b, not to default.
    let v = api(
        &served,
        Some(&t.owner_b),
        Some("b"),
        "GET",
        "/team/links",
        None,
    )
    .await
    .json();
    assert_eq!(v[0]["agent_id"], "bot", "{v}");
    assert_eq!(v[0]["home_team"], "default", "{v}");
    assert_eq!(v[0]["role"], "r", "{v}");
    let v = api(
        &served,
        Some(&t.owner_a),
        Some("default"),
        "GET",
        "/team/links",
        None,
    )
    .await
    .json();
    assert_eq!(v, json!([]));

    // A linked write needs b's approval: the txn belongs to (default, bot), readable by
    // that agent whatever X-TAP-Team the poll carries, and by nobody else, b's own bot included.
    let r = served
        .forward(&t.key_a)
        .credential("echo")
        .target(&format!("{}/echo/linked-write", up.base()))
        .method("POST")
        .header("X-TAP-Team", "b")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await;
    let txn = txn_of(&r);
    for team in [None, Some("b"), Some("default")] {
        let r = agent_get(&served, &format!("/agent/approvals/{txn}"), &t.key_a, team).await;
        assert_eq!(r.status, 200, "{team:?}: {}", r.text());
        assert_eq!(r.json()["status"], "pending");
    }
    agent_get(&served, &format!("/agent/approvals/{txn}"), &t.key_b, None)
        .await
        .assert_refused(404, "not_found");
    assert!(
        approval_listed(&served, &t.owner_b, "b", &txn).await,
        "b's approvals list the linked request"
    );
    assert!(
        !approval_listed(&served, &t.owner_a, "default", &txn).await,
        "default's do not"
    );
    let r = api(
        &served,
        Some(&t.owner_b),
        Some("b"),
        "POST",
        &format!("/team/approvals/{txn}/approve"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let outcome = served.approval_outcome(&t.key_a, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(
        auth_seen(&up, "/echo/linked-write"),
        [format!("Bearer {SECRET_B}")]
    );

    // Removing the link revokes it within about a second.
    ok(
        &t.tap,
        &[
            "--team",
            "b",
            "link",
            "rm",
            "--agent",
            "bot",
            "--home-team",
            "default",
        ],
    );
    // (Requests made while the removal propagates may still pass: poll on a separate path.)
    until_status(403, "link removed", || {
        fwd(
            &served,
            &t.key_a,
            "echo",
            &up,
            "/echo/propagating",
            Some("b"),
        )
    })
    .await
    .assert_refused(403, "team_not_linked");
    fwd(&served, &t.key_a, "echo", &up, "/echo/after-rm", Some("b"))
        .await
        .assert_refused(403, "team_not_linked");
    agent_get(&served, "/agent/config", &t.key_a, Some("b"))
        .await
        .assert_refused(403, "team_not_linked");
    assert!(auth_seen(&up, "/echo/after-rm").is_empty());
    assert_eq!(
        cli_json(&t.tap, &["--team", "b", "link", "list"]),
        json!([])
    );
    // Removing it again fails.
    assert_eq!(
        run(
            &t.tap,
            &[
                "--team",
                "b",
                "link",
                "rm",
                "--agent",
                "bot",
                "--home-team",
                "default"
            ]
        )
        .status
        .code(),
        Some(1)
    );
    // Home still works.
    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/home3", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_a_role_grants_nothing() {
    let up = FakeUpstream::start().await;
    let t = two_teams(&up, &[], &[]);
    let v = cli_json(
        &t.tap,
        &[
            "--team",
            "b",
            "link",
            "add",
            "--agent",
            "bot",
            "--home-team",
            "default",
        ],
    );
    assert_eq!(v["role"], Value::Null, "{v}");
    cli_json(
        &t.tap,
        &["--team", "b", "role", "create", "r", "--credential", "echo"],
    );
    let served = t.tap.serve();

    // Linked, so the team resolves, but nothing is granted.
    for cred in ["echo", "only-b"] {
        let r = fwd(&served, &t.key_a, cred, &up, "/echo/nothing", Some("b")).await;
        r.assert_refused(403, "credential_not_granted");
    }
    let r = fwd(
        &served,
        &t.key_a,
        "nonexistent",
        &up,
        "/echo/nothing",
        Some("b"),
    )
    .await;
    r.assert_refused(404, "credential_not_found");
    assert_eq!(up.count(), 0);
    let v = agent_get(&served, "/agent/config", &t.key_a, Some("b"))
        .await
        .json();
    assert_eq!(v["team_id"], "b", "{v}");
    assert_eq!(v["credentials"], json!([]), "{v}");
    let v = agent_get(&served, "/agent/bootstrap", &t.key_a, Some("b"))
        .await
        .json();
    assert_eq!(v["status"], "needs_credentials", "{v}");
    assert_eq!(v["credential_count"], 0, "{v}");

    // Links are validated. An agent's own home team, an unknown agent and an
    // unknown team answer byte for byte alike: no enumeration of other teams.
    let mut unlinkable = Vec::new();
    for (team, body, status) in [
        (
            "default",
            json!({"agent_id": "bot", "home_team": "default", "role": "r"}),
            404,
        ),
        (
            "b",
            json!({"agent_id": "ghost", "home_team": "default", "role": "r"}),
            404,
        ),
        (
            "b",
            json!({"agent_id": "bot", "home_team": "nowhere", "role": "r"}),
            404,
        ),
        (
            "b",
            json!({"agent_id": "bot", "home_team": "default", "role": "no-such-role"}),
            404,
        ),
    ] {
        let bearer = if team == "b" { &t.owner_b } else { &t.owner_a };
        let r = api(
            &served,
            Some(bearer),
            Some(team),
            "POST",
            "/team/links",
            Some(&body),
        )
        .await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        if body["role"] == "r" {
            unlinkable.push(r.text());
        }
    }
    assert_eq!(unlinkable.len(), 3);
    assert!(
        unlinkable.iter().all(|b| b == &unlinkable[0]),
        "{unlinkable:?}"
    );

    // Giving the link a role through the admin API makes exactly that role usable.
    let r = api(
        &served,
        Some(&t.owner_b),
        Some("b"),
        "POST",
        "/team/links",
        Some(&json!({"agent_id": "bot", "home_team": "default", "role": "r"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["role"], "r", "{}", r.text());
    until_status(200, "link role set", || {
        fwd(&served, &t.key_a, "echo", &up, "/echo/with-role", Some("b"))
    })
    .await;
    assert_eq!(
        auth_seen(&up, "/echo/with-role"),
        [format!("Bearer {SECRET_B}")]
    );
    let r = fwd(&served, &t.key_a, "only-b", &up, "/echo/nothing", Some("b")).await;
    r.assert_refused(403, "credential_not_granted");

    // Through the API, the link is removed as well.
    let r = api(
        &served,
        Some(&t.owner_b),
        Some("b"),
        "DELETE",
        "/team/links/default/bot",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    until_status(403, "link removed via API", || {
        fwd(&served, &t.key_a, "echo", &up, "/echo/after", Some("b"))
    })
    .await
    .assert_refused(403, "team_not_linked");
    let r = api(
        &served,
        Some(&t.owner_b),
        Some("b"),
        "DELETE",
        "/team/links/default/bot",
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(served.terminate(), Some(0));
}
