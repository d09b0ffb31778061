//! Grants through roles, and revocation from the CLI while the proxy serves:
//! every change takes effect on the next requests (bounded wait, no fixed sleep).

use std::time::Duration;

use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually};

const SECRET: &str = "s3cr3t-value-for-revocation";
/// The proxy promises ≤ 1 s; allow for a loaded machine.
const TRIES: u32 = 50;
const EVERY: Duration = Duration::from_millis(100);

fn setup(up: &FakeUpstream) -> TapHome {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    tap
}

async fn call(served: &Served, key: &str, up: &FakeUpstream) -> Reply {
    served
        .forward(key)
        .credential("echo")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await
}

/// Polls until a call answers `status` (and `code`, for refusals); panics after the bound.
async fn until(served: &Served, key: &str, up: &FakeUpstream, status: u16, code: Option<&str>) {
    let got = eventually(TRIES, EVERY, || async {
        let r = call(served, key, up).await;
        (r.status == status && r.error_code().as_deref() == code).then_some(r)
    })
    .await;
    assert!(
        got.is_some(),
        "no {status} {code:?} within {TRIES} tries; last: {}",
        call(served, key, up).await.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_grant_and_ungrant_credentials() {
    let up = FakeUpstream::start().await;
    let tap = setup(&up);
    let key = tap.agent("bot", &[]);
    let served = tap.serve();
    call(&served, &key, &up)
        .await
        .assert_refused(403, "credential_not_granted");
    let boot = served.get("/agent/bootstrap", Some(&key)).await.json();
    assert_eq!(boot["status"], "needs_credentials", "{boot}");

    tap.ok(&["role", "create", "r", "--credential", "echo"]);
    tap.ok(&["role", "assign", "r", "bot"]);
    until(&served, &key, &up, 200, None).await;
    let boot = served.get("/agent/bootstrap", Some(&key)).await.json();
    assert_eq!(boot["status"], "ready", "{boot}");

    tap.ok(&["role", "remove-credential", "r", "echo"]);
    until(&served, &key, &up, 403, Some("credential_not_granted")).await;

    tap.ok(&["role", "add-credential", "r", "echo"]);
    until(&served, &key, &up, 200, None).await;

    tap.ok(&["role", "unassign", "r", "bot"]);
    until(&served, &key, &up, 403, Some("credential_not_granted")).await;
    let before = up.count();
    call(&served, &key, &up)
        .await
        .assert_refused(403, "credential_not_granted");
    assert_eq!(up.count(), before);

    // A direct grant, then ungrant.
    tap.ok(&["agent", "grant", "bot", "echo"]);
    until(&served, &key, &up, 200, None).await;
    tap.ok(&["agent", "ungrant", "bot", "echo"]);
    until(&served, &key, &up, 403, Some("credential_not_granted")).await;
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable_take_effect_while_serving() {
    let up = FakeUpstream::start().await;
    let tap = setup(&up);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    assert_eq!(call(&served, &key, &up).await.status, 200);

    tap.ok(&["agent", "disable", "bot"]);
    until(&served, &key, &up, 401, Some("invalid_tap_key")).await;
    let before = up.count();
    call(&served, &key, &up)
        .await
        .assert_refused(401, "invalid_tap_key");
    served
        .get("/agent/config", Some(&key))
        .await
        .assert_refused(401, "invalid_tap_key");
    assert_eq!(up.count(), before, "a disabled agent reaches nothing");

    tap.ok(&["agent", "enable", "bot"]);
    until(&served, &key, &up, 200, None).await;
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_takes_effect_while_serving() {
    let up = FakeUpstream::start().await;
    let tap = setup(&up);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    assert_eq!(call(&served, &key, &up).await.status, 200);

    tap.ok(&["agent", "delete", "bot"]);
    until(&served, &key, &up, 401, Some("invalid_tap_key")).await;
    let before = up.count();
    call(&served, &key, &up)
        .await
        .assert_refused(401, "invalid_tap_key");
    assert_eq!(up.count(), before);
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_replaces_the_old_key() {
    let up = FakeUpstream::start().await;
    let tap = setup(&up);
    let old = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    assert_eq!(call(&served, &old, &up).await.status, 200);

    let rotated = tap.json(&["agent", "rotate-key", "bot"]);
    assert_eq!(rotated["id"], "bot", "{rotated}");
    assert_eq!(rotated["team"], "default", "{rotated}");
    let new = rotated["api_key"].as_str().unwrap().to_owned();
    assert!(new.starts_with("tap_"));
    assert_ne!(new, old);

    until(&served, &new, &up, 200, None).await;
    // Once the new key works, the old one is gone (one directory swap does both).
    let before = up.count();
    call(&served, &old, &up)
        .await
        .assert_refused(401, "invalid_tap_key");
    assert_eq!(up.count(), before);
    assert_eq!(served.terminate(), Some(0));
}
