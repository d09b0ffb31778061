//! The walking skeleton end to end through the real binary.

use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-smoke-test";

#[tokio::test]
async fn agent_call_reaches_upstream_with_injected_secret_and_echo_is_redacted() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    assert_eq!(init["created"], true);
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .post(format!("{}/forward", served.url))
        .header("X-TAP-Key", &key)
        .header("X-TAP-Credential", "echo")
        .header("X-TAP-Target", format!("{}/echo", up.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-tap-request-id"));
    assert_eq!(resp.headers()["x-echo"], "Bearer [REDACTED:echo]");
    let body = resp.text().await.unwrap();
    assert!(body.contains("Bearer [REDACTED:echo]"), "{body}");
    assert!(!body.contains(SECRET));
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(served.terminate(), Some(0));
}
