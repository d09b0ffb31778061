//! Shared OAuth 2 access tokens: one holder at a time leases a credential's
//! token call, whatever the number of concurrent callers; the token it
//! stores is what everyone gets until it expires or the value changes.

use std::sync::Arc;

use tap_core::store::{Store, StoreError, TokenLease};

use super::{credential, migrated_with_team, race};

const LEASE: i64 = 30_000;

async fn with_value(store: &dyn Store) -> i64 {
    let team = migrated_with_team(store, "alpha").await;
    let mut c = credential(team, "g");
    c.sealed_value = Some(b"{\"sealed\":1}".to_vec());
    c.value_is_json = true;
    store.upsert_credential(&c).await.expect("credential");
    team
}

fn cached(sealed: &[u8], until_ms: i64) -> TokenLease {
    TokenLease::Cached {
        sealed: sealed.to_vec(),
        until_ms,
    }
}

pub(crate) async fn one_holder_leases_a_token_call_and_its_token_is_shared(store: Arc<dyn Store>) {
    let team = with_value(&*store).await;
    let t0 = 1_000_000;
    let leases = race(8, |i| {
        let store = Arc::clone(&store);
        async move {
            let holder = format!("h{i}");
            let lease = store.token_lease(team, "g", &holder, t0, LEASE).await;
            (holder, lease.expect("lease"))
        }
    })
    .await;
    let owners: Vec<&String> = leases
        .iter()
        .filter(|(_, l)| *l == TokenLease::Acquired)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(owners.len(), 1, "exactly one holder leases: {leases:?}");
    assert!(
        leases
            .iter()
            .all(|(h, l)| h == owners[0] || *l == TokenLease::Busy)
    );
    let owner = owners[0].clone();
    // The lease holder asking again still holds it.
    assert_eq!(
        store
            .token_lease(team, "g", &owner, t0 + 1, LEASE)
            .await
            .expect("lease"),
        TokenLease::Acquired
    );
    // Someone else's token is not stored.
    store
        .put_token(team, "g", "intruder", Some(b"tok-x"), t0 + 60_000)
        .await
        .expect("put");
    assert_eq!(
        store
            .token_lease(team, "g", "other", t0 + 2, LEASE)
            .await
            .expect("lease"),
        TokenLease::Busy
    );
    store
        .put_token(team, "g", &owner, Some(b"tok-1"), t0 + 60_000)
        .await
        .expect("put");
    for h in ["other", owner.as_str()] {
        assert_eq!(
            store
                .token_lease(team, "g", h, t0 + 3, LEASE)
                .await
                .expect("lease"),
            cached(b"tok-1", t0 + 60_000)
        );
    }
    // Expired: the next caller leases a new call.
    assert_eq!(
        store
            .token_lease(team, "g", "other", t0 + 60_000, LEASE)
            .await
            .expect("lease"),
        TokenLease::Acquired
    );
    store
        .put_token(team, "g", "other", Some(b"tok-2"), t0 + 120_000)
        .await
        .expect("put");
    assert_eq!(
        store
            .token_lease(team, "g", "x", t0 + 60_001, LEASE)
            .await
            .expect("lease"),
        cached(b"tok-2", t0 + 120_000)
    );
    // A new value (set by an operator or a rotation): the token is not used.
    assert!(
        store
            .set_credential_value(team, "g", b"{\"sealed\":2}", true)
            .await
            .expect("set")
    );
    assert_eq!(
        store
            .token_lease(team, "g", "x", t0 + 60_002, LEASE)
            .await
            .expect("lease"),
        TokenLease::Acquired
    );
    // Unknown credentials have no lease.
    let missing = store.token_lease(team, "nope", "x", t0, LEASE).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub(crate) async fn a_released_or_lapsed_lease_passes_on(store: Arc<dyn Store>) {
    let team = with_value(&*store).await;
    let t0 = 5_000_000;
    let lease = |h: &'static str, at: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .token_lease(team, "g", h, at, LEASE)
                .await
                .expect("lease")
        }
    };
    assert_eq!(lease("a", t0).await, TokenLease::Acquired);
    assert_eq!(lease("b", t0 + LEASE - 1).await, TokenLease::Busy);
    // A lapsed lease (its holder died) passes on.
    assert_eq!(lease("b", t0 + LEASE).await, TokenLease::Acquired);
    // Released without a token (the call failed): the next caller leases at once.
    store
        .put_token(team, "g", "b", None, 0)
        .await
        .expect("release");
    assert_eq!(lease("c", t0 + LEASE + 1).await, TokenLease::Acquired);
    // "a"'s lease was taken over: its late token is dropped.
    store
        .put_token(team, "g", "a", Some(b"late"), t0 + 10 * LEASE)
        .await
        .expect("put");
    assert_eq!(lease("d", t0 + LEASE + 2).await, TokenLease::Busy);
}
