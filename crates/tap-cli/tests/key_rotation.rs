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

/// Sends `n` GETs through `url` with `key` and returns their statuses.
async fn load(url: String, key: String, target: String, n: usize) -> Vec<u16> {
    let client = tap_testkit::http_client();
    let mut statuses = Vec::new();
    for _ in 0..n {
        let r = client
            .post(format!("{url}/forward"))
            .header("X-TAP-Key", &key)
            .header("X-TAP-Credential", "echo")
            .header("X-TAP-Target", &target)
            .header("X-TAP-Method", "GET")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencrypt_under_load_reseals_every_value_and_the_running_proxy_follows() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    tap.add_credential(
        "spare",
        "spare-value-0123456789",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "echo"]);
    let sealed_sql = if tap.on_postgres() {
        "SELECT encode(sealed_value, 'hex') FROM credentials WHERE name = $1"
    } else {
        "SELECT hex(sealed_value) FROM credentials WHERE name = $1"
    };
    let sealed_before = tap.sql_text(sealed_sql, &["echo"]).await;
    let served = tap.serve();

    let traffic = tokio::spawn(load(
        served.url.clone(),
        key.clone(),
        format!("{}/echo/load", up.base()),
        60,
    ));
    let rotated = tokio::task::block_in_place(|| tap.json(&["key", "rotate", "--reencrypt"]));
    assert_eq!(rotated["rotated"], true, "{rotated}");
    assert_eq!(rotated["reencrypted"], true, "{rotated}");
    assert_eq!(rotated["new_data_keys"], 1, "{rotated}");
    assert_eq!(rotated["resealed_values"], 2, "{rotated}");
    let statuses = traffic.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during rotation: {statuses:?}"
    );
    let sealed_after = tap.sql_text(sealed_sql, &["echo"]).await;
    assert_ne!(sealed_before, sealed_after, "the value was re-sealed");

    // The proxy that kept running takes the new key from master.key: a value
    // set through it is sealed under the team's new data key and served.
    let client = tap_testkit::http_client();
    let r = client
        .put(format!("{}/team/credentials/echo/secret", served.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"value": "rotated-secret-after-reencrypt"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/new", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.requests().pop().unwrap().header("authorization"),
        Some("Bearer rotated-secret-after-reencrypt".to_owned())
    );
    // Restarted with the new key: the same agent and the new value; the
    // old key opens nothing; the chain verifies.
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
    assert_eq!(
        up.requests().pop().unwrap().header("authorization"),
        Some("Bearer rotated-secret-after-reencrypt".to_owned())
    );
    let verify = tokio::task::block_in_place(|| tap.run(&["audit", "verify"]));
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
