//! Human approval end to end through the real `tap` binary (SPEC §3.3, §5, §11,
//! THREATS §I, §J, §O): stored approvals, sync and async answers, the terminal,
//! web page and `/team/approvals` channels, the one decision gate, re-checks
//! before forwarding, restart safety, grants and the audit trail.
//!
//! Every wait is bounded (`eventually`), nothing asserts on wall-clock time.
// Helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually, http_client};

const SECRET: &str = "s3cr3t-value-for-approval-tests";
/// Bound for anything the proxy does on its own (executor, reload: 200 ms ticks).
const TRIES: u32 = 150;
const EVERY: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------- helpers

/// A deployment with one credential `echo` bound to the fake upstream and an
/// agent `bot` granted it. Returns the home, the `tap init --json` answer and the key.
fn setup(up: &FakeUpstream, env: &[(&str, &str)]) -> (TapHome, Value, String) {
    let mut tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    for (k, v) in env {
        tap = tap.env(k, v);
    }
    let init = tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (tap, init, key)
}

/// Runs a CLI command from async code without starving the runtime.
fn run(tap: &TapHome, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| tap.run(args))
}

fn ok_json(tap: &TapHome, args: &[&str]) -> Value {
    tokio::task::block_in_place(|| tap.json(args))
}

fn stdin_ok(tap: &TapHome, args: &[&str], stdin: &str) {
    let out = tokio::task::block_in_place(|| tap.run_stdin(args, stdin.as_bytes()));
    assert!(
        out.status.success(),
        "tap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tap member add EMAIL --role ROLE --password-stdin`.
fn add_member(tap: &TapHome, email: &str, role: &str) {
    stdin_ok(
        tap,
        &["member", "add", email, "--role", role, "--password-stdin"],
        "a-long-member-password-1234\n",
    );
}

/// `tap approve|deny TXN [--as EMAIL] --json`: (exit code, JSON answer).
fn decide(tap: &TapHome, verb: &str, txn: &str, as_email: Option<&str>) -> (i32, Value) {
    let mut args = vec![verb, txn];
    if let Some(e) = as_email {
        args.extend(["--as", e]);
    }
    args.push("--json");
    let out = run(tap, &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

/// Approves as `as_email` (owner when `None`) and expects the gate to count it.
fn approve_ok(tap: &TapHome, txn: &str, as_email: Option<&str>) -> Value {
    let (code, v) = decide(tap, "approve", txn, as_email);
    assert_eq!(code, 0, "tap approve {txn} as {as_email:?} refused: {v}");
    v
}

/// `POST /forward` with a body, `X-TAP-Method` and `Prefer: respond-async`.
async fn write_async(served: &Served, key: &str, target: &str, method: &str, body: &str) -> Reply {
    served
        .forward(key)
        .credential("echo")
        .target(target)
        .method(method)
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
}

/// Asserts the 202 of SPEC §3.3 and returns the txn id.
fn assert_accepted(r: &Reply, served: &Served) -> String {
    assert_eq!(r.status, 202, "expected 202: {}", r.text());
    let v = r.json();
    let txn = v["txn_id"].as_str().expect("txn_id").to_owned();
    assert!(!txn.is_empty());
    assert_eq!(r.request_id(), txn, "request id is the txn id");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["poll_url"], format!("/agent/approvals/{txn}"), "{v}");
    assert_eq!(
        v["approval_url"],
        format!("{}/approve/{txn}", served.url),
        "approval_url must point at the proxy the agent talks to: {v}"
    );
    assert!(v["expires_in"].as_i64().is_some(), "{v}");
    assert_eq!(v["notification_channel"], "web", "{v}");
    assert!(
        v["agent_hint"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    txn
}

async fn poll(served: &Served, key: &str, txn: &str) -> Reply {
    served
        .get(&format!("/agent/approvals/{txn}"), Some(key))
        .await
}

/// Requests of the upstream whose path starts with `path`.
fn seen(up: &FakeUpstream, path: &str) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.uri.starts_with(path))
        .count()
}

/// The merged audit record of `request_id` once `pred` holds (bounded).
async fn audit_row(tap: &TapHome, request_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let got = eventually(TRIES, EVERY, || async {
        let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "500"]));
        rows.into_iter()
            .find(|r| r["request_id"] == request_id)
            .filter(|r| pred(r))
    })
    .await;
    got.unwrap_or_else(|| {
        panic!(
            "no matching audit row for {request_id}: {:#?}",
            tokio::task::block_in_place(|| tap.logs(&["--limit", "500"]))
        )
    })
}

fn assert_audit_ok(tap: &TapHome) {
    let v = ok_json(tap, &["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
}

/// Percent-encodes a form value.
fn form_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Pending approvals as `tap pending --json` lists them.
fn pending(tap: &TapHome) -> Vec<Value> {
    ok_json(tap, &["pending"]).as_array().unwrap().clone()
}

// ------------------------------------------------------------ default gate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_gated_team_reads_proceed_and_writes_need_approval() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let target = format!("{}/echo/default", up.base());

    let get = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .send()
        .await;
    assert_eq!(get.status, 200, "{}", get.text());
    let get_id = get.request_id();

    let post = write_async(&served, &key, &target, "POST", "{\"n\":1}").await;
    let txn = assert_accepted(&post, &served);
    assert_eq!(seen(&up, "/echo/default"), 1, "only the GET went out");

    // Lower-case and padded methods are writes too.
    let post2 = write_async(&served, &key, &target, " post ", "{}").await;
    assert_accepted(&post2, &served);
    let put = write_async(&served, &key, &target, "PuT", "{}").await;
    assert_accepted(&put, &served);
    assert_eq!(seen(&up, "/echo/default"), 1);

    let g = audit_row(&tap, &get_id, |r| !r["upstream_status"].is_null()).await;
    assert_eq!(g["decision"], "proceed", "{g}");
    assert_eq!(g["policy_reason"], "team_default_gated_read", "{g}");
    let p = audit_row(&tap, &txn, |_| true).await;
    assert_eq!(p["decision"], "approval", "{p}");
    assert_eq!(p["policy_reason"], "team_default_gated_write", "{p}");
    assert_eq!(p["approval_status"], "pending", "{p}");
    assert_eq!(p["method"], "POST", "{p}");

    let rows = pending(&tap);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = rows.iter().find(|r| r["txn_id"] == txn.as_str()).unwrap();
    assert_eq!(row["agent_id"], "bot");
    assert_eq!(row["credential"], "echo");
    assert_eq!(row["method"], "POST");
    assert_eq!(row["target"], target.as_str());
    assert_eq!(row["approvals"], 0);
    assert_eq!(row["min_approvals"], 1);
    assert!(row["created_at"].is_string() && row["expires_at"].is_string());
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------------------- async

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_approval_is_forwarded_once_and_the_poll_returns_the_scrubbed_answer() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[]);
    let served = tap.serve();
    let target = format!("{}/echo/async?x=1", up.base());
    let body = "{\"msg\":\"hello approval\"}";

    let r = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .method("POST")
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .header("X-Note", "kept as sent")
        .body(body)
        .send()
        .await;
    let txn = assert_accepted(&r, &served);
    assert_eq!(
        seen(&up, "/echo/async"),
        0,
        "nothing forwarded before approval"
    );

    let p = poll(&served, &key, &txn).await;
    assert_eq!(p.status, 200, "{}", p.text());
    let v = p.json();
    assert_eq!(v["txn_id"], txn.as_str());
    assert_eq!(v["status"], "pending");
    assert!(
        v["created_at"].is_string() && v["expires_at"].is_string(),
        "{v}"
    );
    assert!(v.get("response").is_none(), "{v}");

    let d = approve_ok(&tap, &txn, None);
    assert_eq!(d["txn_id"], txn.as_str(), "{d}");
    assert_eq!(d["status"], "approved", "{d}");
    assert_eq!(d["approvals"], 1, "{d}");
    assert_eq!(d["min_approvals"], 1, "{d}");

    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    let owner = init["owner_email"].as_str().unwrap();
    assert_eq!(v["decided_by"], serde_json::json!([owner]), "{v}");
    let resp = &v["response"];
    assert_eq!(resp["status"], 200, "{v}");
    assert_eq!(resp["body_encoding"], "utf-8", "{v}");
    let text = resp["body"].as_str().unwrap();
    let echoed: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        echoed["authorization"], "Bearer [REDACTED:echo]",
        "{echoed}"
    );
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["body"], body);
    let x_echo = resp["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h[0].as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("x-echo"))
        })
        .unwrap_or_else(|| panic!("no x-echo header: {resp}"));
    assert_eq!(x_echo[1], "Bearer [REDACTED:echo]");
    assert!(!v.to_string().contains(SECRET), "secret in the poll answer");

    // Exactly once, exactly what was asked.
    let reqs: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.uri.starts_with("/echo/async"))
        .collect();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].uri, "/echo/async?x=1");
    assert_eq!(reqs[0].body, body.as_bytes());
    assert_eq!(reqs[0].header("x-note").as_deref(), Some("kept as sent"));
    assert_eq!(
        reqs[0].header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}"))
    );
    assert!(reqs[0].header("x-tap-key").is_none());

    // Results stay readable, and a second look does not forward again.
    let again = poll(&served, &key, &txn).await.json();
    assert_eq!(again["status"], "forwarded");
    assert_eq!(seen(&up, "/echo/async"), 1);
    // The decided approval is no longer pending and cannot be decided again.
    assert!(pending(&tap).is_empty());
    let (code, _) = decide(&tap, "deny", &txn, None);
    assert_eq!(code, 1, "a forwarded request cannot be denied afterwards");

    // Audit: the outcome row has the approval data.
    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "forwarded").await;
    assert_eq!(row["decision"], "proceed", "{row}");
    assert_eq!(row["policy_reason"], "team_default_gated_write", "{row}");
    assert_eq!(row["approvers"], serde_json::json!([owner]), "{row}");
    assert_eq!(row["upstream_status"], 200, "{row}");
    assert_eq!(row["response_scrubbed"], true, "{row}");
    assert!(row["latency_approval_ms"].is_number(), "{row}");
    assert!(row["error_code"].is_null(), "{row}");
    let all = tokio::task::block_in_place(|| tap.ok(&["logs", "--json"]));
    assert!(!all.contains(SECRET) && !all.contains(&key));
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

// -------------------------------------------------------------------- sync

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_approve_answers_with_the_upstream_response() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[("TAP_SYNC_APPROVAL_WAIT_SECS", "60")]);
    let served = tap.serve();
    let target = format!("{}/echo/sync", up.base());
    let req = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .method("POST")
        .body("sync body");
    let waiting = tokio::spawn(req.send());

    let txn = eventually(TRIES, EVERY, || async {
        pending(&tap)
            .first()
            .and_then(|r| r["txn_id"].as_str().map(str::to_owned))
    })
    .await
    .expect("the sync request never became pending");
    assert!(!waiting.is_finished(), "the sync request must wait");
    assert_eq!(seen(&up, "/echo/sync"), 0);
    approve_ok(&tap, &txn, None);

    let r = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("sync request never answered")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.request_id(), txn);
    assert_eq!(
        r.header("x-echo").as_deref(),
        Some("Bearer [REDACTED:echo]")
    );
    let v = r.json();
    assert_eq!(v["body"], "sync body");
    assert_eq!(v["authorization"], "Bearer [REDACTED:echo]");
    assert!(!r.text().contains(SECRET));
    assert_eq!(seen(&up, "/echo/sync"), 1);
    assert_eq!(
        poll(&served, &key, &txn).await.json()["status"],
        "forwarded"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_deny_is_403_approval_denied_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[("TAP_SYNC_APPROVAL_WAIT_SECS", "60")]);
    let served = tap.serve();
    let req = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/deny", up.base()))
        .method("DELETE");
    let waiting = tokio::spawn(req.send());
    let txn = eventually(TRIES, EVERY, || async {
        pending(&tap)
            .first()
            .and_then(|r| r["txn_id"].as_str().map(str::to_owned))
    })
    .await
    .expect("never pending");
    let (code, d) = decide(&tap, "deny", &txn, None);
    assert_eq!(code, 0, "{d}");
    assert_eq!(d["status"], "denied", "{d}");

    let r = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("sync request never answered")
        .unwrap();
    let v = r.assert_refused(403, "approval_denied");
    assert_eq!(v["txn_id"], txn.as_str(), "{v}");
    assert_eq!(seen(&up, "/echo/deny"), 0);
    let p = poll(&served, &key, &txn).await.json();
    assert_eq!(p["status"], "denied", "{p}");
    assert!(p.get("response").is_none(), "{p}");

    // A denial cannot be turned into an approval afterwards.
    let (code, _) = decide(&tap, "approve", &txn, None);
    assert_eq!(code, 1);
    let owner = init["owner_email"].as_str().unwrap();
    assert_eq!(p["decided_by"], serde_json::json!([owner]), "{p}");
    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "denied").await;
    assert_eq!(row["error_code"], "approval_denied", "{row}");
    assert_eq!(row["decision"], "refused", "{row}");
    assert_eq!(row["policy_reason"], "team_default_gated_write", "{row}");
    assert!(row["upstream_status"].is_null(), "{row}");
    assert_eq!(seen(&up, "/echo/deny"), 0);
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_504_approval_timed_out_distinct_from_deny() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[("TAP_APPROVAL_TIMEOUT_SECS", "1")]);
    let served = tap.serve();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        served
            .forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/late", up.base()))
            .method("POST")
            .body("x")
            .send(),
    )
    .await
    .expect("the sync request must end when the approval expires");
    let v = r.assert_refused(504, "approval_timed_out");
    let txn = r.request_id();
    assert_eq!(v["txn_id"], txn.as_str());
    let p = served.approval_outcome(&key, &txn).await;
    assert_eq!(p["status"], "timed_out", "{p}");
    assert!(p.get("response").is_none(), "{p}");

    // A late approval changes nothing and forwards nothing.
    let (code, _) = decide(&tap, "approve", &txn, None);
    assert_eq!(code, 1, "late approval must be refused");
    assert_eq!(
        poll(&served, &key, &txn).await.json()["status"],
        "timed_out"
    );
    assert_eq!(seen(&up, "/echo/late"), 0);

    // Async too: the 202, then timed_out.
    let a = write_async(
        &served,
        &key,
        &format!("{}/echo/late2", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn2 = assert_accepted(&a, &served);
    let outcome = served.approval_outcome(&key, &txn2).await;
    assert_eq!(outcome["status"], "timed_out", "{outcome}");
    assert_eq!(seen(&up, "/echo/late"), 0);

    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "timed_out").await;
    assert_eq!(row["error_code"], "approval_timed_out", "{row}");
    assert_eq!(row["policy_reason"], "team_default_gated_write", "{row}");
    assert_eq!(row["decision"], "refused", "{row}");
    assert_eq!(row["approvers"], serde_json::json!([]), "{row}");
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_prefer_answers_202_after_the_default_wait() {
    // Public TAP clients send writes without Prefer and time out after 30-60 s:
    // the default sync wait (20 s) must answer them with a txn id before that.
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let r = tokio::time::timeout(
        Duration::from_secs(29),
        served
            .forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/default-wait", up.base()))
            .method("POST")
            .body("d")
            .send(),
    )
    .await
    .expect("the default sync wait must end before a public client's 30 s timeout");
    let txn = assert_accepted(&r, &served);
    assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");
    assert_eq!(seen(&up, "/echo/default-wait"), 0);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_wait_that_runs_out_answers_202_and_the_approval_stays_pending() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[("TAP_SYNC_APPROVAL_WAIT_SECS", "1")]);
    let served = tap.serve();
    let target = format!("{}/echo/wait", up.base());

    // Prefer: wait=1 with nobody deciding.
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .method("POST")
        .header("Prefer", "wait=1")
        .body("w")
        .send()
        .await;
    let txn = assert_accepted(&r, &served);
    // No Prefer at all: the server's sync wait (1 s here) runs out the same way.
    let r2 = served
        .forward(&key)
        .credential("echo")
        .target(&target)
        .method("POST")
        .body("w2")
        .send()
        .await;
    let txn2 = assert_accepted(&r2, &served);
    // wait=N is capped by TAP_SYNC_APPROVAL_WAIT_SECS.
    let r3 = tokio::time::timeout(
        Duration::from_secs(60),
        served
            .forward(&key)
            .credential("echo")
            .target(&target)
            .method("POST")
            .header("Prefer", "wait=3600")
            .body("w3")
            .send(),
    )
    .await
    .expect("Prefer: wait must be capped by TAP_SYNC_APPROVAL_WAIT_SECS");
    assert_accepted(&r3, &served);

    for t in [&txn, &txn2] {
        assert_eq!(poll(&served, &key, t).await.json()["status"], "pending");
    }
    assert_eq!(pending(&tap).len(), 3);
    assert_eq!(seen(&up, "/echo/wait"), 0);
    // Still decidable after the 202.
    approve_ok(&tap, &txn, None);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(v["response"]["status"], 200);
    assert_eq!(seen(&up, "/echo/wait"), 1);
    assert_eq!(served.terminate(), Some(0));
}

// -------------------------------------------------------- the decision gate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_approvals_two_needs_two_distinct_members() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[]);
    tap.ok(&["policy", "set", "echo", "--min-approvals", "2"]);
    add_member(&tap, "second@y.test", "admin");
    let served = tap.serve();
    let target = format!("{}/echo/two", up.base());
    let r = write_async(&served, &key, &target, "POST", "{}").await;
    let txn = assert_accepted(&r, &served);
    assert_eq!(pending(&tap)[0]["min_approvals"], 2);

    let d = approve_ok(&tap, &txn, None);
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["approvals"], 1, "{d}");
    assert_eq!(d["min_approvals"], 2, "{d}");

    // The same member twice: refused, still pending, nothing forwarded.
    let (code, v) = decide(&tap, "approve", &txn, None);
    assert_eq!(code, 1, "{v}");
    let owner = init["owner_email"].as_str().unwrap();
    let (code, v) = decide(&tap, "approve", &txn, Some(&owner.to_ascii_uppercase()));
    assert_eq!(
        code, 1,
        "the same member in other case is still the same: {v}"
    );
    // Through the admin API as the same member too.
    let admin = init["admin_token"].as_str().unwrap();
    let api = http_client()
        .post(format!("{}/team/approvals/{txn}/approve", served.url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 409, "same member through another channel");
    let p = poll(&served, &key, &txn).await.json();
    assert_eq!(p["status"], "pending", "{p}");
    assert_eq!(pending(&tap)[0]["approvals"], 1);
    assert_eq!(seen(&up, "/echo/two"), 0);

    // A second, distinct member completes it.
    let d = approve_ok(&tap, &txn, Some("second@y.test"));
    assert_eq!(d["status"], "approved", "{d}");
    assert_eq!(d["approvals"], 2, "{d}");
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(seen(&up, "/echo/two"), 1);
    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "forwarded").await;
    let mut approvers: Vec<String> = row["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    approvers.sort();
    assert_eq!(
        approvers,
        [owner.to_owned(), "second@y.test".to_owned()],
        "{row} {v}"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_of_removed_or_demoted_members_stop_counting() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    tap.ok(&["policy", "set", "echo", "--min-approvals", "2"]);
    add_member(&tap, "gone@y.test", "admin");
    add_member(&tap, "demoted@y.test", "admin");
    add_member(&tap, "third@y.test", "admin");
    let served = tap.serve();
    let target = format!("{}/echo/eligible", up.base());
    let txn = assert_accepted(
        &write_async(&served, &key, &target, "POST", "{}").await,
        &served,
    );

    // Two approvals, then both voters lose the right to decide.
    let d = approve_ok(&tap, &txn, Some("gone@y.test"));
    assert_eq!(
        (d["status"].as_str(), d["approvals"].as_u64()),
        (Some("pending"), Some(1)),
        "{d}"
    );
    tap.ok(&["member", "rm", "gone@y.test"]);
    let d = approve_ok(&tap, &txn, Some("demoted@y.test"));
    assert_eq!(
        d["approvals"], 1,
        "the removed member's vote no longer counts: {d}"
    );
    assert_eq!(d["status"], "pending", "{d}");
    tap.ok(&["member", "role", "demoted@y.test", "viewer"]);
    assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");
    assert_eq!(seen(&up, "/echo/eligible"), 0);

    // Only a vote from a still-eligible member counts beside the next one.
    let d = approve_ok(&tap, &txn, Some("third@y.test"));
    assert_eq!(
        d["status"], "pending",
        "the demoted member's vote no longer counts: {d}"
    );
    assert_eq!(d["approvals"], 1, "{d}");
    let d = approve_ok(&tap, &txn, None);
    assert_eq!(d["status"], "approved", "{d}");
    assert_eq!(d["approvals"], 2, "{d}");
    let outcome = served.approval_outcome(&key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(seen(&up, "/echo/eligible"), 1);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ineligible_members_cannot_decide_and_an_assigned_approver_can() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    add_member(&tap, "viewer@y.test", "viewer");
    add_member(&tap, "approver@y.test", "approver");
    let served = tap.serve();
    let target = format!("{}/echo/elig", up.base());
    let r = write_async(&served, &key, &target, "POST", "{}").await;
    let txn = assert_accepted(&r, &served);

    for (who, verb) in [
        ("viewer@y.test", "approve"),
        ("viewer@y.test", "deny"),
        ("approver@y.test", "approve"),
        ("approver@y.test", "deny"),
        ("stranger@y.test", "approve"),
    ] {
        let (code, v) = decide(&tap, verb, &txn, Some(who));
        assert_eq!(code, 1, "{who} {verb} must be refused: {v}");
        assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");
    }
    assert_eq!(pending(&tap)[0]["approvals"], 0);
    assert_eq!(seen(&up, "/echo/elig"), 0);

    let m = ok_json(
        &tap,
        &[
            "member",
            "assign",
            "approver@y.test",
            "--credential",
            "echo",
        ],
    );
    assert_eq!(m["credentials"], serde_json::json!(["echo"]), "{m}");
    let d = approve_ok(&tap, &txn, Some("approver@y.test"));
    assert_eq!(d["status"], "approved", "{d}");
    let outcome = served.approval_outcome(&key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(seen(&up, "/echo/elig"), 1);

    // Demoted to viewer: no longer eligible.
    tap.ok(&["member", "role", "approver@y.test", "viewer"]);
    let r = write_async(&served, &key, &target, "POST", "{}").await;
    let txn2 = assert_accepted(&r, &served);
    let (code, _) = decide(&tap, "approve", &txn2, Some("approver@y.test"));
    assert_eq!(code, 1);
    // Removed members neither.
    add_member(&tap, "gone@y.test", "admin");
    tap.ok(&["member", "rm", "gone@y.test"]);
    let (code, _) = decide(&tap, "approve", &txn2, Some("gone@y.test"));
    assert_eq!(code, 1);
    assert_eq!(poll(&served, &key, &txn2).await.json()["status"], "pending");
    assert_eq!(seen(&up, "/echo/elig"), 1);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_approvers_restrict_the_gate_and_naming_nobody_is_503() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    add_member(&tap, "chosen@y.test", "admin");
    tap.add_credential("nobody", SECRET, &["--allowed-host", &up.base()]);
    tap.ok(&["agent", "grant", "bot", "nobody"]);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--allowed-approvers",
        "Chosen@y.test",
    ]);
    tap.ok(&[
        "policy",
        "set",
        "nobody",
        "--allowed-approvers",
        "ghost@y.test",
    ]);
    let served = tap.serve();

    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/a", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    // The owner is eligible by role but not in the list.
    let (code, v) = decide(&tap, "approve", &txn, None);
    assert_eq!(code, 1, "{v}");
    assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");
    approve_ok(&tap, &txn, Some("chosen@y.test"));
    let outcome = served.approval_outcome(&key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");

    // A list naming nobody who exists: refused at once, audited, nothing pending.
    let r = served
        .forward(&key)
        .credential("nobody")
        .target(&format!("{}/echo/n", up.base()))
        .method("POST")
        .body("{}")
        .send()
        .await;
    let v = r.assert_refused(503, "approval_unavailable");
    assert_eq!(v["policy_reason"], "require_approval_default", "{v}");
    assert_eq!(seen(&up, "/echo/n"), 0);
    assert!(pending(&tap).is_empty());
    let row = audit_row(&tap, &r.request_id(), |_| true).await;
    assert_eq!(row["error_code"], "approval_unavailable", "{row}");
    assert_eq!(row["policy_reason"], "require_approval_default", "{row}");
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------------ txn isolation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creating_agent_may_poll() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let other = tap.agent("other", &["--credential", "echo"]);
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/mine", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);

    let theirs = poll(&served, &other, &txn).await;
    theirs.assert_refused(404, "not_found");
    let unknown = poll(&served, &key, "no-such-txn").await;
    unknown.assert_refused(404, "not_found");
    assert_eq!(
        theirs.json()["error_code"],
        unknown.json()["error_code"],
        "someone else's txn looks like a missing one"
    );
    served
        .get(&format!("/agent/approvals/{txn}"), None)
        .await
        .assert_refused(401, "missing_tap_key");
    served
        .get(&format!("/agent/approvals/{txn}"), Some("tap_garbage"))
        .await
        .assert_refused(401, "invalid_tap_key");

    // After it is forwarded, still only the creator sees the result.
    approve_ok(&tap, &txn, None);
    let outcome = served.approval_outcome(&key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let theirs = poll(&served, &other, &txn).await;
    theirs.assert_refused(404, "not_found");
    assert!(!theirs.text().contains("REDACTED"), "{}", theirs.text());
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------ re-checks before forwarding

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_pending_request_is_not_forwarded() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/orig", up.base()),
        "POST",
        "{\"amount\":1}",
    )
    .await;
    let txn = assert_accepted(&r, &served);

    // Rewrite the stored request behind TAP's back: another path.
    let request = tap
        .sql_text("SELECT request FROM approvals WHERE txn_id = $1", &[&txn])
        .await;
    let forged = request.replace("/echo/orig", "/echo/evil");
    assert_ne!(forged, request, "{request}");
    let n = tap
        .sql_execute(
            "UPDATE approvals SET request = $1 WHERE txn_id = $2",
            &[&forged, &txn],
        )
        .await;
    assert_eq!(n, 1);

    let before = up.count();
    approve_ok(&tap, &txn, None);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "request_tampered", "{v}");
    assert!(v.get("response").is_none(), "{v}");
    assert_eq!(up.count(), before, "a tampered request reaches nobody");
    assert_eq!(seen(&up, "/echo/evil"), 0);
    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "error").await;
    assert_eq!(row["error_code"], "request_tampered", "{row}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_body_is_not_forwarded() {
    use base64::Engine as _;
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/body", up.base()),
        "POST",
        "{\"amount\":1}",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    let b64 = base64::engine::general_purpose::STANDARD;
    let request = tap
        .sql_text("SELECT request FROM approvals WHERE txn_id = $1", &[&txn])
        .await;
    let forged = request.replace(
        &b64.encode("{\"amount\":1}"),
        &b64.encode("{\"amount\":1000000}"),
    );
    assert_ne!(forged, request, "{request}");
    tap.sql_execute(
        "UPDATE approvals SET request = $1 WHERE txn_id = $2",
        &[&forged, &txn],
    )
    .await;
    approve_ok(&tap, &txn, None);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "request_tampered", "{v}");
    assert_eq!(seen(&up, "/echo/body"), 0);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_agent_while_pending_stops_the_forward() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/dis", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    // Disable and approve right away: the executor must not act on a stale view.
    tap.ok(&["agent", "disable", "bot"]);
    approve_ok(&tap, &txn, None);
    let got = eventually(TRIES, EVERY, || async {
        let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "500"]));
        rows.into_iter()
            .find(|r| r["request_id"] == txn.as_str())
            .filter(|r| r["approval_status"] != "pending")
    })
    .await
    .expect("the approval never ended");
    assert_eq!(got["approval_status"], "error", "{got}");
    assert_eq!(got["error_code"], "invalid_tap_key", "{got}");
    assert_eq!(
        seen(&up, "/echo/dis"),
        0,
        "a disabled agent's request went out"
    );
    // Re-enabled, the agent reads the outcome: error, nothing forwarded.
    tap.ok(&["agent", "enable", "bot"]);
    eventually(TRIES, EVERY, || async {
        (served.get("/agent/config", Some(&key)).await.status == 200).then_some(())
    })
    .await
    .expect("re-enabled agent never accepted");
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "invalid_tap_key", "{v}");
    assert_eq!(seen(&up, "/echo/dis"), 0);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_credential_while_pending_stops_the_forward() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/chg", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    stdin_ok(
        &tap,
        &["cred", "set-value", "echo", "--value-stdin"],
        "another-secret-value-entirely",
    );
    approve_ok(&tap, &txn, None);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "credential_changed", "{v}");
    assert_eq!(seen(&up, "/echo/chg"), 0);

    // Ungranted while pending: the same, with its own code.
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/del", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    tap.ok(&["agent", "ungrant", "bot", "echo"]);
    approve_ok(&tap, &txn, None);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["error_code"], "credential_not_granted", "{v}");
    assert_eq!(seen(&up, "/echo/del"), 0);
    assert_eq!(served.terminate(), Some(0));
}

// ----------------------------------------------------------------- restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_pending_approval_loses_nothing() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let served = tap.serve();
    let body = "{\"restart\":true}";
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/restart", up.base()),
        "PUT",
        body,
    )
    .await;
    let txn = assert_accepted(&r, &served);
    assert_eq!(
        served.terminate(),
        Some(0),
        "graceful stop with a pending approval"
    );

    // Decided while the proxy is down: nothing can forward it yet.
    approve_ok(&tap, &txn, None);
    assert_eq!(seen(&up, "/echo/restart"), 0);

    let served = tap.serve();
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(v["response"]["status"], 200, "{v}");
    let reqs: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.uri.starts_with("/echo/restart"))
        .collect();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].body, body.as_bytes());

    // Pending across a restart, approved after it.
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/restart2", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn2 = assert_accepted(&r, &served);
    assert_eq!(served.terminate(), Some(0));
    let served = tap.serve();
    assert_eq!(poll(&served, &key, &txn2).await.json()["status"], "pending");
    assert_eq!(pending(&tap).len(), 1);
    approve_ok(&tap, &txn2, None);
    let outcome = served.approval_outcome(&key, &txn2).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    // A third restart does not send anything again.
    assert_eq!(served.terminate(), Some(0));
    let served = tap.serve();
    assert_eq!(
        poll(&served, &key, &txn).await.json()["status"],
        "forwarded"
    );
    assert_eq!(
        poll(&served, &key, &txn2).await.json()["status"],
        "forwarded"
    );
    assert_eq!(
        seen(&up, "/echo/restart"),
        2,
        "restart and restart2, once each"
    );
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

// ------------------------------------------------------------------ grants

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_apply_are_used_up_revoked_and_expire() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let g = ok_json(
        &tap,
        &[
            "grant",
            "create",
            "echo",
            "--methods",
            "POST",
            "--route",
            "/echo/granted",
            "--ttl-minutes",
            "5",
            "--max-uses",
            "1",
        ],
    );
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["methods"], serde_json::json!(["POST"]), "{g}");
    assert_eq!(g["max_uses"], 1, "{g}");
    assert_eq!(g["active"], true, "{g}");
    // The dry run sees it.
    let t = ok_json(
        &tap,
        &[
            "policy",
            "test",
            "echo",
            "--method",
            "POST",
            "--target",
            &format!("{}/echo/granted", up.base()),
        ],
    );
    assert_eq!(t["decision"], "proceed", "{t}");
    assert_eq!(t["policy_reason"], format!("grant:{gid}"), "{t}");
    assert_eq!(t["rule"], "/echo/granted", "{t}");
    let served = tap.serve();
    let target = format!("{}/echo/granted", up.base());

    // Use 1: proceeds at once.
    let r = write_async(&served, &key, &target, "POST", "{\"n\":1}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = audit_row(&tap, &r.request_id(), |r| !r["upstream_status"].is_null()).await;
    assert_eq!(row["policy_reason"], format!("grant:{gid}"), "{row}");
    assert_eq!(row["decision"], "proceed", "{row}");
    // Use 2: the grant is used up.
    let r = write_async(&served, &key, &target, "POST", "{\"n\":2}").await;
    let txn = assert_accepted(&r, &served);
    let row = audit_row(&tap, &txn, |_| true).await;
    assert_eq!(row["policy_reason"], "team_default_gated_write", "{row}");
    // Other methods and routes were never covered.
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/elsewhere", up.base()),
        "POST",
        "{}",
    )
    .await;
    assert_accepted(&r, &served);
    let listed = ok_json(&tap, &["grant", "list"]);
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == gid.as_str())
        .unwrap();
    assert_eq!(mine["uses"], 1, "{mine}");
    assert_eq!(mine["active"], false, "{mine}");
    assert_eq!(seen(&up, "/echo/granted"), 1);

    // Revoked grants no longer apply, also while serving.
    let g2 = ok_json(
        &tap,
        &[
            "grant",
            "create",
            "echo",
            "--methods",
            "POST",
            "--route",
            "/echo/rev",
            "--ttl-minutes",
            "5",
        ],
    );
    let gid2 = g2["id"].as_str().unwrap().to_owned();
    let rev = format!("{}/echo/rev", up.base());
    let first = eventually(TRIES, EVERY, || async {
        let r = write_async(&served, &key, &rev, "POST", "{}").await;
        (r.status == 200).then_some(r)
    })
    .await
    .expect("a new grant must apply within the reload bound");
    let row = audit_row(&tap, &first.request_id(), |r| {
        !r["upstream_status"].is_null()
    })
    .await;
    assert_eq!(row["policy_reason"], format!("grant:{gid2}"), "{row}");
    let revoked = ok_json(&tap, &["grant", "revoke", &gid2]);
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let before = seen(&up, "/echo/rev");
    let r = write_async(&served, &key, &rev, "POST", "{}").await;
    assert_accepted(&r, &served);
    assert_eq!(seen(&up, "/echo/rev"), before, "a revoked grant was used");
    let again = run(&tap, &["grant", "revoke", &gid2]);
    assert_eq!(again.status.code(), Some(1), "revoking twice fails");

    // Expired grants no longer apply: move the expiry into the past in the store.
    let g3 = ok_json(
        &tap,
        &[
            "grant",
            "create",
            "echo",
            "--methods",
            "POST",
            "--route",
            "/echo/exp",
            "--ttl-minutes",
            "5",
        ],
    );
    let gid3 = g3["id"].as_str().unwrap().to_owned();
    let exp = format!("{}/echo/exp", up.base());
    eventually(TRIES, EVERY, || async {
        let r = write_async(&served, &key, &exp, "POST", "{}").await;
        (r.status == 200).then_some(r)
    })
    .await
    .expect("grant 3 must apply");
    tap.sql_execute(
        "UPDATE grants SET expires_at = expires_at - 3600 WHERE id = $1",
        &[&gid3],
    )
    .await;
    let before = seen(&up, "/echo/exp");
    let r = write_async(&served, &key, &exp, "POST", "{}").await;
    assert_accepted(&r, &served);
    assert_eq!(seen(&up, "/echo/exp"), before, "an expired grant was used");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_never_beat_require_urls_or_min_approvals() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    tap.add_credential("two", SECRET, &["--allowed-host", &up.base()]);
    tap.ok(&["agent", "grant", "bot", "two"]);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        "/echo/admin",
    ]);
    tap.ok(&["policy", "set", "two", "--min-approvals", "2"]);
    for cred in ["echo", "two"] {
        tap.ok(&[
            "grant",
            "create",
            cred,
            "--methods",
            "POST,GET",
            "--route",
            "/echo",
            "--ttl-minutes",
            "5",
        ]);
    }
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/admin", up.base()),
        "GET",
        "",
    )
    .await;
    let txn = assert_accepted(&r, &served);
    let row = audit_row(&tap, &txn, |_| true).await;
    assert_eq!(row["policy_reason"], "require_approval_url", "{row}");
    // The grant does apply to the rest of its route.
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/other", up.base()),
        "POST",
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = served
        .forward(&key)
        .credential("two")
        .target(&format!("{}/echo/two", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .send()
        .await;
    let txn = assert_accepted(&r, &served);
    let row = audit_row(&tap, &txn, |_| true).await;
    assert_eq!(row["policy_reason"], "require_approval_default", "{row}");
    assert_eq!(seen(&up, "/echo/admin") + seen(&up, "/echo/two"), 0);
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------------------ web UI

async fn login(served: &Served, email: &str, password: &str) -> String {
    let r = http_client()
        .post(format!("{}/login", served.url))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"email": email, "password": password}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v["expires_at"].is_string(), "{v}");
    assert_eq!(v["teams"][0]["team"], "default", "{v}");
    v["session_token"].as_str().unwrap().to_owned()
}

async fn page(
    served: &Served,
    txn: &str,
    bearer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = http_client().get(format!("{}/approve/{txn}", served.url));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// The csrf value of the form posting to `action`.
fn csrf_of(html: &str, action: &str) -> String {
    let form = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action}: {html}"));
    let rest = &html[form..];
    let at =
        rest.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    let end = rest[at..].find('"').unwrap();
    rest[at..at + end].to_owned()
}

async fn post_form(served: &Served, path: &str, bearer: &str, body: &str) -> reqwest::Response {
    http_client()
        .post(format!("{}{path}", served.url))
        .bearer_auth(bearer)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_approves_with_a_session_and_a_csrf_token() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[]);
    let served = tap.serve();
    let crafted = "<script>alert('x')</script><b>bold</b>&amp;";
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/web", up.base()),
        "POST",
        crafted,
    )
    .await;
    let txn = assert_accepted(&r, &served);

    // Logged out: a login form, no decision forms.
    let (status, _, html) = page(&served, &txn, None).await;
    assert_eq!(status, 200);
    assert!(html.contains("action=\"/login\""), "{html}");
    assert!(
        !html.contains(&format!("/approve/{txn}/approve")),
        "no decision form when logged out: {html}"
    );

    let bad = http_client()
        .post(format!("{}/login", served.url))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"email": init["owner_email"], "password": "wrong"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    let session = login(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;
    let (status, headers, html) = page(&served, &txn, Some(&session)).await;
    assert_eq!(status, 200, "{html}");
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    assert!(
        html.contains(">Approve<") && html.contains(">Deny<"),
        "{html}"
    );
    assert!(html.contains("POST"), "{html}");
    assert!(html.contains("/echo/web"), "{html}");
    // The crafted body is shown, escaped, never as markup.
    assert!(!html.contains("<script>"), "unescaped script: {html}");
    assert!(!html.contains("<b>bold"), "unescaped markup: {html}");
    // Escaped as named or numeric entities (askama writes `&#60;`).
    assert!(
        html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
        "{html}"
    );
    assert!(
        html.contains("&amp;amp;") || html.contains("&#38;amp;"),
        "{html}"
    );
    assert!(!html.contains(SECRET));

    let approve_action = format!("/approve/{txn}/approve");
    let csrf = csrf_of(&html, &approve_action);
    assert_eq!(csrf, csrf_of(&html, &format!("/approve/{txn}/deny")));

    // Wrong or missing csrf, or another session's token: refused, nothing decided.
    let wrong = post_form(&served, &approve_action, &session, "csrf=0000").await;
    assert_eq!(wrong.status(), 403);
    let missing = post_form(&served, &approve_action, &session, "").await;
    assert!(missing.status().is_client_error(), "{}", missing.status());
    let other_session = login(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;
    let swapped = post_form(
        &served,
        &approve_action,
        &other_session,
        &format!("csrf={}", form_value(&csrf)),
    )
    .await;
    assert_eq!(swapped.status(), 403, "csrf is bound to the session");
    // Without any credentials.
    let anon = http_client()
        .post(format!("{}{approve_action}", served.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", form_value(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");
    assert_eq!(seen(&up, "/echo/web"), 0);

    let ok = post_form(
        &served,
        &approve_action,
        &session,
        &format!("csrf={}", form_value(&csrf)),
    )
    .await;
    assert!(ok.status().is_redirection(), "{}", ok.status());
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(v["response"]["status"], 200);
    let reqs = up.requests();
    let sent: Vec<_> = reqs.iter().filter(|r| r.uri == "/echo/web").collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, crafted.as_bytes(), "forwarded byte for byte");
    // The page now shows the outcome and no forms.
    let (_, _, html) = page(&served, &txn, Some(&session)).await;
    assert!(html.contains("forwarded"), "{html}");
    assert!(!html.contains(&approve_action), "{html}");
    let row = audit_row(&tap, &txn, |r| r["approval_status"] == "forwarded").await;
    assert_eq!(
        row["approvers"],
        serde_json::json!([init["owner_email"].as_str().unwrap()])
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_denies_and_refuses_ineligible_members() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    add_member(&tap, "viewer@y.test", "viewer");
    add_member(&tap, "admin2@y.test", "admin");
    let served = tap.serve();
    let r = write_async(
        &served,
        &key,
        &format!("{}/echo/webdeny", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn = assert_accepted(&r, &served);

    let viewer = login(&served, "viewer@y.test", "a-long-member-password-1234").await;
    let (status, _, html) = page(&served, &txn, Some(&viewer)).await;
    assert_eq!(status, 200);
    assert!(!html.contains(&format!("/approve/{txn}/approve")), "{html}");
    // Even with a valid csrf for their own session, the gate refuses the viewer.
    // (The page does not hand one out; a viewer could still compute nothing.)
    let forged = post_form(
        &served,
        &format!("/approve/{txn}/approve"),
        &viewer,
        "csrf=abc",
    )
    .await;
    assert!(forged.status().is_client_error());
    assert_eq!(poll(&served, &key, &txn).await.json()["status"], "pending");

    let admin = login(&served, "admin2@y.test", "a-long-member-password-1234").await;
    let (_, _, html) = page(&served, &txn, Some(&admin)).await;
    let deny = format!("/approve/{txn}/deny");
    let csrf = csrf_of(&html, &deny);
    let r = post_form(
        &served,
        &deny,
        &admin,
        &format!("csrf={}", form_value(&csrf)),
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "denied", "{v}");
    assert_eq!(v["decided_by"], serde_json::json!(["admin2@y.test"]), "{v}");
    // Approving afterwards through the page is refused.
    let r = post_form(
        &served,
        &format!("/approve/{txn}/approve"),
        &admin,
        &format!("csrf={}", form_value(&csrf)),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(seen(&up, "/echo/webdeny"), 0);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_approvals_api_lists_and_decides() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[]);
    let served = tap.serve();
    let admin = init["admin_token"].as_str().unwrap();
    let r1 = write_async(
        &served,
        &key,
        &format!("{}/echo/api1", up.base()),
        "POST",
        "{}",
    )
    .await;
    let txn1 = assert_accepted(&r1, &served);
    let r2 = write_async(
        &served,
        &key,
        &format!("{}/echo/api2", up.base()),
        "PATCH",
        "{}",
    )
    .await;
    let txn2 = assert_accepted(&r2, &served);

    let list = |bearer: Option<String>| {
        let url = format!("{}/team/approvals?status=pending", served.url);
        async move {
            let mut req = http_client().get(url);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (
                s,
                serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
            )
        }
    };
    let (s, v) = list(None).await;
    assert_eq!(s, 401);
    assert_eq!(v["error_code"], "unauthorized", "{v}");
    let (s, v) = list(Some("tap_admin_garbage".into())).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = list(Some(admin.to_owned())).await;
    assert_eq!(s, 200, "{v}");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    let row = rows.iter().find(|r| r["txn_id"] == txn1.as_str()).unwrap();
    assert_eq!(row["status"], "pending");
    assert_eq!(row["method"], "POST");
    assert_eq!(row["agent_id"], "bot");
    assert_eq!(row["credential"], "echo");
    assert_eq!(row["policy_reason"], "team_default_gated_write");
    assert!(!v.to_string().contains(SECRET));

    let post = |path: String, bearer: Option<String>| async move {
        let mut req = http_client().post(path);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (
            s,
            serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
        )
    };
    let (s, _) = post(
        format!("{}/team/approvals/{txn1}/approve", served.url),
        None,
    )
    .await;
    assert_eq!(s, 401);
    let (s, v) = post(
        format!("{}/team/approvals/{txn1}/approve", served.url),
        Some(admin.to_owned()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["txn_id"], txn1.as_str(), "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["approvals"], 1, "{v}");
    assert_eq!(v["min_approvals"], 1, "{v}");
    let (s, v) = post(
        format!("{}/team/approvals/{txn2}/deny", served.url),
        Some(admin.to_owned()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "denied", "{v}");
    let (s, v) = post(
        format!("{}/team/approvals/no-such-txn/approve", served.url),
        Some(admin.to_owned()),
    )
    .await;
    assert_eq!(s, 404, "{v}");

    let outcome = served.approval_outcome(&key, &txn1).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    let outcome = served.approval_outcome(&key, &txn2).await;
    assert_eq!(outcome["status"], "denied", "{outcome}");
    assert_eq!(seen(&up, "/echo/api1"), 1);
    assert_eq!(seen(&up, "/echo/api2"), 0);
    let (_, v) = list(Some(admin.to_owned())).await;
    assert_eq!(v, serde_json::json!([]), "nothing pending any more");
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

// ------------------------------------------------------------------- audit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_approval_outcome_is_audited_and_the_chain_verifies() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up, &[]);
    add_member(&tap, "second@y.test", "admin");
    let served = tap.serve();
    let owner = init["owner_email"].as_str().unwrap().to_owned();
    let mut txns = Vec::new();
    for p in ["fwd", "deny", "err"] {
        let r = write_async(
            &served,
            &key,
            &format!("{}/echo/{p}", up.base()),
            "POST",
            "{}",
        )
        .await;
        txns.push(assert_accepted(&r, &served));
    }
    approve_ok(&tap, &txns[0], Some("second@y.test"));
    let (code, _) = decide(&tap, "deny", &txns[1], None);
    assert_eq!(code, 0);
    tap.sql_execute(
        "UPDATE approvals SET request = replace(request, '/echo/err', '/echo/evil') WHERE txn_id = $1",
        &[&txns[2]],
    )
    .await;
    approve_ok(&tap, &txns[2], None);

    let f = audit_row(&tap, &txns[0], |r| r["approval_status"] == "forwarded").await;
    assert_eq!(f["approvers"], serde_json::json!(["second@y.test"]), "{f}");
    assert_eq!(f["policy_reason"], "team_default_gated_write", "{f}");
    assert_eq!(f["upstream_status"], 200, "{f}");
    let d = audit_row(&tap, &txns[1], |r| r["approval_status"] == "denied").await;
    assert_eq!(d["policy_reason"], "team_default_gated_write", "{d}");
    assert_eq!(d["error_code"], "approval_denied", "{d}");
    let e = audit_row(&tap, &txns[2], |r| r["approval_status"] == "error").await;
    assert_eq!(e["approvers"], serde_json::json!([owner]), "{e}");
    assert_eq!(e["error_code"], "request_tampered", "{e}");
    assert_eq!(e["policy_reason"], "team_default_gated_write", "{e}");
    assert_eq!(e["team_id"], "default", "{e}");
    assert_eq!(served.terminate(), Some(0));
    assert_audit_ok(&tap);
}

// ------------------------------------------------------------- pending cap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_approvals_per_agent_are_capped() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up, &[]);
    let other = tap.agent("other", &["--credential", "echo"]);
    let served = tap.serve();
    let target = format!("{}/echo/flood", up.base());
    let mut first = None;
    let mut capped = None;
    for _ in 0..40 {
        let r = write_async(&served, &key, &target, "POST", "{}").await;
        if r.status == 202 {
            first.get_or_insert_with(|| r.json()["txn_id"].as_str().unwrap().to_owned());
            continue;
        }
        capped = Some(r);
        break;
    }
    let capped = capped.expect("pending approvals are not capped");
    capped.assert_refused(429, "rate_limited");
    let n = pending(&tap).len();
    assert!(n >= 1, "{n}");
    // The cap is per agent: another agent still gets its 202.
    let r = write_async(&served, &other, &target, "POST", "{}").await;
    assert_accepted(&r, &served);
    // Deciding one frees a slot.
    let (code, _) = decide(&tap, "deny", first.as_deref().unwrap(), None);
    assert_eq!(code, 0);
    let r = write_async(&served, &key, &target, "POST", "{}").await;
    assert_accepted(&r, &served);
    assert_eq!(seen(&up, "/echo/flood"), 0);
    assert_eq!(served.terminate(), Some(0));
}
