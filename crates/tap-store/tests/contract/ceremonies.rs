//! WebAuthn ceremonies in progress: put by one process, taken out once by
//! any; expired ones never come back; a cap per kind bounds them (the oldest of a full kind make room).

use std::sync::Arc;

use tap_core::model::{CeremonyKind, CeremonyRecord};
use tap_core::store::Store;

use super::race;

const NOW: i64 = 1_000_000;
const TTL: i64 = 300_000;
const CAP: u32 = 100;

fn ceremony(id: &str, kind: CeremonyKind, created_at: i64) -> CeremonyRecord {
    CeremonyRecord {
        id: id.into(),
        kind,
        state: Some(format!("{{\"challenge\":\"{id}\"}}")),
        account_id: Some(7),
        name: (kind == CeremonyKind::Register).then(|| "laptop".into()),
        txn_id: (kind == CeremonyKind::Approve).then(|| "txn-1".into()),
        request_hash: (kind == CeremonyKind::Approve).then(|| "hash-1".into()),
        created_at,
        expires_at: created_at + TTL,
    }
}

pub(crate) async fn a_ceremony_is_taken_out_once_by_its_id_and_kind(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    for kind in [
        CeremonyKind::Register,
        CeremonyKind::Approve,
        CeremonyKind::SignIn,
    ] {
        let id = format!("c-{}", kind.as_str());
        let c = ceremony(&id, kind, NOW);
        assert!(store.put_ceremony(&c, NOW, CAP).await.expect("put"));
        // Another kind, or a foreign id, finds nothing and takes nothing.
        let other = if kind == CeremonyKind::SignIn {
            CeremonyKind::Approve
        } else {
            CeremonyKind::SignIn
        };
        assert_eq!(
            store.take_ceremony(&id, other, NOW).await.expect("take"),
            None
        );
        assert_eq!(
            store
                .take_ceremony("never-put", kind, NOW)
                .await
                .expect("take"),
            None
        );
        assert_eq!(
            store.take_ceremony(&id, kind, NOW + 1).await.expect("take"),
            Some(c),
            "every field round-trips"
        );
        assert_eq!(
            store.take_ceremony(&id, kind, NOW + 2).await.expect("take"),
            None,
            "taken once"
        );
    }
    // A decoy sign-in has neither state nor account.
    let decoy = CeremonyRecord {
        state: None,
        account_id: None,
        ..ceremony("decoy", CeremonyKind::SignIn, NOW)
    };
    assert!(store.put_ceremony(&decoy, NOW, CAP).await.expect("put"));
    assert_eq!(
        store
            .take_ceremony("decoy", CeremonyKind::SignIn, NOW)
            .await
            .expect("take"),
        Some(decoy)
    );
    // A newer put with the same id replaces the older one.
    let old = ceremony("again", CeremonyKind::Approve, NOW);
    let new = CeremonyRecord {
        state: Some("{\"challenge\":\"newer\"}".into()),
        ..ceremony("again", CeremonyKind::Approve, NOW + 5)
    };
    assert!(store.put_ceremony(&old, NOW, CAP).await.expect("put"));
    assert!(store.put_ceremony(&new, NOW + 5, CAP).await.expect("put"));
    assert_eq!(
        store
            .take_ceremony("again", CeremonyKind::Approve, NOW + 6)
            .await
            .expect("take"),
        Some(new)
    );
    assert_eq!(
        store
            .take_ceremony("again", CeremonyKind::Approve, NOW + 6)
            .await
            .expect("take"),
        None
    );
}

pub(crate) async fn an_expired_ceremony_is_never_taken_out(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let c = ceremony("late", CeremonyKind::SignIn, NOW);
    assert!(store.put_ceremony(&c, NOW, CAP).await.expect("put"));
    assert_eq!(
        store
            .take_ceremony("late", CeremonyKind::SignIn, c.expires_at)
            .await
            .expect("take"),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        store
            .take_ceremony("late", CeremonyKind::SignIn, NOW)
            .await
            .expect("take"),
        None,
        "the expired one was removed when found"
    );
    // Expired ones are swept by the next put: they stop counting at once.
    for i in 0..3 {
        let c = ceremony(&format!("old-{i}"), CeremonyKind::SignIn, NOW);
        assert!(store.put_ceremony(&c, NOW, 3).await.expect("put"));
    }
    let later = NOW + TTL;
    let fresh = ceremony("fresh", CeremonyKind::SignIn, later);
    assert!(store.put_ceremony(&fresh, later, 3).await.expect("put"));
    for i in 0..3 {
        assert_eq!(
            store
                .take_ceremony(&format!("old-{i}"), CeremonyKind::SignIn, NOW)
                .await
                .expect("take"),
            None,
            "swept by the put"
        );
    }
    assert_eq!(
        store
            .take_ceremony("fresh", CeremonyKind::SignIn, later)
            .await
            .expect("take"),
        Some(fresh)
    );
}

pub(crate) async fn a_full_kind_makes_room_by_dropping_its_oldest(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    const SMALL: u32 = 3;
    for i in 0..SMALL {
        let c = ceremony(&format!("s-{i}"), CeremonyKind::SignIn, NOW + i64::from(i));
        assert!(store.put_ceremony(&c, NOW, SMALL).await.expect("put"));
    }
    // Full: the newest begin is kept, the oldest is dropped.
    let over = ceremony("s-over", CeremonyKind::SignIn, NOW + 10);
    assert!(store.put_ceremony(&over, NOW, SMALL).await.expect("put"));
    let take = |id: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .take_ceremony(id, CeremonyKind::SignIn, NOW)
                .await
                .expect("take")
        }
    };
    assert_eq!(take("s-0").await, None, "the oldest made room");
    assert!(take("s-over").await.is_some());
    assert!(take("s-2").await.is_some());
    // A flood of one kind never touches the others.
    let reg = ceremony("r-0", CeremonyKind::Register, NOW);
    assert!(store.put_ceremony(&reg, NOW, SMALL).await.expect("put"));
    for i in 0..10 {
        let c = ceremony(&format!("f-{i}"), CeremonyKind::SignIn, NOW + 20 + i);
        assert!(store.put_ceremony(&c, NOW, SMALL).await.expect("put"));
    }
    assert!(
        store
            .take_ceremony("r-0", CeremonyKind::Register, NOW)
            .await
            .expect("take")
            .is_some()
    );
}

pub(crate) async fn racing_takers_get_a_ceremony_at_most_once(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    const ROUNDS: usize = 5;
    const TAKERS: usize = 8;
    for round in 0..ROUNDS {
        let id = format!("raced-{round}");
        let c = ceremony(&id, CeremonyKind::Approve, NOW);
        assert!(store.put_ceremony(&c, NOW, CAP).await.expect("put"));
        let got = race(TAKERS, |_| {
            let (store, id) = (Arc::clone(&store), id.clone());
            async move {
                store
                    .take_ceremony(&id, CeremonyKind::Approve, NOW)
                    .await
                    .expect("take")
            }
        })
        .await;
        assert_eq!(
            got.iter().filter(|g| g.is_some()).count(),
            1,
            "round {round}: exactly one taker gets it"
        );
    }
}
