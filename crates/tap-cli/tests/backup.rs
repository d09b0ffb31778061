//! `tap backup` / `tap restore`, and a store copied without its WAL.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tap_testkit::{FakeUpstream, TapHome, eventually};

const SECRET: &str = "s3cr3t-value-for-backup-tests";
const EXIT_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_into_a_working_deployment() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/before-backup", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The serving proxy folds its audit spool into the store within
    // milliseconds; the snapshot is taken once the row is there.
    let folded = eventually(100, Duration::from_millis(100), || async {
        let logs = tokio::task::block_in_place(|| tap.logs(&[]));
        logs.iter()
            .any(|l| {
                l["target_url"]
                    .as_str()
                    .is_some_and(|t| t.contains("before-backup"))
            })
            .then_some(())
    })
    .await;
    assert!(folded.is_some(), "the row reached the store");

    let file = tap.root().join("snapshot.tapbak");
    let f = file.display().to_string();
    let out = tokio::task::block_in_place(|| tap.run(&["backup", &f]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = tokio::task::block_in_place(|| tap.run(&["backup", &f]));
    assert!(!again.status.success(), "a backup never overwrites a file");
    drop(served);

    // Restore into a new data dir, with the same master key as a secret file.
    let other = TapHome::new(env!("CARGO_BIN_EXE_tap")).env(
        "TAP_MASTER_KEY_FILE",
        &tap.path("master.key").display().to_string(),
    );
    let out = tokio::task::block_in_place(|| other.run(&["restore", &f]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = other.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/after-restore", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(
        r.status,
        200,
        "the agent key and the credential work: {}",
        r.text()
    );
    let last = up.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {SECRET}")),
        "the restored credential value was injected"
    );
    let logs = tokio::task::block_in_place(|| other.logs(&[]));
    assert!(
        logs.iter().any(|l| l["target_url"]
            .as_str()
            .is_some_and(|t| t.contains("before-backup"))),
        "the audit rows came along: {logs:?}"
    );
    let verify = tokio::task::block_in_place(|| other.run(&["audit", "verify"]));
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // A restore never writes into a data dir that holds anything.
    let out = tokio::task::block_in_place(|| other.run(&["restore", &f]));
    assert!(
        !out.status.success(),
        "restore into a non-empty data dir is refused"
    );
}

#[test]
fn restore_refuses_a_file_that_is_not_a_backup() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let junk = tap.root().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just bytes").unwrap();
    let out = tap.run(&["restore", &junk.display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a usable TAP backup"), "{err}");
    assert!(!tap.db_path().exists(), "nothing left behind");
}

#[test]
fn a_store_copied_without_its_wal_refuses_to_start() {
    // A first start writes the whole deployment into the WAL; a copy of
    // tap.db alone, taken while it runs, lacks it.
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let served = tap.serve();
    let copy = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    std::fs::create_dir_all(copy.data_dir()).unwrap();
    std::fs::copy(tap.db_path(), copy.db_path()).unwrap();
    std::fs::copy(tap.path("master.key"), copy.path("master.key")).unwrap();
    drop(served);
    let size = std::fs::metadata(copy.db_path()).unwrap().len();
    let out = copy.run_bounded(&["serve", "--listen", "127.0.0.1:0"], &[], EXIT_BOUND);
    assert!(!out.status.success(), "copy of {size} bytes started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tap.db-wal"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.to_lowercase().contains("password"),
        "no new owner: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_schema_exists_but_whose_companions_are_missing_refuses_to_start() {
    let up = FakeUpstream::start().await;
    // A store file that holds the schema and has folded audit rows from a
    // spool, put in place without that spool (and WAL): it may lack recent
    // writes and must not be served as if whole.
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential(
        "echo",
        "companion-secret-0042",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/x", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let folded = eventually(100, Duration::from_millis(100), || async {
        let logs = tokio::task::block_in_place(|| tap.logs(&[]));
        (!logs.is_empty()).then_some(())
    })
    .await;
    assert!(folded.is_some(), "the row reached the store");
    // A consistent snapshot of tap.db as it stands (schema, folded audit
    // rows, the spool position), put in place by hand instead of `tap restore`.
    let snapshot = tap.root().join("snapshot.db");
    let snap = snapshot.display().to_string();
    assert!(
        tokio::task::block_in_place(|| tap.run(&["backup", &snap]))
            .status
            .success()
    );
    drop(served);
    let copy = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    std::fs::create_dir_all(copy.data_dir()).unwrap();
    std::fs::copy(&snapshot, copy.db_path()).unwrap();
    std::fs::copy(tap.path("master.key"), copy.path("master.key")).unwrap();
    for _ in 0..2 {
        // Refused every time: the first refusal leaves nothing that lets a second start.
        let out = tokio::task::block_in_place(|| {
            copy.run_bounded(&["serve", "--listen", "127.0.0.1:0"], &[], EXIT_BOUND)
        });
        assert!(
            !out.status.success(),
            "a copy without its companions started"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("audit-spool is missing"), "{err}");
        assert!(err.contains("tap restore"), "{err}");
    }
    // `tap restore` of the same snapshot serves.
    let restored = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    assert!(
        tokio::task::block_in_place(|| restored.run(&["restore", &snap]))
            .status
            .success()
    );
    std::fs::copy(tap.path("master.key"), restored.path("master.key")).unwrap();
    let served = restored.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/y", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Copies the named files of `from`'s data dir into `to`'s (which it creates).
fn copy_files(from: &TapHome, to: &TapHome, names: &[&str]) {
    std::fs::create_dir_all(to.data_dir()).unwrap();
    for name in names {
        std::fs::copy(from.path(name), to.path(name)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_copied_with_its_spool_but_without_its_wal_while_in_use_refuses_to_start() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/x", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A write while the proxy runs: it sits in tap.db-wal.
    let late = tokio::task::block_in_place(|| tap.agent("late", &["--credential", "echo"]));
    // tap.db as it stands on disk (the schema long since checkpointed into
    // it) with its spool, without tap.db-wal: what `cp tap.db*` minus the WAL
    // or a file-level backup tool would take.
    let copy = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    copy_files(&tap, &copy, &["tap.db", "tap.db.audit-spool", "master.key"]);
    for _ in 0..2 {
        // Refused every time: a refusal leaves nothing that lets the next start through.
        let out = tokio::task::block_in_place(|| {
            copy.run_bounded(&["serve", "--listen", "127.0.0.1:0"], &[], EXIT_BOUND)
        });
        assert!(!out.status.success(), "a copy without its WAL started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tap.db-wal"), "{err}");
        assert!(err.contains("tap backup"), "{err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.to_lowercase().contains("password"),
            "no new owner: {stdout}"
        );
    }
    // Commands refuse the copy too, rather than read a stale store.
    let out = tokio::task::block_in_place(|| copy.run(&["agent", "list"]));
    assert!(!out.status.success());

    // Stopped properly, the data dir holds no WAL, and a copy of it is whole:
    // the write made while serving is there and the agent it made works.
    assert_eq!(tokio::task::block_in_place(|| served.terminate()), Some(0));
    let wal = std::fs::metadata(tap.path("tap.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "a clean stop folds the WAL into tap.db");
    let whole = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    copy_files(
        &tap,
        &whole,
        &["tap.db", "tap.db.audit-spool", "master.key"],
    );
    let served = whole.serve();
    let r = served
        .forward(&late)
        .credential("echo")
        .target(&format!("{}/echo/y", up.base()))
        .method("GET")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_left_by_a_crash_starts_again_even_after_a_command_ran_on_it() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    let late = tokio::task::block_in_place(|| tap.agent("late", &["--credential", "echo"]));
    tokio::task::block_in_place(|| served.kill());
    // A command on the crashed store closes it as the last user.
    let listed = tokio::task::block_in_place(|| tap.ok(&["agent", "list"]));
    assert!(listed.contains("late"), "{listed}");
    let served = tap.serve();
    for agent in [&key, &late] {
        let r = served
            .forward(agent)
            .credential("echo")
            .target(&format!("{}/echo/z", up.base()))
            .method("GET")
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
