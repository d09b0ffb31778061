//! Inline OAuth 2 token flows (SPEC §6.3) end to end through the real `tap`
//! binary, against a loopback fake token endpoint that counts its calls:
//! one token call for concurrent requests, a new one after expiry (a token
//! valid for less than the renewal margin is never reused, so no test waits
//! on a clock), rotated refresh tokens persisted across a restart, minted
//! tokens redacted from answers, and endpoint failures answered 502
//! `token_endpoint_error` with nothing forwarded; no token call for a
//! request that is refused, waits for a human or is denied, and a rotated
//! refresh token that leaves approvals pending on the credential standing.
//!
//! Every wait is bounded; nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tap_testkit::{FakeTokenEndpoint, FakeUpstream, Served, TapHome, TokenReply, eventually};

const CLIENT_SECRET: &str = "client-secret-5d8e1f2a9c";
const REFRESH: &str = "1//refresh-token-original-77ab";
const ROTATED: &str = "1//refresh-token-rotated-99cd";
const MINTED: &str = "ya29.minted-access-token-4f1e";
const ADMIN_REFRESH: &str = "1//refresh-token-admin-set-31ef";

/// Loopback token endpoints are private addresses: allowed explicitly.
const ALLOW: (&str, &str) = ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1");

fn refresh_bundle(token_url: Option<&str>) -> String {
    bundle_with(REFRESH, token_url)
}

fn bundle_with(refresh_token: &str, token_url: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "client_id": "client-id.apps.example",
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
    });
    if let Some(u) = token_url {
        v["token_url"] = u.into();
    }
    v.to_string()
}

/// A deployment with credential `g` (the given value) bound to the upstream
/// and agent `bot` granted it.
fn setup(up: &FakeUpstream, value: &str) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("g", value, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "g"]);
    (tap, key)
}

/// A write (which the gated team default sends to a human) to `path` on
/// credential `cred`, with `Prefer: respond-async` when `wait` is false.
async fn write(
    served: &Served,
    key: &str,
    cred: &str,
    target: &str,
    wait: bool,
) -> tap_testkit::Reply {
    let mut f = served
        .forward(key)
        .credential(cred)
        .target(target)
        .method("POST")
        .body("{}");
    if !wait {
        f = f.header("Prefer", "respond-async");
    }
    f.send().await
}

/// A pending write to `path` on `g`; its txn id.
async fn pending_write(served: &Served, key: &str, up: &FakeUpstream, path: &str) -> String {
    let r = write(served, key, "g", &format!("{}{path}", up.base()), false).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["txn_id"].as_str().unwrap().to_owned()
}

/// `tap approve|deny TXN --json` as the owner (off the runtime's thread).
fn decide(tap: &TapHome, verb: &str, txn: &str) {
    let v = tokio::task::block_in_place(|| tap.json(&[verb, txn]));
    assert_eq!(v["txn_id"], txn, "{v}");
}

/// Upstream requests whose path starts with `path`.
fn seen(up: &FakeUpstream, path: &str) -> Vec<tap_testkit::Recorded> {
    up.requests()
        .into_iter()
        .filter(|r| r.uri.starts_with(path))
        .collect()
}

async fn get_echo(served: &Served, key: &str, up: &FakeUpstream) -> tap_testkit::Reply {
    served
        .forward(key)
        .credential("g")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await
}

#[tokio::test]
async fn concurrent_requests_share_one_token_call_and_the_minted_token_is_redacted() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant(MINTED, 3600)).await;
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    let shown = tap.json(&["cred", "show", "g"]);
    assert_eq!(shown["value_shape"], "oauth2_refresh_token", "{shown}");
    for s in [CLIENT_SECRET, REFRESH] {
        assert!(!shown.to_string().contains(s), "{shown}");
    }
    let served = tap.serve_with(&[ALLOW]);
    // The endpoint holds its answer: every request arrives while the first
    // token call is open.
    tokens.hold(true);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, key, target) = (
            served.url.clone(),
            key.clone(),
            format!("{}/echo", up.base()),
        );
        tasks.push(tokio::spawn(async move {
            tap_testkit::http_client()
                .post(format!("{url}/forward"))
                .header("X-TAP-Key", key)
                .header("X-TAP-Credential", "g")
                .header("X-TAP-Target", target)
                .send()
                .await
                .unwrap()
        }));
    }
    eventually(200, Duration::from_millis(25), || async {
        (tokens.count() >= 1).then_some(())
    })
    .await
    .expect("a token call");
    tokens.hold(false);
    for t in tasks {
        let r = tap_testkit::Reply::read(t.await.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = format!("{:?} {}", r.headers, r.text());
        assert!(!text.contains(MINTED), "minted token echoed: {text}");
        assert!(r.text().contains("[REDACTED:g.token]"), "{}", r.text());
    }
    assert_eq!(
        tokens.count(),
        1,
        "one token call for all concurrent requests"
    );
    assert_eq!(
        tokens.field(0, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(tokens.field(0, "refresh_token").as_deref(), Some(REFRESH));
    assert_eq!(
        tokens.field(0, "client_secret").as_deref(),
        Some(CLIENT_SECRET)
    );
    // The upstream got the minted token, never the bundle's secrets.
    let seen = up.requests();
    assert_eq!(seen.len(), 8);
    for rec in &seen {
        assert_eq!(
            rec.header("authorization"),
            Some(format!("Bearer {MINTED}"))
        );
        let all = format!("{:?} {}", rec.headers, String::from_utf8_lossy(&rec.body));
        assert!(
            !all.contains(REFRESH) && !all.contains(CLIENT_SECRET),
            "{all}"
        );
    }
    // Cached: another request makes no call.
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 1);
    // The minted token is in no audit row.
    let logs = serde_json::to_string(&tap.logs(&[])).unwrap();
    assert!(!logs.contains(MINTED) && !logs.contains(REFRESH), "{logs}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_and_a_rotated_refresh_token_survives_a_restart() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant("ya29.second-token-aa", 3600)).await;
    // The first token lives 30 s, inside the renewal margin: expired for the
    // next request. Its answer also rotates the refresh token.
    tokens.then(TokenReply::Grant {
        access_token: "ya29.first-token-bb".into(),
        expires_in: 30,
        refresh_token: Some(ROTATED.into()),
    });
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    let served = tap.serve_with(&[ALLOW]);
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 1);
    assert_eq!(tokens.field(0, "refresh_token").as_deref(), Some(REFRESH));
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 2, "an expired token is fetched again");
    assert_eq!(
        tokens.field(1, "refresh_token").as_deref(),
        Some(ROTATED),
        "the rotated refresh token is the one used next"
    );
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 2, "a fresh token is reused");
    let auths: Vec<_> = up
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(
        auths,
        [
            "Bearer ya29.first-token-bb",
            "Bearer ya29.second-token-aa",
            "Bearer ya29.second-token-aa"
        ]
    );
    served.terminate();
    // Persisted sealed: never in plain text in the store.
    let stored = tap.store_bytes().await;
    assert!(
        !stored
            .windows(ROTATED.len())
            .any(|w| w == ROTATED.as_bytes()),
        "rotated refresh token stored in plain text"
    );
    assert!(
        !stored
            .windows(b"ya29.second-token-aa".len())
            .any(|w| w == b"ya29.second-token-aa"),
        "access token stored in plain text"
    );
    // A new process uses the token the store shares (sealed) while it is
    // fresh: no token call.
    let served = tap.serve_with(&[ALLOW]);
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 2);
    assert_eq!(
        up.requests()
            .last()
            .unwrap()
            .header("authorization")
            .as_deref(),
        Some("Bearer ya29.second-token-aa")
    );
}

#[tokio::test]
async fn token_endpoint_failures_are_502_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::Status(500)).await;
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    let served = tap.serve_with(&[ALLOW, ("TAP_FORWARD_TIMEOUT_SECS", "1")]);
    let r = get_echo(&served, &key, &up).await;
    let body = r.assert_refused(502, "token_endpoint_error");
    assert!(
        !r.text().contains(CLIENT_SECRET) && !r.text().contains(REFRESH),
        "{body}"
    );
    assert_eq!(tokens.count(), 1);
    // A stalled endpoint ends at the forward timeout, the same way.
    tokens.always(TokenReply::Stall);
    get_echo(&served, &key, &up)
        .await
        .assert_refused(502, "token_endpoint_error");
    assert_eq!(tokens.count(), 2);
    // A failure is not cached: the next good answer serves (one inside the
    // renewal margin, so no later process is served from the shared cache).
    tokens.always(TokenReply::grant(MINTED, 30));
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(up.count(), 1, "nothing forwarded while the endpoint failed");
    // The proxy folds its audit spool into the store within moments: wait
    // for all three rows rather than read a partial trail.
    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tap.logs(&[]);
        (rows.len() >= 3).then_some(rows)
    })
    .await
    .expect("three audit rows");
    let codes: Vec<_> = rows.iter().map(|r| r["error_code"].clone()).collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| c.as_str() == Some("token_endpoint_error"))
            .count(),
        2,
        "{rows:?}"
    );
    served.terminate();

    // Without TAP_PRIVATE_ALLOWLIST the loopback endpoint is never called.
    let served = tap.serve();
    let r = get_echo(&served, &key, &up).await;
    let body = r.assert_refused(502, "token_endpoint_error");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("TAP_PRIVATE_ALLOWLIST"),
        "{body}"
    );
    assert_eq!(tokens.count(), 3);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn client_credentials_and_the_default_refresh_endpoint_are_configurable() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant(MINTED, 3600)).await;
    let (tap, key) = setup(&up, &refresh_bundle(None));
    let cc = serde_json::json!({
        "client_id": "svc",
        "client_secret": CLIENT_SECRET,
        "token_url": tokens.url(),
        "scope": "read write",
    })
    .to_string();
    tap.add_credential("cc", &cc, &["--allowed-host", &up.base()]);
    tap.ok(&["agent", "grant", "bot", "cc"]);
    let shown = tap.json(&["cred", "show", "cc"]);
    assert_eq!(shown["value_shape"], "oauth2_client_credentials", "{shown}");
    // Bundles without token_url go to Google's endpoint, overridable for tests.
    let served = tap.serve_with(&[ALLOW, ("TAP_GOOGLE_TOKEN_URL", &tokens.url())]);
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.field(0, "refresh_token").as_deref(), Some(REFRESH));
    let r = served
        .forward(&key)
        .credential("cc")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("[REDACTED:cc.token]"), "{}", r.text());
    assert_eq!(tokens.count(), 2, "each credential has its own token");
    assert_eq!(
        tokens.field(1, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(tokens.field(1, "scope").as_deref(), Some("read write"));
    assert_eq!(tokens.field(1, "refresh_token"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_waiting_or_denied_request_makes_no_token_call() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant(MINTED, 3600)).await;
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    // `nobody`: its policy names no approver who exists, so a write is
    // refused at once (503 approval_unavailable).
    tap.add_credential(
        "nobody",
        &refresh_bundle(Some(&tokens.url())),
        &["--allowed-host", &up.base()],
    );
    tap.ok(&["agent", "grant", "bot", "nobody"]);
    tap.ok(&[
        "policy",
        "set",
        "nobody",
        "--allowed-approvers",
        "ghost@y.test",
    ]);
    let served = tap.serve_with(&[ALLOW]);
    let r = write(
        &served,
        &key,
        "nobody",
        &format!("{}/echo/n", up.base()),
        true,
    )
    .await;
    r.assert_refused(503, "approval_unavailable");
    assert_eq!(tokens.count(), 0, "a refused request fetched a token");

    // Pending, then denied: no token call at any point.
    let txn = pending_write(&served, &key, &up, "/echo/denied").await;
    assert_eq!(
        tokens.count(),
        0,
        "a request waiting for a human fetched a token"
    );
    decide(&tap, "deny", &txn);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "denied", "{v}");
    assert_eq!(tokens.count(), 0, "a denied request fetched a token");
    served.terminate();

    // Waited for until it expired (sync: 504): no token call either.
    let served = tap.serve_with(&[ALLOW, ("TAP_APPROVAL_TIMEOUT_SECS", "1")]);
    let r = write(
        &served,
        &key,
        "g",
        &format!("{}/echo/expired", up.base()),
        true,
    )
    .await;
    r.assert_refused(504, "approval_timed_out");
    assert_eq!(tokens.count(), 0, "an expired request fetched a token");
    assert!(seen(&up, "/echo/").is_empty(), "nothing was forwarded");

    // An allowed request: exactly one.
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 1);
    assert_eq!(
        up.requests().last().unwrap().header("authorization"),
        Some(format!("Bearer {MINTED}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_leaves_a_pending_approval_standing_and_an_admin_value_does_not() {
    const AFTER: &str = "ya29.after-rotation-token-cc";
    const ADMIN: &str = "ya29.admin-value-token-dd";
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant(AFTER, 3600)).await;
    // The first token lives inside the renewal margin (it serves one
    // request) and its answer rotates the refresh token.
    tokens.then(TokenReply::Grant {
        access_token: "ya29.first-token-bb".into(),
        expires_in: 30,
        refresh_token: Some(ROTATED.into()),
    });
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    let served = tap.serve_with(&[ALLOW]);
    let txn = pending_write(&served, &key, &up, "/echo/approved").await;
    // Meanwhile an auto-allowed read: the endpoint rotates the refresh token,
    // which is persisted into the credential's value.
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 1);
    assert_eq!(tokens.field(0, "refresh_token").as_deref(), Some(REFRESH));
    // No human changed the credential: the approved write is forwarded,
    // with a token the rotated refresh token bought.
    decide(&tap, "approve", &txn);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(v["response"]["status"], 200, "{v}");
    assert_eq!(tokens.count(), 2);
    assert_eq!(tokens.field(1, "refresh_token").as_deref(), Some(ROTATED));
    let approved = seen(&up, "/echo/approved");
    assert_eq!(approved.len(), 1);
    assert_eq!(
        approved[0].header("authorization"),
        Some(format!("Bearer {AFTER}"))
    );

    // An admin sets a value while a write is pending: that is a change.
    let txn = pending_write(&served, &key, &up, "/echo/changed").await;
    let out = tokio::task::block_in_place(|| {
        tap.run_stdin(
            &["cred", "set-value", "g", "--value-stdin"],
            bundle_with(ADMIN_REFRESH, Some(&tokens.url())).as_bytes(),
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    decide(&tap, "approve", &txn);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "credential_changed", "{v}");
    assert!(seen(&up, "/echo/changed").is_empty());
    assert_eq!(tokens.count(), 2, "no token call for a refused approval");
    // The admin's value starts afresh: neither the cached access token nor
    // the rotated refresh token of the old value is used.
    tokens.then(TokenReply::grant(ADMIN, 3600));
    assert_eq!(get_echo(&served, &key, &up).await.status, 200);
    assert_eq!(tokens.count(), 3);
    assert_eq!(
        tokens.field(2, "refresh_token").as_deref(),
        Some(ADMIN_REFRESH)
    );
    assert_eq!(
        up.requests().last().unwrap().header("authorization"),
        Some(format!("Bearer {ADMIN}"))
    );
    let logs = serde_json::to_string(&tap.logs(&[])).unwrap();
    for s in [REFRESH, ROTATED, ADMIN_REFRESH, AFTER, ADMIN] {
        assert!(!logs.contains(s), "{s} in the audit log");
    }
}

/// A grant's use is claimed before the token call; when the token endpoint
/// fails nothing is forwarded, so the use is given back and the next try
/// still runs under the grant.
#[tokio::test]
async fn a_failed_token_call_gives_the_grant_use_back() {
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::Status(500)).await;
    let (tap, key) = setup(&up, &refresh_bundle(Some(&tokens.url())));
    let granted = tap.json(&[
        "grant",
        "create",
        "g",
        "--methods",
        "POST",
        "--route",
        "/echo/granted",
        "--ttl-minutes",
        "5",
        "--max-uses",
        "1",
    ]);
    assert_eq!(granted["max_uses"], 1, "{granted}");
    let served = tap.serve_with(&[ALLOW]);
    let target = format!("{}/echo/granted", up.base());
    write(&served, &key, "g", &target, false)
        .await
        .assert_refused(502, "token_endpoint_error");
    assert_eq!(up.count(), 0);
    tokens.always(TokenReply::grant(MINTED, 3600));
    // The one use is still there: forwarded at once, no human asked.
    let r = write(&served, &key, "g", &target, false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.count(), 1);
    // Now it is spent: the next write waits for a human.
    let r = write(&served, &key, "g", &target, false).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(up.count(), 1);
}
