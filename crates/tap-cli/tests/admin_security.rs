//! The admin surface against browsers, brute force and slow or idle clients,
//! through the real `tap` binary (THREATS §I, §K, §N, §P):
//! - a session cookie authorises nothing under `/team`; cross-origin and
//!   non-JSON state changes are refused before any handler runs;
//! - failed logins and invalid agent keys are limited per client address,
//!   in bounded memory, and never lock out the right password elsewhere;
//! - every body read, idle connection and the number of connections is bounded;
//! - the session cookie is `Secure` when the public URL is https.
//!
//! Every wait is bounded (`eventually`, "closed within 20 s"); nothing asserts
//! on wall-clock time.
// Helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Served, TapHome, eventually, http_client, http_client_from};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "admin-security-secret-value-42";
/// Generous bound for the server to act on a timeout of about a second.
const CLOSE_BOUND: Duration = Duration::from_secs(20);
const EVIL: &str = "http://evil.example";

/// One credential `echo` on the fake upstream, an agent `bot` granted it.
fn setup(up: &FakeUpstream) -> (TapHome, Value, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (tap, init, key)
}

async fn json_of(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn assert_error(status: u16, v: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"], code, "{v}");
    assert_eq!(v["error_code"], code, "{v}");
    assert!(v["detail"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v["fix"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
}

/// A pending approval of a POST through `/forward` (async); its txn id.
async fn pending_txn(served: &Served, key: &str, up: &FakeUpstream) -> String {
    let r = served
        .forward(key)
        .credential("echo")
        .target(&format!("{}/echo/csrf", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .body("{}".to_owned())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["txn_id"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------- CSRF

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_or_a_foreign_page_approves_nothing_and_mints_no_grant() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up);
    let served = tap.serve();
    let admin = init["admin_token"].as_str().unwrap();
    let txn = pending_txn(&served, &key, &up).await;

    let r = served
        .login_from(
            &http_client(),
            init["owner_email"].as_str().unwrap(),
            init["owner_password"].as_str().unwrap(),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain http deployment: {set_cookie}"
    );
    let session = json_of(r).await.2["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = format!("tap_session={session}");
    let approve = format!("{}/team/approvals/{txn}/approve", served.url);
    let grants = format!("{}/team/credentials/echo/grants", served.url);
    let grant =
        json!({"methods": ["POST"], "route_scope": "/echo/csrf", "ttl_minutes": 30}).to_string();

    // What a foreign page can make a browser send: a form post with the cookie.
    let (s, _, v) = json_of(
        http_client()
            .post(&approve)
            .header("Cookie", &cookie)
            .header("Origin", EVIL)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("x=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 403, "origin_not_allowed");
    // The same without Origin (older browsers, privacy proxies): not JSON.
    let (s, _, v) = json_of(
        http_client()
            .post(&approve)
            .header("Cookie", &cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("x=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 415, "unsupported_media_type");
    // A bodiless post with the cookie alone: the cookie is no credential here.
    let (s, _, v) = json_of(
        http_client()
            .post(&approve)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 401, "unauthorized");
    // A text/plain form carrying a JSON body: with the cookie or even a bearer token.
    for auth in [
        ("Cookie", cookie.clone()),
        ("Authorization", format!("Bearer {session}")),
    ] {
        let (s, _, v) = json_of(
            http_client()
                .post(&grants)
                .header(auth.0, &auth.1)
                .header("Content-Type", "text/plain")
                .body(grant.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(s, &v, 415, "unsupported_media_type");
    }
    let (s, _, v) = json_of(
        http_client()
            .post(&grants)
            .header("Cookie", &cookie)
            .header("Content-Type", "application/json")
            .body(grant.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 401, "unauthorized");
    // A bearer from a foreign origin (a token pasted into a hostile page).
    let (s, _, v) = json_of(
        http_client()
            .post(&grants)
            .bearer_auth(admin)
            .header("Origin", EVIL)
            .header("Content-Type", "application/json")
            .body(grant.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 403, "origin_not_allowed");
    // The web page's own form, posted from a foreign origin with the cookie.
    let (s, _, v) = json_of(
        http_client()
            .post(format!("{}/approve/{txn}/approve", served.url))
            .header("Cookie", &cookie)
            .header("Origin", EVIL)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("csrf=guess")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 403, "origin_not_allowed");
    // Login CSRF: logging a victim into the attacker's account.
    let (s, _, v) = json_of(
        http_client()
            .post(format!("{}/login", served.url))
            .header("Origin", EVIL)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("email=a%40b.c&password=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 403, "origin_not_allowed");

    // Nothing changed: the approval is pending, no grant exists, nothing went upstream.
    let (s, _, v) = json_of(
        http_client()
            .get(format!("{}/team/grants", served.url))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!([]), "no grant was minted: {v}");
    let poll = served
        .get(&format!("/agent/approvals/{txn}"), Some(&key))
        .await;
    assert_eq!(poll.json()["status"], "pending", "{}", poll.text());
    assert!(
        up.requests()
            .iter()
            .all(|r| !r.uri.starts_with("/echo/csrf"))
    );

    // The legitimate calls still work: bearer + JSON, from the proxy's own origin or none.
    let (s, _, v) = json_of(
        http_client()
            .post(&grants)
            .bearer_auth(&session)
            .header("Origin", &served.url)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(grant.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, _, v) = json_of(
        http_client()
            .post(&approve)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        s, 200,
        "a bodiless bearer approval needs no Content-Type: {v}"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let served = tap.serve_with(&[("TAP_PUBLIC_URL", "https://tap.example.test")]);
    let r = served
        .login_from(
            &http_client(),
            init["owner_email"].as_str().unwrap(),
            init["owner_password"].as_str().unwrap(),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    // The public origin is the proxy's own origin.
    let (s, _, v) = json_of(
        http_client()
            .put(format!("{}/team/settings", served.url))
            .bearer_auth(init["admin_token"].as_str().unwrap())
            .header("Origin", "https://tap.example.test")
            .header("Content-Type", "application/json")
            .body(json!({"default_approval_mode": "gated"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------------ brute force

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_keep_memory_flat_and_never_lock_out_the_owner_elsewhere() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let served = tap.serve();
    let owner = init["owner_email"].as_str().unwrap();
    let password = init["owner_password"].as_str().unwrap();
    let attacker = http_client_from("127.0.0.1");

    // Oversized inputs are refused before any password work.
    let (s, _, v) = json_of(
        attacker
            .post(format!("{}/login", served.url))
            .header("Content-Type", "application/json")
            .body(json!({"email": owner, "password": "p".repeat(17 * 1024)}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 413, "body_too_large");
    let long = format!("{}@example.test", "e".repeat(300));
    let (s, _, v) = json_of(served.login_from(&attacker, &long, "x", &[]).await).await;
    assert_error(s, &v, 400, "invalid_request");

    // Warm up, then 1,000 failures with long, distinct e-mails.
    for i in 0..5 {
        let _ = served
            .login_from(&attacker, &format!("warm{i}@example.test"), "x", &[])
            .await;
    }
    let before = vm_rss_kib(served.pid());
    let mut limited = 0;
    for i in 0..1000 {
        let email = format!("{}{i}@example.test", "a".repeat(230));
        let r = served
            .login_from(&attacker, &email, "wrong-password", &[])
            .await;
        match r.status().as_u16() {
            401 => {}
            429 => {
                let retry = r.headers().get("retry-after").unwrap().to_str().unwrap();
                assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
                let (s, _, v) = json_of(r).await;
                assert_error(s, &v, 429, "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let after = vm_rss_kib(served.pid());
    assert!(
        limited > 900,
        "the address is limited after a few failures: {limited}"
    );
    assert!(
        after.saturating_sub(before) < 30 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );

    // The attacker's address is limited even with the right password...
    let (s, headers, v) = json_of(served.login_from(&attacker, owner, password, &[]).await).await;
    assert_error(s, &v, 429, "rate_limited");
    assert!(headers.get("retry-after").is_some());
    // ...while the owner, from another address, logs in.
    let owner_client = http_client_from("127.0.0.2");
    let (s, _, v) = json_of(served.login_from(&owner_client, owner, password, &[]).await).await;
    assert_eq!(s, 200, "the owner is not locked out by a stranger: {v}");
    assert!(v["session_token"].is_string(), "{v}");
    // An unknown e-mail answers like a wrong password (no account enumeration).
    let (s, _, unknown) = json_of(
        served
            .login_from(&owner_client, "nobody@example.test", "x", &[])
            .await,
    )
    .await;
    let (s2, _, known) = json_of(served.login_from(&owner_client, owner, "x", &[]).await).await;
    assert_eq!((s, s2), (401, 401));
    assert_eq!(unknown, known);
    assert_eq!(served.terminate(), Some(0));
}

/// `n` failed logins of `owner` from `client`, each answered 401; `xff`
/// gives each attempt's `X-Forwarded-For` (none when it returns `None`).
async fn fail_logins(
    served: &Served,
    client: &reqwest::Client,
    owner: &str,
    n: usize,
    xff: impl Fn(usize) -> Option<String>,
) {
    for i in 0..n {
        let forwarded = xff(i);
        let headers: Vec<(&str, &str)> = forwarded
            .as_deref()
            .map(|v| vec![("X-Forwarded-For", v)])
            .unwrap_or_default();
        let r = served
            .login_from(client, owner, "wrong-password", &headers)
            .await;
        let (s, _, v) = json_of(r).await;
        assert_eq!(s, 401, "failure {i} is answered as a failure: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_forwarded_clients_are_limited_apart() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let owner = init["owner_email"].as_str().unwrap();
    let password = init["owner_password"].as_str().unwrap();
    let served = tap.serve_with(&[("TAP_TRUSTED_PROXIES", "127.0.0.1")]);
    // The load balancer (127.0.0.1) relays client A's failures; what A wrote
    // left of the address the balancer appended is not believed.
    let lb = http_client_from("127.0.0.1");
    fail_logins(&served, &lb, owner, 10, |i| {
        Some(format!("10.9.9.{i}, 198.51.100.1"))
    })
    .await;
    let a = [("X-Forwarded-For", "198.51.100.1")];
    let (s, headers, v) = json_of(served.login_from(&lb, owner, password, &a).await).await;
    assert_error(s, &v, 429, "rate_limited");
    assert!(headers.get("retry-after").is_some());
    // Client B, through the same balancer, still signs in.
    let b = [("X-Forwarded-For", "198.51.100.2")];
    let (s, _, v) = json_of(served.login_from(&lb, owner, password, &b).await).await;
    assert_eq!(s, 200, "client B is not locked out by client A: {v}");
    // The balancer's own address was never counted: without the header it
    // is a client like any other.
    let (s, _, v) = json_of(served.login_from(&lb, owner, password, &[]).await).await;
    assert_eq!(s, 200, "{v}");
    // A peer that is not a trusted proxy cannot borrow or shed an address:
    // naming locked-out A, it is counted as itself and signs in.
    let other = http_client_from("127.0.0.2");
    let (s, _, v) = json_of(served.login_from(&other, owner, password, &a).await).await;
    assert_eq!(
        s, 200,
        "X-Forwarded-For from an untrusted peer is ignored: {v}"
    );
    // The log names the client the balancer forwarded for.
    assert!(
        served.log().contains("198.51.100.1"),
        "failed logins are logged with the forwarded client: {}",
        served.log()
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_x_forwarded_for_does_not_escape_the_limit() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let owner = init["owner_email"].as_str().unwrap();
    let password = init["owner_password"].as_str().unwrap();
    let served = tap.serve();
    let attacker = http_client_from("127.0.0.1");
    // Every attempt claims another address; all count against the peer.
    fail_logins(&served, &attacker, owner, 10, |i| {
        Some(format!("198.51.100.{}", i + 10))
    })
    .await;
    let fresh = [("X-Forwarded-For", "203.0.113.99")];
    let (s, _, v) = json_of(served.login_from(&attacker, owner, password, &fresh).await).await;
    assert_error(s, &v, 429, "rate_limited");
    // Invalid agent keys alike: a spoofed header does not reset the count.
    let bad = "tap_0000000000000000000000000000000000000000000";
    for i in 0..20 {
        let r = attacker
            .get(format!("{}/agent/bootstrap", served.url))
            .header("X-TAP-Key", bad)
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        let (s, _, v) = json_of(r).await;
        assert_error(s, &v, 401, "invalid_tap_key");
    }
    let r = attacker
        .get(format!("{}/agent/bootstrap", served.url))
        .header("X-TAP-Key", bad)
        .header("X-Forwarded-For", "203.0.113.99")
        .send()
        .await
        .unwrap();
    let (s, _, v) = json_of(r).await;
    assert_error(s, &v, 429, "rate_limited");
    assert_eq!(served.terminate(), Some(0));
}

async fn bootstrap_from(
    served: &Served,
    local: &str,
    key: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http_client_from(local)
        .get(format!("{}/agent/bootstrap", served.url))
        .header("X-TAP-Key", key)
        .send()
        .await
        .unwrap();
    json_of(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_agent_keys_are_limited_per_address_and_a_valid_key_still_works() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up);
    let served = tap.serve();
    let bad = "tap_0000000000000000000000000000000000000000000";
    let mut first_429 = None;
    for i in 0..40 {
        let (s, headers, v) = bootstrap_from(&served, "127.0.0.1", bad).await;
        if s == 429 {
            assert_error(s, &v, 429, "rate_limited");
            assert!(headers.get("retry-after").is_some(), "{v}");
            first_429 = Some(i);
            break;
        }
        assert_error(s, &v, 401, "invalid_tap_key");
    }
    assert_eq!(first_429, Some(20), "20 invalid keys per address, then 429");
    // /forward is limited alike.
    let r = served
        .forward(bad)
        .credential("echo")
        .target(&format!("{}/echo/x", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    // A valid key from the same address still works (see http::limiter).
    let (s, _, v) = bootstrap_from(&served, "127.0.0.1", &key).await;
    assert_eq!(s, 200, "{v}");
    // Another address is not affected.
    let (s, _, v) = bootstrap_from(&served, "127.0.0.3", bad).await;
    assert_error(s, &v, 401, "invalid_tap_key");
    assert_eq!(served.terminate(), Some(0));
}

// --------------------------------------------------- slow and idle clients

/// Reads until the server closes the connection (or `CLOSE_BOUND` passes);
/// returns what arrived and whether the server closed.
async fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(CLOSE_BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (got, closed)
}

fn addr_of(served: &Served) -> String {
    served.url.trim_start_matches("http://").to_owned()
}

/// Sends a request head announcing 100 body bytes and only part of the body.
async fn slow_body(served: &Served, path: &str, extra: &str) -> (String, bool) {
    let mut s = TcpStream::connect(addr_of(served)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: tap\r\nContent-Type: application/json\r\nContent-Length: 100\r\n{extra}\r\n{{\"email\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (got, closed) = read_to_close(&mut s).await;
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_and_the_connection_is_closed() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up);
    let served = tap.serve_with(&[("TAP_BODY_TIMEOUT_SECS", "1")]);
    let admin = init["admin_token"].as_str().unwrap();
    let cases = [
        ("/login", String::new()),
        (
            "/team/credentials",
            format!("Authorization: Bearer {admin}\r\n"),
        ),
        (
            "/forward",
            format!(
                "X-TAP-Key: {key}\r\nX-TAP-Credential: echo\r\nX-TAP-Target: {}/echo/slow\r\nX-TAP-Method: POST\r\n",
                up.base()
            ),
        ),
    ];
    for (path, extra) in cases {
        let (answer, closed) = slow_body(&served, path, &extra).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{path}: expected 408, got {answer}"
        );
        assert!(answer.contains("\"request_timeout\""), "{path}: {answer}");
        assert!(!answer.contains("body_too_large"), "{path}: {answer}");
        assert!(closed, "{path}: the server must close the connection");
    }
    assert!(
        up.requests()
            .iter()
            .all(|r| !r.uri.starts_with("/echo/slow"))
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_and_http2_connections_are_closed_by_the_server() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let served = tap.serve_with(&[("TAP_IDLE_TIMEOUT_SECS", "1")]);

    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(addr_of(&served)).await.unwrap();
    let (_, closed) = read_to_close(&mut silent).await;
    assert!(closed, "a silent connection is closed");

    // A keep-alive HTTP/1.1 connection after one request.
    let mut h1 = TcpStream::connect(addr_of(&served)).await.unwrap();
    h1.write_all(b"GET /health HTTP/1.1\r\nHost: tap\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_to_close(&mut h1).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed, "an idle keep-alive connection is closed");

    // A request head trickled a byte at a time never completes: closed too.
    let mut trickle = TcpStream::connect(addr_of(&served)).await.unwrap();
    let trickled = tokio::time::timeout(CLOSE_BOUND, async {
        for b in b"GET /health HTTP/1.1\r\nHost: tap\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if trickle.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(trickled.is_ok(), "a trickled request head is cut off");

    // HTTP/2 with prior knowledge: preface and an empty SETTINGS frame, then nothing.
    let mut h2 = TcpStream::connect(addr_of(&served)).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let (got, closed) = read_to_close(&mut h2).await;
    let types = frame_types(&got);
    assert_eq!(
        types.first(),
        Some(&4),
        "the server speaks h2c (SETTINGS first): {got:?}"
    );
    assert!(types.contains(&7), "GOAWAY before closing: {types:?}");
    assert!(closed, "an idle HTTP/2 connection is closed");
    assert_eq!(served.terminate(), Some(0));
}

/// The types of the HTTP/2 frames in `bytes` (9-byte headers, 24-bit lengths).
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        out.push(bytes[at + 3]);
        at += 9 + len;
    }
    out
}

/// A keep-alive connection that made one request (so it is surely accepted).
async fn open_connection(served: &Served) -> TcpStream {
    let mut s = TcpStream::connect(addr_of(served)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: tap\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(CLOSE_BOUND, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_one_more_and_frees_a_slot_on_close() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let served = tap.serve_with(&[("TAP_MAX_CONNECTIONS", "2")]);
    let first = open_connection(&served).await;
    let _second = open_connection(&served).await;

    // A third connection is answered 503 too_many_connections (or just closed).
    let mut third = TcpStream::connect(addr_of(&served)).await.unwrap();
    let (got, closed) = read_to_close(&mut third).await;
    let got = String::from_utf8_lossy(&got);
    assert!(closed, "the refused connection is closed");
    assert!(
        got.is_empty()
            || (got.starts_with("HTTP/1.1 503") && got.contains("\"too_many_connections\"")),
        "{got}"
    );
    assert!(!got.contains("200 OK"), "{got}");

    // Closing one frees its slot.
    drop(first);
    let ok = eventually(100, Duration::from_millis(100), || async {
        let r = http_client()
            .get(format!("{}/health", served.url))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "a slot freed by a closed connection is reused"
    );
    assert_eq!(served.terminate(), Some(0));
}

/// A burst of wrong passwords sent at once all pass the limiter's first look
/// before any failure is counted; each attempt is asked again when its turn to
/// check a password comes, so a right password queued behind the burst is
/// refused like any later attempt instead of being the burst's lucky guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_password_queued_behind_a_burst_of_failures_is_refused() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let served = std::sync::Arc::new(tap.serve());
    let owner = init["owner_email"].as_str().unwrap().to_owned();
    let password = init["owner_password"].as_str().unwrap().to_owned();
    let attacker = http_client_from("127.0.0.1");
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (served, attacker, owner) = (served.clone(), attacker.clone(), owner.clone());
        burst.spawn(async move {
            served
                .login_from(&attacker, &owner, "wrong-password", &[])
                .await
                .status()
                .as_u16()
        });
    }
    // Once the first wrong password has been checked, the rest of the burst
    // waits for the password checks ahead of the right one.
    let first = burst.join_next().await.unwrap().unwrap();
    let (s, _, v) = json_of(served.login_from(&attacker, &owner, &password, &[]).await).await;
    assert_error(s, &v, 429, "rate_limited");
    let mut answers = vec![first];
    while let Some(status) = burst.join_next().await {
        answers.push(status.unwrap());
    }
    let failed = answers.iter().filter(|s| **s == 401).count();
    assert!(
        answers.iter().all(|s| *s == 401 || *s == 429),
        "{answers:?}"
    );
    assert!(
        failed <= 10,
        "at most the limit is answered as a failure: {answers:?}"
    );
    // Another address still signs in.
    let owner_client = http_client_from("127.0.0.2");
    let (s, _, v) = json_of(
        served
            .login_from(&owner_client, &owner, &password, &[])
            .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
}
