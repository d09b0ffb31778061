//! Comma-separated `X-TAP-Key` lists (SPEC §3.6, §15 "Several keys") and
//! per-agent rate limits (SPEC §3.1 row 3: N per rolling hour allows exactly N).

use serde_json::json;
use tap_testkit::{FakeUpstream, TapHome};

use crate::support::{
    SECRET_B, add_cred, agent, api, audit_row, auth_seen, fwd, json as cli_json, logs, until_status,
};

const S1: &str = "credential-one-secret-value-111";
const S2: &str = "credential-two-secret-value-222";
const S3: &str = "credential-three-secret-value-3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_list_uses_the_key_that_owns_the_grant() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    cli_json(&tap, &["init"]);
    cli_json(&tap, &["team", "create", "b"]);
    add_cred(&tap, "default", "one", S1, &up.base());
    add_cred(&tap, "default", "two", S2, &up.base());
    add_cred(&tap, "default", "three", S3, &up.base());
    add_cred(&tap, "b", "echo", SECRET_B, &up.base());
    let alpha = agent(&tap, "default", "alpha", &["--credential", "one"]);
    let beta = agent(
        &tap,
        "default",
        "beta",
        &["--credential", "two", "--rate-limit", "1"],
    );
    let carol = agent(&tap, "b", "carol", &["--credential", "echo"]);
    let served = tap.serve();
    let both = format!("{alpha},{beta}");

    // The key granted the credential is used and audited.
    for (cred, path, who, secret) in [
        ("two", "/echo/k-two", "beta", S2),
        ("one", "/echo/k-one", "alpha", S1),
    ] {
        let r = fwd(&served, &both, cred, &up, path, None).await;
        assert_eq!(r.status, 200, "{cred}: {}", r.text());
        let id = r.request_id();
        assert_eq!(auth_seen(&up, path), [format!("Bearer {secret}")]);
        let row = audit_row(&tap, "default", |r| r["request_id"] == id).await;
        assert_eq!(row["agent_id"], who, "{row}");
        let key_leaked = row.to_string();
        assert!(!key_leaked.contains(&alpha) && !key_leaked.contains(&beta));
    }
    // Spaces around the comma are fine.
    let r = fwd(
        &served,
        &format!("{alpha} , {beta}"),
        "one",
        &up,
        "/echo/k-spaced",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The key that owns the grant is the one rate-limited: beta's single request is spent.
    let r = fwd(&served, &both, "two", &up, "/echo/k-two-again", None).await;
    r.assert_refused(429, "rate_limited");
    let r = fwd(&served, &beta, "two", &up, "/echo/k-two-alone", None).await;
    r.assert_refused(429, "rate_limited");
    // ...and not alpha, even when beta's key comes first.
    let r = fwd(
        &served,
        &format!("{beta},{alpha}"),
        "one",
        &up,
        "/echo/k-beta-first",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.request_id();
    let row = audit_row(&tap, "default", |r| r["request_id"] == id).await;
    assert_eq!(row["agent_id"], "alpha", "{row}");

    // No key granted: the first key's failure.
    let r = fwd(&served, &both, "three", &up, "/echo/k-three", None).await;
    r.assert_refused(403, "credential_not_granted");

    // Any invalid key anywhere in the list: 401, nothing forwarded.
    let before = up.count();
    for list in [
        format!("{alpha},tap_not-a-real-key-000000000000000000000000"),
        format!("tap_not-a-real-key-000000000000000000000000,{alpha}"),
        format!("{alpha},not-even-prefixed"),
        format!("{alpha},{beta},tap_x"),
    ] {
        let r = fwd(&served, &list, "one", &up, "/echo/k-invalid", None).await;
        r.assert_refused(401, "invalid_tap_key");
    }
    // A disabled agent's key is invalid too, wherever it stands (`three` is granted to
    // nobody, so nothing is forwarded while the change propagates).
    cli_json(&tap, &["agent", "disable", "beta"]);
    until_status(401, "beta disabled in a list", || {
        fwd(&served, &both, "three", &up, "/echo/k-disabled", None)
    })
    .await
    .assert_refused(401, "invalid_tap_key");
    assert_eq!(up.count(), before, "nothing forwarded with an invalid key");

    // Across teams: with X-TAP-Team b, b's own agent in the list owns the grant.
    let mixed = format!("{alpha},{carol}");
    let r = fwd(&served, &mixed, "echo", &up, "/echo/k-carol", Some("b")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.request_id();
    assert_eq!(
        auth_seen(&up, "/echo/k-carol"),
        [format!("Bearer {SECRET_B}")]
    );
    let row = audit_row(&tap, "b", |r| r["request_id"] == id).await;
    assert_eq!(row["agent_id"], "carol", "{row}");
    assert!(
        row.get("agent_home_team").is_none_or(|v| v.is_null()),
        "{row}"
    );
    assert!(
        logs(&tap, "default").iter().all(|r| r["request_id"] != id),
        "not in default's trail"
    );
    // Without X-TAP-Team the first key's home team applies: default has no echo.
    let r = fwd(&served, &mixed, "echo", &up, "/echo/k-home", None).await;
    r.assert_refused(404, "credential_not_found");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_rate_limit_allows_exactly_n() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = cli_json(&tap, &["init"]);
    add_cred(&tap, "default", "echo", S1, &up.base());
    let x = agent(
        &tap,
        "default",
        "x",
        &["--credential", "echo", "--rate-limit", "3"],
    );
    let y = agent(&tap, "default", "y", &["--credential", "echo"]);
    let shown = cli_json(&tap, &["agent", "show", "x"]);
    assert_eq!(shown["rate_limit_per_hour"], 3, "{shown}");
    let served = tap.serve();

    for i in 0..3 {
        let r = fwd(&served, &x, "echo", &up, &format!("/echo/x{i}"), None).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    for i in 3..5 {
        let r = fwd(&served, &x, "echo", &up, &format!("/echo/x{i}"), None).await;
        let body = r.assert_refused(429, "rate_limited");
        let retry: u64 = r
            .header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After: {}", r.text()))
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry), "Retry-After {retry}");
        assert_eq!(body["retry_after"], retry, "{body}");
        let id = r.request_id();
        let row = audit_row(&tap, "default", |r| r["request_id"] == id).await;
        assert_eq!(row["error_code"], "rate_limited", "{row}");
        assert_eq!(row["agent_id"], "x", "{row}");
    }
    let xs = up
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/echo/x"))
        .count();
    assert_eq!(xs, 3, "exactly 3 reached the upstream");
    // Other agents are not limited by x's counter.
    for i in 0..5 {
        let r = fwd(&served, &y, "echo", &up, &format!("/echo/y{i}"), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // The admin API takes rate_limit_per_hour on agent create.
    let owner = init["admin_token"].as_str().unwrap();
    let r = api(
        &served,
        Some(owner),
        None,
        "POST",
        "/team/agents",
        Some(&json!({"id": "z", "credentials": ["echo"], "rate_limit_per_hour": 1})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let z = r.json()["api_key"].as_str().unwrap().to_owned();
    until_status(200, "z's first request", || {
        fwd(&served, &z, "echo", &up, "/echo/z0", None)
    })
    .await;
    fwd(&served, &z, "echo", &up, "/echo/z1", None)
        .await
        .assert_refused(429, "rate_limited");
    let v = api(&served, Some(owner), None, "GET", "/team/agents/z", None)
        .await
        .json();
    assert_eq!(v["rate_limit_per_hour"], 1, "{v}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_rate_limit_applies_to_each_agent_holding_it() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = cli_json(&tap, &["init"]);
    add_cred(&tap, "default", "echo", S1, &up.base());
    let served = tap.serve();
    let owner = init["admin_token"].as_str().unwrap();
    let r = api(
        &served,
        Some(owner),
        None,
        "POST",
        "/team/roles",
        Some(&json!({"name": "limited", "credentials": ["echo"], "rate_limit_per_hour": 2})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["rate_limit_per_hour"], 2, "{}", r.text());
    // The strictest of the agent's own limit and its roles' limits applies.
    let cases = [
        (agent(&tap, "default", "r1", &["--role", "limited"]), 2usize),
        (
            agent(
                &tap,
                "default",
                "r2",
                &["--role", "limited", "--rate-limit", "1"],
            ),
            1,
        ),
        (
            agent(
                &tap,
                "default",
                "r3",
                &["--role", "limited", "--rate-limit", "5"],
            ),
            2,
        ),
    ];
    for (i, (key, allowed)) in cases.iter().enumerate() {
        let first = format!("/echo/role{i}-0");
        until_status(200, "first request of a role agent", || {
            fwd(&served, key, "echo", &up, &first, None)
        })
        .await;
        for n in 1..*allowed {
            let r = fwd(
                &served,
                key,
                "echo",
                &up,
                &format!("/echo/role{i}-{n}"),
                None,
            )
            .await;
            assert_eq!(r.status, 200, "agent {i} request {n}: {}", r.text());
        }
        let r = fwd(
            &served,
            key,
            "echo",
            &up,
            &format!("/echo/role{i}-over"),
            None,
        )
        .await;
        r.assert_refused(429, "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_of_a_key_list_name_every_account() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    cli_json(&tap, &["init"]);
    add_cred(&tap, "default", "one", S1, &up.base());
    add_cred(&tap, "default", "two", S2, &up.base());
    let alpha = agent(&tap, "default", "alpha", &["--credential", "one"]);
    let beta = agent(&tap, "default", "beta", &["--credential", "one,two"]);
    let served = tap.serve();

    let r = crate::support::agent_get(&served, "/agent/services", &format!("{alpha},{beta}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    // The first key's services under their plain names, later keys' as "<agent>.<credential>".
    let services = v["services"].as_object().unwrap_or_else(|| panic!("{v}"));
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["beta.one", "beta.two", "one"], "{v}");
    assert_eq!(services["one"]["account"], "alpha", "{v}");
    assert_eq!(services["beta.two"]["account"], "beta", "{v}");
    assert_eq!(
        services["beta.two"]["request_template"]["headers"]["X-TAP-Credential"],
        "beta.two"
    );
    assert_eq!(
        v["accounts"],
        json!({
            "alpha": {"agent_id": "alpha", "key_index": 0},
            "beta": {"agent_id": "beta", "key_index": 1}
        }),
        "{v}"
    );
    assert!(v.get("home_team_id").is_none(), "{v}");
    assert_eq!(v["agent_id"], "alpha", "{v}");
    for s in [S1, S2, &alpha, &beta] {
        assert!(!r.text().contains(s), "a secret or key in /agent/services");
    }
    // One key: no accounts, and the home team is named.
    let v = crate::support::agent_get(&served, "/agent/services", &beta, None)
        .await
        .json();
    assert!(v.get("accounts").is_none(), "{v}");
    assert_eq!(v["home_team_id"], "default", "{v}");
    assert_eq!(v["services"].as_object().map(|s| s.len()), Some(2), "{v}");
    assert_eq!(served.terminate(), Some(0));
}
