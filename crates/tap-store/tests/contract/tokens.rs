//! Shared OAuth 2 access tokens: one holder at a time leases a credential's
//! token call, whatever the number of concurrent callers; the token it
//! stores is what everyone gets until it expires or the value changes. An
//! admin's value or a deleted credential drops the token row; a refresh
//! token the endpoint rotated is persisted without moving the version.

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
    // A new value (set by an operator): the token is not used.
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

/// `holder`'s lease on `g` at `at`.
async fn lease_of(store: &dyn Store, team: i64, holder: &str, at: i64) -> TokenLease {
    store
        .token_lease(team, "g", holder, at, LEASE)
        .await
        .expect("lease")
}

/// Leases `g` for `holder` and stores `token` as its token.
async fn stored_token(store: &dyn Store, team: i64, holder: &str, at: i64, token: &[u8]) {
    assert_eq!(
        lease_of(store, team, holder, at).await,
        TokenLease::Acquired
    );
    store
        .put_token(team, "g", holder, Some(token), at + 60_000)
        .await
        .expect("put");
    assert_eq!(
        lease_of(store, team, "reader", at + 1).await,
        cached(token, at + 60_000)
    );
}

pub(crate) async fn an_admin_value_or_a_deletion_drops_the_token_row(store: Arc<dyn Store>) {
    let s = &*store;
    let team = with_value(s).await;
    let t0 = 2_000_000;
    // Even the very same sealed bytes set again by an admin: the token goes.
    stored_token(s, team, "a", t0, b"tok-1").await;
    assert!(
        s.set_credential_value(team, "g", b"{\"sealed\":1}", true)
            .await
            .expect("set")
    );
    assert_eq!(lease_of(s, team, "b", t0 + 2).await, TokenLease::Acquired);
    // So does a lease: "b" is still calling when an admin sets a value; the
    // next caller leases at once and "b"'s late token is never stored.
    assert!(
        s.set_credential_value(team, "g", b"{\"sealed\":1}", true)
            .await
            .expect("set")
    );
    assert_eq!(lease_of(s, team, "c", t0 + 3).await, TokenLease::Acquired);
    s.put_token(team, "g", "b", Some(b"late"), t0 + 60_000)
        .await
        .expect("put");
    assert_eq!(lease_of(s, team, "d", t0 + 4).await, TokenLease::Busy);
    s.put_token(team, "g", "c", None, 0).await.expect("release");
    // A value given with the metadata counts the same.
    stored_token(s, team, "e", t0 + 5, b"tok-2").await;
    let mut c = credential(team, "g");
    c.sealed_value = Some(b"{\"sealed\":1}".to_vec());
    c.value_is_json = true;
    assert!(!s.upsert_credential(&c).await.expect("upsert"));
    assert_eq!(lease_of(s, team, "f", t0 + 7).await, TokenLease::Acquired);
    s.put_token(team, "g", "f", None, 0).await.expect("release");
    // Metadata alone keeps it.
    stored_token(s, team, "h", t0 + 8, b"tok-3").await;
    c.sealed_value = None;
    c.description = "changed".into();
    assert!(!s.upsert_credential(&c).await.expect("upsert"));
    assert_eq!(
        lease_of(s, team, "i", t0 + 10).await,
        cached(b"tok-3", t0 + 8 + 60_000)
    );
    // Deleted: a credential created again under the name (here with the
    // same sealed bytes) finds no token, nor a lease.
    assert!(s.delete_credential(team, "g").await.expect("delete"));
    let mut again = credential(team, "g");
    again.sealed_value = Some(b"{\"sealed\":1}".to_vec());
    again.value_is_json = true;
    assert!(s.upsert_credential(&again).await.expect("create"));
    assert_eq!(lease_of(s, team, "j", t0 + 11).await, TokenLease::Acquired);
    assert!(s.delete_credential(team, "g").await.expect("delete"));
    assert!(s.upsert_credential(&again).await.expect("create"));
    assert_eq!(
        lease_of(s, team, "k", t0 + 12).await,
        TokenLease::Acquired,
        "a deleted credential's lease is gone with it"
    );
}

pub(crate) async fn a_rotated_value_keeps_the_version_and_never_overwrites_an_admin_value(
    store: Arc<dyn Store>,
) {
    let s = &*store;
    let team = with_value(s).await;
    let t0 = 3_000_000;
    let before = s
        .credential(team, "g")
        .await
        .expect("read")
        .expect("exists");
    let revision = s.revision().await.expect("revision");
    assert_eq!(lease_of(s, team, "a", t0).await, TokenLease::Acquired);
    // Compared and swapped on the exact sealed value.
    assert!(
        !s.rotate_credential_value(team, "g", b"{\"sealed\":0}", b"{\"rotated\":1}")
            .await
            .expect("rotate")
    );
    assert_eq!(
        s.credential(team, "g")
            .await
            .expect("read")
            .expect("exists"),
        before,
        "a stale expectation changes nothing"
    );
    assert!(
        s.rotate_credential_value(team, "g", b"{\"sealed\":1}", b"{\"rotated\":1}")
            .await
            .expect("rotate")
    );
    let after = s
        .credential(team, "g")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(after.sealed_value.as_deref(), Some(&b"{\"rotated\":1}"[..]));
    assert!(after.value_is_json);
    assert_eq!(
        after.updated_at, before.updated_at,
        "the version pending approvals compare stays"
    );
    assert!(
        s.revision().await.expect("revision") > revision,
        "replicas reload the value"
    );
    // The holder's lease survives and its token counts for the new value.
    assert_eq!(lease_of(s, team, "b", t0 + 1).await, TokenLease::Busy);
    s.put_token(team, "g", "a", Some(b"tok-r"), t0 + 60_000)
        .await
        .expect("put");
    assert_eq!(
        lease_of(s, team, "b", t0 + 2).await,
        cached(b"tok-r", t0 + 60_000)
    );
    // An admin's value set meanwhile wins over a late rotation.
    assert!(
        s.set_credential_value(team, "g", b"{\"admin\":2}", true)
            .await
            .expect("set")
    );
    assert!(
        !s.rotate_credential_value(team, "g", b"{\"rotated\":1}", b"{\"rotated\":2}")
            .await
            .expect("rotate")
    );
    let admin = s
        .credential(team, "g")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(admin.sealed_value.as_deref(), Some(&b"{\"admin\":2}"[..]));
    assert!(
        !s.rotate_credential_value(team, "nope", b"x", b"y")
            .await
            .expect("rotate")
    );
}
