//! What the Docker image runs, without Docker (no daemon here): the binary
//! with exactly the environment of `Dockerfile` and `docker-compose.yml`, the
//! data folder as the volume and the master key as a Docker secret file.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use tap_testkit::{TapHome, http_client};

fn repo_file(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(name)).unwrap()
}

/// `ENV K=V \` lines of the Dockerfile's final stage.
fn dockerfile_env() -> BTreeMap<String, String> {
    let text = repo_file("Dockerfile");
    let runtime = &text[text.rfind("\nFROM ").unwrap()..];
    let mut env = BTreeMap::new();
    let mut in_env = false;
    for line in runtime.lines() {
        let l = line.trim();
        let l = if let Some(rest) = l.strip_prefix("ENV ") {
            rest
        } else if in_env {
            l
        } else {
            continue;
        };
        in_env = l.ends_with('\\');
        let pair = l.trim_end_matches('\\').trim();
        if let Some((k, v)) = pair.split_once('=') {
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    env
}

/// The `environment:` map of the compose file's `tap` service, with
/// `${VAR:-default}` resolved to its default.
fn compose_env() -> BTreeMap<String, String> {
    let text = repo_file("docker-compose.yml");
    let mut env = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim() == "environment:" {
            inside = true;
            continue;
        }
        if inside {
            let Some((k, v)) = line.trim().split_once(": ") else {
                break;
            };
            if !line.starts_with("      ") {
                break;
            }
            let v = v.trim();
            let v = match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                Some(expr) => expr.split_once(":-").map_or("", |(_, d)| d).to_owned(),
                None => v.to_owned(),
            };
            env.insert(k.to_owned(), v);
        }
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_environment_starts_a_proxy_on_the_volume_with_the_secret_key() {
    let mut env = dockerfile_env();
    env.extend(compose_env());
    assert_eq!(env.get("TAP_DATA_DIR").map(String::as_str), Some("/data"));
    assert!(env.contains_key("TAP_MASTER_KEY_FILE"), "{env:?}");
    let readme = repo_file("README.md");
    for k in env.keys() {
        assert!(
            readme.contains(k.as_str()),
            "{k} is not documented in the README"
        );
    }

    // The secret lives outside the volume, as Docker mounts it.
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("tap_master_key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let volume = tap.data_dir();
    for (k, v) in &env {
        let v = match k.as_str() {
            "TAP_DATA_DIR" => volume.display().to_string(),
            "TAP_MASTER_KEY_FILE" => key_file.display().to_string(),
            _ => v.clone(),
        };
        tap = tap.env(k, &v);
    }
    // `serve` takes --listen 127.0.0.1:0 over the image's 0.0.0.0:3100.
    let served = tap.serve();
    let health = http_client()
        .get(format!("{}/health", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the HEALTHCHECK URL answers");
    assert!(volume.join("tap.db").exists(), "the store is on the volume");
    assert!(
        !volume.join("master.key").exists(),
        "with a secret file, no key is written next to the data"
    );
    let log = served.log();
    assert!(
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["level"].is_string()),
        "TAP_LOG_FORMAT=json gives JSON log lines: {log}"
    );
    assert_eq!(
        served.terminate(),
        Some(0),
        "SIGTERM (docker stop) is graceful"
    );

    // A restart of the container reopens the same store with the same secret.
    let again = tap.serve();
    let status = tokio::task::block_in_place(|| tap.json(&["status", "--proxy-url", &again.url]));
    assert_eq!(status["store"], "ok", "{status}");
    assert_eq!(status["proxy"], "ok", "{status}");
}
