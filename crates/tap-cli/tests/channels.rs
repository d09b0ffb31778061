//! Notification channels: stored per team, tested through the Bot API wire format
//! against a loopback fake, never leaking the bot token.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, TapHome, http_client};

const BOT_TOKEN: &str = "123456:telegram-bot-token-canary";

async fn call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = http_client();
    let mut req = c
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{url}{path}"),
        )
        .header("Authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_channel_is_stored_tested_and_removed() {
    let telegram = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let admin = tap.init()["admin_token"].as_str().unwrap().to_owned();
    let served = tap.serve_with(&[
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_API_URL", &telegram.base()),
        ("TAP_PRIVATE_ALLOWLIST", "127.0.0.1"),
    ]);
    let (s, v) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels",
        Some(json!({"type": "telegram", "chat_id": "-100123"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "telegram");
    let (s, v) = call(
        &served.url,
        &admin,
        "GET",
        "/team/notification-channels",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["chat_id"], "-100123", "{v}");

    let (s, v) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels/telegram/test",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivered"], true);
    // The running bot also polls (deleteWebhook, getUpdates): count the sends.
    let seen: Vec<_> = telegram
        .requests()
        .into_iter()
        .filter(|r| r.uri.ends_with("/sendMessage"))
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, format!("/bot{BOT_TOKEN}/sendMessage"));
    let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["chat_id"], "-100123");

    // Bad input is refused; a viewer cannot write.
    let (s, _) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels",
        Some(json!({"type": "pager", "chat_id": "1"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels",
        Some(json!({"chat_id": "1; drop"})),
    )
    .await;
    assert_eq!(s, 400);

    let (s, _) = call(
        &served.url,
        &admin,
        "DELETE",
        "/team/notification-channels/telegram",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels/telegram/test",
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert!(!served.log().contains(BOT_TOKEN), "bot token in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_needs_a_token_and_the_private_allowlist() {
    let telegram = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let admin = tap.init()["admin_token"].as_str().unwrap().to_owned();
    tap.ok(&["channel", "telegram", "set", "--chat-id", "42"]);
    let listed = tap.json(&["channel", "list"]);
    assert_eq!(listed[0]["chat_id"], "42", "{listed}");

    // No token: 503, nothing sent.
    let served = tap.serve_with(&[("TELEGRAM_API_URL", &telegram.base())]);
    let (s, v) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels/telegram/test",
        None,
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error_code"], "channel_unavailable");
    drop(served);

    // A loopback Bot API without TAP_PRIVATE_ALLOWLIST: refused like any private target.
    let served = tap.serve_with(&[
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_API_URL", &telegram.base()),
    ]);
    let (s, v) = call(
        &served.url,
        &admin,
        "POST",
        "/team/notification-channels/telegram/test",
        None,
    )
    .await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error_code"], "channel_error");
    assert!(!v.to_string().contains(BOT_TOKEN));
    assert_eq!(telegram.count(), 0);
}
