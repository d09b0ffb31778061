//! Team A's agent or member can see and do nothing in team B (SPEC §1, §3.4,
//! §3.6, §4, §15 "Agent identity"), and two agents with the same id in two
//! teams stay separate: keys, audit rows, rate limits and polls.

use serde_json::{Value, json};
use tap_testkit::FakeUpstream;

use crate::support::{
    SECRET_A, SECRET_B, add_member, agent_get, api, assert_forbidden, audit_row, auth_seen, fwd,
    fwd_async_write, json as cli_json, logs, ok, session, two_teams, txn_of, until_status,
};

fn names(v: &Value, field: &str) -> Vec<String> {
    // Lists are arrays; `/agent/services` keys its services by name (public TAP shape).
    let items: Vec<&Value> = match v {
        Value::Object(m) => m.values().collect(),
        _ => v
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .collect(),
    };
    let mut n: Vec<String> = items
        .into_iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect();
    n.sort();
    n
}

fn targets(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["target_url"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_and_uses_only_its_own_teams_credentials() {
    let up = FakeUpstream::start().await;
    let t = two_teams(&up, &[], &[]);
    let served = t.tap.serve();

    // A same-named credential: each team's own value is injected.
    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/a", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = fwd(&served, &t.key_b, "echo", &up, "/echo/b", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(auth_seen(&up, "/echo/a"), [format!("Bearer {SECRET_A}")]);
    assert_eq!(auth_seen(&up, "/echo/b"), [format!("Bearer {SECRET_B}")]);

    // B's credential name from A: 404, even though B's bot holds it.
    let before = up.count();
    let r = fwd(&served, &t.key_a, "only-b", &up, "/echo/steal", None).await;
    let body = r.assert_refused(404, "credential_not_found");
    assert_eq!(body["credential"], "only-b", "{body}");
    // Naming team b without a link: 403 for both names.
    for cred in ["echo", "only-b"] {
        let r = fwd(&served, &t.key_a, cred, &up, "/echo/steal", Some("b")).await;
        let body = r.assert_refused(403, "team_not_linked");
        assert_eq!(body["team"], "b", "{body}");
    }
    assert_eq!(up.count(), before, "nothing reached the upstream");

    // Every other agent endpoint answers about the caller's own team only.
    for (key, team, creds) in [
        (&t.key_a, "default", vec!["echo"]),
        (&t.key_b, "b", vec!["echo", "only-b"]),
    ] {
        let v = agent_get(&served, "/agent/config", key, None).await.json();
        assert_eq!(v["agent_id"], "bot", "{v}");
        assert_eq!(v["team_id"], team, "{v}");
        assert_eq!(names(&v["credentials"], "name"), creds, "{v}");
        let r = agent_get(&served, "/agent/services", key, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["team_id"], team, "{v}");
        assert_eq!(names(&v["services"], "name"), creds, "{v}");
        for s in [SECRET_A, SECRET_B] {
            assert!(!r.text().contains(s), "a value in /agent/services");
        }
        let v = agent_get(&served, "/agent/bootstrap", key, None)
            .await
            .json();
        assert_eq!(v["team_id"], team, "{v}");
        assert_eq!(v["credential_count"], creds.len(), "{v}");
    }
    for path in [
        "/agent/config",
        "/agent/services",
        "/agent/bootstrap",
        "/agent/logs",
    ] {
        let r = agent_get(&served, path, &t.key_a, Some("b")).await;
        r.assert_refused(403, "team_not_linked");
    }

    // /agent/logs and the audit trail: each team holds only its own rows.
    let la = agent_get(&served, "/agent/logs?limit=100", &t.key_a, None)
        .await
        .json();
    assert_eq!(la["team_id"], "default", "{la}");
    let entries: Vec<Value> = la["entries"].as_array().unwrap().clone();
    assert!(
        entries.iter().all(|e| e["team_id"] == "default"),
        "{entries:?}"
    );
    let ta = targets(&entries);
    assert!(ta.iter().any(|x| x.ends_with("/echo/a")), "{ta:?}");
    assert!(ta.iter().all(|x| !x.ends_with("/echo/b")), "{ta:?}");
    let lb = agent_get(&served, "/agent/logs?limit=100", &t.key_b, None)
        .await
        .json();
    let tb = targets(lb["entries"].as_array().unwrap());
    assert_eq!(
        tb.iter()
            .filter(|x| x.ends_with("/echo/b"))
            .collect::<Vec<_>>()
            .len(),
        1,
        "{tb:?}"
    );
    assert!(
        tb.iter()
            .all(|x| !x.ends_with("/echo/a") && !x.ends_with("/echo/steal")),
        "{tb:?}"
    );

    let a_rows = logs(&t.tap, "default");
    let b_rows = logs(&t.tap, "b");
    assert!(a_rows.iter().all(|r| r["team_id"] == "default"));
    assert!(b_rows.iter().all(|r| r["team_id"] == "b"));
    // A's refused attempts are A's business, audited in A's trail only.
    assert!(
        a_rows
            .iter()
            .any(|r| r["error_code"] == "credential_not_found")
    );
    assert!(
        targets(&b_rows)
            .iter()
            .all(|x| !x.ends_with("/echo/a") && !x.ends_with("/echo/steal")),
        "{b_rows:?}"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_agent_id_in_two_teams_stays_separate() {
    let up = FakeUpstream::start().await;
    let t = two_teams(&up, &["--rate-limit", "3"], &["--rate-limit", "3"]);
    let served = t.tap.serve();

    // Polls: each bot reads its own approval, the other one gets 404.
    let txn_a = txn_of(&fwd_async_write(&served, &t.key_a, &up, "/echo/wa").await);
    let txn_b = txn_of(&fwd_async_write(&served, &t.key_b, &up, "/echo/wb").await);
    for (key, mine, theirs) in [(&t.key_a, &txn_a, &txn_b), (&t.key_b, &txn_b, &txn_a)] {
        let r = agent_get(&served, &format!("/agent/approvals/{mine}"), key, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "pending");
        for team in [None, Some("b"), Some("default")] {
            let r = agent_get(&served, &format!("/agent/approvals/{theirs}"), key, team).await;
            r.assert_refused(404, "not_found");
        }
    }

    // Rate limits are per (team, agent): A's bot spends its hour, B's keeps its own.
    for i in 0..2 {
        let r = fwd(
            &served,
            &t.key_a,
            "echo",
            &up,
            &format!("/echo/ra{i}"),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/ra-over", None).await;
    r.assert_refused(429, "rate_limited");
    for i in 0..2 {
        let r = fwd(
            &served,
            &t.key_b,
            "echo",
            &up,
            &format!("/echo/rb{i}"),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "B's bot is not limited by A's: {}", r.text());
    }
    let r = fwd(&served, &t.key_b, "echo", &up, "/echo/rb-over", None).await;
    r.assert_refused(429, "rate_limited");
    assert_eq!(auth_seen(&up, "/echo/ra0"), [format!("Bearer {SECRET_A}")]);
    assert_eq!(auth_seen(&up, "/echo/rb0"), [format!("Bearer {SECRET_B}")]);

    // Audit rows: same agent id, separate trails. The CLI reads what the proxy
    // has folded: wait for each team's last request.
    for (team, last) in [("default", "/echo/ra-over"), ("b", "/echo/rb-over")] {
        audit_row(&t.tap, team, |r| {
            r["target_url"].as_str().is_some_and(|u| u.ends_with(last))
        })
        .await;
    }
    let a_rows = logs(&t.tap, "default");
    let b_rows = logs(&t.tap, "b");
    let ta = targets(&a_rows);
    let tb = targets(&b_rows);
    assert!(ta.iter().any(|x| x.ends_with("/echo/ra0")), "{ta:?}");
    assert!(ta.iter().any(|x| x.ends_with("/echo/wa")), "{ta:?}");
    assert!(
        ta.iter()
            .all(|x| !x.contains("/echo/rb") && !x.ends_with("/echo/wb"))
    );
    assert!(tb.iter().any(|x| x.ends_with("/echo/rb0")), "{tb:?}");
    assert!(
        tb.iter()
            .all(|x| !x.contains("/echo/ra") && !x.ends_with("/echo/wa"))
    );
    assert!(a_rows.iter().chain(&b_rows).all(|r| r["agent_id"] == "bot"));

    // Deciding A's approval leaves B's pending.
    ok(&t.tap, &["approve", &txn_a]);
    let outcome = served.approval_outcome(&t.key_a, &txn_a).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let r = agent_get(
        &served,
        &format!("/agent/approvals/{txn_b}"),
        &t.key_b,
        None,
    )
    .await;
    assert_eq!(r.json()["status"], "pending", "{}", r.text());

    // Disabling default/bot does not touch b/bot.
    ok(&t.tap, &["agent", "disable", "bot"]);
    until_status(401, "default/bot disabled", || {
        agent_get(&served, "/agent/config", &t.key_a, None)
    })
    .await;
    let r = agent_get(&served, "/agent/config", &t.key_b, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["team_id"], "b");
    let v = cli_json(&t.tap, &["--team", "b", "agent", "show", "bot"]);
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(served.terminate(), Some(0));
}

/// Every admin route (SPEC §4), with a body where it takes one.
fn every_admin_route() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/team", None),
        (
            "PUT",
            "/team/settings",
            Some(json!({"default_approval_mode": "autonomous"})),
        ),
        ("GET", "/team/credentials", None),
        (
            "POST",
            "/team/credentials",
            Some(json!({"name": "planted", "value": "x-planted-value", "allow_any_host": true})),
        ),
        ("GET", "/team/credentials/only-b", None),
        (
            "PATCH",
            "/team/credentials/only-b",
            Some(json!({"description": "hijacked"})),
        ),
        (
            "PUT",
            "/team/credentials/only-b/secret",
            Some(json!({"value": "replaced-by-a"})),
        ),
        (
            "POST",
            "/team/credentials/only-b/grants",
            Some(json!({"methods": ["POST"], "route_scope": "/", "ttl_minutes": 60})),
        ),
        ("GET", "/team/grants", None),
        ("POST", "/team/grants/gnothing/revoke", None),
        ("GET", "/team/agents", None),
        (
            "POST",
            "/team/agents",
            Some(json!({"id": "planted", "credentials": ["only-b"]})),
        ),
        ("GET", "/team/agents/bot", None),
        ("PATCH", "/team/agents/bot", Some(json!({"enabled": false}))),
        ("POST", "/team/agents/bot/disable", None),
        ("POST", "/team/agents/bot/enable", None),
        ("POST", "/team/agents/bot/rotate-key", None),
        ("GET", "/team/roles", None),
        (
            "POST",
            "/team/roles",
            Some(json!({"name": "planted", "credentials": ["only-b"]})),
        ),
        (
            "PUT",
            "/team/roles/planted",
            Some(json!({"credentials": ["only-b"]})),
        ),
        ("DELETE", "/team/roles/planted", None),
        ("GET", "/team/policies/only-b", None),
        (
            "PUT",
            "/team/policies/only-b",
            Some(json!({"auto_approve_methods": ["POST"]})),
        ),
        ("DELETE", "/team/policies/only-b", None),
        ("GET", "/team/members", None),
        (
            "POST",
            "/team/members",
            Some(json!({"email": "planted@a.test", "role": "owner"})),
        ),
        (
            "PUT",
            "/team/members/bob@b.test/role",
            Some(json!({"role": "viewer"})),
        ),
        (
            "PUT",
            "/team/members/bob@b.test/credentials",
            Some(json!({"credentials": ["only-b"]})),
        ),
        ("DELETE", "/team/members/bob@b.test", None),
        ("GET", "/team/links", None),
        (
            "POST",
            "/team/links",
            Some(json!({"agent_id": "bot", "home_team": "default", "role": "planted"})),
        ),
        ("DELETE", "/team/links/default/bot", None),
        ("GET", "/team/audit", None),
        ("GET", "/team/audit/export", None),
        ("GET", "/team/approvals?status=pending", None),
        ("DELETE", "/team/agents/bot", None),
        ("DELETE", "/team/credentials/only-b", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_and_does_nothing_in_another_team() {
    let up = FakeUpstream::start().await;
    let t = two_teams(&up, &[], &[]);
    add_member(&t.tap, "default", "alice@a.test", "admin");
    add_member(&t.tap, "b", "bob@b.test", "admin");
    let served = t.tap.serve();
    let r = fwd(&served, &t.key_a, "echo", &up, "/echo/a", None).await;
    assert_eq!(r.status, 200);
    let r = fwd(&served, &t.key_b, "echo", &up, "/echo/b", None).await;
    assert_eq!(r.status, 200);
    let txn_a = txn_of(&fwd_async_write(&served, &t.key_a, &up, "/echo/wa").await);
    let txn_b = txn_of(&fwd_async_write(&served, &t.key_b, &up, "/echo/wb").await);

    let login = crate::support::login(&served, "alice@a.test", crate::support::PW).await;
    assert_eq!(
        login["teams"],
        json!([{"team": "default", "role": "admin"}]),
        "{login}"
    );
    let alice = session(&served, "alice@a.test").await;
    let bob = session(&served, "bob@b.test").await;

    // Naming team b: every route refuses alice, and changes nothing.
    for (method, path, body) in every_admin_route() {
        let r = api(
            &served,
            Some(&alice),
            Some("b"),
            method,
            path,
            body.as_ref(),
        )
        .await;
        let msg = assert_forbidden(&r, &format!("alice {method} {path} in team b"));
        assert!(msg.contains("not a member"), "{method} {path}: {msg}");
    }
    // Deciding B's approval by its id: refused, still pending.
    for verb in ["approve", "deny"] {
        let r = api(
            &served,
            Some(&alice),
            None,
            "POST",
            &format!("/team/approvals/{txn_b}/{verb}"),
            None,
        )
        .await;
        // Indistinguishable from an unknown transaction.
        assert_eq!(r.status, 404, "alice {verb}s B's approval: {}", r.text());
        assert_eq!(r.json()["error_code"], "not_found", "{}", r.text());
    }
    let r = agent_get(
        &served,
        &format!("/agent/approvals/{txn_b}"),
        &t.key_b,
        None,
    )
    .await;
    assert_eq!(r.json()["status"], "pending", "{}", r.text());

    // The approval page of B's request does not exist for her.
    let r = api(
        &served,
        Some(&alice),
        None,
        "GET",
        &format!("/approve/{txn_b}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!r.text().contains("/echo/wb"), "{}", r.text());
    let r = api(
        &served,
        Some(&bob),
        None,
        "GET",
        &format!("/approve/{txn_b}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // In her own team, b's names do not exist.
    for (method, path, body) in [
        ("GET", "/team/credentials/only-b", None),
        (
            "PATCH",
            "/team/credentials/only-b",
            Some(json!({"description": "x"})),
        ),
        (
            "PUT",
            "/team/credentials/only-b/secret",
            Some(json!({"value": "replaced-by-a"})),
        ),
        ("GET", "/team/policies/only-b", None),
        ("PUT", "/team/policies/only-b", Some(json!({}))),
        ("DELETE", "/team/credentials/only-b", None),
        (
            "POST",
            "/team/agents",
            Some(json!({"id": "thief", "credentials": ["only-b"]})),
        ),
        (
            "POST",
            "/team/credentials/only-b/grants",
            Some(json!({"methods": ["POST"], "route_scope": "/", "ttl_minutes": 60})),
        ),
        ("DELETE", "/team/members/bob@b.test", None),
        (
            "PUT",
            "/team/members/bob@b.test/credentials",
            Some(json!({"credentials": []})),
        ),
    ] {
        let r = api(&served, Some(&alice), None, method, path, body.as_ref()).await;
        assert_eq!(r.status, 404, "alice {method} {path}: {}", r.text());
    }

    // Reads show her team only.
    let v = api(&served, Some(&alice), None, "GET", "/team", None)
        .await
        .json();
    assert_eq!(v["team"], "default", "{v}");
    assert_eq!(v["your_role"], "admin", "{v}");
    let v = api(
        &served,
        Some(&alice),
        None,
        "GET",
        "/team/credentials",
        None,
    )
    .await
    .json();
    assert_eq!(names(&v, "name"), ["echo"], "{v}");
    let v = api(&served, Some(&alice), None, "GET", "/team/agents", None)
        .await
        .json();
    assert_eq!(names(&v, "id"), ["bot"], "{v}");
    assert_eq!(v[0]["team"], "default", "{v}");
    let v = api(&served, Some(&alice), None, "GET", "/team/members", None)
        .await
        .json();
    assert!(
        !names(&v, "email").contains(&"bob@b.test".to_owned()),
        "{v}"
    );
    let v = api(&served, Some(&alice), None, "GET", "/team/approvals", None)
        .await
        .json();
    let txns = names(&v, "txn_id");
    assert!(txns.contains(&txn_a) && !txns.contains(&txn_b), "{v}");
    let v = api(&served, Some(&bob), None, "GET", "/team/approvals", None)
        .await
        .json();
    let txns = names(&v, "txn_id");
    assert!(txns.contains(&txn_b) && !txns.contains(&txn_a), "{v}");

    let audit = api(
        &served,
        Some(&alice),
        None,
        "GET",
        "/team/audit?limit=1000",
        None,
    )
    .await
    .json();
    let rows = audit.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["team_id"] == "default"), "{audit}");
    let ta = targets(rows);
    assert!(ta.iter().any(|x| x.ends_with("/echo/a")), "{ta:?}");
    assert!(
        ta.iter()
            .all(|x| !x.ends_with("/echo/b") && !x.ends_with("/echo/wb"))
    );
    let r = api(
        &served,
        Some(&alice),
        None,
        "GET",
        "/team/audit/export",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let lines: Vec<Value> = r
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|r| r["team_id"] == "default"));
    let audit_b = api(
        &served,
        Some(&bob),
        None,
        "GET",
        "/team/audit?limit=1000",
        None,
    )
    .await
    .json();
    let tb = targets(audit_b.as_array().unwrap());
    assert!(tb.iter().any(|x| x.ends_with("/echo/b")), "{tb:?}");
    assert!(tb.iter().all(|x| !x.ends_with("/echo/a")), "{tb:?}");

    // A write in her own team touches only her team's agent of that id.
    let r = api(
        &served,
        Some(&alice),
        None,
        "POST",
        "/team/agents/bot/disable",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    until_status(401, "default/bot disabled", || {
        agent_get(&served, "/agent/config", &t.key_a, None)
    })
    .await;
    let r = fwd(&served, &t.key_b, "only-b", &up, "/echo/b-after", None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Team b is as it was.
    let creds = cli_json(&t.tap, &["--team", "b", "cred", "list"]);
    assert_eq!(names(&creds, "name"), ["echo", "only-b"], "{creds}");
    let c = cli_json(&t.tap, &["--team", "b", "cred", "show", "only-b"]);
    assert_ne!(c["description"], "hijacked", "{c}");
    let agents = cli_json(&t.tap, &["--team", "b", "agent", "list"]);
    assert_eq!(names(&agents, "id"), ["bot"], "{agents}");
    assert_eq!(agents[0]["enabled"], true, "{agents}");
    let roles = cli_json(&t.tap, &["--team", "b", "role", "list"]);
    assert_eq!(roles, json!([]), "{roles}");
    let members = cli_json(&t.tap, &["--team", "b", "member", "list"]);
    let bob_row = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "bob@b.test")
        .cloned()
        .unwrap_or_else(|| panic!("bob was removed: {members}"));
    assert_eq!(bob_row["role"], "admin", "{members}");
    assert!(!names(&members, "email").contains(&"planted@a.test".to_owned()));
    let team = api(&served, Some(&bob), None, "GET", "/team", None)
        .await
        .json();
    assert_eq!(team["default_approval_mode"], "gated", "{team}");
    let links = cli_json(&t.tap, &["--team", "b", "link", "list"]);
    assert_eq!(links, json!([]), "{links}");
    assert_eq!(
        auth_seen(&up, "/echo/b-after"),
        [format!("Bearer {}", crate::support::SECRET_B2)],
        "only-b's value was not replaced"
    );
    assert_eq!(served.terminate(), Some(0));
}
