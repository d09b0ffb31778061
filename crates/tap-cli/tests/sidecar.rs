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
    // The audit row is written by the proxy's journal: read it when it lands.
    let refused = tap_testkit::eventually(100, std::time::Duration::from_millis(50), || async {
        tap.logs(&["--credential", "withvalue"])
            .into_iter()
            .find(|row| row["error_code"] == "sidecar_not_trusted")
    })
    .await;
    assert!(refused.is_some(), "no audit row for the refusal");
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
    let traversals = tap_testkit::eventually(100, std::time::Duration::from_millis(50), || async {
        let n = tap
            .logs(&["--credential", "tg", "--limit", "100"])
            .iter()
            .filter(|row| row["error_code"] == "path_traversal")
            .count();
        (n == 10).then_some(n)
    })
    .await;
    assert_eq!(traversals, Some(10), "every refusal is audited");
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

// ------------------------------------------ the real tap-signer in between

/// The `tap-signer serve` process, killed on drop.
struct Signer {
    child: std::process::Child,
    url: String,
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_signer(env: &[(&str, &str)]) -> Signer {
    use std::io::BufRead as _;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tap-signer"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("tap-signer listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("tap-signer did not start");
    Signer { child, url }
}

fn verify_signed(up: &FakeUpstream, rec: &Recorded) {
    for (n, _) in &rec.headers {
        assert!(
            !n.starts_with("x-oauth-") && !n.starts_with("x-tap-"),
            "control header {n} reached the upstream"
        );
    }
    let auth = rec.header_all("authorization");
    assert_eq!(auth.len(), 1, "{auth:?}");
    let params = tap_testkit::oauth_params(&auth[0]);
    assert_eq!(
        tap_testkit::oauth_param(&params, "oauth_consumer_key"),
        CONSUMER_KEY
    );
    assert_eq!(tap_testkit::oauth_param(&params, "oauth_token"), TOKEN);
    assert_eq!(
        tap_testkit::oauth_param(&params, "oauth_signature"),
        tap_testkit::expected_oauth1_signature(
            &up.base(),
            rec,
            &params,
            CONSUMER_SECRET,
            TOKEN_SECRET
        ),
        "signature does not verify for {} {}",
        rec.method,
        rec.uri
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signer_sidecar_signs_between_the_proxy_and_a_loopback_upstream() {
    let up = FakeUpstream::start().await;
    let compact =
        serde_json::to_string(&serde_json::from_str::<Value>(&key_set()).unwrap()).unwrap();
    let signer = start_signer(&[
        ("TAP_SIGNER_SECRET", SIGNER_SECRET),
        ("TAP_SIGNER_ALLOWED_HOSTS", &up.base()),
        // A key set the signer holds itself, for a credential without a value in TAP.
        ("TAP_SIGNER_CREDENTIAL_OWN", &compact),
    ]);
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let common = [
        "--connector",
        "sidecar",
        "--api-base",
        &signer.url,
        "--allowed-host",
        &up.base(),
    ];
    tap.add_credential("tw", &key_set(), &common);
    let mut own = vec!["add", "own"];
    own.extend_from_slice(&common);
    tap.ok(&own);
    for c in ["tw", "own"] {
        tap.ok(&["policy", "set", c, "--auto-approve-methods", "GET,POST"]);
    }
    let key = tap.agent("bot", &["--credential", "tw,own"]);
    let served = tap.serve_with(&[
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
        ("TAP_SIGNER_SECRET", SIGNER_SECRET),
    ]);

    let target = format!(
        "{}/echo/statuses/update.json?include_entities=true&q=a+b%21",
        up.base()
    );
    let body = "status=Hello%20Ladies%20%2b%20Gentlemen%2C%20signed%21&dup=1";
    let r = served
        .forward(&key)
        .credential("tw")
        .target(&target)
        .method("POST")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", "Bearer agent-forged")
        .header("X-OAuth-Target", "http://agent-forged.example/")
        .header("X-OAuth-Credential-Data", "agent-forged")
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The upstream echoes the signed header: the key set comes back redacted.
    let echoed = r.json();
    let auth = echoed["authorization"].as_str().unwrap();
    assert!(auth.starts_with("OAuth "), "{auth}");
    assert!(
        auth.contains("oauth_consumer_key=\"[REDACTED:tw.consumer_key]\""),
        "{auth}"
    );
    for s in [
        CONSUMER_KEY,
        CONSUMER_SECRET,
        TOKEN,
        TOKEN_SECRET,
        SIGNER_SECRET,
    ] {
        assert!(!r.text().contains(s), "secret in the answer: {}", r.text());
    }

    // The signer's own key set, nothing sent by the proxy but the secret.
    let r = served
        .forward(&key)
        .credential("own")
        .target(&format!("{}/echo/photos?file=vacation.jpg", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, body.as_bytes(), "the body goes as sent");
    verify_signed(&up, &seen[0]);
    assert_eq!(seen[1].method, "GET");
    verify_signed(&up, &seen[1]);

    // Anyone but the proxy (no shared secret) is refused by the signer.
    let direct = tap_testkit::http_client()
        .post(&signer.url)
        .header("X-OAuth-Credential", "own")
        .header("X-OAuth-Target", format!("{}/echo/x", up.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status().as_u16(), 401);
    assert_eq!(up.count(), 2, "nothing reached the upstream");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_write_goes_through_the_sidecar_with_its_control_headers() {
    let sidecar = FakeUpstream::start().await;
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
    // No policy: the gated team default makes a POST wait for a human.
    let key = tap.agent("bot", &["--credential", "tw"]);
    let served = tap.serve_with(&[("TAP_PRIVATE_ALLOWLIST", "127.0.0.1")]);
    let target = "https://api.x.example/2/tweets";
    let r = served
        .forward(&key)
        .credential("tw")
        .target(target)
        .method("POST")
        .header("Prefer", "respond-async")
        .header("X-OAuth-Target", "http://agent-forged.example/")
        .header("Content-Type", "application/json")
        .body("{\"text\":\"hi\"}")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    assert_eq!(sidecar.count(), 0, "nothing before the decision");
    tap.ok(&["approve", &txn]);
    let done = tap_testkit::eventually(200, std::time::Duration::from_millis(50), || async {
        let r = served
            .get(&format!("/agent/approvals/{txn}"), Some(&key))
            .await;
        (r.json()["status"] == "forwarded").then(|| r.json())
    })
    .await
    .expect("the approved request was forwarded");
    assert_eq!(done["response"]["status"], 200, "{done}");
    let seen = sidecar.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/signer");
    assert_eq!(seen[0].body, b"{\"text\":\"hi\"}");
    assert_eq!(only(&seen[0], "x-oauth-credential"), "tw");
    assert_eq!(only(&seen[0], "x-oauth-target"), target);
    assert_eq!(only(&seen[0], "x-tap-method"), "POST");
    let data: Value = serde_json::from_str(&only(&seen[0], "x-oauth-credential-data")).unwrap();
    assert_eq!(data["consumer_key"], CONSUMER_KEY);
    assert_no_agent_oauth(&seen[0]);
    assert_eq!(served.terminate(), Some(0));
}
