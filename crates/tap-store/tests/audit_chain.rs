//! The audit chain stays intact when two writers (two processes on one file)
//! interleave: the cached-head fast path must detect the other writer.

use tap_core::audit::{AuditPhase, AuditRecord, verify_chain};
use tap_core::policy::ApprovalMode;
use tap_core::store::{AuditAppend, Store};
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

    a.append_audit(&[row(team, "a1")]).await.unwrap(); // slow path, caches the head
    a.append_audit(&[row(team, "a2"), row(team, "a3")])
        .await
        .unwrap(); // fast path
    b.append_audit(&[row(team, "b1")]).await.unwrap(); // another writer moves the head
    a.append_audit(&[row(team, "a4")]).await.unwrap(); // stale cache: guard refuses, slow path
    a.append_audit(&[row(team, "a5")]).await.unwrap(); // fast again

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
