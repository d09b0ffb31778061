//! The database as a whole: schema, metadata, the configuration revision.

use std::sync::Arc;

use tap_core::audit::AuditPhase;
use tap_core::model::{ApprovalStatus, Channel, Link, MemberRole, Role};
use tap_core::policy::{ApprovalMode, Policy};
use tap_core::store::{AgentUpdate, Store};

use super::{
    EVERYONE, add_credential, approval, audit_row, grant, migrated_with_team, new_agent, new_team,
    now_ms,
};

pub(crate) async fn migrate_creates_the_schema_once(store: Arc<dyn Store>) {
    store.ping().await.expect("a fresh store answers");
    assert!(!store.is_initialized().await.expect("is_initialized"));
    store.migrate().await.expect("migrate");
    assert!(store.is_initialized().await.expect("is_initialized"));
    let revision = store.revision().await.expect("revision");
    // Migrating again is a no-op: nothing is created twice, no data is lost.
    new_team(&*store, "kept").await;
    store.migrate().await.expect("migrate again");
    assert!(store.team("kept").await.expect("team").is_some());
    assert!(store.revision().await.expect("revision") > revision);
    store.ping().await.expect("ping");
}

pub(crate) async fn meta_values_round_trip_and_are_replaced(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    assert_eq!(store.meta("check").await.expect("meta"), None);
    store.set_meta("check", b"\x00first").await.expect("set");
    store.set_meta("other", b"x").await.expect("set");
    assert_eq!(
        store.meta("check").await.expect("meta").as_deref(),
        Some(&b"\x00first"[..])
    );
    store.set_meta("check", b"second").await.expect("replace");
    assert_eq!(
        store.meta("check").await.expect("meta").as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        store.meta("other").await.expect("meta").as_deref(),
        Some(&b"x"[..])
    );
}

/// Asserts the revision grew since `last` and moves `last` to it.
async fn grew(store: &dyn Store, last: &mut i64, after: &str) {
    let now = store.revision().await.expect("revision");
    assert!(now > *last, "the revision did not grow after {after}");
    *last = now;
}

pub(crate) async fn revision_grows_on_every_configuration_write(store: Arc<dyn Store>) {
    let s = &*store;
    s.migrate().await.expect("migrate");
    let mut last = s.revision().await.expect("revision");
    s.set_meta("k", b"v").await.expect("set_meta");
    grew(s, &mut last, "set_meta").await;
    let team = new_team(s, "a").await;
    grew(s, &mut last, "create_team").await;
    let home = new_team(s, "home").await;
    grew(s, &mut last, "create_team").await;
    s.set_team_mode(team, ApprovalMode::Autonomous)
        .await
        .expect("set_team_mode");
    grew(s, &mut last, "set_team_mode").await;
    let owner = s
        .create_account("o@example.com", "h")
        .await
        .expect("account");
    grew(s, &mut last, "create_account").await;
    let other = s
        .create_account("p@example.com", "h")
        .await
        .expect("account");
    grew(s, &mut last, "create_account").await;
    s.set_membership(team, owner, MemberRole::Owner)
        .await
        .expect("membership");
    grew(s, &mut last, "set_membership").await;
    s.set_membership(team, other, MemberRole::Approver)
        .await
        .expect("membership");
    grew(s, &mut last, "set_membership").await;
    s.set_member_role(team, "p@example.com", MemberRole::Admin)
        .await
        .expect("set_member_role");
    grew(s, &mut last, "set_member_role").await;
    add_credential(s, team, "c").await;
    grew(s, &mut last, "upsert_credential").await;
    s.set_member_credentials(team, "p@example.com", &["c".into()])
        .await
        .expect("set_member_credentials");
    grew(s, &mut last, "set_member_credentials").await;
    s.set_credential_value(team, "c", b"sealed-2", false)
        .await
        .expect("set_credential_value");
    grew(s, &mut last, "set_credential_value").await;
    s.set_policy(team, "c", &Policy::default())
        .await
        .expect("set_policy");
    grew(s, &mut last, "set_policy").await;
    s.clear_policy(team, "c").await.expect("clear_policy");
    grew(s, &mut last, "clear_policy").await;
    let role = Role {
        team_internal_id: team,
        name: "r".into(),
        description: String::new(),
        credentials: Vec::new(),
        rate_limit_per_hour: None,
    };
    s.create_role(&role).await.expect("create_role");
    grew(s, &mut last, "create_role").await;
    s.set_role_credential(team, "r", "c", true)
        .await
        .expect("set_role_credential");
    grew(s, &mut last, "set_role_credential").await;
    s.put_role(&role).await.expect("put_role");
    grew(s, &mut last, "put_role").await;
    s.create_agent(&new_agent(team, "bot"))
        .await
        .expect("agent");
    grew(s, &mut last, "create_agent").await;
    s.set_agent_enabled(team, "bot", false)
        .await
        .expect("set_agent_enabled");
    grew(s, &mut last, "set_agent_enabled").await;
    s.set_agent_key(team, "bot", "key-hash-2")
        .await
        .expect("set_agent_key");
    grew(s, &mut last, "set_agent_key").await;
    s.set_agent_credential(team, "bot", "c", true)
        .await
        .expect("set_agent_credential");
    grew(s, &mut last, "set_agent_credential").await;
    s.set_agent_role(team, "bot", "r", true)
        .await
        .expect("set_agent_role");
    grew(s, &mut last, "set_agent_role").await;
    s.update_agent(
        team,
        "bot",
        &AgentUpdate {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("update_agent");
    grew(s, &mut last, "update_agent").await;
    s.create_grant(&grant(team, "g", None, now_ms() / 1000 + 3600))
        .await
        .expect("create_grant");
    grew(s, &mut last, "create_grant").await;
    s.revoke_grant(team, "g").await.expect("revoke_grant");
    grew(s, &mut last, "revoke_grant").await;
    let link = Link {
        team_internal_id: team,
        home_team_internal_id: home,
        home_team: "home".into(),
        agent_id: "visitor".into(),
        role: None,
        created_at: 0,
    };
    s.set_link(&link).await.expect("set_link");
    grew(s, &mut last, "set_link").await;
    s.delete_link(team, home, "visitor")
        .await
        .expect("delete_link");
    grew(s, &mut last, "delete_link").await;
    let channel = Channel {
        team_internal_id: team,
        name: "ops".into(),
        kind: "telegram".into(),
        chat_id: "-100".into(),
        created_at: 0,
    };
    s.set_channel(&channel).await.expect("set_channel");
    grew(s, &mut last, "set_channel").await;
    s.delete_channel(team, "ops").await.expect("delete_channel");
    grew(s, &mut last, "delete_channel").await;
    s.set_role_credential(team, "r", "c", false)
        .await
        .expect("set_role_credential");
    grew(s, &mut last, "set_role_credential (remove)").await;
    s.delete_role(team, "r").await.expect("delete_role");
    grew(s, &mut last, "delete_role").await;
    s.delete_credential(team, "c")
        .await
        .expect("delete_credential");
    grew(s, &mut last, "delete_credential").await;
    s.delete_agent(team, "bot").await.expect("delete_agent");
    grew(s, &mut last, "delete_agent").await;
    s.remove_member(team, "p@example.com")
        .await
        .expect("remove_member");
    grew(s, &mut last, "remove_member").await;
}

/// Every proxy reloads its snapshot when the revision moves: audit rows and
/// approval traffic, which the snapshot does not hold, must not move it.
pub(crate) async fn audit_and_approvals_leave_the_revision_alone(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "a").await;
    let before = store.revision().await.expect("revision");
    store
        .append_audit(&[audit_row(team, "r1", AuditPhase::Start, "bot", "c")])
        .await
        .expect("append");
    let now = now_ms();
    store
        .create_approval(&approval(team, "t1", 1, now))
        .await
        .expect("create_approval");
    store
        .vote("t1", "o@example.com", true, "web", now, EVERYONE)
        .await
        .expect("vote");
    assert!(store.claim_approved("t1").await.expect("claim"));
    store
        .finish_approval("t1", ApprovalStatus::Forwarded, None, None, now)
        .await
        .expect("finish");
    assert_eq!(store.revision().await.expect("revision"), before);
}

pub(crate) async fn a_store_alone_leads_a_role_and_keeps_it(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    assert!(store.lead("telegram-poll").await.expect("lead"));
    assert!(store.lead("telegram-poll").await.expect("still leads"));
    assert!(store.lead("another-role").await.expect("another role"));
}

/// `changed` is a wake-up only: a backend may signal a write or stay silent
/// (SQLite polls), and the write is visible by reading either way.
pub(crate) async fn changed_is_a_wake_up_and_reads_see_the_change(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    add_credential(&*store, team, "slack").await;
    let waiting = Arc::clone(&store);
    let waiter = tokio::spawn(async move {
        tokio::time::timeout(std::time::Duration::from_millis(200), waiting.changed()).await
    });
    store
        .set_policy(team, "slack", &Policy::default())
        .await
        .expect("set policy");
    let _woken_or_not = waiter.await.expect("waiter");
    assert!(store.policy(team, "slack").await.expect("policy").is_some());
}

/// `close` lets go of a store nothing uses any more: calling it again is
/// harmless, and afterwards a read either still answers what was written
/// (a server's pool may stay) or fails as unavailable; it never answers
/// something else. What a closed SQLite file holds is checked beside the
/// file (tap-store `sqlite::in_use` tests, tap-cli `tests/backup.rs`).
pub(crate) async fn close_lets_go_and_never_answers_wrongly_after(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    store.set_meta("kept", b"written").await.expect("set");
    store.close().await;
    store.close().await;
    match store.meta("kept").await {
        Ok(v) => assert_eq!(v.as_deref(), Some(&b"written"[..])),
        Err(e) => assert!(
            matches!(e, tap_core::store::StoreError::Unavailable(_)),
            "{e}"
        ),
    }
}
