//! The keyed audit chain through the real `tap` binary (THREATS P: "an unkeyed
//! hash chain proves nothing to someone who can write the DB"): whoever edits
//! the SQLite file behind TAP's back, recomputes the hashes the way the old
//! unkeyed chain allowed, deletes the last rows or rolls the store back gets a
//! failing `tap audit verify` naming the row; an untouched log verifies.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tap_core::audit::{AuditPhase, chain_hash};
use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-chain-tests";

/// An upstream and a TAP home with credential `echo` and agent `bot`.
async fn echo_home() -> (FakeUpstream, TapHome, String) {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (up, tap, key)
}

/// Serves, sends `n` auto-approved GETs (a start and a finish row each),
/// and stops the proxy gracefully so every row is in the database.
async fn requests(up: &FakeUpstream, tap: &TapHome, key: &str, tag: &str, n: usize) {
    let served = tap.serve();
    for i in 0..n {
        let reply = served
            .forward(key)
            .credential("echo")
            .target(&format!("{}/echo/{tag}-{i}", up.base()))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(served.terminate(), Some(0));
}

/// A direct connection to the home's SQLite file, behind TAP's back.
async fn open_db(tap: &TapHome) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions as _;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(tap.db_path())
        .connect()
        .await
        .expect("open tap.db")
}

/// `tap audit verify --json` (plus `extra`): exit code and answer.
fn verify_json(tap: &TapHome, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["audit", "verify", "--json"];
    args.extend_from_slice(extra);
    let out = tap.run(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// `tap audit verify` as a person runs it: exit code and stdout.
fn verify_text(tap: &TapHome, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out: Output = tap.run(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every row `(seq, phase, record, prev_hash)` of team `default`, in order.
async fn rows(conn: &mut sqlx::SqliteConnection) -> Vec<(i64, String, String, String)> {
    sqlx::query_as(
        "SELECT seq, phase, record, prev_hash FROM audit \
         WHERE team_id = (SELECT id FROM teams WHERE slug = 'default') ORDER BY seq",
    )
    .fetch_all(conn)
    .await
    .expect("audit rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_log_verifies_and_an_edited_row_is_named() {
    let (up, tap, key) = echo_home().await;
    requests(&up, &tap, &key, "a", 4).await;
    // (4) Untouched: ok, every row checked.
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["rows"], 8, "{v}");
    let (code, text) = verify_text(&tap, &[]);
    assert_eq!(code, Some(0));
    assert!(text.contains("is intact (8 rows)"), "{text}");

    // (1) One field of a middle row, edited in the file.
    let mut conn = open_db(&tap).await;
    let n = sqlx::query(
        "UPDATE audit SET record = replace(record, '\"GET\"', '\"DELETE\"') \
         WHERE seq = 3 AND team_id = (SELECT id FROM teams WHERE slug = 'default')",
    )
    .execute(&mut conn)
    .await
    .expect("edit")
    .rows_affected();
    assert_eq!(n, 1);
    drop(conn);
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        (v["ok"].clone(), v["first_bad_row"].clone()),
        (false.into(), 3.into()),
        "{v}"
    );
    let (code, text) = verify_text(&tap, &[]);
    assert_eq!(code, Some(1));
    assert!(text.contains("BROKEN at row 3"), "{text}");
    assert!(text.contains("row 3 does not verify"), "{text}");
    // Secrets never reach the verifier's output.
    assert!(!text.contains(SECRET) && !text.contains(&key), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_with_every_later_hash_recomputed_without_the_key_is_found() {
    let (up, tap, key) = echo_home().await;
    requests(&up, &tap, &key, "b", 4).await;
    let mut conn = open_db(&tap).await;
    let all = rows(&mut conn).await;
    assert_eq!(all.len(), 8);
    // (2) Edit row 3, then redo rows 3..8 with plain SHA-256, as the unkeyed
    // chain let anyone do, and point the head at the new last hash.
    let mut prev = all[2].3.clone();
    for (seq, phase, record, _) in &all[2..] {
        let record = if *seq == 3 {
            record.replace("\"GET\"", "\"DELETE\"")
        } else {
            record.clone()
        };
        let phase_v = if phase == "start" {
            AuditPhase::Start
        } else {
            AuditPhase::Finish
        };
        let hash = chain_hash(&prev, *seq, phase_v, &record);
        sqlx::query(
            "UPDATE audit SET record = ?, prev_hash = ?, row_hash = ? \
             WHERE seq = ? AND team_id = (SELECT id FROM teams WHERE slug = 'default')",
        )
        .bind(&record)
        .bind(&prev)
        .bind(&hash)
        .bind(seq)
        .execute(&mut conn)
        .await
        .expect("rewrite");
        prev = hash;
    }
    sqlx::query(
        "UPDATE audit_head SET last_hash = ? \
         WHERE team_id = (SELECT id FROM teams WHERE slug = 'default')",
    )
    .bind(&prev)
    .execute(&mut conn)
    .await
    .expect("move the head");
    drop(conn);
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["first_bad_row"], 3, "{v}");
    let (code, text) = verify_text(&tap, &[]);
    assert_eq!(code, Some(1));
    assert!(text.contains("BROKEN at row 3"), "{text}");
    assert!(text.contains("recomputed without the audit key"), "{text}");
    // Nothing is chained onto the edited head: a proxy started on it does not
    // seal the forgery with a fresh MAC (its rows wait in the spool), and the
    // forgery stays visible.
    let served = tap.serve();
    let _ = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/after-forgery", up.base()))
        .send()
        .await;
    let _ = served.terminate();
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!(
        (code, v["first_bad_row"].clone()),
        (Some(1), 3.into()),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_last_rows_are_reported_as_missing() {
    let (up, tap, key) = echo_home().await;
    requests(&up, &tap, &key, "c", 4).await;
    // (3) The last two rows deleted; the sealed head still says 8.
    let mut conn = open_db(&tap).await;
    let n = sqlx::query(
        "DELETE FROM audit WHERE seq > 6 \
         AND team_id = (SELECT id FROM teams WHERE slug = 'default')",
    )
    .execute(&mut conn)
    .await
    .expect("delete")
    .rows_affected();
    assert_eq!(n, 2);
    drop(conn);
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["first_bad_row"], 7, "{v}");
    assert_eq!(v["missing_rows"], serde_json::json!([7, 8]), "{v}");
    let (code, text) = verify_text(&tap, &[]);
    assert_eq!(code, Some(1));
    assert!(text.contains("rows 7..8 are missing"), "{text}");
}

/// Every file of the store (`tap.db`, its WAL and the audit spool).
fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tap.db"))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rolled_back_and_written_again_fails_against_a_saved_anchor() {
    let (up, tap, key) = echo_home().await;
    requests(&up, &tap, &key, "d", 2).await;
    // The store as it was after four rows, kept aside.
    let backup = tempfile_dir(&tap);
    for f in store_files(&tap.data_dir()) {
        std::fs::copy(&f, backup.join(f.file_name().expect("name"))).expect("back up");
    }
    requests(&up, &tap, &key, "e", 2).await;

    // (5) The operator saves an anchor of the head.
    let text = tap.ok(&["audit", "anchor"]);
    let anchor = text.trim().to_owned();
    assert!(anchor.starts_with("tap1:default:8:"), "{anchor}");
    let a = tap.json(&["audit", "anchor"]);
    assert_eq!(
        (a["team"].clone(), a["rows"].clone()),
        ("default".into(), 8.into()),
        "{a}"
    );
    assert_eq!(a["anchor"], anchor.as_str(), "{a}");
    let (code, text) = verify_text(&tap, &["--anchor", &anchor]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("extends anchor at row 8"), "{text}");

    // The tail is deleted by putting back the earlier store (head and MACs
    // all genuine), and new rows are written after it.
    for f in store_files(&tap.data_dir()) {
        std::fs::remove_file(f).expect("remove");
    }
    for f in store_files(&backup) {
        std::fs::copy(&f, tap.data_dir().join(f.file_name().expect("name"))).expect("restore");
    }
    requests(&up, &tap, &key, "f", 2).await;
    // Consistent in itself: only the anchor shows what happened.
    let (code, v) = verify_json(&tap, &[]);
    assert_eq!((code, v["ok"].clone()), (Some(0), true.into()), "{v}");
    let (code, v) = verify_json(&tap, &["--anchor", &anchor]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_row"], 8, "{v}");
    let (code, text) = verify_text(&tap, &["--anchor", &anchor]);
    assert_eq!(code, Some(1));
    assert!(text.contains("does not extend the anchor"), "{text}");

    // An anchor of another team, or a malformed one, is refused.
    let out = tap.run(&[
        "audit",
        "verify",
        "--anchor",
        &anchor.replace(":default:", ":other:"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("team other"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tap.run(&["audit", "verify", "--anchor", "tap1:default:x"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

/// A directory beside the home's data dir, removed with it.
fn tempfile_dir(tap: &TapHome) -> PathBuf {
    let p = tap.root().join("store-backup");
    std::fs::create_dir_all(&p).expect("backup dir");
    p
}
