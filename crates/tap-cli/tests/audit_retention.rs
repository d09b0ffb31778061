//! Audit retention through the real `tap` binary (issue 17, SPEC §9): `tap
//! audit prune` deletes the old rows of every team (the same store call the
//! proxy makes hourly under TAP_AUDIT_RETENTION_DAYS), the chain still
//! verifies from its sealed anchor, new requests append and verify, and an
//! anchor moved behind TAP's back (rows deleted, anchor rewritten to match)
//! fails `tap audit verify`. Runs on SQLite and, with
//! TAP_TEST_BACKEND=postgres, on PostgreSQL.

use serde_json::Value;
use tap_testkit::{FakeUpstream, TapHome};

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

/// A tap command with `--json`: exit code and answer.
fn json(tap: &TapHome, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = tap.run(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// `(count, min seq)` of team `default`'s rows, as text.
async fn rows(tap: &TapHome) -> (String, String) {
    let team = "(SELECT id FROM teams WHERE slug = 'default')";
    (
        tap.sql_text(
            &format!("SELECT CAST(count(*) AS TEXT) FROM audit WHERE team_id = {team}"),
            &[],
        )
        .await,
        tap.sql_text(
            &format!("SELECT CAST(min(seq) AS TEXT) FROM audit WHERE team_id = {team}"),
            &[],
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_chains_verify_from_a_sealed_anchor_and_a_forged_anchor_fails() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", "s3cr3t-retention", &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    requests(&up, &tap, &key, "old", 3).await;
    assert_eq!(rows(&tap).await, ("6".into(), "1".into()));

    // A cutoff in the past deletes nothing.
    let (code, v) = json(&tap, &["audit", "prune", "--days", "30"]);
    assert_eq!((code, v["deleted"].clone()), (Some(0), 0.into()), "{v}");
    assert_eq!(rows(&tap).await.0, "6");

    // A cutoff after every row deletes all but the last one, which carries the chain on.
    let (code, v) = json(
        &tap,
        &["audit", "prune", "--before", "2100-01-01T00:00:00+00:00"],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["deleted"], 5, "{v}");
    assert_eq!(v["before"], "2100-01-01T00:00:00.000Z", "{v}");
    assert_eq!(rows(&tap).await, ("1".into(), "6".into()));
    let (code, v) = json(&tap, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        (v["ok"].clone(), v["rows"].clone()),
        (true.into(), 1.into())
    );

    // New requests append after the anchor and verify; pruning again is fine.
    requests(&up, &tap, &key, "new", 2).await;
    assert_eq!(rows(&tap).await, ("5".into(), "6".into()));
    let (code, v) = json(&tap, &["audit", "verify"]);
    assert_eq!((code, v["rows"].clone()), (Some(0), 5.into()), "{v}");
    let (code, v) = json(&tap, &["audit", "prune", "--days", "1"]);
    assert_eq!((code, v["deleted"].clone()), (Some(0), 0.into()), "{v}");
    let out = tap.run(&["audit", "prune", "--before", "yesterday"]);
    assert_ne!(out.status.code(), Some(0), "a bad time is refused");

    // Someone with write access to the database but not the audit key
    // deletes the oldest remaining row and moves the anchor to match.
    let moved = tap
        .sql_execute(
            "UPDATE audit_anchor SET anchor_hash = (SELECT a.row_hash FROM audit a \
             WHERE a.team_id = audit_anchor.team_id AND a.seq = audit_anchor.first_seq), \
             first_seq = first_seq + 1 \
             WHERE team_id = (SELECT id FROM teams WHERE slug = 'default')",
            &[],
        )
        .await;
    assert_eq!(moved, 1);
    let deleted = tap
        .sql_execute(
            "DELETE FROM audit WHERE seq = 6 \
             AND team_id = (SELECT id FROM teams WHERE slug = 'default')",
            &[],
        )
        .await;
    assert_eq!(deleted, 1);
    let (code, v) = json(&tap, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("retention anchor")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_setting_is_checked_at_start() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let out = tap.run_bounded(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("TAP_AUDIT_RETENTION_DAYS", "soon")],
        std::time::Duration::from_secs(60),
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TAP_AUDIT_RETENTION_DAYS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
