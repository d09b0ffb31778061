//! The audit trail through the CLI: rows for successes and refusals keyed by
//! the answered request id, the agent key redacted, and a hash chain that
//! `tap audit verify` checks.

use std::time::Duration;

use serde_json::Value;
use tap_testkit::{FakeUpstream, TapHome, eventually};

const SECRET: &str = "s3cr3t-value-for-audit-tests";

fn row<'a>(rows: &'a [Value], request_id: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["request_id"] == request_id)
}

fn header<'a>(row: &'a Value, name: &str) -> Option<&'a str> {
    row["request_headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_and_refusal_are_audited_and_the_chain_detects_tampering() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    // Team `solo` has no members, so a gated write is refused at once (approval_unavailable).
    tap.ok(&["team", "create", "solo"]);
    tap.add_credential(
        "echo",
        SECRET,
        &["--allowed-host", &up.base(), "--team", "solo"],
    );
    let key = tap.agent("bot", &["--credential", "echo", "--team", "solo"]);
    let served = tap.serve();

    let ok = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/audited", up.base()))
        .header("X-Note", "first")
        .send()
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok_id = ok.request_id();

    let refused = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/write", up.base()))
        .method("post")
        .body("{\"n\":1}")
        .send()
        .await;
    refused.assert_refused(503, "approval_unavailable");
    let refused_id = refused.request_id();
    assert_ne!(ok_id, refused_id);

    let missing = served
        .forward(&key)
        .credential("nope")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    missing.assert_refused(404, "credential_not_found");
    let missing_id = missing.request_id();

    // Rows reach the store in batches after the answers (the success's finish row last of
    // all): wait until all three are there (bounded).
    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tap.logs(&["--team", "solo"]);
        let done = row(&rows, &ok_id).is_some_and(|r| r["upstream_status"] == 200)
            && row(&rows, &refused_id).is_some()
            && row(&rows, &missing_id).is_some();
        done.then_some(rows)
    })
    .await
    .expect("audit rows of the success did not appear");
    assert_eq!(rows.len(), 3, "{rows:#?}");

    let s = row(&rows, &ok_id).unwrap();
    assert_eq!(s["team_id"], "solo");
    assert_eq!(s["agent_id"], "bot");
    assert_eq!(s["credential_names"], serde_json::json!(["echo"]));
    assert_eq!(s["method"], "GET");
    assert_eq!(s["decision"], "proceed");
    assert_eq!(s["policy_reason"], "team_default_gated_read");
    assert_eq!(s["upstream_status"], 200);
    assert!(s["error_code"].is_null(), "{s}");
    assert_eq!(s["response_scrubbed"], true, "the echo carried the secret");
    assert_eq!(
        s["target_url"],
        format!("{}/echo/audited", up.base()),
        "{s}"
    );
    assert_eq!(header(s, "x-tap-key"), Some("[REDACTED:tap_key]"), "{s}");
    assert_eq!(header(s, "x-note"), Some("first"), "{s}");

    let f = row(&rows, &refused_id).unwrap();
    assert_eq!(f["method"], "POST");
    assert_eq!(f["decision"], "approval");
    assert_eq!(f["policy_reason"], "team_default_gated_write");
    assert_eq!(f["error_code"], "approval_unavailable");
    assert!(f["upstream_status"].is_null(), "{f}");
    assert_eq!(f["request_body"], "{\"n\":1}");
    assert_eq!(header(f, "x-tap-key"), Some("[REDACTED:tap_key]"), "{f}");

    let m = row(&rows, &missing_id).unwrap();
    assert_eq!(m["decision"], "refused");
    assert_eq!(m["error_code"], "credential_not_found");
    assert!(m["policy_reason"].is_null(), "{m}");

    let all = tap.ok(&["logs", "--json", "--team", "solo"]);
    assert!(tap.logs(&[]).is_empty(), "rows went to the wrong team");
    assert!(!all.contains(&key), "agent key in the audit trail");
    assert!(!all.contains(SECRET), "secret in the audit trail");

    // Filters.
    let only_errors = tap.logs(&["--team", "solo", "--status", "approval_unavailable"]);
    assert_eq!(only_errors.len(), 1);
    assert_eq!(only_errors[0]["request_id"], refused_id.as_str());

    // The agent sees the same ids.
    let own = served.get("/agent/logs", Some(&key)).await;
    assert_eq!(own.status, 200, "{}", own.text());
    let ids: Vec<String> = own.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [ok_id.clone(), refused_id.clone(), missing_id.clone()]);

    assert_eq!(served.terminate(), Some(0));

    let v = tap.json(&["audit", "verify", "--team", "solo"]);
    assert_eq!(v["ok"], true, "{v}");
    // start + finish for the success, one finish row per refusal.
    assert_eq!(v["rows"], 4, "{v}");
    assert!(v.get("first_bad_row").is_none_or(Value::is_null), "{v}");
    // The success's start row holds the request as sent; its finish row adds the
    // outcome without repeating headers and body (the merge above had them).
    let stored = stored_records(&tap, &ok_id).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert_eq!(
        header(&stored[0], "x-note"),
        Some("first"),
        "{:#?}",
        stored[0]
    );
    assert!(
        stored[0].get("request_in_start").is_none(),
        "{:#?}",
        stored[0]
    );
    assert_eq!(stored[1]["request_in_start"], true, "{:#?}", stored[1]);
    assert_eq!(stored[1]["request_headers"], serde_json::json!([]));
    assert_eq!(stored[1]["upstream_status"], 200);
    // A refusal has one row, which carries everything.
    let lone = stored_records(&tap, &refused_id).await;
    assert_eq!(lone.len(), 1, "{lone:#?}");
    assert_eq!(lone[0]["request_body"], "{\"n\":1}");
    assert!(lone[0].get("request_in_start").is_none(), "{:#?}", lone[0]);

    // Edit one stored record behind TAP's back.
    let bad_seq = tamper(&tap, &refused_id).await;
    let out = tap.run(&["audit", "verify", "--json", "--team", "solo"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must fail on a tampered chain"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_row"], bad_seq, "{v}");
}

/// An upstream and a TAP home with credential `echo` on it and agent `bot`.
async fn echo_home() -> (FakeUpstream, TapHome, String) {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    (up, tap, key)
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

/// The stored records of `request_id`, in chain order.
async fn stored_records(tap: &TapHome, request_id: &str) -> Vec<Value> {
    let mut conn = open_db(tap).await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT record FROM audit WHERE request_id = ? ORDER BY seq")
            .bind(request_id)
            .fetch_all(&mut conn)
            .await
            .expect("audit rows");
    rows.iter()
        .map(|(r,)| serde_json::from_str(r).expect("record JSON"))
        .collect()
}

/// Rewrites the `record` of the row of `request_id` in the SQLite file; returns its seq.
async fn tamper(tap: &TapHome, request_id: &str) -> i64 {
    let mut conn = open_db(tap).await;
    let (seq, record): (i64, String) =
        sqlx::query_as("SELECT seq, record FROM audit WHERE request_id = ? ORDER BY seq LIMIT 1")
            .bind(request_id)
            .fetch_one(&mut conn)
            .await
            .expect("the refused request's audit row");
    let forged = record.replace("\"POST\"", "\"GET\"");
    assert_ne!(forged, record);
    let n = sqlx::query("UPDATE audit SET record = ? WHERE seq = ? AND request_id = ?")
        .bind(&forged)
        .bind(seq)
        .bind(request_id)
        .execute(&mut conn)
        .await
        .expect("update the audit row")
        .rows_affected();
    assert_eq!(n, 1);
    seq
}

/// While another process holds SQLite's write lock, requests still flow: a
/// `start` row is durable once it is in the audit spool, and the rows reach the
/// database, chained, once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_does_not_stop_requests_and_their_rows_arrive_after() {
    let (up, tap, key) = echo_home().await;
    let served = tap.serve();

    let mut other = open_db(&tap).await;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        served
            .forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/while-locked", up.base()))
            .send(),
    )
    .await
    .expect("a locked database does not hold the request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(up.count(), 1);
    let id = reply.request_id();
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release the write lock");
    drop(other);

    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tap.logs(&[]);
        row(&rows, &id)
            .is_some_and(|r| r["upstream_status"] == 200)
            .then_some(rows)
    })
    .await
    .expect("the request's rows after the lock was released");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(served.terminate(), Some(0));
    let v = tap.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["rows"], 2, "{v}");
}

/// `kill -9` right after an answer loses no audit row: the spool is folded by
/// the next reader (or the next `tap serve`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_proxy_loses_no_audit_row() {
    let (up, tap, key) = echo_home().await;
    let served = tap.serve();
    let mut ids = Vec::new();
    for i in 0..5 {
        let reply = served
            .forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/{i}", up.base()))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.request_id());
    }
    served.kill();

    let rows = tap.logs(&[]);
    for id in &ids {
        assert!(row(&rows, id).is_some(), "no audit row for {id}: {rows:#?}");
    }
    let v = tap.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    // Every start row is there; finish rows written before the kill too.
    assert!(v["rows"].as_u64().unwrap() >= 5, "{v}");

    // A new proxy starts on the same data and keeps one valid chain.
    let served = tap.serve();
    let reply = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/after", up.base()))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(served.terminate(), Some(0));
    let v = tap.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
}
