//! The policy engine of SPEC §5 through the real binary: every rule and its
//! `policy_reason`, by dry run (`tap policy test --json`) and by real requests
//! (audited `policy_reason`), and URL-encoding tricks (THREATS §E, §F) that must
//! not escape a `require_approval_urls` rule nor widen an `auto_approve_urls` one.
//!
//! Every wait is bounded (`eventually`), nothing asserts on wall-clock time.
// Helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually, http_client};

const SECRET: &str = "s3cr3t-value-for-policy-tests";
const TRIES: u32 = 150;
const EVERY: Duration = Duration::from_millis(100);

fn setup(up: &FakeUpstream) -> (TapHome, Value, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (tap, init, key)
}

/// `tap policy test echo --method M --target T --json`.
fn dry_run(tap: &TapHome, method: &str, target: &str) -> Value {
    tokio::task::block_in_place(|| {
        tap.json(&[
            "policy", "test", "echo", "--method", method, "--target", target,
        ])
    })
}

fn assert_dry(
    tap: &TapHome,
    method: &str,
    target: &str,
    decision: &str,
    reason: &str,
    rule: Value,
) {
    let v = dry_run(tap, method, target);
    assert_eq!(
        v,
        json!({"decision": decision, "policy_reason": reason, "rule": rule}),
        "{method} {target}"
    );
}

/// `POST /forward` for `echo` with `Prefer: respond-async`.
async fn call(served: &Served, key: &str, method: &str, target: &str) -> Reply {
    served
        .forward(key)
        .credential("echo")
        .target(target)
        .method(method)
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await
}

/// The merged audit record of `request_id` (bounded wait for it to exist).
async fn audit_row(tap: &TapHome, request_id: &str) -> Value {
    eventually(TRIES, EVERY, || async {
        let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "500"]));
        rows.into_iter().find(|r| r["request_id"] == request_id)
    })
    .await
    .unwrap_or_else(|| panic!("no audit row for {request_id}"))
}

/// Denies a pending txn so that the per-agent pending cap never interferes.
fn deny(tap: &TapHome, txn: &str) {
    let out = tokio::task::block_in_place(|| tap.run(&["deny", txn]));
    assert!(
        out.status.success(),
        "tap deny {txn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------ dry run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_test_names_every_rule_and_reason() {
    let up = FakeUpstream::start().await;
    let (tap, _, _) = setup(&up);
    let b = up.base();
    let t = |p: &str| format!("{b}{p}");

    // No policy: the gated team default.
    let shown = tap.json(&["policy", "show", "echo"]);
    assert!(shown["policy"].is_null(), "{shown}");
    assert_eq!(shown["team_default"], "gated", "{shown}");
    assert_dry(
        &tap,
        "GET",
        &t("/x"),
        "proceed",
        "team_default_gated_read",
        Value::Null,
    );
    assert_dry(
        &tap,
        "head",
        &t("/x"),
        "proceed",
        "team_default_gated_read",
        Value::Null,
    );
    for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "post"] {
        assert_dry(
            &tap,
            m,
            &t("/x"),
            "approval",
            "team_default_gated_write",
            Value::Null,
        );
    }

    let set = tap.json(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        "/echo/admin,/echo/*/secret",
        "--auto-approve-urls",
        "/echo/public",
        "--auto-approve-methods",
        "get",
        "--require-approval-methods",
        "DELETE",
    ]);
    assert_eq!(
        set["policy"]["auto_approve_methods"],
        json!(["GET"]),
        "{set}"
    );
    let shown = tap.json(&["policy", "show", "echo"]);
    let p = &shown["policy"];
    assert_eq!(
        p["require_approval_urls"],
        json!(["/echo/admin", "/echo/*/secret"]),
        "{p}"
    );
    assert_eq!(p["auto_approve_urls"], json!(["/echo/public"]), "{p}");
    assert_eq!(p["require_approval_methods"], json!(["DELETE"]), "{p}");
    assert_eq!(p["min_approvals"], 1, "{p}");
    assert!(p["allowed_approvers"].is_null(), "{p}");

    // Step 2 beats everything, on every method; prefixes end on segment boundaries.
    for m in ["GET", "HEAD", "POST"] {
        assert_dry(
            &tap,
            m,
            &t("/echo/admin"),
            "approval",
            "require_approval_url",
            json!("/echo/admin"),
        );
    }
    assert_dry(
        &tap,
        "GET",
        &t("/echo/admin/deeper?q=1"),
        "approval",
        "require_approval_url",
        json!("/echo/admin"),
    );
    assert_dry(
        &tap,
        "GET",
        &t("/echo/v1/secret"),
        "approval",
        "require_approval_url",
        json!("/echo/*/secret"),
    );
    assert_dry(
        &tap,
        "GET",
        &t("/echo/administrator"),
        "proceed",
        "auto_approve_method",
        json!("GET"),
    );
    // `*` is one non-empty segment.
    assert_dry(
        &tap,
        "GET",
        &t("/echo/a/b/secret"),
        "proceed",
        "auto_approve_method",
        json!("GET"),
    );
    // Step 3.
    assert_dry(
        &tap,
        "POST",
        &t("/echo/public"),
        "proceed",
        "auto_approve_url",
        json!("/echo/public"),
    );
    assert_dry(
        &tap,
        "DELETE",
        &t("/echo/public/item"),
        "proceed",
        "auto_approve_url",
        json!("/echo/public"),
    );
    // Step 4 (HEAD counts as GET).
    assert_dry(
        &tap,
        "GET",
        &t("/echo/x"),
        "proceed",
        "auto_approve_method",
        json!("GET"),
    );
    assert_dry(
        &tap,
        "HEAD",
        &t("/echo/x"),
        "proceed",
        "auto_approve_method",
        json!("GET"),
    );
    // Step 5.
    assert_dry(
        &tap,
        "DELETE",
        &t("/echo/x"),
        "approval",
        "require_approval_method",
        json!("DELETE"),
    );
    assert_dry(
        &tap,
        "delete",
        &t("/echo/x"),
        "approval",
        "require_approval_method",
        json!("DELETE"),
    );
    // Step 6.
    assert_dry(
        &tap,
        "POST",
        &t("/echo/x"),
        "approval",
        "require_approval_default",
        Value::Null,
    );
    assert_dry(
        &tap,
        "PATCH",
        &t("/echo/x"),
        "approval",
        "require_approval_default",
        Value::Null,
    );

    // Host-qualified patterns need that exact host.
    let host = up.base().trim_start_matches("http://").to_owned();
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        &format!("{host}/echo/hosted"),
    ]);
    assert_dry(
        &tap,
        "GET",
        &t("/echo/hosted"),
        "approval",
        "require_approval_url",
        json!(format!("{host}/echo/hosted")),
    );
    assert_dry(
        &tap,
        "GET",
        "https://elsewhere.test/echo/hosted",
        "proceed",
        "auto_approve_method",
        json!("GET"),
    );
    // Fields not given keep their value.
    let shown = tap.json(&["policy", "show", "echo"]);
    assert_eq!(
        shown["policy"]["auto_approve_urls"],
        json!(["/echo/public"]),
        "{shown}"
    );

    // Refusals: bad values change nothing.
    for bad in [
        vec!["policy", "set", "echo", "--min-approvals", "0"],
        vec!["policy", "set", "echo", "--auto-approve-methods", "G ET"],
        vec!["policy", "set", "nope", "--min-approvals", "1"],
        vec!["policy", "test", "nope", "--target", "https://a.test/"],
        vec![
            "policy",
            "test",
            "echo",
            "--method",
            "TRACE",
            "--target",
            "https://a.test/",
        ],
        vec!["policy", "test", "echo", "--target", "not a url"],
    ] {
        let out = tap.run(&bad);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{bad:?} must fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        tap.json(&["policy", "show", "echo"])["policy"]["min_approvals"],
        1
    );

    // Clear: the team default again.
    let cleared = tap.json(&["policy", "clear", "echo"]);
    assert_eq!(cleared["cleared"], true, "{cleared}");
    assert_dry(
        &tap,
        "POST",
        &t("/echo/public"),
        "approval",
        "team_default_gated_write",
        Value::Null,
    );
    assert_eq!(tap.json(&["policy", "clear", "echo"])["cleared"], false);
}

// ------------------------------------------------------------ real requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_applies_to_real_requests_and_is_audited() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        "/echo/admin",
        "--auto-approve-urls",
        "/echo/public",
        "--auto-approve-methods",
        "GET",
        "--require-approval-methods",
        "DELETE",
    ]);
    let served = tap.serve();
    let b = up.base();
    let cases: &[(&str, &str, bool, &str)] = &[
        ("GET", "/echo/admin", false, "require_approval_url"),
        ("HEAD", "/echo/admin/x", false, "require_approval_url"),
        ("POST", "/echo/public", true, "auto_approve_url"),
        ("GET", "/echo/other", true, "auto_approve_method"),
        ("HEAD", "/echo/other", true, "auto_approve_method"),
        ("get", "/echo/administrator", true, "auto_approve_method"),
        ("DELETE", "/echo/other", false, "require_approval_method"),
        ("POST", "/echo/other", false, "require_approval_default"),
        ("PUT", "/echo/other", false, "require_approval_default"),
    ];
    for (method, path, proceeds, reason) in cases {
        let before = up.count();
        let r = call(&served, &key, method, &format!("{b}{path}")).await;
        let id = r.request_id();
        if *proceeds {
            assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
            assert_eq!(up.count(), before + 1, "{method} {path}");
        } else {
            assert_eq!(r.status, 202, "{method} {path}: {}", r.text());
            assert_eq!(up.count(), before, "{method} {path} went out");
        }
        let row = audit_row(&tap, &id).await;
        assert_eq!(row["policy_reason"], *reason, "{method} {path}: {row}");
        assert_eq!(row["method"], method.to_ascii_uppercase(), "{row}");
        assert_eq!(
            row["decision"],
            if *proceeds { "proceed" } else { "approval" },
            "{row}"
        );
    }
    // The agent sees the rules it is under.
    let services = served.get("/agent/services", Some(&key)).await;
    assert_eq!(services.status, 200, "{}", services.text());
    assert!(!services.text().contains(SECRET));

    // Policy changes apply to a running proxy (bounded), and a cleared policy
    // brings back the team default.
    tap.ok(&["policy", "clear", "echo"]);
    let r = eventually(TRIES, EVERY, || async {
        let r = call(&served, &key, "POST", &format!("{b}/echo/public")).await;
        (r.status == 202).then_some(r)
    })
    .await
    .expect("cleared policy never took effect");
    let row = audit_row(&tap, &r.request_id()).await;
    assert_eq!(row["policy_reason"], "team_default_gated_write", "{row}");
    let r = call(&served, &key, "GET", &format!("{b}/echo/admin")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = audit_row(&tap, &r.request_id()).await;
    assert_eq!(row["policy_reason"], "team_default_gated_read", "{row}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autonomous_team_proceeds_without_a_policy_row() {
    let up = FakeUpstream::start().await;
    let (tap, init, key) = setup(&up);
    let served = tap.serve();
    let admin = init["admin_token"].as_str().unwrap();
    let r = http_client()
        .put(format!("{}/team/settings", served.url))
        .bearer_auth(admin)
        .header("Content-Type", "application/json")
        .body(json!({"default_approval_mode": "autonomous"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let target = format!("{}/echo/auto", up.base());
    assert_dry(
        &tap,
        "POST",
        &target,
        "proceed",
        "team_default_autonomous",
        Value::Null,
    );
    let r = eventually(TRIES, EVERY, || async {
        let r = call(&served, &key, "POST", &target).await;
        if r.status == 202 {
            deny(&tap, &r.request_id());
        }
        (r.status == 200).then_some(r)
    })
    .await
    .expect("autonomous mode never took effect");
    let row = audit_row(&tap, &r.request_id()).await;
    assert_eq!(row["policy_reason"], "team_default_autonomous", "{row}");
    // A policy row still applies in an autonomous team.
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        "/echo/auto",
    ]);
    assert_dry(
        &tap,
        "POST",
        &target,
        "approval",
        "require_approval_url",
        json!("/echo/auto"),
    );
    assert_eq!(served.terminate(), Some(0));
}

// ---------------------------------------------------------- encoding tricks

/// Paths that the upstream reads as `/echo/hooks/admin` (or below it), spelled
/// to slip past a naive prefix match.
const BYPASSES: &[&str] = &[
    "/echo/hooks/admin",
    "/echo/%68ooks/admin",
    "/echo/%68%6F%6F%6B%73/admin",
    "/echo/%68%6f%6f%6b%73/%61dmin",
    "/echo/hooks%2Fadmin",
    "/echo/hooks%2fadmin",
    "/echo/hooks%5Cadmin",
    "/echo/hooks\\admin",
    "//echo/hooks/admin",
    "/echo//hooks///admin",
    "/echo/./hooks/./admin",
    "/./echo/hooks/admin",
    "/echo/x/../hooks/admin",
    "/echo/hooks/x/../admin",
    "/echo/%2e/hooks/admin",
    "/echo/x/%2e%2e/hooks/admin",
    "/echo/x/%2E%2E/hooks/admin",
    "/ECHO/HOOKS/ADMIN",
    "/echo/Hooks/Admin",
    "/echo/hooks;x=1/admin",
    "/echo/hooks/admin;jsessionid=abc",
    "/echo/hooks/admin/",
    "/echo/hooks/admin/deeper",
    "/echo/hooks/admin?x=1",
    "/echo/hooks/admin?next=/echo/other",
    "/echo/hooks/admin#frag",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_encoding_tricks_do_not_escape_a_require_rule() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--require-approval-urls",
        "/echo/hooks/admin",
        "--auto-approve-methods",
        "GET",
    ]);
    let b = up.base();
    let upper = b.replace("http://", "HTTP://");
    let mut targets: Vec<String> = BYPASSES.iter().map(|p| format!("{b}{p}")).collect();
    targets.push(format!("{upper}/echo/hooks/admin"));

    for target in &targets {
        let v = dry_run(&tap, "GET", target);
        assert_eq!(v["decision"], "approval", "{target}: {v}");
        assert_eq!(v["policy_reason"], "require_approval_url", "{target}: {v}");
        assert_eq!(v["rule"], "/echo/hooks/admin", "{target}: {v}");
    }
    // Controls: the rule is not wider than written.
    for ok in [
        "/echo/hooks",
        "/echo/hooks/administrator",
        "/echo/other/admin",
    ] {
        let v = dry_run(&tap, "GET", &format!("{b}{ok}"));
        assert_eq!(v["policy_reason"], "auto_approve_method", "{ok}: {v}");
    }

    let served = tap.serve();
    for target in &targets {
        let before = up.count();
        let r = call(&served, &key, "GET", target).await;
        assert_eq!(
            r.status,
            202,
            "{target} escaped the rule: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(up.count(), before, "{target} reached the upstream");
        let row = audit_row(&tap, &r.request_id()).await;
        assert_eq!(
            row["policy_reason"], "require_approval_url",
            "{target}: {row}"
        );
        deny(&tap, &r.request_id());
    }
    // The controls do go out.
    let r = call(
        &served,
        &key,
        "GET",
        &format!("{b}/echo/hooks/administrator"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_encoding_tricks_do_not_widen_an_auto_rule() {
    let up = FakeUpstream::start().await;
    let (tap, _, key) = setup(&up);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--auto-approve-urls",
        "/echo/public",
    ]);
    let b = up.base();
    // Unreserved escapes decode to the same path: still the public route.
    for same in [
        "/echo/public",
        "/echo/%70ublic",
        "/echo/public/x",
        "/echo//public",
        "/echo/x/../public",
    ] {
        let v = dry_run(&tap, "POST", &format!("{b}{same}"));
        assert_eq!(v["policy_reason"], "auto_approve_url", "{same}: {v}");
    }
    // Anything else, or anything ambiguous, is not auto-approved.
    let outside = [
        "/echo/public/..%2Fadmin",
        "/echo/public%2F..%2Fadmin",
        "/echo/public%2Fx",
        "/echo/public%5Cx",
        "/echo/public%00",
        "/echo/public%zz",
        "/echo/public/../admin",
        "/echo/public/%2e%2e/admin",
        "/echo/PUBLIC",
        "/echo/publicity",
        "/echo/pub",
    ];
    for other in outside {
        let v = dry_run(&tap, "POST", &format!("{b}{other}"));
        assert_eq!(v["decision"], "approval", "{other}: {v}");
        assert_eq!(
            v["policy_reason"], "require_approval_default",
            "{other}: {v}"
        );
    }
    let served = tap.serve();
    for other in outside {
        let before = up.count();
        let r = call(&served, &key, "POST", &format!("{b}{other}")).await;
        assert!(
            r.status == 202 || (400..500).contains(&r.status),
            "{other} was auto-approved: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(up.count(), before, "{other} reached the upstream");
        if r.status == 202 {
            deny(&tap, &r.request_id());
        }
    }
    let r = call(&served, &key, "POST", &format!("{b}/echo/%70ublic")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served.terminate(), Some(0));
}
