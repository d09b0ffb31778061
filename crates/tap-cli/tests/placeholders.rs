//! Legacy placeholder mode end to end through the real `tap` binary (SPEC
//! §3.2): `<CREDENTIAL:name>` and `<CREDENTIAL:name.field>` substituted in
//! the allowed headers only; anywhere else 400 `placeholder_position_violation`
//! with nothing forwarded; every referenced credential granted, host-bound
//! and policy-checked (the strictest wins, in either order); every referenced
//! secret scrubbed; audit rows and approvals naming every credential.
// Helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually};

const ALPHA: &str = "alpha-secret-0123456789";
const BETA: &str = "beta-secret-9876543210";
const MULTI_USER: &str = "multi-user-abcdefgh";
const MULTI_TOKEN: &str = "multi-token-ijklmnop";
const FAR: &str = "elsewhere-secret-55555";
const PRIVATE: &str = "private-secret-77777777";
/// Bound for anything the proxy does on its own (executor, reload: 200 ms ticks).
const TRIES: u32 = 150;
const EVERY: Duration = Duration::from_millis(100);

/// Credentials `alpha`, `beta`, `multi` (JSON, binds `X-Multi-Token`) on the
/// fake upstream, `elsewhere` bound to another host, `private` not granted;
/// agent `bot` granted all but `private`.
fn setup(up: &FakeUpstream) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let host = up.base();
    tap.add_credential("alpha", ALPHA, &["--allowed-host", &host]);
    tap.add_credential("beta", BETA, &["--allowed-host", &host]);
    tap.add_credential(
        "multi",
        &format!(r#"{{"user":"{MULTI_USER}","token":"{MULTI_TOKEN}"}}"#),
        &[
            "--allowed-host",
            &host,
            "--bind",
            "X-Multi-Token={value.token}",
        ],
    );
    tap.add_credential("elsewhere", FAR, &["--allowed-host", "api.other.test"]);
    tap.add_credential("private", PRIVATE, &["--allowed-host", &host]);
    let key = tap.agent(
        "bot",
        &[
            "--credential",
            "alpha",
            "--credential",
            "beta",
            "--credential",
            "multi",
            "--credential",
            "elsewhere",
        ],
    );
    (tap, key)
}

fn echo(up: &FakeUpstream) -> String {
    format!("{}/echo/ph", up.base())
}

/// A forward without `X-TAP-Credential`, with the given headers.
async fn send(
    served: &Served,
    key: &str,
    target: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut f = served.forward(key).target(target).method(method);
    for (n, v) in headers {
        f = f.header(n, v);
    }
    f.body(body.to_owned()).send().await
}

fn assert_no_secret(r: &Reply) {
    let text = r.text();
    for s in [ALPHA, BETA, MULTI_USER, MULTI_TOKEN, FAR, PRIVATE] {
        assert!(!text.contains(s), "secret in answer: {text}");
        for (n, v) in &r.headers {
            assert!(
                !String::from_utf8_lossy(v.as_bytes()).contains(s),
                "secret in header {n}"
            );
        }
    }
}

/// The merged audit row of a request, once `tap logs [extra]` shows it finished (bounded wait).
async fn audit_row(tap: &TapHome, id: &str, extra: &[&str]) -> Option<Value> {
    eventually(TRIES, EVERY, || async {
        let logs = tokio::task::block_in_place(|| tap.logs(extra));
        logs.into_iter()
            .find(|l| l["request_id"] == id && !l["latency_total_ms"].is_null())
    })
    .await
}

fn cli_json(tap: &TapHome, args: &[&str]) -> Value {
    tokio::task::block_in_place(|| tap.json(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substitutes_in_each_allowed_header() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let target = echo(&up);
    let cases: &[(&str, &str, String)] = &[
        (
            "authorization",
            "Bearer <CREDENTIAL:alpha>",
            format!("Bearer {ALPHA}"),
        ),
        ("x-api-key", "<CREDENTIAL:alpha>", ALPHA.to_owned()),
        (
            "x-auth-token",
            "tok <credential:alpha>",
            format!("tok {ALPHA}"),
        ),
        // `.field` in an allowed header, twice in one value.
        (
            "authorization",
            "<CREDENTIAL:multi.user>:<CREDENTIAL:multi.token>",
            format!("{MULTI_USER}:{MULTI_TOKEN}"),
        ),
        // The credential's own bound header.
        (
            "x-multi-token",
            "<CREDENTIAL:multi.token>",
            MULTI_TOKEN.to_owned(),
        ),
    ];
    for (i, (header, value, expected)) in cases.iter().enumerate() {
        let r = send(&served, &key, &target, "GET", &[(header, value)], "").await;
        assert_eq!(r.status, 200, "{header}: {}", r.text());
        assert_no_secret(&r);
        assert!(r.text().contains("[REDACTED:"), "{header}: {}", r.text());
        let seen = up.requests();
        assert_eq!(seen.len(), i + 1);
        let got = seen[i].header(header);
        assert_eq!(got.as_deref(), Some(expected.as_str()), "{header}");
        assert_eq!(seen[i].header_all(header).len(), 1, "{header} duplicated");
        // Placeholder mode injects nothing else.
        if *header != "authorization" {
            assert_eq!(seen[i].header("authorization"), None, "{header}");
        }
    }
    // Audit rows name the credential.
    let r = send(
        &served,
        &key,
        &target,
        "GET",
        &[("x-api-key", "<CREDENTIAL:multi.user>")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = audit_row(&tap, &r.request_id(), &[]).await.unwrap();
    assert_eq!(
        row["credential_names"],
        serde_json::json!(["multi"]),
        "{row}"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_elsewhere_are_refused_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let target = echo(&up);
    let good = ("authorization", "Bearer <CREDENTIAL:alpha>");
    // A non-allowed header, with and without a valid placeholder beside it.
    for headers in [
        vec![("x-custom", "<CREDENTIAL:alpha>")],
        vec![good, ("x-custom", "<CREDENTIAL:alpha>")],
        vec![good, ("x-other", "<CREDENTIAL:multi.token>")],
        // A header another credential binds is not open to this one.
        vec![("x-multi-token", "<CREDENTIAL:alpha>")],
        vec![good, ("cookie", "s=%3CCREDENTIAL%3Aalpha%3E")],
    ] {
        let r = send(&served, &key, &target, "GET", &headers, "").await;
        let body = r.assert_refused(400, "placeholder_position_violation");
        let loc = body["location"].as_str().unwrap_or_default();
        assert!(loc.starts_with("header:"), "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&loc["header:".len()..]),
            "{body}"
        );
    }
    // The body, raw and JSON-escaped.
    for b in [
        r#"{"token":"<CREDENTIAL:alpha>"}"#,
        r#"{"token":"\u003cCREDENTIAL:alpha\u003e"}"#,
    ] {
        let r = send(&served, &key, &target, "POST", &[good], b).await;
        let body = r.assert_refused(400, "placeholder_position_violation");
        assert_eq!(body["location"], "body", "{body}");
        assert!(body["detail"].as_str().unwrap().contains("body"), "{body}");
    }
    // The URL, raw and percent-encoded.
    for t in [
        format!("{target}?key=<CREDENTIAL:alpha>"),
        format!("{target}?key=%3CCREDENTIAL:alpha%3E"),
    ] {
        let r = send(&served, &key, &t, "GET", &[good], "").await;
        let body = r.assert_refused(400, "placeholder_position_violation");
        assert_eq!(body["location"], "url", "{body}");
        assert!(body["detail"].as_str().unwrap().contains("URL"), "{body}");
    }
    // Malformed placeholders in an allowed header.
    for v in [
        "Bearer <CREDENTIAL:alpha",
        "<CREDENTIAL:<CREDENTIAL:alpha>>",
        "<CREDENTIAL:Alpha>",
    ] {
        let r = send(&served, &key, &target, "GET", &[("authorization", v)], "").await;
        r.assert_refused(400, "invalid_placeholder");
    }
    // Neither X-TAP-Credential nor a placeholder.
    let r = send(
        &served,
        &key,
        &target,
        "GET",
        &[("authorization", "Bearer x")],
        "",
    )
    .await;
    r.assert_refused(400, "no_credential");
    assert_eq!(up.count(), 0, "nothing may reach the upstream");
    // Refusals are audited.
    let logs = tokio::task::block_in_place(|| tap.logs(&[]));
    assert!(
        logs.iter()
            .any(|l| l["error_code"] == "placeholder_position_violation"),
        "{logs:?}"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_referenced_credential_must_exist_be_granted_and_allow_the_host() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let target = echo(&up);
    for (first, second, status, code, named) in [
        ("alpha", "private", 403, "credential_not_granted", "private"),
        ("private", "alpha", 403, "credential_not_granted", "private"),
        ("alpha", "nope", 404, "credential_not_found", "nope"),
        ("alpha", "elsewhere", 403, "host_not_allowed", "elsewhere"),
        ("elsewhere", "alpha", 403, "host_not_allowed", "elsewhere"),
    ] {
        let a = format!("Bearer <CREDENTIAL:{first}>");
        let b = format!("<CREDENTIAL:{second}>");
        let r = send(
            &served,
            &key,
            &target,
            "GET",
            &[("authorization", &a), ("x-api-key", &b)],
            "",
        )
        .await;
        let body = r.assert_refused(status, code);
        assert_eq!(body["credential"], named, "{first}+{second}: {body}");
        assert_no_secret(&r);
    }
    assert_eq!(up.count(), 0, "nothing may reach the upstream");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrubs_every_referenced_secret_and_audits_every_credential() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let r = send(
        &served,
        &key,
        &echo(&up),
        "GET",
        &[
            ("authorization", "Bearer <CREDENTIAL:alpha>"),
            ("x-api-key", "<CREDENTIAL:beta>"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_secret(&r);
    let text = r.text();
    assert!(text.contains("[REDACTED:alpha]"), "{text}");
    assert!(text.contains("[REDACTED:beta]"), "{text}");
    assert_eq!(
        r.header("x-echo").as_deref(),
        Some("Bearer [REDACTED:alpha]")
    );
    let seen = &up.requests()[0];
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {ALPHA}"))
    );
    assert_eq!(seen.header("x-api-key").as_deref(), Some(BETA));
    let id = r.request_id();
    let row = audit_row(&tap, &id, &[]).await.unwrap();
    assert_eq!(
        row["credential_names"],
        serde_json::json!(["alpha", "beta"]),
        "{row}"
    );
    // `tap logs --credential X` finds the row by either name.
    for c in ["alpha", "beta"] {
        assert!(
            audit_row(&tap, &id, &["--credential", c]).await.is_some(),
            "--credential {c}"
        );
    }
    let logs = tokio::task::block_in_place(|| tap.logs(&["--credential", "multi"]));
    assert!(logs.iter().all(|l| l["request_id"] != id.as_str()));
    // The audit trail holds no secret.
    let db = std::fs::read(tap.db_path()).unwrap_or_default();
    for s in [ALPHA, BETA] {
        assert!(!String::from_utf8_lossy(&db).contains(s));
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strictest_policy_wins_in_either_order() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    // alpha lets writes through; beta keeps the gated default (writes pause);
    // multi's writes need a passkey approval, which this deployment cannot
    // give: they are refused (the strictest outcome).
    tap.ok(&[
        "policy",
        "set",
        "alpha",
        "--auto-approve-methods",
        "GET,POST",
    ]);
    tap.ok(&["policy", "set", "multi", "--require-passkey"]);
    let served = tap.serve();
    let target = echo(&up);
    let st = cli_json(&tap, &["status"]);
    assert_eq!(st["pending_approvals"], 0, "{st}");

    // alpha alone proceeds.
    let r = send(
        &served,
        &key,
        &target,
        "POST",
        &[("authorization", "Bearer <CREDENTIAL:alpha>")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.count(), 1);

    // alpha + beta pauses, whichever comes first.
    let mut txns = Vec::new();
    for (first, second) in [("alpha", "beta"), ("beta", "alpha")] {
        let a = format!("Bearer <CREDENTIAL:{first}>");
        let b = format!("<CREDENTIAL:{second}>");
        let r = send(
            &served,
            &key,
            &target,
            "POST",
            &[
                ("authorization", &a),
                ("x-api-key", &b),
                ("prefer", "respond-async"),
            ],
            "{}",
        )
        .await;
        assert_eq!(r.status, 202, "{first}+{second}: {}", r.text());
        txns.push((
            r.json()["txn_id"].as_str().unwrap().to_owned(),
            format!("{first},{second}"),
        ));
    }
    assert_eq!(up.count(), 1, "a paused write is not forwarded");
    let pending = cli_json(&tap, &["pending"]);
    for (txn, creds) in &txns {
        let row = pending
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["txn_id"] == txn.as_str())
            .unwrap_or_else(|| panic!("{txn} not pending: {pending}"));
        assert_eq!(row["credential"], creds.as_str(), "{row}");
    }
    let st = cli_json(&tap, &["status"]);
    assert_eq!(st["pending_approvals"], 2, "{st}");

    // A refusal beats both approval and proceed, in either order.
    let placeholder = |c: &str| {
        if c == "multi" {
            "<CREDENTIAL:multi.token>".to_owned()
        } else {
            format!("<CREDENTIAL:{c}>")
        }
    };
    for (first, second) in [
        ("alpha", "multi"),
        ("multi", "alpha"),
        ("beta", "multi"),
        ("multi", "beta"),
    ] {
        let (ha, hb) = (placeholder(first), placeholder(second));
        let r = send(
            &served,
            &key,
            &target,
            "POST",
            &[("authorization", &ha), ("x-api-key", &hb)],
            "{}",
        )
        .await;
        r.assert_refused(503, "passkey_unavailable");
    }
    assert_eq!(up.count(), 1);

    // Only a member eligible for both credentials decides a two-credential approval.
    let (txn, _) = &txns[0];
    for (email, creds) in [
        ("one@x.test", vec!["alpha"]),
        ("both@x.test", vec!["alpha", "beta"]),
    ] {
        tokio::task::block_in_place(|| {
            let out = tap.run_stdin(
                &[
                    "member",
                    "add",
                    email,
                    "--role",
                    "approver",
                    "--password-stdin",
                ],
                b"a-long-member-password-1234\n",
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for c in creds {
                tap.ok(&["member", "assign", email, "--credential", c]);
            }
        });
    }
    let out =
        tokio::task::block_in_place(|| tap.run(&["approve", txn, "--as", "one@x.test", "--json"]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "an approver of one credential decided"
    );
    let out =
        tokio::task::block_in_place(|| tap.run(&["approve", txn, "--as", "both@x.test", "--json"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = served.approval_outcome(&key, txn).await;
    assert_eq!(done["status"], "forwarded", "{done}");
    let text = done.to_string();
    for s in [ALPHA, BETA] {
        assert!(!text.contains(s), "secret in poll result: {text}");
    }
    assert!(
        text.contains("[REDACTED:alpha]") && text.contains("[REDACTED:beta]"),
        "{text}"
    );
    let seen = up.requests();
    let last = seen.last().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {ALPHA}"))
    );
    assert_eq!(last.header("x-api-key").as_deref(), Some(BETA));
    let st = cli_json(&tap, &["status"]);
    assert_eq!(st["pending_approvals"], 1, "{st}");
    assert_eq!(served.terminate(), Some(0));
}
