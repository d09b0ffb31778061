//! What an approver sees before deciding (SPEC §11, issue 12 hole 8): the
//! whole body however long (a payload after padding is not hidden), every
//! forwarded header with its value, the injected header names, the exact
//! digest, and invisible or bidi characters as visible escapes — on the web
//! page, through `GET /team/approvals/{txn}` and in `tap pending show TXN`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-display-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_body_shows_its_tail_headers_and_escapes_everywhere() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential(
        "echo",
        SECRET,
        &["--allowed-host", &up.base(), "--bind", "X-Api-Key={value}"],
    );
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();

    // 20 KB of padding, then the part that matters, and a right-to-left
    // override that would make "txt.exe" read as "exe.txt".
    let tail = "TRANSFER-ALL-FUNDS-TO-ACCOUNT-666";
    let body = serde_json::json!({
        "note": "x".repeat(20_000),
        "file": "report\u{202E}txt.exe",
        "action": tail,
    })
    .to_string();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/pay", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .header("X-Request-Purpose", "quarterly-payout")
        .body(body.clone())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let digest = hex::encode(Sha256::digest(body.as_bytes()));

    // The web page.
    let session = served
        .login(
            init["owner_email"].as_str().unwrap(),
            init["owner_password"].as_str().unwrap(),
        )
        .await;
    let page = served
        .get_bearer(&format!("/approve/{txn}"), &session)
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains(tail), "the tail after the padding is shown");
    assert!(html.contains(&"x".repeat(20_000)), "the padding is whole");
    assert!(html.contains(&digest), "the digest of the exact bytes");
    assert!(html.contains(&body.len().to_string()), "the byte count");
    assert!(
        html.contains("x-request-purpose") && html.contains("quarterly-payout"),
        "forwarded headers with values"
    );
    assert!(html.contains("x-api-key"), "the injected header is named");
    assert!(!html.contains('\u{202E}'), "no raw bidi override");
    assert!(
        html.contains("\\u{202E}"),
        "the override shown as an escape"
    );
    assert!(!html.contains(SECRET));

    // The admin API answer.
    let api = served
        .get_bearer(&format!("/team/approvals/{txn}"), &session)
        .await;
    assert_eq!(api.status, 200, "{}", api.text());
    let v: Value = api.json();
    assert_eq!(v["txn_id"], txn.as_str());
    assert_eq!(v["request"]["body_sha256"], digest.as_str());
    assert_eq!(v["request"]["body_bytes"], body.len());
    assert_eq!(v["request"]["body_format"], "json");
    assert!(v["request"]["body"].as_str().unwrap().contains(tail));
    assert!(
        v["request"]["injected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "x-api-key"),
        "{}",
        v["request"]["injected"]
    );
    let missing = served
        .get_bearer("/team/approvals/txn_doesnotexist", &session)
        .await;
    missing.assert_refused(404, "not_found");

    // The terminal.
    let out = tokio::task::block_in_place(|| tap.run(&["pending", "show", &txn]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(tail), "tap pending show shows the tail");
    assert!(text.contains(&digest), "{text}");
    assert!(
        text.contains("x-request-purpose: quarterly-payout"),
        "{text}"
    );
    assert!(text.contains("x-api-key"), "{text}");
    assert!(
        text.contains("\\u{202E}") && !text.contains('\u{202E}'),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    let json = tokio::task::block_in_place(|| tap.json(&["pending", "show", &txn]));
    assert_eq!(json["request"]["body_sha256"], digest.as_str());

    let nope = tokio::task::block_in_place(|| tap.run(&["pending", "show", "txn_doesnotexist"]));
    assert!(!nope.status.success(), "an unknown txn is an error");
}
