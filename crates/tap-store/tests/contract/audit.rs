//! The audit trail: per-team hash chains that stay gap-free and verifiable
//! whatever the mix of writers, and the reads over them.

use std::collections::BTreeSet;
use std::sync::Arc;

use tap_core::audit::{AuditPhase, AuditRow, GENESIS_HASH, HeadError, verify_keyed};
use tap_core::crypto::AuditKey;
use tap_core::store::{AuditAppend, AuditQuery, Store, StoreError};

use super::{audit_key, audit_row, migrated_with_team, new_team, race};

fn request_ids(rows: &[AuditRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.record().expect("record").request_id)
        .collect()
}

fn seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

/// Reads `team`'s chain and asserts it starts at genesis, runs 1..=n with no
/// gap, links every row to the one before, ends at its sealed head, and
/// verifies with the audit key.
async fn assert_whole_chain(store: &dyn Store, team: i64) -> Vec<AuditRow> {
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(
        (chain.anchor_hash.as_str(), chain.first_seq),
        (GENESIS_HASH, 1)
    );
    let rows = chain.rows.clone();
    let expected: Vec<i64> = (1..).take(rows.len()).collect();
    assert_eq!(seqs(&rows), expected, "one gap-free sequence");
    let mut prev = GENESIS_HASH.to_owned();
    for row in &rows {
        assert_eq!(
            row.prev_hash, prev,
            "row {} links to the row before",
            row.seq
        );
        prev.clone_from(&row.row_hash);
    }
    let head = chain.head.as_ref().expect("a chain with rows has a head");
    assert_eq!(head.seq, rows.last().map_or(0, |r| r.seq));
    assert_eq!(head.last_hash, prev, "the head names the last row");
    let v = verify_keyed(&audit_key(), team, &chain, None);
    assert!(v.ok, "{v:?}");
    rows
}

pub(crate) async fn appended_rows_are_chained_per_team_from_genesis(store: Arc<dyn Store>) {
    let a = migrated_with_team(&*store, "alpha").await;
    let b = new_team(&*store, "beta").await;
    store
        .append_audit(&[])
        .await
        .expect("an empty batch is fine");
    let first = audit_row(a, "a1", AuditPhase::Start, "bot", "c");
    store
        .append_audit(&[
            first.clone(),
            audit_row(b, "b1", AuditPhase::Finish, "bot", "c"),
            audit_row(a, "a1", AuditPhase::Finish, "bot", "c"),
        ])
        .await
        .expect("append");
    store
        .append_audit(&[audit_row(a, "a2", AuditPhase::Finish, "bot", "c")])
        .await
        .expect("append");
    let rows = assert_whole_chain(&*store, a).await;
    assert_eq!(request_ids(&rows), ["a1", "a1", "a2"]);
    assert_eq!(
        rows.iter().map(|r| r.phase).collect::<Vec<_>>(),
        [AuditPhase::Start, AuditPhase::Finish, AuditPhase::Finish]
    );
    assert_eq!(
        rows[0].record().expect("record"),
        first.record,
        "stored as appended"
    );
    let rows = assert_whole_chain(&*store, b).await;
    assert_eq!(request_ids(&rows), ["b1"], "each team has its own chain");
}

pub(crate) async fn a_credential_filter_matches_rows_naming_several_credentials(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "many").await;
    store
        .append_audit(&[
            audit_row(team, "r1", AuditPhase::Finish, "x", "alpha,beta"),
            audit_row(team, "r2", AuditPhase::Finish, "x", "beta"),
            audit_row(team, "r3", AuditPhase::Finish, "x", "alphabet,gamma"),
        ])
        .await
        .expect("append");
    let ids = |credential: &str| {
        let store = Arc::clone(&store);
        let q = AuditQuery {
            credential: Some(credential.to_owned()),
            ..Default::default()
        };
        async move { request_ids(&store.audit_rows(team, &q).await.expect("rows")) }
    };
    assert_eq!(ids("alpha").await, ["r1"], "a whole name, never a prefix");
    assert_eq!(ids("beta").await, ["r1", "r2"]);
    assert_eq!(ids("gamma").await, ["r3"]);
    assert_eq!(ids("alp").await, Vec::<String>::new());
    let rows = store
        .audit_rows(team, &AuditQuery::default())
        .await
        .expect("rows");
    assert_eq!(
        rows[0].record().expect("record").credential_names,
        ["alpha", "beta"]
    );
    assert_whole_chain(&*store, team).await;
}

pub(crate) async fn audit_rows_select_the_newest_requests_by_filter(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    store
        .append_audit(&[
            audit_row(team, "r1", AuditPhase::Start, "x", "c1"),
            audit_row(team, "r1", AuditPhase::Finish, "x", "c1"),
            audit_row(team, "r2", AuditPhase::Finish, "y", "c2"),
            audit_row(other, "elsewhere", AuditPhase::Finish, "x", "c1"),
            audit_row(team, "r3", AuditPhase::Start, "x", "c2"),
            audit_row(team, "r3", AuditPhase::Finish, "x", "c2"),
        ])
        .await
        .expect("append");
    let read = |q: AuditQuery| {
        let store = Arc::clone(&store);
        async move { seqs(&store.audit_rows(team, &q).await.expect("rows")) }
    };
    assert_eq!(read(AuditQuery::default()).await, [1, 2, 3, 4, 5]);
    assert_eq!(
        read(AuditQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [3, 4, 5],
        "the newest two requests with all their rows, oldest first"
    );
    assert_eq!(
        read(AuditQuery {
            agent: Some("x".into()),
            ..Default::default()
        })
        .await,
        [1, 2, 4, 5]
    );
    assert_eq!(
        read(AuditQuery {
            credential: Some("c2".into()),
            ..Default::default()
        })
        .await,
        [3, 4, 5]
    );
    assert_eq!(
        read(AuditQuery {
            after_seq: Some(3),
            ..Default::default()
        })
        .await,
        [4, 5]
    );
    assert_eq!(
        read(AuditQuery {
            agent: Some("nobody".into()),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    let rows = store
        .audit_rows(team, &AuditQuery::default())
        .await
        .expect("rows");
    assert_eq!(request_ids(&rows), ["r1", "r1", "r2", "r3", "r3"]);
}

pub(crate) async fn the_audit_writer_makes_rows_durable_and_folds_them_into_the_chain(
    store: Arc<dyn Store>,
) {
    let a = migrated_with_team(&*store, "alpha").await;
    let b = new_team(&*store, "beta").await;
    // Backends without an appender of their own use `append_audit` (covered
    // by every other audit case).
    let Some(writer) = store.audit_writer().expect("audit_writer") else {
        return;
    };
    writer
        .append(&[
            audit_row(a, "w1", AuditPhase::Start, "bot", "c"),
            audit_row(a, "w1", AuditPhase::Finish, "bot", "c"),
        ])
        .expect("append");
    // The store's reads see appended rows without an explicit fold.
    let rows = assert_whole_chain(&*store, a).await;
    assert_eq!(request_ids(&rows), ["w1", "w1"]);
    // The store's own appends keep the order with the writer's.
    store
        .append_audit(&[audit_row(a, "s1", AuditPhase::Finish, "bot", "c")])
        .await
        .expect("append");
    let again = store
        .audit_writer()
        .expect("audit_writer")
        .expect("still there");
    again
        .append(&[audit_row(a, "w2", AuditPhase::Finish, "bot", "c")])
        .expect("append");
    writer
        .append(&[audit_row(b, "wb", AuditPhase::Finish, "bot", "c")])
        .expect("append");
    assert_eq!(writer.fold().expect("fold"), 2, "both rows waiting");
    assert_eq!(writer.fold().expect("fold"), 0, "nothing left");
    let rows = assert_whole_chain(&*store, a).await;
    assert_eq!(request_ids(&rows), ["w1", "w1", "s1", "w2"]);
    let rows = assert_whole_chain(&*store, b).await;
    assert_eq!(request_ids(&rows), ["wb"]);
}

pub(crate) async fn checkpoint_keeps_the_chain_intact(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    store
        .checkpoint()
        .await
        .expect("checkpoint with nothing to do");
    for round in 0..3 {
        let rows: Vec<AuditAppend> = (0..50)
            .map(|i| {
                audit_row(
                    team,
                    &format!("r{round}-{i}"),
                    AuditPhase::Finish,
                    "bot",
                    "c",
                )
            })
            .collect();
        store.append_audit(&rows).await.expect("append");
        store.checkpoint().await.expect("checkpoint");
    }
    let rows = assert_whole_chain(&*store, team).await;
    assert_eq!(rows.len(), 150);
}

/// The rows task `i` appends: a start and a finish in `a`, one row in `b`.
fn batch(a: i64, b: i64, i: usize) -> Vec<AuditAppend> {
    vec![
        audit_row(a, &format!("a{i}"), AuditPhase::Start, "bot", "c"),
        audit_row(b, &format!("b{i}"), AuditPhase::Finish, "bot", "c"),
        audit_row(a, &format!("a{i}"), AuditPhase::Finish, "bot", "c"),
    ]
}

/// Asserts both chains hold exactly the rows of tasks `0..n`, a request's
/// start before its finish.
async fn assert_chains_of(store: &dyn Store, a: i64, b: i64, n: usize) {
    let rows = assert_whole_chain(store, a).await;
    assert_eq!(rows.len(), 2 * n);
    let mut started = BTreeSet::new();
    for row in &rows {
        let id = row.record().expect("record").request_id;
        match row.phase {
            AuditPhase::Start => assert!(started.insert(id), "one start per request"),
            AuditPhase::Finish => assert!(started.contains(&id), "{id} finished before it started"),
        }
    }
    let expected: BTreeSet<String> = (0..n).map(|i| format!("a{i}")).collect();
    assert_eq!(started, expected);
    let rows = assert_whole_chain(store, b).await;
    let ids: BTreeSet<String> = request_ids(&rows).into_iter().collect();
    let expected: BTreeSet<String> = (0..n).map(|i| format!("b{i}")).collect();
    assert_eq!((rows.len(), ids), (n, expected));
}

pub(crate) async fn concurrent_appends_keep_one_gap_free_chain_per_team(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    let a = migrated_with_team(&*store, "alpha").await;
    let b = new_team(&*store, "beta").await;
    race(TASKS, |i| {
        let store = Arc::clone(&store);
        async move { store.append_audit(&batch(a, b, i)).await.expect("append") }
    })
    .await;
    assert_chains_of(&*store, a, b, TASKS).await;
}

pub(crate) async fn concurrent_writer_appends_keep_one_gap_free_chain_per_team(
    store: Arc<dyn Store>,
) {
    const TASKS: usize = 16;
    let a = migrated_with_team(&*store, "alpha").await;
    let b = new_team(&*store, "beta").await;
    let Some(writer) = store.audit_writer().expect("audit_writer") else {
        return;
    };
    // Half the tasks append through the writer (and fold, as the proxy's
    // folder does), half through the store; reads fold too.
    race(TASKS, |i| {
        let store = Arc::clone(&store);
        let writer = Arc::clone(&writer);
        async move {
            if i % 2 == 0 {
                tokio::task::spawn_blocking(move || {
                    writer.append(&batch(a, b, i)).expect("append");
                    writer.fold().expect("fold");
                })
                .await
                .expect("blocking task");
            } else {
                store.append_audit(&batch(a, b, i)).await.expect("append");
                store
                    .audit_rows(a, &AuditQuery::default())
                    .await
                    .expect("read while others append");
            }
        }
    })
    .await;
    assert_chains_of(&*store, a, b, TASKS).await;
}

pub(crate) async fn the_sealed_head_moves_with_every_append_on_every_path(store: Arc<dyn Store>) {
    let a = migrated_with_team(&*store, "alpha").await;
    assert_eq!(
        store.audit_head(a).await.expect("head"),
        None,
        "no row, no head"
    );
    store
        .append_audit(&[
            audit_row(a, "h1", AuditPhase::Start, "bot", "c"),
            audit_row(a, "h1", AuditPhase::Finish, "bot", "c"),
        ])
        .await
        .expect("append");
    let head = store.audit_head(a).await.expect("head").expect("a head");
    assert_eq!(
        (head.team_internal_id, head.seq, head.keyed_from),
        (a, 2, 1)
    );
    assert_eq!(head.check(&audit_key()), Ok(()), "sealed with the key");
    assert_eq!(
        head.check(&AuditKey::from_bytes([1; 32])),
        Err(HeadError::BadSeal),
        "and with no other"
    );
    if let Some(writer) = store.audit_writer().expect("audit_writer") {
        writer
            .append(&[audit_row(a, "h2", AuditPhase::Finish, "bot", "c")])
            .expect("append");
        // Reads fold first, so the head includes the writer's row.
        let head = store.audit_head(a).await.expect("head").expect("a head");
        assert_eq!(head.seq, 3);
        assert_eq!(head.check(&audit_key()), Ok(()));
    }
    let rows = assert_whole_chain(&*store, a).await;
    let head = store.audit_head(a).await.expect("head").expect("a head");
    assert_eq!(head.last_hash, rows.last().expect("rows").row_hash);
    // Setting the key again changes nothing.
    store
        .set_audit_key(audit_key())
        .await
        .expect("set_audit_key");
    assert_eq!(store.audit_head(a).await.expect("head"), Some(head));
}

pub(crate) async fn appends_need_the_audit_key_and_refuse_a_head_sealed_under_another(
    store: Arc<dyn Store>,
) {
    store.migrate().await.expect("migrate");
    let team = new_team(&*store, "alpha").await;
    match store
        .append_audit(&[audit_row(team, "k0", AuditPhase::Finish, "bot", "c")])
        .await
    {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("audit key"), "{m}"),
        other => panic!("an append without the audit key must fail, got {other:?}"),
    }
    assert!(
        store
            .audit_chain(team)
            .await
            .expect("chain")
            .rows
            .is_empty(),
        "nothing unkeyed was written"
    );
    store
        .set_audit_key(audit_key())
        .await
        .expect("set_audit_key");
    store
        .append_audit(&[audit_row(team, "k1", AuditPhase::Finish, "bot", "c")])
        .await
        .expect("append");
    // Another key cannot move a head sealed with the first: to the store that
    // head looks edited, so it chains nothing onto it.
    store
        .set_audit_key(AuditKey::from_bytes([9; 32]))
        .await
        .expect("set_audit_key");
    match store
        .append_audit(&[audit_row(team, "k2", AuditPhase::Finish, "bot", "c")])
        .await
    {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("head"), "{m}"),
        other => panic!("chaining onto a head with a bad seal must fail, got {other:?}"),
    }
    store
        .set_audit_key(audit_key())
        .await
        .expect("set_audit_key");
    let rows = assert_whole_chain(&*store, team).await;
    assert_eq!(request_ids(&rows), ["k1"]);
}

pub(crate) async fn the_chain_verifies_with_the_key_only_and_shows_a_lost_tail(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let rows: Vec<AuditAppend> = (0..4)
        .map(|i| audit_row(team, &format!("v{i}"), AuditPhase::Finish, "bot", "c"))
        .collect();
    store.append_audit(&rows).await.expect("append");
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(chain.head, store.audit_head(team).await.expect("head"));
    assert!(verify_keyed(&audit_key(), team, &chain, None).ok);
    let other = verify_keyed(&AuditKey::from_bytes([2; 32]), team, &chain, None);
    assert!(!other.ok, "{other:?}");
    // A chain read without its last rows (as after deleting them) falls short
    // of the sealed head, and says which rows are gone.
    let mut short = chain.clone();
    short.rows.truncate(2);
    let v = verify_keyed(&audit_key(), team, &short, None);
    assert_eq!(
        (v.ok, v.first_bad_row, v.missing_rows),
        (false, Some(3), Some((3, 4)))
    );
    // An anchor at row 2 holds; one naming another MAC at row 2 does not.
    let at2 = chain.rows[1].row_hash.clone();
    assert!(verify_keyed(&audit_key(), team, &chain, Some((2, &at2))).ok);
    let at3 = chain.rows[2].row_hash.clone();
    assert!(!verify_keyed(&audit_key(), team, &chain, Some((2, &at3))).ok);
}

/// A row of `team` stamped at `ts`.
fn row_at(team: i64, request: &str, ts: &str) -> AuditAppend {
    let mut row = audit_row(team, request, AuditPhase::Finish, "bot", "c");
    row.record.timestamp = ts.into();
    row
}

pub(crate) async fn pruning_keeps_the_chain_verifiable_from_a_sealed_anchor(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "old").await;
    let other = new_team(&*store, "other").await;
    store
        .append_audit(&[
            row_at(team, "r1", "2026-01-01T00:00:00.000Z"),
            row_at(team, "r2", "2026-01-02T00:00:00.000Z"),
            row_at(team, "r3", "2026-01-03T00:00:00.000Z"),
            row_at(other, "o1", "2026-01-09T00:00:00.000Z"),
            row_at(team, "r4", "2026-01-04T00:00:00.000Z"),
        ])
        .await
        .expect("append");
    let before = store.audit_chain(team).await.expect("chain");
    assert_eq!(
        store
            .prune_audit("2026-01-02T12:00:00.000Z")
            .await
            .expect("prune"),
        2,
        "r1 and r2 are older than the cutoff"
    );
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(seqs(&chain.rows), [3, 4]);
    assert_eq!(
        (chain.anchor_hash.as_str(), chain.first_seq),
        (before.rows[1].row_hash.as_str(), 3),
        "the anchor carries the last deleted row's hash"
    );
    let v = verify_keyed(&audit_key(), team, &chain, None);
    assert!(v.ok, "{v:?}");
    assert_eq!(v.rows, 2);
    let untouched = store.audit_chain(other).await.expect("chain");
    assert_eq!(seqs(&untouched.rows), [1], "the other team's row is newer");
    assert!(verify_keyed(&audit_key(), other, &untouched, None).ok);

    // The same cutoff again deletes nothing; the last row is never deleted.
    assert_eq!(
        store
            .prune_audit("2026-01-02T12:00:00.000Z")
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        store
            .prune_audit("2027-01-01T00:00:00.000Z")
            .await
            .expect("prune"),
        1,
        "only r3: neither team's last row goes"
    );
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(seqs(&chain.rows), [4], "the last row carries the chain on");
    assert!(verify_keyed(&audit_key(), team, &chain, None).ok);

    // Appends continue after the anchor and verify.
    store
        .append_audit(&[row_at(team, "r5", "2026-02-01T00:00:00.000Z")])
        .await
        .expect("append after pruning");
    let chain = store.audit_chain(team).await.expect("chain");
    assert_eq!(seqs(&chain.rows), [4, 5]);
    let v = verify_keyed(&audit_key(), team, &chain, None);
    assert!(v.ok, "{v:?}");

    // An anchor moved without the audit key (rows deleted behind the
    // store's back, the anchor rewritten to match) fails verification.
    let mut forged = chain.clone();
    forged.anchor_hash.clone_from(&chain.rows[0].row_hash);
    forged.first_seq = 5;
    forged.rows.remove(0);
    let v = verify_keyed(&audit_key(), team, &forged, None);
    assert!(!v.ok, "a forged anchor is caught");
    assert!(
        v.error
            .as_deref()
            .unwrap_or_default()
            .contains("retention anchor"),
        "{v:?}"
    );
    let mut unsealed = chain.clone();
    unsealed.anchor_mac = Some(String::new());
    assert!(!verify_keyed(&audit_key(), team, &unsealed, None).ok);
    let other_key = verify_keyed(&AuditKey::from_bytes([2; 32]), team, &chain, None);
    assert!(!other_key.ok);
}
