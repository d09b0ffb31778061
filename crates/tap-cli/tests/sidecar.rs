//! Sidecar credentials (SPEC §6.2, §6.5) end to end through the real `tap`
//! binary: a loopback recording "sidecar" sees exactly the documented control
//! headers and never the agent's `X-OAuth-*`; a credential value goes only to
//! a loopback or explicitly trusted sidecar; relative targets are appended to
//! `api_base` and `..` in any spelling is refused.
//!
//! Every wait is bounded; nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tap_testkit::{FakeUpstream, Recorded, TapHome};

const CONSUMER_KEY: &str = "ck-sidecar-9djdj82h48djs9d2";
const CONSUMER_SECRET: &str = "cs-sidecar/Consumer+Secret&kd94hf93k4";
const TOKEN: &str = "370773112-SidecarTokenGmHxMAgYyLbNEtIKZ";
const TOKEN_SECRET: &str = "ts-sidecar=Token Secret~pfkkdhi9sl3r";
const SIGNER_SECRET: &str = "shared-signer-secret-7f3a9c1e5b";

/// Pretty-printed, as an operator pastes it: the proxy sends it on one line.
fn key_set() -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "access_token": TOKEN,
        "access_token_secret": TOKEN_SECRET,
    }))
    .unwrap()
}

fn only(rec: &Recorded, name: &str) -> String {
    let all = rec.header_all(name);
    assert_eq!(all.len(), 1, "exactly one {name}: {:?}", rec.headers);
    all[0].clone()
}

fn assert_no_agent_oauth(rec: &Recorded) {
    for (n, v) in &rec.headers {
        assert!(
            !v.contains("agent-forged"),
            "agent header reached the sidecar: {n}: {v}"
        );
        assert!(n != "x-oauth-anything", "{:?}", rec.headers);
    }
    assert!(rec.header("authorization").is_none(), "{:?}", rec.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_receives_the_control_headers_and_never_the_agents() {
    let sidecar = FakeUpstream::start().await;
    // The sidecar echoes the secrets it holds: the agent sees them redacted.
    sidecar.answer(
        "/signer",
        format!(
            "{{\"cs\":\"{CONSUMER_SECRET}\",\"shared\":\"{SIGNER_SECRET}\",\"t\":\"{TOKEN}\"}}"
        ),
    );
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let api_base = format!("{}/signer", sidecar.base());
    tap.add_credential(
        "tw",
        &key_set(),
        &[
            "--connector",
            "sidecar",
            "--api-base",
            &api_base,
            "--allowed-host",
            "api.x.example",
        ],
    );
    tap.ok(&["policy", "set", "tw", "--auto-approve-methods", "GET,POST"]);
    let key = tap.agent("bot", &["--credential", "tw"]);
    let shown = tap.json(&["cred", "show", "tw"]);
    assert_eq!(shown["connector"], "sidecar", "{shown}");
    assert_eq!(shown["value_shape"], "oauth1", "{shown}");
    for s in [CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET] {
        assert!(!shown.to_string().contains(s), "{shown}");
    }
    // The sidecar is on loopback: reachable only by an explicit exception.
    let served = tap.serve_with(&[
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
        ("TAP_SIGNER_SECRET", SIGNER_SECRET),
    ]);

    let target = "https://api.x.example/1.1/statuses/update.json?include_entities=true";
    let r = served
        .forward(&key)
        .credential("tw")
        .target(target)
        .method("post")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", "Bearer agent-forged")
        .header("X-OAuth-Credential", "agent-forged")
        .header("X-OAuth-Target", "http://agent-forged.example/")
        .header("X-OAuth-Credential-Data", "agent-forged")
        .header("X-OAuth-Signer-Secret", "agent-forged")
        .header("X-OAuth-Anything", "agent-forged")
        .body("status=hello")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["cs"], "[REDACTED:tw.consumer_secret]", "{answer}");
    assert_eq!(answer["t"], "[REDACTED:tw.access_token]", "{answer}");
    assert_eq!(answer["shared"], "[REDACTED:tap_signer_secret]", "{answer}");

    let seen = sidecar.requests();
    assert_eq!(seen.len(), 1);
    let rec = &seen[0];
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.uri, "/signer", "sent to the sidecar's api_base");
    assert_eq!(rec.body, b"status=hello");
    assert_eq!(only(rec, "x-oauth-credential"), "tw");
    assert_eq!(only(rec, "x-oauth-target"), target);
    assert_eq!(only(rec, "x-tap-method"), "POST");
    assert_eq!(only(rec, "x-oauth-signer-secret"), SIGNER_SECRET);
    let data = only(rec, "x-oauth-credential-data");
    let parsed: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(parsed["consumer_secret"], CONSUMER_SECRET);
    assert_eq!(parsed["access_token_secret"], TOKEN_SECRET);
    assert!(!data.contains('\n'));
    assert_no_agent_oauth(rec);

    // A target outside allowed_hosts never reaches the sidecar.
    let r = served
        .forward(&key)
        .credential("tw")
        .target("https://evil.example/steal")
        .send()
        .await;
    r.assert_refused(403, "host_not_allowed");
    assert_eq!(sidecar.count(), 1);

    // The agent never learns where the sidecar is.
    let port = sidecar.addr.port().to_string();
    for path in ["/agent/services", "/agent/config"] {
        let r = served.get(path, Some(&key)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.text().contains(&port), "{path}: {}", r.text());
        assert!(!r.text().contains("/signer"), "{path}: {}", r.text());
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_go_only_to_loopback_or_explicitly_trusted_sidecars() {
    let sidecar = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    // A sidecar by name (pinned to loopback): not a loopback address.
    let api_base = format!("http://sidecar.internal:{}", sidecar.addr.port());
    let common = [
        "--connector",
        "sidecar",
        "--api-base",
        &api_base,
        "--allowed-host",
        "api.x.example",
    ];
    tap.add_credential("withvalue", &key_set(), &common);
    // A sidecar holding its own keys: no value in TAP.
    let mut own = vec!["add", "ownkeys"];
    own.extend_from_slice(&common);
    tap.ok(&own);
    for c in ["withvalue", "ownkeys"] {
        tap.ok(&["policy", "set", c, "--auto-approve-methods", "GET"]);
    }
    let key = tap.agent("bot", &["--credential", "withvalue,ownkeys"]);
    let env = [
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
        ("TAP_RESOLVE", "sidecar.internal=127.0.0.1"),
        ("TAP_SIGNER_SECRET", SIGNER_SECRET),
    ];
    let served = tap.serve_with(&env);
    let target = "https://api.x.example/2/users/me";
    let r = served
        .forward(&key)
        .credential("withvalue")
        .target(target)
        .send()
        .await;
    let body = r.assert_refused(403, "sidecar_not_trusted");
    assert!(!body.to_string().contains("sidecar.internal"), "{body}");
    assert_eq!(sidecar.count(), 0, "nothing was sent");

    let r = served
        .forward(&key)
        .credential("ownkeys")
        .target(target)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = sidecar.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(only(&seen[0], "x-oauth-credential"), "ownkeys");
    assert_eq!(only(&seen[0], "x-oauth-target"), target);
    assert_eq!(only(&seen[0], "x-tap-method"), "GET");
    assert!(seen[0].header("x-oauth-credential-data").is_none());
    assert!(
        seen[0].header("x-oauth-signer-secret").is_none(),
        "the shared secret goes to trusted sidecars only"
    );
    let audit = tap.logs(&["--credential", "withvalue"]);
    assert!(
        audit
            .iter()
            .any(|row| row["error_code"] == "sidecar_not_trusted"),
        "{audit:?}"
    );
    assert_eq!(served.terminate(), Some(0));

    // Trusted explicitly: the value goes.
    let trusted = format!("http://sidecar.internal:{}", sidecar.addr.port());
    let mut env = env.to_vec();
    env.push(("TAP_TRUSTED_SIDECARS", &trusted));
    let served = tap.serve_with(&env);
    let r = served
        .forward(&key)
        .credential("withvalue")
        .target(target)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = sidecar.requests();
    assert_eq!(seen.len(), 2);
    let data: Value = serde_json::from_str(&only(&seen[1], "x-oauth-credential-data")).unwrap();
    assert_eq!(data["consumer_key"], CONSUMER_KEY);
    assert_eq!(only(&seen[1], "x-oauth-signer-secret"), SIGNER_SECRET);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_targets_are_appended_to_api_base_and_traversal_is_refused() {
    let sidecar = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let api_base = format!("{}/api", sidecar.base());
    tap.add_credential(
        "tg",
        "{\"session\":\"telegram-session-string-0123456789\"}",
        &[
            "--connector",
            "sidecar",
            "--api-base",
            &api_base,
            "--relative-target",
            "--allowed-host",
            &sidecar.base(),
        ],
    );
    tap.ok(&["policy", "set", "tg", "--auto-approve-methods", "GET"]);
    let key = tap.agent("bot", &["--credential", "tg"]);
    // The exact IP literal in allowed_hosts is the loopback exception here.
    let served = tap.serve();

    let r = served
        .forward(&key)
        .credential("tg")
        .target("/v1/dialogs?limit=5")
        .header("X-OAuth-Credential-Data", "agent-forged")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = sidecar.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/api/v1/dialogs?limit=5");
    assert_eq!(
        only(&seen[0], "x-oauth-target"),
        format!("{api_base}/v1/dialogs?limit=5")
    );
    assert_eq!(only(&seen[0], "x-oauth-credential"), "tg");
    assert_eq!(only(&seen[0], "x-tap-method"), "GET");
    let data: Value = serde_json::from_str(&only(&seen[0], "x-oauth-credential-data")).unwrap();
    assert_eq!(data["session"], "telegram-session-string-0123456789");
    assert_no_agent_oauth(&seen[0]);

    for path in [
        "/../admin",
        "/v1/../../admin",
        "/v1/%2e%2e/admin",
        "/v1/%2E%2e/admin",
        "/v1/.%2E/admin",
        "/v1%2f..%2fadmin",
        "/v1/..%2Fadmin",
        "/v1/%252e%252e/admin",
        "/v1\\..\\admin",
        "/v1/..;/admin",
    ] {
        let r = served
            .forward(&key)
            .credential("tg")
            .target(path)
            .send()
            .await;
        r.assert_refused(400, "path_traversal");
    }
    // A full URL for a relative-target credential.
    let r = served
        .forward(&key)
        .credential("tg")
        .target(&format!("{}/api/v1/me", sidecar.base()))
        .send()
        .await;
    r.assert_refused(400, "invalid_target");
    assert_eq!(sidecar.count(), 1, "no refused request reached the sidecar");
    let audit = tap.logs(&["--credential", "tg"]);
    let traversals = audit
        .iter()
        .filter(|row| row["error_code"] == "path_traversal")
        .count();
    assert_eq!(traversals, 10, "{audit:?}");
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn tap_add_requires_an_api_base_for_a_sidecar() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let out = tap.run(&[
        "add",
        "nobase",
        "--connector",
        "sidecar",
        "--allowed-host",
        "api.x.example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-base"), "{err}");
}
