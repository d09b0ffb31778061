//! Temporary grants: listed, revoked, and used at most `max_uses` times.

use std::sync::Arc;

use tap_core::store::Store;
use tokio::sync::Barrier;

use super::{add_credential, grant, migrated_with_team, new_team, now_ms};

pub(crate) async fn grants_are_created_listed_and_revoked(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    add_credential(&*store, team, "c").await;
    let later = now_ms() / 1000 + 3600;
    let g1 = grant(team, "g1", Some(3), later);
    let g2 = grant(team, "g2", None, later + 1);
    store.create_grant(&g1).await.expect("create");
    store.create_grant(&g2).await.expect("create");
    let listed = store.grants(team).await.expect("grants");
    assert_eq!(listed.len(), 2);
    let g1_stored = listed.iter().find(|g| g.id == "g1").expect("g1 listed");
    assert_eq!(
        (
            g1_stored.credential.as_str(),
            &g1_stored.methods,
            g1_stored.route_scope.as_str(),
            g1_stored.expires_at,
            g1_stored.max_uses,
            g1_stored.uses,
            g1_stored.created_by.as_str(),
            g1_stored.revoked_at,
        ),
        (
            "c",
            &g1.methods,
            g1.route_scope.as_str(),
            later,
            Some(3),
            0,
            "owner@example.com",
            None
        )
    );
    assert!(store.grants(other).await.expect("grants").is_empty());
    assert!(
        !store
            .revoke_grant(other, "g1")
            .await
            .expect("revoke in another team")
    );
    assert!(store.revoke_grant(team, "g1").await.expect("revoke"));
    assert!(!store.revoke_grant(team, "g1").await.expect("revoke again"));
    assert!(
        !store
            .revoke_grant(team, "nope")
            .await
            .expect("revoke missing")
    );
    let listed = store.grants(team).await.expect("grants");
    let revoked = listed.iter().find(|g| g.id == "g1").expect("still listed");
    assert!(revoked.revoked_at.is_some());
    let kept = listed.iter().find(|g| g.id == "g2").expect("listed");
    assert_eq!(kept.revoked_at, None);
}

pub(crate) async fn use_grant_counts_to_max_uses_and_refuses_expired_or_revoked(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let now = now_ms() / 1000;
    store
        .create_grant(&grant(team, "twice", Some(2), now + 60))
        .await
        .expect("create");
    store
        .create_grant(&grant(team, "expiring", None, now + 10))
        .await
        .expect("create");
    store
        .create_grant(&grant(team, "revoked", None, now + 60))
        .await
        .expect("create");
    store
        .create_grant(&grant(team, "unlimited", None, now + 60))
        .await
        .expect("create");
    assert!(store.use_grant("twice", now).await.expect("use 1"));
    assert!(store.use_grant("twice", now).await.expect("use 2"));
    assert!(
        !store.use_grant("twice", now).await.expect("use 3"),
        "exhausted"
    );
    assert!(
        store
            .use_grant("expiring", now + 9)
            .await
            .expect("before expiry")
    );
    assert!(
        !store
            .use_grant("expiring", now + 10)
            .await
            .expect("at expiry")
    );
    assert!(store.revoke_grant(team, "revoked").await.expect("revoke"));
    assert!(!store.use_grant("revoked", now).await.expect("use revoked"));
    for _ in 0..5 {
        assert!(store.use_grant("unlimited", now).await.expect("use"));
    }
    assert!(!store.use_grant("nope", now).await.expect("use missing"));
    let grants = store.grants(team).await.expect("grants");
    let uses = |id: &str| grants.iter().find(|g| g.id == id).expect("listed").uses;
    assert_eq!(uses("twice"), 2, "a refused use is not counted");
    assert_eq!(uses("expiring"), 1);
    assert_eq!(uses("revoked"), 0);
    assert_eq!(uses("unlimited"), 5);
}

pub(crate) async fn use_grant_allows_exactly_max_uses_under_contention(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    let team = migrated_with_team(&*store, "alpha").await;
    let now = now_ms() / 1000;
    store
        .create_grant(&grant(team, "three", Some(3), now + 60))
        .await
        .expect("create");
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                store.use_grant("three", now).await.expect("use")
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if t.await.expect("task") {
            granted += 1;
        }
    }
    assert_eq!(granted, 3, "a limit of 3 allows exactly 3");
    let stored = store.grants(team).await.expect("grants");
    assert_eq!(stored[0].uses, 3);
}

pub(crate) async fn a_released_use_can_be_claimed_again_and_never_goes_below_zero(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let now = now_ms() / 1000;
    store
        .create_grant(&grant(team, "once", Some(1), now + 60))
        .await
        .expect("create");
    assert!(
        !store.release_grant_use("once").await.expect("release"),
        "nothing claimed yet"
    );
    assert!(store.use_grant("once", now).await.expect("use"));
    assert!(!store.use_grant("once", now).await.expect("used up"));
    assert!(store.release_grant_use("once").await.expect("release"));
    assert!(store.use_grant("once", now).await.expect("claimed again"));
    assert!(!store.release_grant_use("nope").await.expect("missing"));
    let grants = store.grants(team).await.expect("grants");
    assert_eq!(grants[0].uses, 1);
}
