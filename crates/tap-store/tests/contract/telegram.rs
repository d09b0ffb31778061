//! Telegram approvals: linked users, one-time link codes, approval messages.

use std::sync::Arc;

use tap_core::model::TelegramMessage;
use tap_core::store::Store;

use super::{assert_conflict, now_ms, race};

fn message(nonce_hash: &str, txn: &str, next_attempt_at: i64) -> TelegramMessage {
    TelegramMessage {
        nonce_hash: nonce_hash.into(),
        txn_id: txn.into(),
        chat_id: "-100".into(),
        message_id: None,
        text: "POST https://api.example.com/x".into(),
        offers_grant: true,
        approve_url: None,
        shown: String::new(),
        closed: false,
        attempts: 0,
        next_attempt_at,
        created_at: 0,
    }
}

pub(crate) async fn telegram_users_link_to_one_account_each(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    store
        .create_account("bob@example.com", "h")
        .await
        .expect("account");
    assert!(
        !store
            .link_telegram_user("nobody@example.com", 1)
            .await
            .expect("link")
    );
    assert!(store.telegram_user(1).await.expect("user").is_none());
    assert!(
        store
            .link_telegram_user("Amy@Example.com", 1)
            .await
            .expect("link")
    );
    assert_eq!(
        store.telegram_user(1).await.expect("user").as_deref(),
        Some("amy@example.com")
    );
    // Relinking the Telegram user moves it; relinking the account replaces its old id.
    assert!(
        store
            .link_telegram_user("bob@example.com", 1)
            .await
            .expect("link")
    );
    assert_eq!(
        store.telegram_user(1).await.expect("user").as_deref(),
        Some("bob@example.com")
    );
    assert!(
        store
            .link_telegram_user("bob@example.com", 2)
            .await
            .expect("link")
    );
    assert!(store.telegram_user(1).await.expect("user").is_none());
    assert_eq!(
        store.telegram_user(2).await.expect("user").as_deref(),
        Some("bob@example.com")
    );
}

pub(crate) async fn a_link_code_is_redeemed_once_before_it_expires(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    let now = now_ms();
    assert!(
        !store
            .create_telegram_link_code("nobody@example.com", "c0", now + 60_000)
            .await
            .expect("code")
    );
    assert!(
        store
            .create_telegram_link_code("amy@example.com", "c1", now + 60_000)
            .await
            .expect("code")
    );
    assert!(
        store
            .create_telegram_link_code("amy@example.com", "old", now - 1)
            .await
            .expect("code")
    );
    assert_conflict(
        store
            .create_telegram_link_code("amy@example.com", "c1", now + 60_000)
            .await,
    );
    assert!(
        store
            .redeem_telegram_link_code("old", 7, now)
            .await
            .expect("redeem")
            .is_none()
    );
    assert!(
        store
            .redeem_telegram_link_code("unknown", 7, now)
            .await
            .expect("redeem")
            .is_none()
    );
    let winners: Vec<Option<String>> = race(8, |i| {
        let store = Arc::clone(&store);
        async move {
            store
                .redeem_telegram_link_code("c1", 100 + i as i64, now)
                .await
                .expect("redeem")
        }
    })
    .await;
    let won: Vec<&String> = winners.iter().flatten().collect();
    assert_eq!(won, vec!["amy@example.com"], "redeemed exactly once");
}

pub(crate) async fn telegram_messages_are_stored_found_and_updated(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let now = now_ms();
    store
        .create_telegram_message(&message("h1", "t1", now - 10))
        .await
        .expect("create");
    store
        .create_telegram_message(&message("h2", "t2", now + 60_000))
        .await
        .expect("create");
    assert_conflict(
        store
            .create_telegram_message(&message("h1", "t3", now))
            .await,
    );
    let got = store
        .telegram_message("h1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((got.txn_id.as_str(), got.chat_id.as_str()), ("t1", "-100"));
    assert!(got.offers_grant && !got.closed && got.message_id.is_none());
    assert!(
        store
            .telegram_message("nope")
            .await
            .expect("read")
            .is_none()
    );

    // Only open messages that are due.
    let open = store.open_telegram_messages(now, 10).await.expect("open");
    assert_eq!(
        open.iter()
            .map(|m| m.nonce_hash.as_str())
            .collect::<Vec<_>>(),
        vec!["h1"]
    );
    let sent = TelegramMessage {
        message_id: Some(42),
        shown: "pending:0".into(),
        attempts: 1,
        next_attempt_at: now + 60_000,
        ..got
    };
    assert!(store.update_telegram_message(&sent).await.expect("update"));
    let back = store
        .telegram_message("h1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (back.message_id, back.shown.as_str(), back.attempts),
        (Some(42), "pending:0", 1)
    );
    assert!(
        store
            .open_telegram_messages(now, 10)
            .await
            .expect("open")
            .is_empty()
    );
    let closed = TelegramMessage {
        closed: true,
        next_attempt_at: 0,
        ..back
    };
    assert!(
        store
            .update_telegram_message(&closed)
            .await
            .expect("update")
    );
    assert!(
        store
            .open_telegram_messages(now + 120_000, 10)
            .await
            .expect("open")
            .iter()
            .all(|m| m.nonce_hash != "h1")
    );
    assert!(
        !store
            .update_telegram_message(&message("absent", "t", 0))
            .await
            .expect("update")
    );
}
