//! Credentials (values stay sealed), their policies, and roles.

use std::sync::Arc;

use tap_core::model::{Credential, MemberRole, Role};
use tap_core::policy::Policy;
use tap_core::store::Store;

use super::{
    add_credential, assert_conflict, assert_not_found, credential, migrated_with_team, new_agent,
    new_team,
};

/// What a caller sets on a credential (the store keeps the times).
fn settable(c: &Credential) -> Credential {
    Credential {
        created_at: 0,
        updated_at: 0,
        ..c.clone()
    }
}

pub(crate) async fn credentials_are_upserted_keeping_the_value_when_none_is_given(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    let mut github = credential(team, "github");
    github.auth_bindings = vec![tap_core::inject::AuthBinding {
        header: Some("X-Api-Key".into()),
        query: None,
        format: "{value}".into(),
    }];
    github.value_is_json = true;
    assert!(
        store.upsert_credential(&github).await.expect("create"),
        "created"
    );
    let stored = store
        .credential(team, "github")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(settable(&stored), github);
    assert!(stored.created_at > 0 && stored.updated_at >= stored.created_at);
    // Replacing metadata without a value keeps the sealed value and its kind.
    let changed = Credential {
        description: "changed".into(),
        allowed_hosts: vec!["api.github.com".into(), "uploads.github.com".into()],
        allow_any_host: true,
        sealed_value: None,
        value_is_json: false,
        ..github.clone()
    };
    assert!(
        !store.upsert_credential(&changed).await.expect("replace"),
        "replaced"
    );
    let stored = store
        .credential(team, "github")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        settable(&stored),
        Credential {
            sealed_value: github.sealed_value.clone(),
            value_is_json: true,
            ..changed
        }
    );
    add_credential(&*store, team, "aws").await;
    let names: Vec<String> = store
        .credentials(team)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["aws", "github"], "ordered by name");
    assert!(
        store
            .credential(other, "github")
            .await
            .expect("read")
            .is_none()
    );
    assert!(store.credentials(other).await.expect("list").is_empty());
}

pub(crate) async fn set_credential_value_replaces_the_sealed_value(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    add_credential(&*store, team, "c").await;
    assert!(
        store
            .set_credential_value(team, "c", b"{\"sealed\":2}", true)
            .await
            .expect("set")
    );
    let c = store
        .credential(team, "c")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(c.sealed_value.as_deref(), Some(&b"{\"sealed\":2}"[..]));
    assert!(c.value_is_json);
    assert!(
        !store
            .set_credential_value(team, "nope", b"x", false)
            .await
            .expect("set")
    );
    assert!(
        store
            .credential(team, "nope")
            .await
            .expect("read")
            .is_none()
    );
}

pub(crate) async fn deleting_a_credential_removes_its_grants_and_policy_unless_a_role_names_it(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    add_credential(&*store, team, "c").await;
    add_credential(&*store, team, "keep").await;
    store
        .create_role(&Role {
            team_internal_id: team,
            name: "ops".into(),
            description: String::new(),
            credentials: vec!["c".into()],
            rate_limit_per_hour: None,
        })
        .await
        .expect("role");
    store
        .create_agent(&tap_core::store::NewAgent {
            credentials: vec!["c".into(), "keep".into()],
            ..new_agent(team, "bot")
        })
        .await
        .expect("agent");
    store
        .set_policy(team, "c", &Policy::default())
        .await
        .expect("policy");
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    store
        .set_membership(team, amy, MemberRole::Approver)
        .await
        .expect("membership");
    store
        .set_member_credentials(team, "amy@example.com", &["c".into(), "keep".into()])
        .await
        .expect("assign");
    assert_conflict(store.delete_credential(team, "c").await);
    assert!(
        store.credential(team, "c").await.expect("read").is_some(),
        "refused whole"
    );
    assert!(
        store
            .set_role_credential(team, "ops", "c", false)
            .await
            .expect("unlink")
    );
    assert!(store.delete_credential(team, "c").await.expect("delete"));
    assert!(store.credential(team, "c").await.expect("read").is_none());
    assert_eq!(store.policy(team, "c").await.expect("policy"), None);
    let bot = store
        .agent(team, "bot")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        bot.credentials,
        vec!["keep".to_owned()],
        "direct grants of it are gone"
    );
    let members = store.members(team).await.expect("members");
    assert_eq!(
        members[0].credentials,
        vec!["keep".to_owned()],
        "so are approver assignments"
    );
    assert!(
        !store
            .delete_credential(team, "c")
            .await
            .expect("delete again")
    );
}

pub(crate) async fn policies_are_set_read_and_cleared(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    add_credential(&*store, team, "c").await;
    add_credential(&*store, team, "d").await;
    assert_eq!(store.policy(team, "c").await.expect("policy"), None);
    let strict = Policy {
        require_approval_methods: vec!["POST".into(), "DELETE".into()],
        auto_approve_urls: vec!["https://c.example/v1/read/*".into()],
        allowed_approvers: Some(vec!["amy@example.com".into()]),
        min_approvals: 2,
        ..Policy::default()
    };
    store.set_policy(team, "c", &strict).await.expect("set");
    assert_eq!(
        store.policy(team, "c").await.expect("policy"),
        Some(strict.clone())
    );
    assert_eq!(store.policy(team, "d").await.expect("policy"), None);
    let loose = Policy {
        auto_approve_methods: vec!["GET".into()],
        ..Policy::default()
    };
    store.set_policy(team, "c", &loose).await.expect("replace");
    assert_eq!(store.policy(team, "c").await.expect("policy"), Some(loose));
    assert!(store.clear_policy(team, "c").await.expect("clear"));
    assert_eq!(store.policy(team, "c").await.expect("policy"), None);
    assert!(!store.clear_policy(team, "c").await.expect("clear again"));
}

fn role(team: i64, name: &str, credentials: &[&str], limit: Option<u32>) -> Role {
    Role {
        team_internal_id: team,
        name: name.to_owned(),
        description: format!("{name} role"),
        credentials: credentials.iter().map(|c| (*c).to_owned()).collect(),
        rate_limit_per_hour: limit,
    }
}

pub(crate) async fn roles_are_created_read_changed_and_deleted(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    for c in ["c1", "c2"] {
        add_credential(&*store, team, c).await;
    }
    let ops = role(team, "ops", &["c2", "c1"], Some(10));
    store.create_role(&ops).await.expect("create");
    assert_conflict(store.create_role(&ops).await);
    let stored = store
        .role(team, "ops")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        stored,
        role(team, "ops", &["c1", "c2"], Some(10)),
        "credentials sorted"
    );
    let audit = role(team, "audit", &[], None);
    store.create_role(&audit).await.expect("create");
    assert_eq!(
        store.roles(team).await.expect("roles"),
        vec![audit, stored],
        "ordered by name"
    );
    assert!(
        store
            .set_role_credential(team, "ops", "c1", false)
            .await
            .expect("remove")
    );
    assert!(
        store
            .set_role_credential(team, "ops", "c1", true)
            .await
            .expect("add")
    );
    assert!(
        store
            .set_role_credential(team, "ops", "c2", false)
            .await
            .expect("remove")
    );
    assert!(
        !store
            .set_role_credential(team, "nope", "c1", true)
            .await
            .expect("no role")
    );
    assert_eq!(
        store
            .role(team, "ops")
            .await
            .expect("read")
            .expect("exists")
            .credentials,
        vec!["c1".to_owned()]
    );
    store
        .create_agent(&tap_core::store::NewAgent {
            roles: vec!["ops".into(), "audit".into()],
            ..new_agent(team, "bot")
        })
        .await
        .expect("agent");
    assert!(store.delete_role(team, "ops").await.expect("delete"));
    assert!(store.role(team, "ops").await.expect("read").is_none());
    assert!(!store.delete_role(team, "ops").await.expect("delete again"));
    let bot = store
        .agent(team, "bot")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        bot.roles,
        vec!["audit".to_owned()],
        "agents lose a deleted role"
    );
    assert!(
        store
            .role(new_team(&*store, "beta").await, "audit")
            .await
            .expect("read")
            .is_none()
    );
}

pub(crate) async fn put_role_creates_then_replaces_in_one_revision_each(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    for c in ["c1", "c2", "c3"] {
        add_credential(&*store, team, c).await;
    }
    let before = store.revision().await.expect("revision");
    assert!(
        store
            .put_role(&role(team, "ops", &["c2", "c1"], Some(10)))
            .await
            .expect("create"),
        "created"
    );
    assert_eq!(store.revision().await.expect("revision"), before + 1);
    assert_eq!(
        store.role(team, "ops").await.expect("read"),
        Some(role(team, "ops", &["c1", "c2"], Some(10)))
    );
    store
        .create_agent(&tap_core::store::NewAgent {
            roles: vec!["ops".into()],
            ..new_agent(team, "bot")
        })
        .await
        .expect("agent");
    let before = store.revision().await.expect("revision");
    let replacement = Role {
        description: "replaced".into(),
        ..role(team, "ops", &["c3"], None)
    };
    assert!(
        !store.put_role(&replacement).await.expect("replace"),
        "replaced"
    );
    assert_eq!(store.revision().await.expect("revision"), before + 1);
    assert_eq!(
        store.role(team, "ops").await.expect("read"),
        Some(replacement)
    );
    let bot = store
        .agent(team, "bot")
        .await
        .expect("agent")
        .expect("exists");
    assert_eq!(
        bot.roles,
        vec!["ops".to_owned()],
        "holders keep a replaced role"
    );
}

pub(crate) async fn put_role_with_an_unknown_credential_writes_nothing(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    for c in ["c1", "c2"] {
        add_credential(&*store, team, c).await;
    }
    let ops = role(team, "ops", &["c1"], Some(10));
    store.put_role(&ops).await.expect("create");
    let before = store.revision().await.expect("revision");
    assert_not_found(
        store
            .put_role(&role(team, "ops", &["c2", "nope"], None))
            .await,
        "credential nope",
    );
    assert_not_found(
        store.put_role(&role(team, "fresh", &["nope"], None)).await,
        "credential nope",
    );
    assert_eq!(store.role(team, "ops").await.expect("read"), Some(ops));
    assert_eq!(store.role(team, "fresh").await.expect("read"), None);
    assert_eq!(store.revision().await.expect("revision"), before);
}
