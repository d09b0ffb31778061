//! Telegram one-tap approvals end to end (SPEC §11, §14; THREATS §H, §J, §O):
//! the real `tap` binary against a fake Bot API on loopback that speaks the
//! real JSON shapes. Every wait is bounded; nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tap_testkit::{
    FakeMessage, FakeTelegram, FakeUpstream, Reply, Served, TapHome, closed_port, eventually,
};

const SECRET: &str = "s3cr3t-value-for-telegram-tests";
const BOT_TOKEN: &str = "123456:telegram-bot-token-canary-e2e";
const CHAT: i64 = -100_777;
/// The owner's Telegram user id, linked in `setup`.
const OWNER_TG: i64 = 4242;
const TRIES: u32 = 150;
const EVERY: Duration = Duration::from_millis(100);

struct World {
    tap: TapHome,
    up: FakeUpstream,
    tg: FakeTelegram,
    served: Served,
    key: String,
}

fn stdin_ok(tap: &TapHome, args: &[&str], stdin: &str) {
    let out = tokio::task::block_in_place(|| tap.run_stdin(args, stdin.as_bytes()));
    assert!(
        out.status.success(),
        "tap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(tap: &TapHome, args: &[&str]) -> String {
    tokio::task::block_in_place(|| tap.ok(args))
}

fn owner(init: &Value) -> String {
    init["owner_email"].as_str().unwrap().to_owned()
}

/// A deployment with credential `echo`, agent `bot`, the owner linked to
/// Telegram user [`OWNER_TG`], serving with the Bot API at `api_url`.
async fn setup_with(
    api_url: Option<&str>,
    extra_env: &[(&str, &str)],
    before_serve: &[&[&str]],
) -> World {
    let up = FakeUpstream::start().await;
    let tg = FakeTelegram::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tokio::task::block_in_place(|| tap.init());
    stdin_ok(
        &tap,
        &["add", "echo", "--value-stdin", "--allowed-host", &up.base()],
        SECRET,
    );
    let key = tokio::task::block_in_place(|| tap.agent("bot", &["--credential", "echo"]));
    ok(
        &tap,
        &[
            "member",
            "link-telegram",
            &owner(&init),
            &OWNER_TG.to_string(),
        ],
    );
    for args in before_serve {
        ok(&tap, args);
    }
    let api = api_url.map_or_else(|| tg.base(), str::to_owned);
    let chat = CHAT.to_string();
    let mut env = vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_API_URL", api.as_str()),
        ("TELEGRAM_CHAT_ID", chat.as_str()),
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
    ];
    env.extend_from_slice(extra_env);
    let served = tokio::task::block_in_place(|| tap.serve_with(&env));
    World {
        tap,
        up,
        tg,
        served,
        key,
    }
}

async fn setup() -> World {
    setup_with(None, &[], &[]).await
}

async fn write_async(w: &World, path: &str, body: &str) -> Reply {
    w.served
        .forward(&w.key)
        .credential("echo")
        .target(&format!("{}{path}", w.up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
}

async fn poll_status(w: &World, txn: &str) -> String {
    let r = w
        .served
        .get(&format!("/agent/approvals/{txn}"), Some(&w.key))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"].as_str().unwrap().to_owned()
}

/// The approval message about `path`, once sent.
async fn message_about(w: &World, path: &str) -> FakeMessage {
    eventually(TRIES, EVERY, || async {
        w.tg.messages().into_iter().find(|m| m.text.contains(path))
    })
    .await
    .unwrap_or_else(|| panic!("no message about {path}: {:?}", w.tg.calls()))
}

fn data(m: &FakeMessage, label: &str) -> String {
    m.buttons
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label} button: {m:?}"))
        .1
        .clone()
}

/// Injects a click and waits until the bot answered it; returns the answer.
async fn click(w: &World, from: i64, m: &FakeMessage, data: &str) -> Value {
    let before = w.tg.calls_of("answerCallbackQuery").len();
    w.tg.click(from, CHAT, m.message_id, data);
    eventually(TRIES, EVERY, || async {
        let answers = w.tg.calls_of("answerCallbackQuery");
        (answers.len() > before).then(|| answers[before].body.clone())
    })
    .await
    .expect("the click was never answered")
}

fn upstream_hits(w: &World, path: &str) -> usize {
    w.up.requests()
        .iter()
        .filter(|r| r.uri.starts_with(path))
        .count()
}

fn assert_no_token_leak(w: &World) {
    let log = w.served.log();
    assert!(
        !log.contains(BOT_TOKEN) && !log.contains("telegram-bot-token-canary"),
        "the bot token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_write_reaches_telegram_and_a_linked_approve_forwards_once() {
    let w = setup().await;
    let r = write_async(&w, "/echo/tg-approve", r#"{"amount":42,"to":"bob"}"#).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(v["notification_channel"], "telegram", "{v}");
    assert!(v.get("notice").is_none(), "{v}");
    let txn = v["txn_id"].as_str().unwrap().to_owned();

    let m = message_about(&w, "/echo/tg-approve").await;
    assert_eq!(m.chat_id, CHAT.to_string());
    for needle in [
        "bot",
        "echo",
        "POST",
        "\"amount\": 42",
        &format!("/approve/{txn}"),
    ] {
        assert!(m.text.contains(needle), "{needle} missing in {}", m.text);
    }
    let labels: Vec<&str> = m.buttons.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, vec!["Approve", "Deny", "Approve for 30 min"]);
    for (_, d) in &m.buttons {
        assert!(!d.contains(&txn), "callback data carries the txn id: {d}");
        assert!(d.len() <= 64 && d.len() > 40, "{d}");
    }
    assert!(w.tg.calls().iter().all(|c| c.token == BOT_TOKEN));

    // An unlinked clicker gets an alert and changes nothing.
    let a = click(&w, 5555, &m, &data(&m, "Approve")).await;
    assert_eq!(a["show_alert"], true, "{a}");
    assert!(a["text"].as_str().unwrap().contains("not linked"), "{a}");
    // The txn id instead of the nonce does nothing either.
    let a = click(&w, OWNER_TG, &m, &format!("a:{txn}")).await;
    assert_eq!(a["show_alert"], true, "{a}");
    // Nor does the right nonce from another chat.
    let before = w.tg.calls_of("answerCallbackQuery").len();
    w.tg.click(OWNER_TG, -1, m.message_id, &data(&m, "Approve"));
    eventually(TRIES, EVERY, || async {
        (w.tg.calls_of("answerCallbackQuery").len() > before).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(poll_status(&w, &txn).await, "pending");
    assert_eq!(upstream_hits(&w, "/echo/tg-approve"), 0);

    // The linked owner approves: forwarded once, even when the click is replayed.
    let a = click(&w, OWNER_TG, &m, &data(&m, "Approve")).await;
    assert_ne!(a["show_alert"], true, "{a}");
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let a = click(&w, OWNER_TG, &m, &data(&m, "Approve")).await;
    assert_eq!(a["show_alert"], true, "a replay is refused: {a}");
    assert_eq!(upstream_hits(&w, "/echo/tg-approve"), 1);

    // The message shows the outcome and who decided; the buttons are gone.
    let edited = eventually(TRIES, EVERY, || async {
        w.tg.messages()
            .into_iter()
            .find(|x| x.message_id == m.message_id && x.text.contains("forwarded"))
    })
    .await
    .expect("message never edited to the outcome");
    assert!(edited.buttons.is_empty(), "{edited:?}");
    assert!(edited.text.contains("Approved by"), "{}", edited.text);
    assert_no_token_leak(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_refuses_and_a_decision_on_the_terminal_edits_the_message() {
    let w = setup().await;
    let r = write_async(&w, "/echo/tg-deny", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-deny").await;
    let a = click(&w, OWNER_TG, &m, &data(&m, "Deny")).await;
    assert_ne!(a["show_alert"], true, "{a}");
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "denied", "{outcome}");
    assert_eq!(upstream_hits(&w, "/echo/tg-deny"), 0);
    eventually(TRIES, EVERY, || async {
        w.tg.messages()
            .into_iter()
            .find(|x| x.message_id == m.message_id && x.text.contains("Denied by"))
            .filter(|x| x.buttons.is_empty())
    })
    .await
    .expect("denied message never edited");

    // Decided on the terminal: the Telegram message follows.
    let r = write_async(&w, "/echo/tg-terminal", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-terminal").await;
    ok(&w.tap, &["approve", &txn]);
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let edited = eventually(TRIES, EVERY, || async {
        w.tg.messages()
            .into_iter()
            .find(|x| x.message_id == m.message_id && x.text.contains("forwarded"))
    })
    .await
    .expect("message never edited after a terminal decision");
    assert!(edited.buttons.is_empty());
    assert!(edited.text.contains("(terminal)"), "{}", edited.text);
    assert_no_token_leak(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_need_two_members_across_channels() {
    let w = setup_with(
        None,
        &[],
        &[&["policy", "set", "echo", "--min-approvals", "2"]],
    )
    .await;
    stdin_ok(
        &w.tap,
        &[
            "member",
            "add",
            "ann@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "a-long-member-password-1234\n",
    );
    let r = write_async(&w, "/echo/tg-two", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-two").await;
    assert!(
        m.buttons.iter().all(|(l, _)| l != "Approve for 30 min"),
        "no grant where two approvals are needed: {m:?}"
    );
    let a = click(&w, OWNER_TG, &m, &data(&m, "Approve")).await;
    assert!(a["text"].as_str().unwrap().contains("1/2"), "{a}");
    // The same member again, on the terminal, does not count twice.
    let out = tokio::task::block_in_place(|| w.tap.run(&["approve", &txn]));
    assert!(!out.status.success());
    assert_eq!(poll_status(&w, &txn).await, "pending");
    eventually(TRIES, EVERY, || async {
        w.tg.messages()
            .into_iter()
            .find(|x| x.message_id == m.message_id && x.text.contains("Approvals: 1/2"))
    })
    .await
    .expect("progress never shown");
    // A second member on the web page makes two.
    let session = w
        .served
        .login("ann@example.com", "a-long-member-password-1234")
        .await;
    let page = w
        .served
        .get_bearer(&format!("/approve/{txn}"), &session)
        .await
        .text();
    let action = format!("action=\"/approve/{txn}/approve\"");
    let at = page
        .find(&action)
        .unwrap_or_else(|| panic!("no form: {page}"));
    let key = "name=\"csrf\" value=\"";
    let v = at + page[at..].find(key).unwrap() + key.len();
    let csrf = &page[v..v + page[v..].find('"').unwrap()];
    let r = tap_testkit::http_client()
        .post(format!("{}/approve/{txn}/approve", w.served.url))
        .bearer_auth(&session)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(upstream_hits(&w, "/echo/tg-two"), 1);
    // The Telegram message follows the decision made on the web.
    let edited = eventually(TRIES, EVERY, || async {
        w.tg.messages()
            .into_iter()
            .find(|x| x.message_id == m.message_id && x.text.contains("forwarded"))
    })
    .await
    .expect("message never edited after the web decision");
    assert!(edited.buttons.is_empty(), "{edited:?}");
    assert!(edited.text.contains("ann@example.com"), "{}", edited.text);
    assert!(edited.text.contains("(web)"), "{}", edited.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_for_30_min_creates_a_working_grant() {
    let w = setup().await;
    let r = write_async(&w, "/echo/tg-grant", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-grant").await;
    let a = click(&w, OWNER_TG, &m, &data(&m, "Approve for 30 min")).await;
    assert_ne!(a["show_alert"], true, "{a}");
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let grants = ok(&w.tap, &["grant", "list", "--json"]);
    assert!(grants.contains("/echo/tg-grant"), "{grants}");
    // The same method and route now pass without a human (once the grant is loaded).
    let passed = eventually(TRIES, EVERY, || async {
        let r = write_async(&w, "/echo/tg-grant", "{}").await;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(passed.is_some(), "the grant never let the write through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bot_api_leaves_the_approval_pending_with_a_notice() {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let w = setup_with(Some(&dead), &[], &[]).await;
    let r = write_async(&w, "/echo/tg-down", "{}").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(v["notification_channel"], "web", "{v}");
    assert!(
        v["notice"].as_str().is_some_and(|n| n.contains("telegram")),
        "{v}"
    );
    let txn = v["txn_id"].as_str().unwrap().to_owned();
    assert_eq!(poll_status(&w, &txn).await, "pending");
    let services = w.served.get("/agent/services", Some(&w.key)).await.json();
    assert_eq!(services["approval"]["telegram"]["ok"], false, "{services}");
    assert!(
        !services.to_string().contains(BOT_TOKEN),
        "token in /agent/services"
    );
    ok(&w.tap, &["approve", &txn]);
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(upstream_hits(&w, "/echo/tg-down"), 1);
    assert_no_token_leak(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_updates_need_the_secret() {
    let w = setup_with(
        None,
        &[
            ("TELEGRAM_MODE", "webhook"),
            ("TELEGRAM_WEBHOOK_SECRET", "webhook-secret-123"),
        ],
        &[],
    )
    .await;
    let r = write_async(&w, "/echo/tg-hook", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-hook").await;
    let mut update =
        FakeTelegram::callback_update(OWNER_TG, CHAT, m.message_id, &data(&m, "Approve"));
    update["update_id"] = serde_json::json!(1);
    let c = tap_testkit::http_client();
    let url = format!("{}/telegram/webhook", w.served.url);
    for secret in [None, Some("wrong")] {
        let mut req = c.post(&url).json(&update);
        if let Some(s) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "forged update accepted");
    }
    assert_eq!(poll_status(&w, &txn).await, "pending");
    let resp = c
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "webhook-secret-123")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert!(
        w.tg.calls_of("getUpdates").is_empty(),
        "no polling in webhook mode"
    );

    // Webhook mode without a secret refuses to start.
    let out = tokio::task::block_in_place(|| {
        w.tap.run_bounded(
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
                ("TELEGRAM_MODE", "webhook"),
            ],
            Duration::from_secs(30),
        )
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TELEGRAM_WEBHOOK_SECRET"), "{err}");
    assert!(!err.contains(BOT_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_code_sent_to_the_bot_links_a_member() {
    let w = setup().await;
    stdin_ok(
        &w.tap,
        &[
            "member",
            "add",
            "ann@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "a-long-member-password-1234\n",
    );
    let v: Value = serde_json::from_str(&ok(
        &w.tap,
        &[
            "member",
            "link-telegram",
            "ann@example.com",
            "--code",
            "--json",
        ],
    ))
    .unwrap();
    let code = v["code"].as_str().unwrap().to_owned();
    w.tg.say(777, &format!("/link {code}"));
    eventually(TRIES, EVERY, || async {
        w.tg.calls_of("sendMessage").into_iter().find(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("ann@example.com"))
        })
    })
    .await
    .expect("the bot never confirmed the link");
    // A used code does not link anyone else.
    w.tg.say(778, &format!("/link {code}"));
    eventually(TRIES, EVERY, || async {
        w.tg.calls_of("sendMessage").into_iter().find(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("unknown, used or expired"))
        })
    })
    .await
    .expect("a reused code was not refused");
    // Ann's clicks now count.
    let r = write_async(&w, "/echo/tg-link", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-link").await;
    let a = click(&w, 777, &m, &data(&m, "Approve")).await;
    assert_ne!(a["show_alert"], true, "{a}");
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_request_offers_a_link_to_its_page_instead_of_approve() {
    let w = setup_with(
        None,
        &[
            ("TAP_WEBAUTHN_RP_ID", "localhost"),
            ("TAP_WEBAUTHN_ORIGIN", "http://localhost:3100"),
        ],
        &[&["policy", "set", "echo", "--require-passkey"]],
    )
    .await;
    let r = write_async(&w, "/echo/tg-passkey", "{}").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    let txn = v["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-passkey").await;
    // Approve is a link to the approval page (the passkey ceremony), not a callback.
    assert_eq!(
        data(&m, "Approve with passkey"),
        v["approval_url"].as_str().unwrap(),
        "{m:?}"
    );
    assert!(
        !m.buttons
            .iter()
            .any(|(l, _)| l == "Approve" || l.starts_with("Approve for")),
        "{m:?}"
    );
    // A forged Approve callback with the message's nonce changes nothing.
    let deny = data(&m, "Deny");
    let forged = format!("a:{}", deny.trim_start_matches("d:"));
    let a = click(&w, OWNER_TG, &m, &forged).await;
    assert_eq!(a["show_alert"], true, "{a}");
    assert_eq!(poll_status(&w, &txn).await, "pending");
    // Deny works without a passkey.
    click(&w, OWNER_TG, &m, &deny).await;
    let outcome = w.served.approval_outcome(&w.key, &txn).await;
    assert_eq!(outcome["status"], "denied", "{outcome}");
    assert_eq!(upstream_hits(&w, "/echo/tg-passkey"), 0);
    assert_no_token_leak(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_but_ineligible_member_changes_nothing() {
    const VIEWER_TG: i64 = 7777;
    let w = setup().await;
    stdin_ok(
        &w.tap,
        &[
            "member",
            "add",
            "view@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "a-long-member-password-1234\n",
    );
    ok(
        &w.tap,
        &[
            "member",
            "link-telegram",
            "view@example.com",
            &VIEWER_TG.to_string(),
        ],
    );
    let r = write_async(&w, "/echo/tg-viewer", "{}").await;
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let m = message_about(&w, "/echo/tg-viewer").await;
    for label in ["Approve", "Approve for 30 min", "Deny"] {
        let a = click(&w, VIEWER_TG, &m, &data(&m, label)).await;
        assert_eq!(a["show_alert"], true, "{label}: {a}");
    }
    assert_eq!(poll_status(&w, &txn).await, "pending");
    assert_eq!(upstream_hits(&w, "/echo/tg-viewer"), 0);
}
