//! Accounts and how they sign in: admin tokens and sessions.

use std::sync::Arc;

use tap_core::model::MemberRole;
use tap_core::store::Store;

use super::{assert_conflict, migrated_with_team, new_team, now_ms};

pub(crate) async fn accounts_are_found_by_email_and_id(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let id = store
        .create_account("amy@example.com", "argon2-hash")
        .await
        .expect("create");
    let other = store
        .create_account("bob@example.com", "other-hash")
        .await
        .expect("create");
    assert_ne!(id, other);
    let by_email = store
        .account_by_email("amy@example.com")
        .await
        .expect("by email")
        .expect("exists");
    assert_eq!(
        (
            by_email.id,
            by_email.email.as_str(),
            by_email.password_hash.as_str()
        ),
        (id, "amy@example.com", "argon2-hash")
    );
    let by_id = store.account(other).await.expect("by id").expect("exists");
    assert_eq!((by_id.id, by_id.email.as_str()), (other, "bob@example.com"));
    assert!(
        store
            .account_by_email("nobody@example.com")
            .await
            .expect("by email")
            .is_none()
    );
    assert!(
        store
            .account(other + id + 1000)
            .await
            .expect("by id")
            .is_none()
    );
    assert_conflict(store.create_account("amy@example.com", "again").await);
}

pub(crate) async fn admin_tokens_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let elsewhere = new_team(&*store, "beta").await;
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    let bob = store
        .create_account("bob@example.com", "h")
        .await
        .expect("account");
    store
        .set_membership(team, amy, MemberRole::Owner)
        .await
        .expect("membership");
    store
        .set_membership(elsewhere, bob, MemberRole::Owner)
        .await
        .expect("membership");
    let ci = store
        .create_admin_token(amy, "token-hash-ci", "ci")
        .await
        .expect("token");
    let laptop = store
        .create_admin_token(amy, "token-hash-laptop", "laptop")
        .await
        .expect("token");
    store
        .create_admin_token(bob, "token-hash-bob", "bob's")
        .await
        .expect("token");
    let found = store
        .admin_token("token-hash-ci")
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(
        (
            found.id,
            found.account_id,
            found.label.as_str(),
            found.revoked_at
        ),
        (ci, amy, "ci", None)
    );
    assert!(
        store
            .admin_token("token-hash-nope")
            .await
            .expect("lookup")
            .is_none()
    );
    let listed: Vec<(i64, String)> = store
        .admin_tokens(team)
        .await
        .expect("list")
        .into_iter()
        .map(|(t, email)| (t.id, email))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ci, "amy@example.com".into()),
            (laptop, "amy@example.com".into())
        ],
        "tokens of the team's members only"
    );
    assert!(store.revoke_admin_token(ci).await.expect("revoke"));
    assert!(!store.revoke_admin_token(ci).await.expect("revoke again"));
    assert!(
        store
            .admin_token("token-hash-ci")
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        store
            .admin_token("token-hash-laptop")
            .await
            .expect("lookup")
            .is_some()
    );
    let revoked = store
        .admin_tokens(team)
        .await
        .expect("list")
        .into_iter()
        .find(|(t, _)| t.id == ci)
        .expect("a revoked token is still listed");
    assert!(revoked.0.revoked_at.is_some());
}

pub(crate) async fn sessions_resolve_until_they_expire_or_are_deleted(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    let now = now_ms();
    let expires = now + 60_000;
    store
        .create_session(amy, "session-hash", expires)
        .await
        .expect("session");
    store
        .create_session(amy, "other-session", expires)
        .await
        .expect("session");
    assert_eq!(
        store
            .session_account("session-hash", now)
            .await
            .expect("lookup"),
        Some(amy)
    );
    assert_eq!(
        store
            .session_account("session-hash", expires)
            .await
            .expect("lookup"),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        store.session_account("unknown", now).await.expect("lookup"),
        None
    );
    store.delete_session("session-hash").await.expect("delete");
    assert_eq!(
        store
            .session_account("session-hash", now)
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        store
            .session_account("other-session", now)
            .await
            .expect("lookup"),
        Some(amy),
        "other sessions stay"
    );
}
