//! Two `tap serve` replicas on one PostgreSQL database (SPEC §9): an approval
//! decided on one reaches the request waiting on the other, a change made on
//! one is enforced by the other, and requests through both leave one
//! verifiable audit chain; a passkey ceremony begun on one finishes on the
//! other. Each test runs in a fresh schema of `DATABASE_URL`;
//! without it the tests are skipped with a message.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tap_testkit::{
    FakeTokenEndpoint, FakeUpstream, Reply, Served, SoftPasskey, TapHome, TempPg, TokenReply,
    closed_port, eventually, http_client, http_client_from,
};

const SECRET: &str = "s3cr3t-value-for-replicas";
const TRIES: u32 = 100;
const EVERY: Duration = Duration::from_millis(50);

/// A home on `pg`, not yet initialised.
fn home_on(pg: &TempPg) -> TapHome {
    TapHome::new(env!("CARGO_BIN_EXE_tap")).env("TAP_DATABASE_URL", &pg.url())
}

/// A home on `pg` whose synchronous approvals wait long enough for a test to
/// decide them, not yet initialised.
fn gated_home_on(pg: &TempPg) -> TapHome {
    home_on(pg).env("TAP_SYNC_APPROVAL_WAIT_SECS", "60")
}

/// A deployment on `pg` with credential `echo` and agent `bot`, served by two
/// replicas; returns the home, the admin token, the agent key and both.
async fn two_replicas(pg: &TempPg, up: &FakeUpstream) -> (TapHome, String, String, Served, Served) {
    let tap = gated_home_on(pg);
    let init = tap.init();
    let admin = init["admin_token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let one = tap.serve();
    let two = tap.serve();
    (tap, admin, key, one, two)
}

async fn admin_post(served: &Served, admin: &str, path: &str) -> (u16, Value) {
    let r = http_client()
        .post(format!("{}{path}", served.url))
        .bearer_auth(admin)
        .send()
        .await
        .expect("admin API");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn admin_get(served: &Served, admin: &str, path: &str) -> Value {
    http_client()
        .get(format!("{}{path}", served.url))
        .bearer_auth(admin)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

/// Approves `txn` through `served`'s admin API.
async fn approve(served: &Served, admin: &str, txn: &str) {
    let (status, body) = admin_post(served, admin, &format!("/team/approvals/{txn}/approve")).await;
    assert_eq!(status, 200, "{body}");
}

/// The first pending approval `served` lists, once there is one.
async fn first_pending_txn(served: &Served, token: &str) -> String {
    eventually(TRIES, EVERY, || async {
        let list = admin_get(served, token, "/team/approvals?status=pending").await;
        let first = list
            .as_array()
            .or_else(|| list["approvals"].as_array())
            .and_then(|a| a.first().cloned())?;
        first["txn_id"].as_str().map(str::to_owned)
    })
    .await
    .expect("the held request never showed on the other replica")
}

/// A POST of `body` through `served` that waits for approval, in a task.
fn hold(
    served: &Served,
    key: &str,
    credential: &str,
    target: &str,
    body: &str,
) -> tokio::task::JoinHandle<Reply> {
    tokio::spawn(
        served
            .forward(key)
            .credential(credential)
            .target(target)
            .method("POST")
            .body(body.to_owned())
            .send(),
    )
}

/// The answer a held request gets once decided.
async fn answer_of(waiting: tokio::task::JoinHandle<Reply>) -> Reply {
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the held request never answered")
        .expect("task")
}

/// A POST of `body` with credential `echo` held asynchronously on `served`:
/// the 202's transaction id.
async fn hold_async(served: &Served, key: &str, target: &str, body: &str) -> String {
    let r = served
        .forward(key)
        .credential("echo")
        .target(target)
        .method("POST")
        .header("Prefer", "respond-async")
        .body(body.to_owned())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["txn_id"].as_str().expect("txn").to_owned()
}

/// How many requests the upstream got whose URI ends with `suffix`.
fn forwarded_to(up: &FakeUpstream, suffix: &str) -> usize {
    up.requests()
        .iter()
        .filter(|q| q.uri.ends_with(suffix))
        .count()
}

/// Stops both replicas, each of which must exit cleanly.
fn stop_both(one: Served, two: Served) {
    assert_eq!(one.terminate(), Some(0));
    assert_eq!(two.terminate(), Some(0));
}

/// Waits (`tries` times) for `served`'s log to contain `line`.
async fn log_shows(served: &Served, line: &str, tries: u32) -> Option<()> {
    eventually(tries, EVERY, || async {
        served.log().contains(line).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_on_one_replica_is_approved_through_the_other() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (_tap, admin, key, one, two) = two_replicas(&pg, &up).await;
    let target = format!("{}/echo/held", up.base());
    // A write in the gated default team waits for approval on replica one.
    let waiting = hold(&one, &key, "echo", &target, "held body");
    // Replica two lists it (from the shared database) and approves it.
    let txn = first_pending_txn(&two, &admin).await;
    assert!(!waiting.is_finished(), "the request must wait for approval");
    approve(&two, &admin, &txn).await;
    let decided = Instant::now();

    let r = answer_of(waiting).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        decided.elapsed() < Duration::from_secs(5),
        "the decision took {:?} to reach the other replica",
        decided.elapsed()
    );
    assert_eq!(r.json()["body"], "held body");
    let forwarded = forwarded_to(&up, "/echo/held");
    assert_eq!(forwarded, 1, "forwarded exactly once across both replicas");
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_disabled_on_one_replica_is_refused_by_the_other() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (_tap, admin, key, one, two) = two_replicas(&pg, &up).await;
    let get = |s: &Served| {
        s.forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/r", up.base()))
            .send()
    };
    assert_eq!(get(&one).await.status, 200);
    let (status, body) = admin_post(&two, &admin, "/team/agents/bot/disable").await;
    assert_eq!(status, 200, "{body}");
    let disabled = Instant::now();
    let refused = eventually(TRIES, EVERY, || async {
        let r = get(&one).await;
        (r.status == 401).then_some(r)
    })
    .await
    .expect("replica one kept serving a disabled agent");
    let took = disabled.elapsed();
    assert_eq!(refused.error_code().as_deref(), Some("invalid_tap_key"));
    // SPEC: within 1 s; the bound allows for a loaded test machine.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_both_replicas_leave_one_verifiable_chain() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (tap, _admin, key, one, two) = two_replicas(&pg, &up).await;
    const EACH: usize = 20;
    let mut calls = Vec::new();
    for (i, served) in [&one, &two].into_iter().cycle().take(2 * EACH).enumerate() {
        calls.push(
            served
                .forward(&key)
                .credential("echo")
                .target(&format!("{}/echo/{i}", up.base()))
                .send(),
        );
    }
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").status, 200);
    }
    // Finish rows are written after the answers: every state verifies, and
    // soon there is a start and a finish row per request, in one chain.
    let verified = eventually(TRIES, EVERY, || async {
        let out = tokio::task::block_in_place(|| tap.run(&["audit", "verify", "--json"]));
        let v: Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["ok"], true, "{v}");
        (v["rows"] == 4 * EACH).then_some(v)
    })
    .await;
    assert!(verified.is_some(), "not every finish row arrived");
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_of_n_holds_across_both_replicas() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (tap, _admin, _key, one, two) = two_replicas(&pg, &up).await;
    const LIMIT: usize = 4;
    let limited = tap.agent(
        "limited",
        &["--credential", "echo", "--rate-limit", &LIMIT.to_string()],
    );
    // Both replicas know the new agent before counting starts.
    for served in [&one, &two] {
        let known = eventually(TRIES, EVERY, || async {
            let r = served.get("/agent/bootstrap", Some(&limited)).await;
            (r.status == 200).then_some(())
        })
        .await;
        assert!(known.is_some(), "{} never saw the agent", served.url);
    }
    let mut statuses = Vec::new();
    for i in 0..3 * LIMIT {
        let served = if i % 2 == 0 { &one } else { &two };
        let r = served
            .forward(&limited)
            .credential("echo")
            .target(&format!("{}/echo/limited", up.base()))
            .send()
            .await;
        if r.status == 429 {
            assert_eq!(r.error_code().as_deref(), Some("rate_limited"));
        }
        statuses.push(r.status);
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(allowed, LIMIT, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2 * LIMIT,
        "{statuses:?}"
    );
    stop_both(one, two);
}

/// A deployment on `pg` served by two replicas; returns the home, `tap
/// init`'s answer (owner e-mail and password) and both.
fn two_bare_replicas(pg: &TempPg) -> (TapHome, Value, Served, Served) {
    let tap = home_on(pg);
    let init = tap.init();
    let one = tap.serve();
    let two = tap.serve();
    (tap, init, one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_spread_over_both_replicas_share_one_limit() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let (_tap, init, one, two) = two_bare_replicas(&pg);
    let owner = init["owner_email"].as_str().expect("owner e-mail");
    let password = init["owner_password"].as_str().expect("owner password");
    let client = http_client();
    // 10 failures from 127.0.0.1, alternating replicas: each one counts.
    for i in 0..10 {
        let served = if i % 2 == 0 { &one } else { &two };
        let r = Reply::read(served.login_from(&client, owner, "wrong", &[]).await).await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.text());
    }
    // The 11th attempt, right password and all, is refused on either replica.
    for served in [&one, &two] {
        let r = Reply::read(served.login_from(&client, owner, password, &[]).await).await;
        r.assert_refused(429, "rate_limited");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=15 * 60).contains(&retry), "{retry}");
    }
    // Another address is not affected, on either replica.
    let owner_client = http_client_from("127.0.0.2");
    for served in [&two, &one] {
        let r = Reply::read(served.login_from(&owner_client, owner, password, &[]).await).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_agent_keys_spread_over_both_replicas_share_one_limit() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let tap = home_on(&pg);
    tap.init();
    let key = tap.agent("bot", &[]);
    let (one, two) = (tap.serve(), tap.serve());
    let bad = "tap_0000000000000000000000000000000000000000000";
    // 20 invalid keys from 127.0.0.1, alternating replicas (the last on two).
    for i in 0..20 {
        let served = if i % 2 == 0 { &one } else { &two };
        served
            .get("/agent/bootstrap", Some(bad))
            .await
            .assert_refused(401, "invalid_tap_key");
    }
    // The 21st is refused on the other replica, and again on both.
    for served in [&one, &two, &one] {
        let r = served.get("/agent/bootstrap", Some(bad)).await;
        r.assert_refused(429, "rate_limited");
        assert!(r.header("retry-after").is_some(), "{}", r.text());
    }
    // /forward is limited alike.
    one.forward(bad)
        .credential("echo")
        .target("http://api.example.test/x")
        .send()
        .await
        .assert_refused(429, "rate_limited");
    // A valid key from the same address still works on both.
    for served in [&one, &two] {
        let r = served.get("/agent/bootstrap", Some(&key)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Another address is not affected.
    let other = Reply::read(
        http_client_from("127.0.0.3")
            .get(format!("{}/agent/bootstrap", two.url))
            .header("X-TAP-Key", bad)
            .send()
            .await
            .expect("bootstrap"),
    )
    .await;
    other.assert_refused(401, "invalid_tap_key");
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_polls_telegram_and_another_takes_over_when_it_dies() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    const POLLS: &str = "this replica polls Telegram";
    let tg = tap_testkit::FakeTelegram::start().await;
    let tap = home_on(&pg);
    tap.init();
    let api = tg.base();
    let env = [
        ("TELEGRAM_BOT_TOKEN", "123456:replica-test-token"),
        ("TELEGRAM_API_URL", api.as_str()),
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
    ];
    let one = tap.serve_with(&env);
    let first = log_shows(&one, POLLS, TRIES).await;
    assert!(
        first.is_some(),
        "the first replica never polled: {}",
        one.log()
    );
    let two = tap.serve_with(&env);
    assert!(
        !two.log().contains(POLLS),
        "two replicas poll: {}",
        two.log()
    );
    // The poller dies without a word (SIGKILL): its lock goes with its connection.
    one.kill();
    let took_over = log_shows(&two, POLLS, 200).await;
    assert!(took_over.is_some(), "nobody took over: {}", two.log());
    assert_eq!(two.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_an_approval_is_pending_loses_nothing() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (_tap, admin, key, one, two) = two_replicas(&pg, &up).await;
    let txn = hold_async(
        &one,
        &key,
        &format!("{}/echo/async", up.base()),
        "async body",
    )
    .await;
    // The replica that took the request dies (SIGKILL).
    one.kill();
    approve(&two, &admin, &txn).await;
    // The agent polls the surviving replica and gets the upstream's answer.
    let done = eventually(TRIES * 4, EVERY, || async {
        let p = two
            .get(&format!("/agent/approvals/{txn}"), Some(&key))
            .await
            .json();
        (p["status"] == "forwarded").then_some(p)
    })
    .await
    .expect("the approved request was never forwarded by the surviving replica");
    assert_eq!(done["response"]["status"], 200, "{done}");
    let forwarded = forwarded_to(&up, "/echo/async");
    assert_eq!(forwarded, 1);
    assert_eq!(two.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_started_at_once_on_an_empty_database_share_one_deployment() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let master = "6b".repeat(32);
    let tap = home_on(&pg).env("TAP_MASTER_KEY", &master);
    // Both first starts race to initialise: one does, the other waits and opens.
    let (one, two) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| tap.serve());
            let b = s.spawn(|| tap.serve());
            (
                a.join().expect("replica one"),
                b.join().expect("replica two"),
            )
        })
    });
    let created = [one.log(), two.log()]
        .iter()
        .filter(|l| l.contains("TAP initialised in"))
        .count();
    assert_eq!(
        created,
        1,
        "exactly one replica initialised:\n{}\n---\n{}",
        one.log(),
        two.log()
    );
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    // Same keys everywhere: the agent key made by the CLI works on both.
    for served in [&one, &two] {
        let ok = eventually(TRIES, EVERY, || async {
            let r = served
                .forward(&key)
                .credential("echo")
                .target(&format!("{}/echo/both", up.base()))
                .send()
                .await;
            (r.status == 200).then_some(())
        })
        .await;
        assert!(
            ok.is_some(),
            "{} refused the agent: {}",
            served.url,
            served.log()
        );
    }
    let verified = eventually(TRIES, EVERY, || async {
        let out = tokio::task::block_in_place(|| tap.run(&["audit", "verify", "--json"]));
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["ok"] == true && v["rows"] == 4).then_some(v)
    })
    .await;
    assert!(verified.is_some(), "the chain did not verify with 4 rows");
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leading_replica_edits_telegram_messages() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    const POLLS: &str = "this replica polls Telegram";
    // The two replicas call the Bot API with different tokens, so the fake
    // tells whose calls it got.
    const LEAD_TOKEN: &str = "123456:replica-one-token";
    const OTHER_TOKEN: &str = "123456:replica-two-token";
    let up = FakeUpstream::start().await;
    let tg = tap_testkit::FakeTelegram::start().await;
    let (_tap, admin, key, one, two) = {
        let tap = home_on(&pg);
        let init = tap.init();
        let admin = init["admin_token"].as_str().expect("admin").to_owned();
        tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
        let key = tap.agent("bot", &["--credential", "echo"]);
        let api = tg.base();
        let one_env = [
            ("TELEGRAM_BOT_TOKEN", LEAD_TOKEN),
            ("TELEGRAM_API_URL", api.as_str()),
            ("TELEGRAM_CHAT_ID", "-100200300"),
            ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
        ];
        let mut two_env = one_env;
        two_env[0].1 = OTHER_TOKEN;
        let one = tap.serve_with(&one_env);
        let leads = log_shows(&one, POLLS, TRIES).await;
        assert!(leads.is_some(), "replica one never led: {}", one.log());
        let two = tap.serve_with(&two_env);
        (tap, admin, key, one, two)
    };

    // The request is held on replica two, which sends the message itself...
    let target = format!("{}/echo/telegram-edit", up.base());
    let txn = hold_async(&two, &key, &target, "held").await;
    let sent = eventually(TRIES, EVERY, || async {
        tg.calls_of("sendMessage").into_iter().find(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("telegram-edit"))
        })
    })
    .await
    .unwrap_or_else(|| panic!("no message sent: {:?}", tg.calls()));
    assert_eq!(sent.token, OTHER_TOKEN);

    // ...and is approved there too, which wakes replica two's own channel.
    approve(&two, &admin, &txn).await;
    let shown = eventually(TRIES * 2, EVERY, || async {
        tg.messages()
            .into_iter()
            .find(|m| m.text.contains("telegram-edit") && m.text.contains("forwarded."))
    })
    .await
    .unwrap_or_else(|| panic!("the message never showed the outcome: {:?}", tg.calls()));
    assert!(shown.buttons.is_empty(), "{shown:?}");

    // Every edit came from the leading replica, none from the one that decided.
    let edits = tg.calls_of("editMessageText");
    assert!(!edits.is_empty());
    assert!(
        edits.iter().all(|c| c.token == LEAD_TOKEN),
        "a replica that does not lead edited: {edits:?}"
    );
    stop_both(one, two);
}

/// An OAuth 2 access token is fetched once for concurrent requests through
/// both replicas, and once more after it expires; the refresh token the
/// first call rotated is what the other replica sends next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_token_is_fetched_once_across_replicas_and_once_more_after_expiry() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    const REFRESH: &str = "1//replica-refresh-original";
    const ROTATED: &str = "1//replica-refresh-rotated";
    const FIRST: &str = "ya29.replica-first-token";
    const SECOND: &str = "ya29.replica-second-token";
    let up = FakeUpstream::start().await;
    let tokens = FakeTokenEndpoint::start(TokenReply::grant(SECOND, 3600)).await;
    // Usable for 3 s (the renewal margin is 60 s): it expires during the test.
    tokens.then(TokenReply::Grant {
        access_token: FIRST.into(),
        expires_in: 63,
        refresh_token: Some(ROTATED.into()),
    });
    let bundle = serde_json::json!({
        "client_id": "client-id.apps.example",
        "client_secret": "client-secret-replicas",
        "refresh_token": REFRESH,
        "token_url": tokens.url(),
    })
    .to_string();
    let tap = home_on(&pg);
    tap.init();
    tap.add_credential("g", &bundle, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "g"]);
    let allow = [("TAP_PRIVATE_ALLOWLIST", "127.0.0.1")];
    let one = tap.serve_with(&allow);
    let two = tap.serve_with(&allow);
    let send = |served: &Served| {
        let (url, key, target) = (
            served.url.clone(),
            key.clone(),
            format!("{}/echo", up.base()),
        );
        tokio::spawn(async move {
            let r = http_client()
                .post(format!("{url}/forward"))
                .header("X-TAP-Key", key)
                .header("X-TAP-Credential", "g")
                .header("X-TAP-Target", target)
                .send()
                .await
                .expect("forward");
            Reply::read(r).await
        })
    };
    // Replica one's token call is held open while requests reach both.
    tokens.hold(true);
    let mut tasks = vec![send(&one)];
    eventually(TRIES, EVERY, || async {
        (tokens.count() >= 1).then_some(())
    })
    .await
    .expect("a token call");
    for i in 0..8 {
        tasks.push(send(if i % 2 == 0 { &two } else { &one }));
    }
    tokens.hold(false);
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(tokens.count(), 1, "one token call across both replicas");
    assert_eq!(tokens.field(0, "refresh_token").as_deref(), Some(REFRESH));
    let seen = up.requests();
    assert_eq!(seen.len(), 9);
    for rec in &seen {
        assert_eq!(rec.header("authorization"), Some(format!("Bearer {FIRST}")));
    }
    // Once it expires, replica two makes the one new call, with the refresh
    // token replica one rotated.
    let renewed = eventually(200, EVERY, || async {
        let r = send(&two).await.expect("task");
        assert_eq!(r.status, 200, "{}", r.text());
        (tokens.count() >= 2).then_some(())
    })
    .await;
    assert!(renewed.is_some(), "the first token never expired");
    assert_eq!(tokens.field(1, "refresh_token").as_deref(), Some(ROTATED));
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(send(if i % 2 == 0 { &one } else { &two }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(tokens.count(), 2, "one more token call after expiry");
    let last = up.requests();
    for rec in &last[last.len() - 8..] {
        assert_eq!(
            rec.header("authorization"),
            Some(format!("Bearer {SECOND}"))
        );
    }
    // Neither token nor refresh token is stored or logged in the clear.
    let logs = serde_json::to_string(&tap.logs(&[])).expect("logs");
    for s in [FIRST, SECOND, REFRESH, ROTATED] {
        assert!(!logs.contains(s), "{s} in the audit log");
    }
    stop_both(one, two);
}

/// Two replicas with WebAuthn on one public origin, as behind a load
/// balancer: credential `vault` requires a passkey. Returns the home, the
/// owner's session (valid on both), the agent key, the origin and both.
async fn passkey_replicas(
    pg: &TempPg,
    up: &FakeUpstream,
) -> (TapHome, Value, String, String, Served, Served) {
    let tap = gated_home_on(pg);
    let init = tap.init();
    tap.add_credential("vault", SECRET, &["--allowed-host", &up.base()]);
    tap.ok(&["policy", "set", "vault", "--require-passkey"]);
    let key = tap.agent("bot", &["--credential", "vault"]);
    // The browser's origin is the balancer's; the replicas listen elsewhere.
    let origin = format!("http://localhost:{}", closed_port());
    let env = [
        ("TAP_WEBAUTHN_RP_ID", "localhost"),
        ("TAP_WEBAUTHN_ORIGIN", origin.as_str()),
    ];
    let one = tap.serve_with(&env);
    let two = tap.serve_with(&env);
    (tap, init, key, origin, one, two)
}

fn owner_of(init: &Value) -> (String, String) {
    (
        init["owner_email"].as_str().expect("owner").to_owned(),
        init["owner_password"]
            .as_str()
            .expect("password")
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_ceremonies_begun_on_one_replica_finish_on_the_other() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (_tap, init, key, origin, one, two) = passkey_replicas(&pg, &up).await;
    let (email, password) = owner_of(&init);
    let session = one.login(&email, &password).await;
    let mut laptop = SoftPasskey::new(&origin);

    // Registration: begun on replica one, finished on replica two.
    laptop.register_on(&one, &two, &session, "laptop").await;

    // A write held on replica one waits for a passkey approval.
    let target = format!("{}/echo/passkey-held", up.base());
    let waiting = hold(&one, &key, "vault", &target, "passkey body");
    let txn = first_pending_txn(&two, &session).await;

    // Approval: the challenge from replica two, the assertion to replica one.
    let options = two
        .post_json(
            &format!("/approve/{txn}/passkey/begin"),
            Some(&session),
            &json!({}),
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.text());
    let assertion = laptop.assert(&options.json()).expect("an assertion");
    let finish = format!("/approve/{txn}/passkey/finish");
    let ok = one.post_json(&finish, Some(&session), &assertion).await;
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), one.log());
    assert_eq!(ok.json()["status"], "approved", "{}", ok.text());
    // The agent gets the upstream's answer; the upstream saw it once.
    let r = answer_of(waiting).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], "passkey body");
    let forwarded = forwarded_to(&up, "/echo/passkey-held");
    assert_eq!(forwarded, 1, "forwarded exactly once across both replicas");
    // The ceremony was taken out once: a replay on either replica finds none.
    for served in [&one, &two] {
        served
            .post_json(&finish, Some(&session), &assertion)
            .await
            .assert_refused(400, "invalid_request");
    }
    assert!(!one.log().contains(SECRET) && !two.log().contains(SECRET));
    stop_both(one, two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_sign_in_begun_on_a_replica_that_dies_finishes_on_another() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let (_tap, init, _key, origin, one, two) = passkey_replicas(&pg, &up).await;
    let (email, password) = owner_of(&init);
    let session = two.login(&email, &password).await;
    let mut laptop = SoftPasskey::new(&origin);
    laptop.register_on(&two, &two, &session, "laptop").await;

    // Begun on replica two, finished on replica one.
    let begin = two
        .post_json("/login/passkey/begin", None, &json!({"email": email}))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.text());
    let options = begin.json();
    let ceremony = options["ceremony"].as_str().expect("ceremony").to_owned();
    let assertion = laptop.assert(&options).expect("an assertion");
    let finish = format!("/login/passkey/finish?ceremony={ceremony}");
    let ok = one.post_json(&finish, None, &assertion).await;
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), one.log());
    let token = ok.json()["session_token"]
        .as_str()
        .expect("session")
        .to_owned();
    assert_eq!(two.get_bearer("/team", &token).await.status, 200);
    // Used up on every replica.
    for served in [&one, &two] {
        served
            .post_json(&finish, None, &assertion)
            .await
            .assert_refused(401, "unauthorized");
    }

    // An unknown e-mail's decoy, begun on one replica and finished on the
    // other, fails like a wrong assertion: the same answer as on one replica.
    let decoy = one
        .post_json(
            "/login/passkey/begin",
            None,
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(decoy.status, 200, "{}", decoy.text());
    let dv = decoy.json();
    assert_eq!(
        dv["publicKey"]["allowCredentials"].as_array().map(Vec::len),
        Some(1),
        "{dv}"
    );
    assert!(laptop.assert(&dv).is_none());
    let real = one
        .post_json("/login/passkey/begin", None, &json!({"email": email}))
        .await
        .json();
    let real = laptop.assert(&real).expect("an assertion");
    two.post_json(
        &format!(
            "/login/passkey/finish?ceremony={}",
            dv["ceremony"].as_str().expect("ceremony")
        ),
        None,
        &real,
    )
    .await
    .assert_refused(401, "unauthorized");

    // Begun on replica one, which then dies (SIGKILL): replica two finishes it.
    let begin = one
        .post_json("/login/passkey/begin", None, &json!({"email": email}))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.text());
    let options = begin.json();
    let ceremony = options["ceremony"].as_str().expect("ceremony").to_owned();
    one.kill();
    let assertion = laptop.assert(&options).expect("an assertion");
    let ok = two
        .post_json(
            &format!("/login/passkey/finish?ceremony={ceremony}"),
            None,
            &assertion,
        )
        .await;
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), two.log());
    assert_eq!(two.terminate(), Some(0));
}
