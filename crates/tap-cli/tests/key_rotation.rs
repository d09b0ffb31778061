//! `tap key rotate`: under load no request is lost, every credential and
//! agent key keeps working, the audit chain verifies, and the old master key
//! no longer opens the store.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-rotation-tests";

fn opens_with(tap: &TapHome, env: &[(&str, &str)]) -> bool {
    tap.run_bounded(
        &["agent", "list", "--json"],
        env,
        std::time::Duration::from_secs(60),
    )
    .status
    .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_loses_nothing_and_retires_the_old_key() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let old = std::fs::read_to_string(tap.path("master.key")).unwrap();
    let served = tap.serve();

    // Requests keep flowing while the key is rotated.
    let url = served.url.clone();
    let target = format!("{}/echo/load", up.base());
    let k = key.clone();
    let load = tokio::spawn(async move {
        let client = tap_testkit::http_client();
        let mut statuses = Vec::new();
        for _ in 0..60 {
            let r = client
                .post(format!("{url}/forward"))
                .header("X-TAP-Key", &k)
                .header("X-TAP-Credential", "echo")
                .header("X-TAP-Target", &target)
                .header("X-TAP-Method", "GET")
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        statuses
    });
    let rotated = tokio::task::block_in_place(|| tap.json(&["key", "rotate"]));
    assert_eq!(rotated["rotated"], true, "{rotated}");
    assert_ne!(rotated["old_key_id"], rotated["key_id"]);
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during rotation: {statuses:?}"
    );

    let new = std::fs::read_to_string(tap.path("master.key")).unwrap();
    assert_ne!(old.trim(), new.trim(), "master.key holds the new key");
    assert!(!tap.path("master.key.new").exists());
    let status = tokio::task::block_in_place(|| tap.json(&["status"]));
    assert_eq!(status["key_id"], rotated["key_id"], "{status}");
    assert!(
        !tokio::task::block_in_place(|| opens_with(&tap, &[("TAP_MASTER_KEY", old.trim())])),
        "the old key no longer opens the store"
    );

    // A restarted proxy with the new key serves the same agent and credential.
    drop(served);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/after", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let last = up.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {SECRET}"))
    );
    let verify = tokio::task::block_in_place(|| tap.run(&["audit", "verify"]));
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_key_from_the_environment_needs_a_new_key_file() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let old = std::fs::read_to_string(tap.path("master.key")).unwrap();
    let env_key = [("TAP_MASTER_KEY", old.trim())];
    let refused = tap.run_bounded(
        &["key", "rotate"],
        &env_key,
        std::time::Duration::from_secs(60),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--new-key-file"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(opens_with(&tap, &env_key), "nothing changed");

    let file = tap.root().join("new.key");
    let f = file.display().to_string();
    let out = tap.run_bounded(
        &["key", "rotate", "--new-key-file", &f],
        &env_key,
        std::time::Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!opens_with(&tap, &env_key), "the old key is retired");
    assert!(opens_with(&tap, &[("TAP_MASTER_KEY_FILE", f.as_str())]));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
