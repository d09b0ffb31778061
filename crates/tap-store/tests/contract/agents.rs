//! Agents, their roles and direct credentials, and whole-agent updates.

use std::sync::Arc;

use tap_core::model::{Agent, Role};
use tap_core::store::{AgentUpdate, NewAgent, Store};

use super::{
    add_credential, assert_conflict, assert_not_found, migrated_with_team, new_agent, new_team,
};

async fn add_role(store: &dyn Store, team: i64, name: &str) {
    store
        .create_role(&Role {
            team_internal_id: team,
            name: name.to_owned(),
            description: String::new(),
            credentials: Vec::new(),
            rate_limit_per_hour: None,
        })
        .await
        .expect("create role");
}

/// A team with roles `r1`, `r2`, credentials `c1`, `c2` and agent `bot`
/// holding `r1` and `c1`, limited to 5 an hour.
async fn team_with_bot(store: &dyn Store) -> (i64, Agent) {
    let team = migrated_with_team(store, "alpha").await;
    for r in ["r1", "r2"] {
        add_role(store, team, r).await;
    }
    for c in ["c1", "c2"] {
        add_credential(store, team, c).await;
    }
    let bot = store
        .create_agent(&NewAgent {
            roles: vec!["r1".into()],
            credentials: vec!["c1".into()],
            rate_limit_per_hour: Some(5),
            ..new_agent(team, "bot")
        })
        .await
        .expect("create agent");
    (team, bot)
}

async fn get(store: &dyn Store, team: i64, id: &str) -> Agent {
    store.agent(team, id).await.expect("agent").expect("exists")
}

pub(crate) async fn agents_are_created_with_roles_and_credentials(store: Arc<dyn Store>) {
    let (team, bot) = team_with_bot(&*store).await;
    assert_eq!(
        (
            bot.team_internal_id,
            bot.team.as_str(),
            bot.id.as_str(),
            bot.description.as_str(),
            bot.enabled,
            bot.key_hash.as_str(),
        ),
        (
            team,
            "alpha",
            "bot",
            "agent bot",
            true,
            format!("key-hash-{team}-bot").as_str()
        )
    );
    assert_eq!(bot.roles, vec!["r1".to_owned()]);
    assert_eq!(bot.credentials, vec!["c1".to_owned()]);
    assert_eq!(bot.rate_limit_per_hour, Some(5));
    assert_eq!(get(&*store, team, "bot").await, bot);
    let ann = store
        .create_agent(&new_agent(team, "ann"))
        .await
        .expect("create");
    assert_eq!(
        store.agents(team).await.expect("agents"),
        vec![ann, bot],
        "ordered by id"
    );
    assert!(store.agent(team, "nobody").await.expect("agent").is_none());
    let elsewhere = new_team(&*store, "beta").await;
    assert!(
        store
            .agent(elsewhere, "bot")
            .await
            .expect("agent")
            .is_none()
    );
    assert!(store.agents(elsewhere).await.expect("agents").is_empty());
    assert_conflict(
        store
            .create_agent(&NewAgent {
                key_hash: "another-hash".into(),
                ..new_agent(team, "bot")
            })
            .await,
    );
}

pub(crate) async fn an_agent_with_an_unknown_role_is_not_created(store: Arc<dyn Store>) {
    let (team, _) = team_with_bot(&*store).await;
    let before = store.revision().await.expect("revision");
    assert_not_found(
        store
            .create_agent(&NewAgent {
                roles: vec!["r1".into(), "nope".into()],
                ..new_agent(team, "ghost")
            })
            .await,
        "role nope",
    );
    assert!(store.agent(team, "ghost").await.expect("agent").is_none());
    assert_eq!(store.revision().await.expect("revision"), before);
}

pub(crate) async fn agents_are_enabled_rekeyed_and_deleted(store: Arc<dyn Store>) {
    let (team, _) = team_with_bot(&*store).await;
    assert!(
        store
            .set_agent_enabled(team, "bot", false)
            .await
            .expect("disable")
    );
    assert!(!get(&*store, team, "bot").await.enabled);
    assert!(
        store
            .set_agent_enabled(team, "bot", true)
            .await
            .expect("enable")
    );
    assert!(get(&*store, team, "bot").await.enabled);
    assert!(
        !store
            .set_agent_enabled(team, "nobody", false)
            .await
            .expect("disable")
    );
    assert!(
        store
            .set_agent_key(team, "bot", "rotated-hash")
            .await
            .expect("rekey")
    );
    assert_eq!(get(&*store, team, "bot").await.key_hash, "rotated-hash");
    assert!(
        !store
            .set_agent_key(team, "nobody", "x")
            .await
            .expect("rekey")
    );
    assert!(store.delete_agent(team, "bot").await.expect("delete"));
    assert!(store.agent(team, "bot").await.expect("agent").is_none());
    assert!(!store.delete_agent(team, "bot").await.expect("delete again"));
    // Its roles and credentials went with it: a new agent of that id starts empty.
    let again = store
        .create_agent(&new_agent(team, "bot"))
        .await
        .expect("recreate");
    assert!(again.roles.is_empty() && again.credentials.is_empty());
}

pub(crate) async fn credentials_and_roles_are_granted_and_removed_one_at_a_time(
    store: Arc<dyn Store>,
) {
    let (team, _) = team_with_bot(&*store).await;
    assert!(
        store
            .set_agent_credential(team, "bot", "c2", true)
            .await
            .expect("grant")
    );
    assert!(
        store
            .set_agent_credential(team, "bot", "c2", true)
            .await
            .expect("grant twice")
    );
    assert!(
        store
            .set_agent_credential(team, "bot", "c1", false)
            .await
            .expect("ungrant")
    );
    assert!(
        !store
            .set_agent_credential(team, "nobody", "c1", true)
            .await
            .expect("grant")
    );
    assert!(
        store
            .set_agent_role(team, "bot", "r2", true)
            .await
            .expect("add role")
    );
    assert!(
        store
            .set_agent_role(team, "bot", "r1", false)
            .await
            .expect("remove role")
    );
    assert!(
        !store
            .set_agent_role(team, "nobody", "r1", true)
            .await
            .expect("add role")
    );
    assert_not_found(
        store.set_agent_role(team, "bot", "nope", true).await,
        "role nope",
    );
    let bot = get(&*store, team, "bot").await;
    assert_eq!(bot.credentials, vec!["c2".to_owned()]);
    assert_eq!(bot.roles, vec!["r2".to_owned()]);
}

pub(crate) async fn update_agent_applies_every_field_in_one_revision(store: Arc<dyn Store>) {
    let (team, _) = team_with_bot(&*store).await;
    let before = store.revision().await.expect("revision");
    let updated = store
        .update_agent(
            team,
            "bot",
            &AgentUpdate {
                description: Some("renamed".into()),
                enabled: Some(false),
                roles: Some(vec!["r2".into(), "r1".into()]),
                credentials: Some(vec!["c2".into()]),
                rate_limit_per_hour: Some(Some(60)),
            },
        )
        .await
        .expect("update")
        .expect("the agent exists");
    assert_eq!(updated.description, "renamed");
    assert!(!updated.enabled);
    assert_eq!(updated.roles, vec!["r1".to_owned(), "r2".to_owned()]);
    assert_eq!(updated.credentials, vec!["c2".to_owned()]);
    assert_eq!(updated.rate_limit_per_hour, Some(60));
    assert_eq!(
        get(&*store, team, "bot").await,
        updated,
        "returned as stored"
    );
    assert_eq!(store.revision().await.expect("revision"), before + 1);
}

pub(crate) async fn update_agent_leaves_unset_fields_unchanged(store: Arc<dyn Store>) {
    let (team, bot) = team_with_bot(&*store).await;
    let updated = store
        .update_agent(
            team,
            "bot",
            &AgentUpdate {
                description: Some("only this".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(
        updated,
        Agent {
            description: "only this".into(),
            ..bot.clone()
        }
    );
    // Empty sets clear; `Some(None)` removes the limit.
    let cleared = store
        .update_agent(
            team,
            "bot",
            &AgentUpdate {
                roles: Some(Vec::new()),
                credentials: Some(Vec::new()),
                rate_limit_per_hour: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(
        cleared,
        Agent {
            description: "only this".into(),
            roles: Vec::new(),
            credentials: Vec::new(),
            rate_limit_per_hour: None,
            ..bot
        }
    );
}

pub(crate) async fn update_agent_with_an_unknown_name_writes_nothing(store: Arc<dyn Store>) {
    let (team, bot) = team_with_bot(&*store).await;
    let before = store.revision().await.expect("revision");
    let change = AgentUpdate {
        description: Some("changed".into()),
        enabled: Some(false),
        roles: Some(vec!["r2".into()]),
        credentials: Some(vec!["c2".into(), "nope".into()]),
        rate_limit_per_hour: Some(None),
    };
    assert_not_found(
        store.update_agent(team, "bot", &change).await,
        "credential nope",
    );
    let change = AgentUpdate {
        roles: Some(vec!["r2".into(), "nope".into()]),
        credentials: Some(vec!["c2".into()]),
        ..change
    };
    assert_not_found(store.update_agent(team, "bot", &change).await, "role nope");
    assert_eq!(get(&*store, team, "bot").await, bot, "nothing was written");
    assert_eq!(store.revision().await.expect("revision"), before);
    // A credential of another team does not count.
    let other = new_team(&*store, "beta").await;
    add_credential(&*store, other, "theirs").await;
    let before_other = store.revision().await.expect("revision");
    let change = AgentUpdate {
        credentials: Some(vec!["theirs".into()]),
        ..Default::default()
    };
    assert_not_found(
        store.update_agent(team, "bot", &change).await,
        "credential theirs",
    );
    assert_eq!(get(&*store, team, "bot").await, bot);
    assert_eq!(store.revision().await.expect("revision"), before_other);
}

pub(crate) async fn update_agent_of_a_missing_agent_is_none(store: Arc<dyn Store>) {
    let (team, _) = team_with_bot(&*store).await;
    let before = store.revision().await.expect("revision");
    let change = AgentUpdate {
        description: Some("x".into()),
        roles: Some(vec!["r1".into()]),
        ..Default::default()
    };
    assert_eq!(
        store
            .update_agent(team, "nobody", &change)
            .await
            .expect("update"),
        None
    );
    assert!(store.agent(team, "nobody").await.expect("agent").is_none());
    assert_eq!(store.revision().await.expect("revision"), before);
}
