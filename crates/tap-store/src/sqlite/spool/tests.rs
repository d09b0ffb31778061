//! The spool's own cases: format, rewinds, long lines, damage. The audit
//! trail as a whole is covered by the store contract (`tests/contract`).

use super::*;
use tap_core::audit::{AuditChain, AuditRecord, verify_keyed};
use tap_core::crypto::AuditKey;
use tap_core::policy::ApprovalMode;
use tap_core::store::Store;

fn row(team: i64, id: &str) -> AuditAppend {
    AuditAppend {
        team_internal_id: team,
        phase: AuditPhase::Start,
        record: AuditRecord {
            request_id: id.to_owned(),
            agent_id: "bot".into(),
            timestamp: "2026-11-29T00:00:00.000Z".into(),
            ..Default::default()
        },
    }
}

/// The request ids of `rows`, in order.
fn ids(rows: &[tap_core::audit::AuditRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.record().expect("record").request_id)
        .collect()
}

fn key() -> AuditKey {
    AuditKey::from_bytes([3; 32])
}

fn verifies(team: i64, chain: &AuditChain) -> bool {
    verify_keyed(&key(), team, chain, None).ok
}

/// The spool of `store`'s file, with its audit key.
fn spool_of(store: &crate::SqliteStore, db: &Path) -> StoreResult<Spool> {
    Spool::open(db, store.spool.key().clone())
}

/// A migrated store in a temp dir (`tap.db`) with one team.
async fn migrated_store_with_team() -> (tempfile::TempDir, crate::SqliteStore, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::SqliteStore::open(&dir.path().join("tap.db"))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    store.set_audit_key(key()).await.expect("key");
    let team = store
        .create_team("t", ApprovalMode::Gated, "dek", b"x")
        .await
        .expect("team")
        .internal_id;
    (dir, store, team)
}

#[tokio::test]
async fn the_spool_starts_over_once_folded_and_a_crash_after_that_replays_only_new_rows() {
    let (dir, store, team) = migrated_store_with_team().await;
    let db = dir.path().join("tap.db");
    {
        let mut spool = spool_of(&store, &db).expect("spool");
        spool.rewind_at = HEADER_LEN + 1;
        spool
            .append(&[row(team, "a"), row(team, "b")])
            .expect("append");
        spool.fold().expect("fold");
        let len = std::fs::metadata(spool_path(&db)).expect("stat").len();
        assert_eq!(len, HEADER_LEN, "folded and started over");
        spool.append(&[row(team, "c")]).expect("append");
        // Crash: "c" is only in the spool, whose id the database does not know yet.
    }
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(ids(&chain.rows), ["a", "b", "c"]);
    assert!(verifies(team, &chain));
    let again = spool_of(&store, &db).expect("spool");
    again.fold().expect("fold");
    drop(again);
    let rows = store.audit_chain(team).await.expect("chain").rows;
    assert_eq!(ids(&rows), ["a", "b", "c"], "nothing replayed twice");
}

#[tokio::test]
async fn lines_longer_than_the_fold_chunk_are_folded_whole() {
    let (dir, store, team) = migrated_store_with_team().await;
    let db = dir.path().join("tap.db");
    {
        let mut spool = spool_of(&store, &db).expect("spool");
        spool.fold_chunk = 16;
        let mut long = row(team, "long");
        long.record.request_body = Some("x".repeat(5000));
        spool
            .append(&[row(team, "a"), long, row(team, "b")])
            .expect("append");
        assert_eq!(spool.fold().expect("fold"), 3);
    }
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(ids(&chain.rows), ["a", "long", "b"]);
    assert!(verifies(team, &chain));
}

#[test]
fn a_line_fails_its_check_when_any_byte_changes() {
    let mut line = Vec::new();
    encode(&row(7, "req"), &mut line).expect("encode");
    assert_eq!(line.last(), Some(&b'\n'));
    let body = &line[..line.len() - 1];
    let back = decode(Format::V2, body).expect("decodes");
    assert_eq!((back.team, &*back.request_id), (7, "req"));
    // Text JSON has to escape is decoded too (owned rather than borrowed).
    let mut odd = row(7, "req");
    odd.record.credential_names = vec!["we\"ird\\name".into()];
    let mut odd_line = Vec::new();
    encode(&odd, &mut odd_line).expect("encode");
    let back = decode(Format::V2, &odd_line[..odd_line.len() - 1]).expect("decodes");
    assert_eq!(back.credential.as_deref(), Some("we\"ird\\name"));
    for i in 0..body.len() {
        let mut bad = body.to_vec();
        bad[i] ^= 0x01;
        assert!(
            decode(Format::V2, &bad).is_none(),
            "byte {i} changed unnoticed"
        );
    }
}

#[tokio::test]
async fn a_v1_spool_left_by_an_earlier_version_is_folded_then_started_over_as_v2() {
    let (dir, store, team) = migrated_store_with_team().await;
    let db = dir.path().join("tap.db");
    // Two v1 lines: the same body, checked by the start of its SHA-256.
    let mut file = format!("{MAGIC_V1}{}\n", "ab".repeat(16)).into_bytes();
    for id in ["old-1", "old-2"] {
        let mut line = Vec::new();
        encode(&row(team, id), &mut line).expect("encode");
        let body = std::str::from_utf8(&line[9..line.len() - 1]).expect("utf-8");
        file.extend_from_slice(&sha256_hex(body.as_bytes()).as_bytes()[..16]);
        file.push(b' ');
        file.extend_from_slice(body.as_bytes());
        file.push(b'\n');
    }
    std::fs::write(spool_path(&db), &file).expect("write v1 spool");
    let spool = spool_of(&store, &db).expect("a v1 spool opens");
    let head = std::fs::read(spool_path(&db)).expect("read");
    assert!(head.starts_with(MAGIC.as_bytes()), "started over as v2");
    assert_eq!(head.len() as u64, HEADER_LEN);
    spool.append(&[row(team, "new")]).expect("append");
    spool.fold().expect("fold");
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(ids(&chain.rows), ["old-1", "old-2", "new"]);
    assert!(verifies(team, &chain));
}

#[tokio::test]
async fn a_damaged_complete_line_stops_the_fold_instead_of_dropping_rows() {
    let (dir, store, team) = migrated_store_with_team().await;
    let db = dir.path().join("tap.db");
    {
        let spool = spool_of(&store, &db).expect("spool");
        spool
            .append(&[row(team, "a"), row(team, "b")])
            .expect("append");
    }
    let path = spool_path(&db);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = usize::try_from(HEADER_LEN).expect("small") + 20;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    match spool_of(&store, &db) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("damaged"), "{m}"),
        other => panic!("expected a corrupt spool, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "the evidence is left as it was"
    );
}
