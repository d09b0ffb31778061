//! The audit chain stays intact when writers interleave: the pool, a second
//! store on the same file (another process) and the synchronous audit writer
//! each chain on the head they read inside their own transaction.

use sqlx::Connection as _;
use tap_core::audit::{AuditPhase, AuditRecord, verify_chain};
use tap_core::policy::ApprovalMode;
use tap_core::store::{AppendError, AuditAppend, Store};
use tap_store::SqliteStore;

fn row(team: i64, id: &str) -> AuditAppend {
    AuditAppend {
        team_internal_id: team,
        phase: AuditPhase::Finish,
        record: AuditRecord {
            request_id: id.to_owned(),
            agent_id: "bot".into(),
            credential_names: vec!["it's-quoted".into()],
            request_body: Some("body with 'quotes' and \"double\" and \\ backslash".into()),
            timestamp: "2026-11-29T00:00:00.000Z".into(),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn interleaved_writers_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.db");
    let a = SqliteStore::open(&path).await.unwrap();
    a.migrate().await.unwrap();
    let team = a
        .create_team("t", ApprovalMode::Gated, "dek", b"x")
        .await
        .unwrap()
        .internal_id;
    let b = SqliteStore::open(&path).await.unwrap();

    let mut w = a
        .audit_writer()
        .unwrap()
        .expect("a file store has a writer");

    a.append_audit(&[row(team, "a1")]).await.unwrap();
    w.append(&[row(team, "a2"), row(team, "a3")], false)
        .unwrap();
    b.append_audit(&[row(team, "b1")]).await.unwrap(); // another writer moves the head
    a.append_audit(&[row(team, "a4")]).await.unwrap();
    w.append(&[row(team, "a5")], true).unwrap();

    let (anchor, first, rows) = a.audit_chain(team).await.unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.record().unwrap().request_id)
        .collect();
    assert_eq!(ids, ["a1", "a2", "a3", "b1", "a4", "a5"]);
    let v = verify_chain(&anchor, first, &rows);
    assert!(v.ok, "{v:?}");
    let rec = rows[1].record().unwrap();
    assert_eq!(rec.credential_names, vec!["it's-quoted".to_owned()]);
    assert_eq!(
        rec.request_body.as_deref(),
        Some("body with 'quotes' and \"double\" and \\ backslash")
    );
}

#[tokio::test]
async fn writer_answers_busy_without_writing_while_another_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.db");
    let a = SqliteStore::open(&path).await.unwrap();
    a.migrate().await.unwrap();
    let team = a
        .create_team("t", ApprovalMode::Gated, "dek", b"x")
        .await
        .unwrap()
        .internal_id;
    let mut w = a.audit_writer().unwrap().unwrap();

    // Another process holds SQLite's write lock.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    assert!(matches!(
        w.append(&[row(team, "x1")], false),
        Err(AppendError::Busy)
    ));
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();

    w.append(&[row(team, "x2")], false).unwrap();
    let (anchor, first, rows) = a.audit_chain(team).await.unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.record().unwrap().request_id)
        .collect();
    assert_eq!(ids, ["x2"], "the refused batch left nothing behind");
    assert!(verify_chain(&anchor, first, &rows).ok);
}
