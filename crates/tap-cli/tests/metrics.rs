//! `GET /metrics`: counters and histograms move with real requests; the
//! admin bearer guards it unless `TAP_METRICS_PUBLIC=true`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use tap_testkit::{FakeUpstream, TapHome, http_client};

const SECRET: &str = "s3cr3t-value-for-metrics-tests";

/// The value of the sample line starting with `prefix` (0 when absent).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = http_client().get(format!("{url}/metrics"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_requests_and_need_the_admin_bearer() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();

    let (status, _) = scrape(&served.url, None).await;
    assert_eq!(status, 401, "no bearer, no metrics");
    let (status, before) = scrape(&served.url, Some(&token)).await;
    assert_eq!(status, 200);
    assert!(before.contains("# TYPE tap_requests counter"), "{before}");

    // One read that echoes the secret (scrubbed), one leak attempt, one
    // write that waits for a human.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/read", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/leak?k={SECRET}", up.base()))
        .method("GET")
        .send()
        .await;
    r.assert_refused(400, "secret_in_request");
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/write", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());

    let ok_line = "tap_requests_total{outcome=\"ok\",code=\"none\"}";
    let leak_line = "tap_requests_total{outcome=\"refused\",code=\"secret_in_request\"}";
    let after = tap_testkit::eventually(100, std::time::Duration::from_millis(50), || async {
        let (_, t) = scrape(&served.url, Some(&token)).await;
        (sample(&t, ok_line) >= 1.0 && sample(&t, leak_line) >= 1.0).then_some(t)
    })
    .await
    .expect("request counters moved");
    assert_eq!(sample(&after, "tap_leak_blocks_total"), 1.0, "{after}");
    assert!(
        sample(&after, "tap_scrubbed_responses_total") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "tap_request_duration_seconds_count") >= 2.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "tap_stage_duration_seconds_count{stage=\"upstream\"}"
        ) >= 1.0,
        "{after}"
    );
    assert_eq!(sample(&after, "tap_pending_approvals"), 1.0, "{after}");
    assert!(
        sample(&after, "tap_audit_commit_duration_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(!after.contains(SECRET), "no secret in metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_public_needs_no_bearer() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap")).env("TAP_METRICS_PUBLIC", "true");
    tap.init();
    let served = tap.serve();
    let (status, text) = scrape(&served.url, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("tap_pending_approvals"), "{text}");
}
