//! Teams, memberships (with the last-owner rule), links and channels.

use std::sync::Arc;

use tap_core::model::{Channel, Link, Member, MemberRole};
use tap_core::policy::ApprovalMode;
use tap_core::store::{ResealedValue, Store, TeamKeyChange};

use super::{add_credential, assert_conflict, migrated_with_team, new_team};

pub(crate) async fn teams_are_created_found_and_listed(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    assert!(store.teams().await.expect("teams").is_empty());
    let a = store
        .create_team("alpha", ApprovalMode::Autonomous, "dek-a", b"wrapped-a")
        .await
        .expect("create");
    let b = store
        .create_team("beta", ApprovalMode::Gated, "dek-b", b"wrapped-b")
        .await
        .expect("create");
    assert_eq!(a.slug, "alpha");
    assert_eq!(a.default_approval_mode, ApprovalMode::Autonomous);
    assert_eq!(
        (a.dek_id.as_str(), &a.wrapped_dek[..]),
        ("dek-a", &b"wrapped-a"[..])
    );
    assert_ne!(a.internal_id, b.internal_id);
    assert_eq!(store.team("alpha").await.expect("team"), Some(a.clone()));
    assert_eq!(store.team("beta").await.expect("team"), Some(b.clone()));
    assert_eq!(store.team("gamma").await.expect("team"), None);
    assert_eq!(store.teams().await.expect("teams"), vec![a, b]);
}

pub(crate) async fn a_team_slug_is_unique(store: Arc<dyn Store>) {
    migrated_with_team(&*store, "alpha").await;
    assert_conflict(
        store
            .create_team("alpha", ApprovalMode::Gated, "dek-2", b"w")
            .await,
    );
    assert_eq!(store.teams().await.expect("teams").len(), 1);
}

pub(crate) async fn set_team_mode_changes_the_default(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    new_team(&*store, "beta").await;
    store
        .set_team_mode(team, ApprovalMode::Autonomous)
        .await
        .expect("set mode");
    let mode = |slug: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .team(slug)
                .await
                .expect("team")
                .expect("exists")
                .default_approval_mode
        }
    };
    assert_eq!(mode("alpha").await, ApprovalMode::Autonomous);
    assert_eq!(
        mode("beta").await,
        ApprovalMode::Gated,
        "other teams keep theirs"
    );
    store
        .set_team_mode(team, ApprovalMode::Gated)
        .await
        .expect("set mode");
    assert_eq!(mode("alpha").await, ApprovalMode::Gated);
}

fn summary(members: &[Member]) -> Vec<(String, MemberRole, Vec<String>)> {
    members
        .iter()
        .map(|m| (m.email.clone(), m.role, m.credentials.clone()))
        .collect()
}

pub(crate) async fn memberships_hold_roles_and_approver_credentials(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other_team = new_team(&*store, "beta").await;
    add_credential(&*store, team, "c1").await;
    add_credential(&*store, team, "c2").await;
    let zed = store
        .create_account("zed@example.com", "h")
        .await
        .expect("account");
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    store
        .set_membership(team, zed, MemberRole::Owner)
        .await
        .expect("membership");
    store
        .set_membership(team, amy, MemberRole::Viewer)
        .await
        .expect("membership");
    // Setting it again changes the role of the existing membership.
    store
        .set_membership(team, amy, MemberRole::Approver)
        .await
        .expect("membership");
    assert!(
        store
            .set_member_credentials(team, "amy@example.com", &["c2".into(), "c1".into()])
            .await
            .expect("assign")
    );
    let members = store.members(team).await.expect("members");
    assert_eq!(
        summary(&members),
        vec![
            (
                "amy@example.com".into(),
                MemberRole::Approver,
                vec!["c1".into(), "c2".into()]
            ),
            ("zed@example.com".into(), MemberRole::Owner, vec![]),
        ],
        "ordered by e-mail, credentials sorted"
    );
    assert_eq!(members[0].account_id, amy);
    // The assignment is replaced, not merged.
    assert!(
        store
            .set_member_credentials(team, "amy@example.com", &["c2".into()])
            .await
            .expect("assign")
    );
    assert_eq!(
        store.members(team).await.expect("members")[0].credentials,
        vec!["c2".to_owned()]
    );
    assert!(
        !store
            .set_member_credentials(team, "nobody@example.com", &["c1".into()])
            .await
            .expect("assign"),
        "not a member"
    );
    assert!(store.members(other_team).await.expect("members").is_empty());
}

pub(crate) async fn the_last_owner_can_be_neither_demoted_nor_removed(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let first = store
        .create_account("first@example.com", "h")
        .await
        .expect("account");
    let second = store
        .create_account("second@example.com", "h")
        .await
        .expect("account");
    store
        .set_membership(team, first, MemberRole::Owner)
        .await
        .expect("membership");
    store
        .set_membership(team, second, MemberRole::Admin)
        .await
        .expect("membership");
    assert_conflict(
        store
            .set_member_role(team, "first@example.com", MemberRole::Admin)
            .await,
    );
    assert_conflict(store.remove_member(team, "first@example.com").await);
    let roles = |members: Vec<Member>| {
        summary(&members)
            .into_iter()
            .map(|(e, r, _)| (e, r))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        roles(store.members(team).await.expect("members")),
        vec![
            ("first@example.com".into(), MemberRole::Owner),
            ("second@example.com".into(), MemberRole::Admin),
        ],
        "a refused change leaves the members as they were"
    );
    // With a second owner, the first may step down and then leave.
    assert!(
        store
            .set_member_role(team, "second@example.com", MemberRole::Owner)
            .await
            .expect("promote")
    );
    assert!(
        store
            .set_member_role(team, "first@example.com", MemberRole::Viewer)
            .await
            .expect("demote")
    );
    assert!(
        store
            .remove_member(team, "first@example.com")
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_member(team, "first@example.com")
            .await
            .expect("remove again")
    );
    assert!(
        !store
            .set_member_role(team, "nobody@example.com", MemberRole::Viewer)
            .await
            .expect("set role of a non-member")
    );
    assert_eq!(
        roles(store.members(team).await.expect("members")),
        vec![("second@example.com".into(), MemberRole::Owner)]
    );
    assert_conflict(store.remove_member(team, "second@example.com").await);
}

pub(crate) async fn links_are_set_replaced_listed_and_deleted(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let home = new_team(&*store, "home").await;
    let link = Link {
        team_internal_id: team,
        home_team_internal_id: home,
        home_team: "home".into(),
        agent_id: "visitor".into(),
        role: Some("reader".into()),
        created_at: 0,
    };
    store.set_link(&link).await.expect("set");
    let listed = store.links(team).await.expect("links");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].home_team_internal_id,
            listed[0].home_team.as_str(),
            listed[0].agent_id.as_str(),
            listed[0].role.as_deref()
        ),
        (home, "home", "visitor", Some("reader"))
    );
    // Setting it again replaces the role; there is still one link.
    store
        .set_link(&Link {
            role: None,
            ..link.clone()
        })
        .await
        .expect("replace");
    let listed = store.links(team).await.expect("links");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].role, None);
    assert!(
        store.links(home).await.expect("links").is_empty(),
        "links belong to the linking team"
    );
    assert!(
        store
            .delete_link(team, home, "visitor")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_link(team, home, "visitor")
            .await
            .expect("delete again")
    );
    assert!(store.links(team).await.expect("links").is_empty());
}

pub(crate) async fn channels_are_set_replaced_listed_and_deleted(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    let ops = Channel {
        team_internal_id: team,
        name: "ops".into(),
        kind: "telegram".into(),
        chat_id: "-100".into(),
        created_at: 0,
    };
    store.set_channel(&ops).await.expect("set");
    store
        .set_channel(&Channel {
            name: "alerts".into(),
            ..ops.clone()
        })
        .await
        .expect("set");
    store
        .set_channel(&Channel {
            chat_id: "-200".into(),
            ..ops.clone()
        })
        .await
        .expect("replace");
    let listed: Vec<(String, String, String)> = store
        .channels(team)
        .await
        .expect("channels")
        .into_iter()
        .map(|c| (c.name, c.kind, c.chat_id))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("alerts".into(), "telegram".into(), "-100".into()),
            ("ops".into(), "telegram".into(), "-200".into()),
        ]
    );
    assert!(store.channels(other).await.expect("channels").is_empty());
    assert!(store.delete_channel(team, "ops").await.expect("delete"));
    assert!(
        !store
            .delete_channel(team, "ops")
            .await
            .expect("delete again")
    );
    assert_eq!(store.channels(team).await.expect("channels").len(), 1);
}

pub(crate) async fn rewrap_keys_replaces_every_wrapped_dek_and_meta_at_once(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let a = store
        .create_team("alpha", ApprovalMode::Gated, "dek-a", b"old-a")
        .await
        .expect("create");
    let b = store
        .create_team("beta", ApprovalMode::Gated, "dek-b", b"old-b")
        .await
        .expect("create");
    store
        .set_meta("kek_check", b"old-check")
        .await
        .expect("meta");
    let before = store.revision().await.expect("revision");
    store
        .rewrap_keys(
            &[
                rewrap(a.internal_id, "dek-a", b"new-a"),
                rewrap(b.internal_id, "dek-b", b"new-b"),
            ],
            &[("kek_check".into(), b"new-check".to_vec())],
        )
        .await
        .expect("rewrap");
    let teams = store.teams().await.expect("teams");
    assert_eq!(teams[0].wrapped_dek, b"new-a");
    assert_eq!(teams[1].wrapped_dek, b"new-b");
    assert_eq!(teams[0].dek_id, "dek-a", "the DEK itself is unchanged");
    assert_eq!(
        store.meta("kek_check").await.expect("meta").as_deref(),
        Some(&b"new-check"[..])
    );
    assert!(store.revision().await.expect("revision") > before);

    // A stale DEK id, or a team left out, changes nothing at all.
    assert_conflict(
        store
            .rewrap_keys(
                &[
                    rewrap(a.internal_id, "dek-a", b"x"),
                    rewrap(b.internal_id, "dek-stale", b"y"),
                ],
                &[("kek_check".into(), b"bad".to_vec())],
            )
            .await,
    );
    assert_conflict(
        store
            .rewrap_keys(
                &[rewrap(a.internal_id, "dek-a", b"x")],
                &[("kek_check".into(), b"bad".to_vec())],
            )
            .await,
    );
    let teams = store.teams().await.expect("teams");
    assert_eq!(teams[0].wrapped_dek, b"new-a");
    assert_eq!(
        store.meta("kek_check").await.expect("meta").as_deref(),
        Some(&b"new-check"[..])
    );
}

/// A re-wrap of `team`'s DEK `dek_id`, the DEK itself kept.
fn rewrap(team: i64, dek_id: &str, wrapped: &[u8]) -> TeamKeyChange {
    TeamKeyChange {
        team_internal_id: team,
        dek_id: dek_id.into(),
        new_dek_id: dek_id.into(),
        wrapped_dek: wrapped.to_vec(),
        values: Vec::new(),
    }
}

pub(crate) async fn rewrap_keys_with_a_new_dek_reseals_every_value_or_nothing(
    store: Arc<dyn Store>,
) {
    store.migrate().await.expect("migrate");
    let a = store
        .create_team("alpha", ApprovalMode::Gated, "dek-a", b"old-a")
        .await
        .expect("create");
    add_credential(&*store, a.internal_id, "c1").await;
    add_credential(&*store, a.internal_id, "c2").await;
    let mut unset = super::credential(a.internal_id, "unset");
    unset.sealed_value = None;
    store.upsert_credential(&unset).await.expect("upsert");
    for (name, v) in [("c1", b"v1"), ("c2", b"v2")] {
        assert!(
            store
                .set_credential_value(a.internal_id, name, v, false)
                .await
                .expect("set")
        );
    }
    let stamped = store
        .credential(a.internal_id, "c1")
        .await
        .expect("read")
        .expect("exists")
        .updated_at;
    let change = |values: Vec<ResealedValue>| TeamKeyChange {
        team_internal_id: a.internal_id,
        dek_id: "dek-a".into(),
        new_dek_id: "dek-a2".into(),
        wrapped_dek: b"new-a".to_vec(),
        values,
    };
    let resealed = |name: &str, old: &[u8], new: &[u8]| ResealedValue {
        credential: name.into(),
        sealed: old.to_vec(),
        resealed: new.to_vec(),
    };
    // A value missing from the list, or one changed since it was read,
    // changes nothing at all.
    assert_conflict(
        store
            .rewrap_keys(&[change(vec![resealed("c1", b"v1", b"n1")])], &[])
            .await,
    );
    assert_conflict(
        store
            .rewrap_keys(
                &[change(vec![
                    resealed("c1", b"v1", b"n1"),
                    resealed("c2", b"stale", b"n2"),
                ])],
                &[],
            )
            .await,
    );
    let c1 = store
        .credential(a.internal_id, "c1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(c1.sealed_value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(store.teams().await.expect("teams")[0].dek_id, "dek-a");

    store
        .rewrap_keys(
            &[change(vec![
                resealed("c1", b"v1", b"n1"),
                resealed("c2", b"v2", b"n2"),
            ])],
            &[("kek_check".into(), b"new-check".to_vec())],
        )
        .await
        .expect("rewrap with a new DEK");
    let team = &store.teams().await.expect("teams")[0];
    assert_eq!(
        (team.dek_id.as_str(), &team.wrapped_dek[..]),
        ("dek-a2", &b"new-a"[..])
    );
    let c1 = store
        .credential(a.internal_id, "c1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(c1.sealed_value.as_deref(), Some(&b"n1"[..]));
    assert_eq!(
        c1.updated_at, stamped,
        "a re-sealed value keeps its updated_at"
    );
    let unset = store
        .credential(a.internal_id, "unset")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(unset.sealed_value, None);
}
