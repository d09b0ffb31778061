//! The member pages in real headless Chromium (SPEC §11 Web, Passkey): the
//! flow of `tests/browser/approve-flow.mjs` (playwright-core over the DevTools
//! protocol, Debian's `chromium`, the DevTools virtual authenticator) against
//! the real `tap` binary, then what the upstream received and the audit trail.
//!
//! Needs `chromium` and `npm ci --prefix tests/browser`; `.ci/run` installs
//! both and sets `TAP_REQUIRE_BROWSER=1`, so CI fails instead of skipping.
//! Screenshots land in `target/browser-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tap_testkit::{FakeUpstream, TapHome, closed_port};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    p.exists().then_some(p)
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if chromium().is_none() {
        return Some("chromium is not installed (apt-get install chromium)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    if !repo()
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

/// What a browser flow did.
struct FlowRun {
    ok: bool,
    /// Exit status, stdout and stderr, for a failure message.
    text: String,
}

/// Runs `tests/browser/<script>` with node, killed after a bound.
async fn run_flow(script: &str, env: &[(&str, &str)]) -> FlowRun {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("tests/browser").join(script))
        .env("CHROMIUM", chromium().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Bounded: a hung browser is killed, never waited on forever.
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = child.wait_with_output().unwrap();
    FlowRun {
        ok: status.is_some_and(|s| s.success()),
        text: format!(
            "browser flow {script} ended with {status:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Skips (or, under `TAP_REQUIRE_BROWSER`, fails) when the browser is missing.
fn browser_or_skip() -> bool {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("TAP_REQUIRE_BROWSER").is_none(),
            "browser test required but {why}"
        );
        eprintln!("skip: {why}");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_signs_in_registers_a_passkey_and_approves_in_chromium() {
    if !browser_or_skip() {
        return;
    }
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential(
        "vault",
        "browser-test-secret-0987",
        &["--allowed-host", &up.base()],
    );
    tap.ok(&["policy", "set", "vault", "--require-passkey"]);
    let key = tap.agent("bot", &["--credential", "vault"]);
    let port = closed_port();
    let origin = format!("http://localhost:{port}");
    let served = tap.serve_on(
        &format!("127.0.0.1:{port}"),
        &[
            ("TAP_WEBAUTHN_RP_ID", "localhost"),
            ("TAP_WEBAUTHN_ORIGIN", &origin),
            ("TAP_PUBLIC_URL", &origin),
        ],
    );
    let shots = repo().join("target/browser-screenshots");
    let out = run_flow(
        "approve-flow.mjs",
        &[
            ("TAP_URL", origin.as_str()),
            ("TAP_EMAIL", init["owner_email"].as_str().unwrap()),
            ("TAP_PASSWORD", init["owner_password"].as_str().unwrap()),
            ("TAP_AGENT_KEY", key.as_str()),
            ("TAP_TARGET", &format!("{}/payments", up.base())),
            ("TAP_SCREENSHOTS", shots.to_str().unwrap()),
        ],
    )
    .await;
    assert!(out.ok, "{}\nproxy log:\n{}", out.text, served.log());
    for shot in ["login.png", "inbox.png", "approval.png"] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
    // Exactly the approved request reached the upstream, once, with the secret.
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].uri.starts_with("/payments"));
    assert!(String::from_utf8_lossy(&reqs[0].body).contains("\"amount\":42"));
    // The audit trail names the passkey approval.
    let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "50"]));
    assert!(
        rows.iter()
            .any(|r| r["approval_status"] == "approved" || r["approval_status"] == "forwarded"),
        "{rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_follows_a_request_from_the_inbox_to_its_audit_timeline_in_chromium() {
    if !browser_or_skip() {
        return;
    }
    const SECRET: &str = "dashboard-browser-secret-2468";
    const VIEWER_PASSWORD: &str = "a-long-viewer-password-1357";
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let out = tap.run_stdin(
        &[
            "member",
            "add",
            "viewer@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        format!("{VIEWER_PASSWORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let port = closed_port();
    let origin = format!("http://localhost:{port}");
    let served = tap.serve_on(&format!("127.0.0.1:{port}"), &[("TAP_PUBLIC_URL", &origin)]);
    let shots = repo().join("target/browser-screenshots");
    let out = run_flow(
        "dashboard-flow.mjs",
        &[
            ("TAP_URL", origin.as_str()),
            ("TAP_EMAIL", init["owner_email"].as_str().unwrap()),
            ("TAP_PASSWORD", init["owner_password"].as_str().unwrap()),
            ("TAP_VIEWER_EMAIL", "viewer@example.com"),
            ("TAP_VIEWER_PASSWORD", VIEWER_PASSWORD),
            ("TAP_UPSTREAM", up.base().as_str()),
            ("TAP_SECRET", SECRET),
            ("TAP_SCREENSHOTS", shots.to_str().unwrap()),
        ],
    )
    .await;
    assert!(out.ok, "{}\nproxy log:\n{}", out.text, served.log());
    for shot in [
        "dashboard-inbox.png",
        "dashboard-audit.png",
        "dashboard-audit-filtered.png",
        "dashboard-timeline.png",
        "dashboard-status.png",
        "dashboard-audit-viewer.png",
    ] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
    // Exactly the approved request reached the upstream, once, as sent.
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].uri.starts_with("/orders"));
    assert!(String::from_utf8_lossy(&reqs[0].body).contains("<script>alert('body')</script>"));
    // The forged POSTs changed nothing: one credential, the dashboard's.
    let creds = tap.json(&["cred", "list"]);
    let names: Vec<&str> = creds
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["dash-vault"], "{creds}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_fits_a_phone_and_is_captured_in_chromium() {
    if !browser_or_skip() {
        return;
    }
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    // A stored-XSS attempt in the description; the page must show it as text.
    tap.add_credential(
        "echo",
        "dashboard-browser-secret-5511",
        &[
            "--allowed-host",
            "api.example.com",
            "--description",
            "<script>window.__xss=true</script> the echo API",
        ],
    );
    tap.ok(&["role", "create", "readers", "--credential", "echo"]);
    tap.ok(&[
        "policy",
        "set",
        "echo",
        "--auto-approve-methods",
        "GET",
        "--require-approval-urls",
        "/admin",
    ]);
    tap.agent("bot", &["--credential", "echo", "--role", "readers"]);
    let out = tap.run_stdin(
        &[
            "member",
            "add",
            "viewer@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        b"a-long-member-password-1234\n",
    );
    assert!(out.status.success(), "{out:?}");
    let served = tap.serve();
    // Its own directory: the approval flow above empties the shared one.
    let shots = repo().join("target/browser-screenshots-dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    let out = run_flow(
        "dashboard-pages.mjs",
        &[
            ("TAP_URL", served.url.as_str()),
            ("TAP_EMAIL", init["owner_email"].as_str().unwrap()),
            ("TAP_PASSWORD", init["owner_password"].as_str().unwrap()),
            ("TAP_VIEWER_EMAIL", "viewer@example.com"),
            ("TAP_VIEWER_PASSWORD", "a-long-member-password-1234"),
            ("TAP_SCREENSHOTS", shots.to_str().unwrap()),
        ],
    )
    .await;
    assert!(out.ok, "{}\nproxy log:\n{}", out.text, served.log());
    for shot in [
        "dashboard-credentials-phone.png",
        "dashboard-agent-desktop.png",
        "dashboard-policy-phone.png",
        "dashboard-viewer-credentials.png",
    ] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
}
