//! Members' passkeys: per account, unique credential ids, counter updates.

use std::sync::Arc;

use tap_core::model::PasskeyRecord;
use tap_core::store::Store;

use super::assert_conflict;

fn passkey(id: &str, account_id: i64, credential_id: &str, created_at: i64) -> PasskeyRecord {
    PasskeyRecord {
        id: id.into(),
        account_id,
        name: format!("key {id}"),
        credential_id: credential_id.into(),
        passkey: format!("{{\"cred\":\"{credential_id}\",\"counter\":0}}"),
        created_at,
        last_used_at: None,
    }
}

pub(crate) async fn passkeys_belong_to_one_account_and_are_unique(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    let bob = store
        .create_account("bob@example.com", "h")
        .await
        .expect("account");
    assert!(store.passkeys(amy).await.expect("list").is_empty());
    store
        .add_passkey(&passkey("p2", amy, "cred-b", 20))
        .await
        .expect("add");
    store
        .add_passkey(&passkey("p1", amy, "cred-a", 10))
        .await
        .expect("add");
    store
        .add_passkey(&passkey("p3", bob, "cred-c", 5))
        .await
        .expect("add");
    // A credential id registers once, whoever tries again.
    assert_conflict(store.add_passkey(&passkey("p4", bob, "cred-a", 30)).await);
    let mine = store.passkeys(amy).await.expect("list");
    assert_eq!(
        mine.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p1", "p2"],
        "oldest first"
    );
    assert_eq!(mine[0], passkey("p1", amy, "cred-a", 10));

    assert!(
        store
            .update_passkey("p1", "{\"counter\":7}", 99)
            .await
            .expect("update")
    );
    assert!(
        !store
            .update_passkey("nope", "{}", 99)
            .await
            .expect("update")
    );
    let p1 = store.passkeys(amy).await.expect("list").remove(0);
    assert_eq!(p1.passkey, "{\"counter\":7}");
    assert_eq!(p1.last_used_at, Some(99));

    // One account cannot remove another's passkey.
    assert!(!store.delete_passkey(bob, "p1").await.expect("delete"));
    assert!(store.delete_passkey(amy, "p1").await.expect("delete"));
    assert!(!store.delete_passkey(amy, "p1").await.expect("delete"));
    assert_eq!(store.passkeys(amy).await.expect("list").len(), 1);
    assert_eq!(store.passkeys(bob).await.expect("list").len(), 1);
}
