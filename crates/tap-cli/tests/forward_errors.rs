//! Every refusal `POST /forward` makes today, through the real binary: status,
//! `error_code`, `X-TAP-Error`, and that the upstream saw nothing.

use std::time::Duration;

use tap_testkit::{FakeUpstream, Served, TapHome};

const SECRET: &str = "s3cr3t-value-for-forward-errors";

/// An initialised home with credential `echo` bound to the upstream and agent `bot` granted it.
fn home(up: &FakeUpstream, env: &[(&str, &str)]) -> (TapHome, String) {
    let mut tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    for (k, v) in env {
        tap = tap.env(k, v);
    }
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (tap, key)
}

fn echo_target(up: &FakeUpstream) -> String {
    format!("{}/echo", up.base())
}

async fn assert_ok_through(served: &Served, key: &str, up: &FakeUpstream) {
    let before = up.count();
    let r = served
        .forward(key)
        .credential("echo")
        .target(&echo_target(up))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_invalid_keys_are_401() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let off_key = tap.agent("off", &["--credential", "echo"]);
    tap.ok(&["agent", "disable", "off"]);
    let served = tap.serve();
    let target = echo_target(&up);

    let r = served
        .forward_without_key()
        .credential("echo")
        .target(&target)
        .send()
        .await;
    r.assert_refused(401, "missing_tap_key");

    let wrong_prefix = format!("xyz_{}", &key["tap_".len()..]);
    let unknown = format!("tap_{}", "A".repeat(key.len() - 4));
    for bad in ["garbage", wrong_prefix.as_str(), unknown.as_str(), &off_key] {
        let r = served
            .forward(bad)
            .credential("echo")
            .target(&target)
            .send()
            .await;
        let body = r.assert_refused(401, "invalid_tap_key");
        assert!(!r.text().contains(bad), "key echoed: {body}");
    }
    // A list with one bad key fails as a whole.
    let r = served
        .forward(&format!("{key},garbage"))
        .credential("echo")
        .target(&target)
        .send()
        .await;
    r.assert_refused(401, "invalid_tap_key");
    assert_eq!(up.count(), 0, "nothing may reach the upstream");
    // The good key still works.
    assert_ok_through(&served, &key, &up).await;
    // Unauthenticated requests leave no audit row: once the proxy has stopped (every
    // queued row written), the trail holds the good request alone.
    assert_eq!(served.terminate(), Some(0));
    let rows = tap.logs(&[]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["upstream_status"], 200, "{rows:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tap_header_lists_the_supported_ones() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .header("X-TAP-Body", "{\"a\":1}")
        .send()
        .await;
    let body = r.assert_refused(400, "unknown_tap_header");
    assert_eq!(body["header"], "x-tap-body", "{body}");
    let supported: Vec<&str> = body["supported_tap_headers"]
        .as_array()
        .unwrap_or_else(|| panic!("no supported_tap_headers: {body}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for h in [
        "x-tap-key",
        "x-tap-credential",
        "x-tap-target",
        "x-tap-method",
        "x-tap-team",
        "x-tap-auth-mode",
    ] {
        assert!(supported.contains(&h), "{h} missing from {supported:?}");
    }
    assert!(
        body["fix"].as_str().unwrap().contains("body"),
        "fix should say bodies go in the HTTP body: {body}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_connect_and_garbage_methods_are_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let served = tap.serve();
    for m in ["TRACE", "connect", " Trace ", "G(ET", "GE T", "GET/1"] {
        let r = served
            .forward(&key)
            .credential("echo")
            .target(&echo_target(&up))
            .header("X-TAP-Method", m)
            .send()
            .await;
        r.assert_refused(400, "method_not_allowed");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_auth_mode_is_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .header("X-TAP-Auth-Mode", "magic")
        .send()
        .await;
    r.assert_refused(400, "invalid_auth_mode");
    assert_eq!(up.count(), 0);
    // The defined modes pass this check.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .header("X-TAP-Auth-Mode", "Bearer")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_invalid_targets_are_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let served = tap.serve();

    let r = served.forward(&key).credential("echo").send().await;
    r.assert_refused(400, "missing_target");
    let r = served
        .forward(&key)
        .credential("echo")
        .target("")
        .send()
        .await;
    r.assert_refused(400, "missing_target");

    let hostport = up.addr.to_string();
    let targets = [
        format!("http://user:pw@{hostport}/echo"),
        format!("http://user@{hostport}/echo"),
        format!("ftp://{hostport}/echo"),
        format!("//{hostport}/echo"),
        format!("{hostport}/echo"),
        // A path is only for relative-target credentials.
        "/echo".to_owned(),
    ];
    for t in &targets {
        let r = served
            .forward(&key)
            .credential("echo")
            .target(t)
            .send()
            .await;
        let body = r.assert_refused(400, "invalid_target");
        assert!(!r.text().contains(":pw@"), "target echoed: {body}");
    }
    assert_eq!(up.count(), 0, "userinfo never becomes a request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[("TAP_MAX_BODY_BYTES", "1024")]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .body(vec![b'a'; 4096])
        .send()
        .await;
    let body = r.assert_refused(413, "body_too_large");
    assert_eq!(body["limit_bytes"], 1024, "{body}");
    assert_eq!(up.count(), 0);
    // At the limit it goes through, verbatim.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .body(vec![b'b'; 1024])
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.requests()[0].body, vec![b'b'; 1024]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_team_is_not_linked() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    tap.ok(&["team", "create", "other"]);
    let served = tap.serve();
    for team in ["other", "nonexistent"] {
        let r = served
            .forward(&key)
            .credential("echo")
            .target(&echo_target(&up))
            .header("X-TAP-Team", team)
            .send()
            .await;
        let body = r.assert_refused(403, "team_not_linked");
        assert_eq!(body["team"], team, "{body}");
    }
    assert_eq!(up.count(), 0);
    // Naming the home team explicitly is fine.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .header("X-TAP-Team", "default")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_carrying_a_team_secret_is_refused() {
    use base64::Engine as _;
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    // A second credential the agent is not even granted: its value is still a team secret.
    tap.add_credential(
        "other",
        "another-team-secret-42",
        &["--allowed-host", "api.other.test"],
    );
    let served = tap.serve();
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);

    let attempts = [
        (
            "header",
            served
                .forward(&key)
                .header("X-Custom", &format!("x{SECRET}y")),
        ),
        (
            "body",
            served
                .forward(&key)
                .body(format!("{{\"token\":\"{SECRET}\"}}")),
        ),
        (
            "other credential in body",
            served.forward(&key).body("another-team-secret-42"),
        ),
        (
            "agent Authorization",
            served
                .forward(&key)
                .header("Authorization", &format!("Bearer {SECRET}")),
        ),
    ];
    for (what, req) in attempts {
        let r = req
            .credential("echo")
            .target(&echo_target(&up))
            .send()
            .await;
        let body = r.assert_refused(400, "secret_in_request");
        assert!(!r.text().contains(SECRET), "{what}: secret echoed: {body}");
    }
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo?q={b64}", up.base()))
        .send()
        .await;
    let body = r.assert_refused(400, "secret_in_request");
    assert!(!r.text().contains(&b64), "encoded secret echoed: {body}");
    assert_eq!(up.count(), 0, "a leak attempt must not be forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_lookup_errors() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    tap.add_credential(
        "private",
        "private-secret-value",
        &["--allowed-host", &up.base()],
    );
    let served = tap.serve();

    let r = served.forward(&key).target(&echo_target(&up)).send().await;
    r.assert_refused(400, "no_credential");

    let r = served
        .forward(&key)
        .credential("nope")
        .target(&echo_target(&up))
        .send()
        .await;
    let body = r.assert_refused(404, "credential_not_found");
    assert_eq!(body["credential"], "nope", "{body}");

    let r = served
        .forward(&key)
        .credential("private")
        .target(&echo_target(&up))
        .send()
        .await;
    let body = r.assert_refused(403, "credential_not_granted");
    assert_eq!(body["credential"], "private", "{body}");
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_outside_allowed_hosts_are_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let port = up.addr.port();
    tap.add_credential(
        "named",
        "named-secret-value-123",
        &["--allowed-host", &format!("http://api.svc.test:{port}")],
    );
    tap.ok(&["agent", "grant", "bot", "named"]);
    let served = tap.serve();
    let other = tap_testkit::closed_port();
    let cases = [
        (
            "echo",
            format!("http://127.0.0.1.evil.test:{port}/echo"),
            "127.0.0.1.evil.test",
        ),
        (
            "echo",
            format!("http://127.0.0.1:{other}/echo"),
            "127.0.0.1",
        ),
        (
            "echo",
            format!("https://127.0.0.1:{port}/echo"),
            "127.0.0.1",
        ),
        ("echo", format!("http://localhost:{port}/echo"), "localhost"),
        (
            "named",
            format!("http://api.svc.test.evil.test:{port}/"),
            "api.svc.test.evil.test",
        ),
        (
            "named",
            format!("http://evilapi.svc.test:{port}/"),
            "evilapi.svc.test",
        ),
        ("named", format!("http://svc.test:{port}/"), "svc.test"),
        (
            "named",
            format!("https://api.svc.test:{port}/"),
            "api.svc.test",
        ),
        ("named", "http://api.svc.test/".to_owned(), "api.svc.test"),
    ];
    for (cred, target, host) in &cases {
        let r = served
            .forward(&key)
            .credential(cred)
            .target(target)
            .send()
            .await;
        let body = r.assert_refused(403, "host_not_allowed");
        assert_eq!(body["host"], *host, "{target}: {body}");
        assert_eq!(body["credential"], *cred, "{target}: {body}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_need_the_allowlist() {
    let up = FakeUpstream::start().await;
    let port = up.addr.port();
    let (tap, key) = home(&up, &[("TAP_RESOLVE", "api.svc.test=127.0.0.1")]);
    tap.add_credential(
        "named",
        "named-secret-value-123",
        &["--allowed-host", &format!("http://api.svc.test:{port}")],
    );
    tap.ok(&["agent", "grant", "bot", "named"]);
    let target = format!("http://api.svc.test:{port}/echo");

    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("named")
        .target(&target)
        .send()
        .await;
    let body = r.assert_refused(403, "target_not_allowed");
    assert_eq!(body["host"], "api.svc.test", "{body}");
    assert_eq!(up.count(), 0);
    assert_eq!(served.terminate(), Some(0));

    let served = tap.serve_with(&[("TAP_PRIVATE_ALLOWLIST", "api.svc.test")]);
    let r = served
        .forward(&key)
        .credential("named")
        .target(&target)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer named-secret-value-123")
    );
    assert_eq!(
        seen[0].header("host").as_deref(),
        Some(format!("api.svc.test:{port}").as_str())
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_credentials_are_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let base = up.base();
    // No value: `tap add` with stdin not a TTY and no --value-stdin stores none.
    tap.ok(&["add", "novalue", "--allowed-host", &base]);
    let shown = tap.json(&["cred", "show", "novalue"]);
    assert_eq!(shown["value_set"], false, "{shown}");
    tap.add_credential(
        "fieldless",
        r#"{"key":"json-field-secret-1"}"#,
        &[
            "--allowed-host",
            &base,
            "--bind",
            "X-Api-Key={value.missing}",
        ],
    );
    tap.add_credential(
        "unbound",
        r#"{"key":"json-field-secret-2","other":"json-field-secret-3"}"#,
        &["--allowed-host", &base],
    );
    tap.add_credential(
        "signer",
        &format!(
            r#"{{"algorithm":"ed25519","private_key":"{}"}}"#,
            "ab".repeat(32)
        ),
        &["--allowed-host", &base],
    );
    for c in ["novalue", "fieldless", "unbound", "signer"] {
        tap.ok(&["agent", "grant", "bot", c]);
    }
    let served = tap.serve();
    let cases = [
        ("novalue", "credential_value_missing"),
        ("fieldless", "credential_field_missing"),
        ("unbound", "multi_secret_unbound"),
        ("signer", "signing_key_on_forward"),
    ];
    for (cred, code) in cases {
        let r = served
            .forward(&key)
            .credential(cred)
            .target(&echo_target(&up))
            .send()
            .await;
        let body = r.assert_refused(400, code);
        let text = r.text();
        for s in ["json-field-secret", &"ab".repeat(32)] {
            assert!(!text.contains(s), "{cred}: value echoed: {body}");
        }
        if code == "credential_field_missing" {
            assert_eq!(body["field"], "missing", "{body}");
        }
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_targets_are_joined_and_traversal_is_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    tap.add_credential(
        "rel",
        "relative-secret-value",
        &[
            "--api-base",
            &format!("{}/api", up.base()),
            "--relative-target",
            "--allowed-host",
            &up.base(),
        ],
    );
    tap.ok(&["agent", "grant", "bot", "rel"]);
    let served = tap.serve();
    for t in ["/a/../b", "/a/%2e%2e/b", "/a/%2E%2E/b", "/..", "/a/..;x/b"] {
        let r = served
            .forward(&key)
            .credential("rel")
            .target(t)
            .send()
            .await;
        r.assert_refused(400, "path_traversal");
    }
    // An absolute URL is not a path.
    let r = served
        .forward(&key)
        .credential("rel")
        .target(&echo_target(&up))
        .send()
        .await;
    r.assert_refused(400, "invalid_target");
    assert_eq!(up.count(), 0);

    let r = served
        .forward(&key)
        .credential("rel")
        .target("/v1/items?x=1")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/api/v1/items?x=1");
}

/// A gated write that no member could approve: team `solo` has no members at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_write_nobody_can_approve_is_approval_unavailable() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.ok(&["team", "create", "solo"]);
    tap.add_credential(
        "echo",
        SECRET,
        &["--allowed-host", &up.base(), "--team", "solo"],
    );
    let key = tap.agent("bot", &["--credential", "echo", "--team", "solo"]);
    let served = tap.serve();
    for m in ["POST", "delete", "PURGE"] {
        let r = served
            .forward(&key)
            .credential("echo")
            .target(&echo_target(&up))
            .method(m)
            .body("{}")
            .send()
            .await;
        let body = r.assert_refused(503, "approval_unavailable");
        assert_eq!(body["policy_reason"], "team_default_gated_write", "{body}");
    }
    assert_eq!(up.count(), 0);
    // Reads proceed.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&echo_target(&up))
        .method("head")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.requests()[0].method, "HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[("TAP_FORWARD_TIMEOUT_SECS", "1")]);
    let closed = format!("http://127.0.0.1:{}", tap_testkit::closed_port());
    tap.add_credential(
        "closed",
        "closed-secret-value",
        &["--allowed-host", &closed],
    );
    tap.ok(&["agent", "grant", "bot", "closed"]);
    let served = tap.serve();

    let target = format!("{closed}/x");
    let r = served
        .forward(&key)
        .credential("closed")
        .target(&target)
        .send()
        .await;
    let body = r.assert_refused(502, "upstream_error");
    assert_eq!(body["target"], target, "{body}");

    let slow = format!("{}/slow", up.base());
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&slow)
        .send()
        .await;
    let body = r.assert_refused(502, "upstream_error");
    assert_eq!(body["target"], slow, "{body}");
    assert!(!r.text().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_content_coding_is_unscannable() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/compress", up.base()))
        .send()
        .await;
    let body = r.assert_refused(502, "unscannable_response");
    assert_eq!(body["content_encoding"], "compress", "{body}");
    assert!(r.header("content-encoding").is_none());
    // The upstream was asked for an uncompressed answer.
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header_all("accept-encoding"), vec!["identity"]);
}

/// An answer that stops arriving mid-body: the agent's response is cut off
/// after the idle timeout (never completed with bytes TAP did not scan), and
/// the audit row records `upstream_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_stalls_mid_body_is_cut_off_and_audited() {
    let up = FakeUpstream::start().await;
    let (tap, key) = home(&up, &[("TAP_FORWARD_TIMEOUT_SECS", "1")]);
    let served = tap.serve();
    let resp = tap_testkit::http_client()
        .post(format!("{}/forward", served.url))
        .header("X-TAP-Key", &key)
        .header("X-TAP-Credential", "echo")
        .header("X-TAP-Target", format!("{}/stall", up.base()))
        .header("X-TAP-Method", "GET")
        .send()
        .await
        .expect("the head arrives");
    assert_eq!(resp.status(), 200);
    let id = resp
        .headers()
        .get("x-tap-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .expect("the stalled answer was not cut off within 20 s");
    assert!(
        body.is_err(),
        "a stalled answer must not end cleanly: {body:?}"
    );
    let row = tap_testkit::eventually(100, Duration::from_millis(100), || async {
        tap.logs(&[])
            .into_iter()
            .find(|r| r["request_id"] == id.as_str() && !r["error_code"].is_null())
    })
    .await
    .expect("audit row of the stalled answer");
    assert_eq!(row["error_code"], "upstream_error", "{row}");
    assert_eq!(row["upstream_status"], 200, "{row}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_on_a_plain_http_port_says_so() {
    let up = FakeUpstream::start().await;
    let (tap, _) = home(&up, &[]);
    let tls_base = up.base().replacen("http://", "https://", 1);
    tap.add_credential("tls", SECRET, &["--allowed-host", &tls_base]);
    let key = tap.agent("tlsbot", &["--credential", "tls"]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("tls")
        .target(&format!("{tls_base}/echo"))
        .send()
        .await;
    let body = r.assert_refused(502, "upstream_error");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("does not speak TLS") && detail.contains("http://"),
        "{body}\n{}",
        served.log()
    );
    assert!(!r.text().contains(SECRET));
}
