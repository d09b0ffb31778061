//! The audit chain stays intact when writers interleave (the spool's fold, a
//! second store on the same file as another process would, the pool), and the
//! spool loses nothing across a crash: rows it acknowledged are folded at the
//! next open, a line cut short is dropped.

use tap_core::audit::{AuditChain, AuditPhase, AuditRecord, verify_keyed};
use tap_core::crypto::AuditKey;
use tap_core::policy::ApprovalMode;
use tap_core::store::{AuditAppend, Store};
use tap_store::SqliteStore;

fn key() -> AuditKey {
    AuditKey::from_bytes([4; 32])
}

fn verifies(team: i64, chain: &AuditChain) -> bool {
    let v = verify_keyed(&key(), team, chain, None);
    assert!(v.ok, "{v:?}");
    v.ok
}

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
    a.set_audit_key(key()).await.unwrap();
    let team = a
        .create_team("t", ApprovalMode::Gated, "dek", b"x")
        .await
        .unwrap()
        .internal_id;
    let b = SqliteStore::open(&path).await.unwrap();
    b.set_audit_key(key()).await.unwrap();

    let w = a
        .audit_writer()
        .unwrap()
        .expect("a file store has a writer");

    a.append_audit(&[row(team, "a1")]).await.unwrap();
    w.append(&[row(team, "a2"), row(team, "a3")]).unwrap();
    w.fold().unwrap();
    b.append_audit(&[row(team, "b1")]).await.unwrap(); // another writer moves the head
    a.append_audit(&[row(team, "a4")]).await.unwrap();
    w.append(&[row(team, "a5")]).unwrap(); // folded by the read below

    let chain = a.audit_chain(team).await.unwrap();
    let rows = &chain.rows;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.record().unwrap().request_id)
        .collect();
    assert_eq!(ids, ["a1", "a2", "a3", "b1", "a4", "a5"]);
    assert!(verifies(team, &chain));
    let rec = rows[1].record().unwrap();
    assert_eq!(rec.credential_names, vec!["it's-quoted".to_owned()]);
    assert_eq!(
        rec.request_body.as_deref(),
        Some("body with 'quotes' and \"double\" and \\ backslash")
    );
}

async fn store_with_team(path: &std::path::Path) -> (SqliteStore, i64) {
    let s = SqliteStore::open(path).await.expect("open");
    s.migrate().await.expect("migrate");
    s.set_audit_key(key()).await.expect("key");
    let team = match s.team("t").await.expect("team") {
        Some(t) => t.internal_id,
        None => {
            s.create_team("t", ApprovalMode::Gated, "dek", b"x")
                .await
                .expect("create team")
                .internal_id
        }
    };
    (s, team)
}

fn ids(rows: &[tap_core::audit::AuditRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.record().expect("record").request_id)
        .collect()
}

#[tokio::test]
async fn acknowledged_rows_survive_a_crash_and_a_cut_short_line_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.db");
    let spool = {
        let (a, team) = store_with_team(&path).await;
        let w = a.audit_writer().unwrap().unwrap();
        w.append(&[row(team, "r1"), row(team, "r2")]).unwrap();
        w.fold().unwrap();
        w.append(&[row(team, "r3")]).unwrap();
        // The process dies here: r3 is acknowledged but not folded.
        let p = dir.path().join("tap.db.audit-spool");
        assert!(p.exists());
        p
    };
    // A write cut short by the crash: never acknowledged.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&spool)
        .unwrap();
    std::io::Write::write_all(&mut f, b"0123456789abcdef [1,\"start\",\"torn").unwrap();
    drop(f);

    // Another process reading the audit trail folds the abandoned spool.
    let (b, team) = store_with_team(&path).await;
    let chain = b.audit_chain(team).await.unwrap();
    let rows = &chain.rows;
    assert_eq!(ids(rows), ["r1", "r2", "r3"]);
    assert!(verifies(team, &chain));

    // The next owner appends after the dropped line and folds exactly once.
    let w = b.audit_writer().unwrap().unwrap();
    w.append(&[row(team, "r4")]).unwrap();
    let chain = b.audit_chain(team).await.unwrap();
    let rows = &chain.rows;
    assert_eq!(ids(rows), ["r1", "r2", "r3", "r4"]);
    assert!(verifies(team, &chain));
    drop(w);
    drop(b);
    let (c, team) = store_with_team(&path).await;
    let rows = &c.audit_chain(team).await.unwrap().rows;
    assert_eq!(ids(rows), ["r1", "r2", "r3", "r4"], "nothing folded twice");
}

#[tokio::test]
async fn one_process_owns_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.db");
    let (a, team) = store_with_team(&path).await;
    let w = a.audit_writer().unwrap().unwrap();
    w.append(&[row(team, "mine")]).unwrap();
    let (b, _) = store_with_team(&path).await;
    assert!(
        b.audit_writer().is_err(),
        "a second owner would break the order"
    );
    // Its reads do not fold the owner's rows (the owner does), and do not fail.
    b.audit_chain(team).await.unwrap();
    let rows = &a.audit_chain(team).await.unwrap().rows;
    assert_eq!(ids(rows), ["mine"]);
}
