//! The snapshot: the whole configuration the hot path needs, in one read.

use std::sync::Arc;

use tap_core::model::{Link, MemberRole, Role};
use tap_core::policy::Policy;
use tap_core::store::{NewAgent, Store};

use super::{add_credential, grant, migrated_with_team, new_agent, new_team, now_ms};

pub(crate) async fn the_snapshot_holds_the_whole_configuration(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let home = new_team(&*store, "home").await;
    add_credential(&*store, team, "c").await;
    add_credential(&*store, team, "d").await;
    let ops = Role {
        team_internal_id: team,
        name: "ops".into(),
        description: "ops role".into(),
        credentials: vec!["c".into(), "d".into()],
        rate_limit_per_hour: Some(7),
    };
    store.put_role(&ops).await.expect("role");
    let bot = store
        .create_agent(&NewAgent {
            roles: vec!["ops".into()],
            credentials: vec!["d".into()],
            ..new_agent(team, "bot")
        })
        .await
        .expect("agent");
    let visitor = store
        .create_agent(&new_agent(home, "visitor"))
        .await
        .expect("agent");
    let policy = Policy {
        min_approvals: 2,
        ..Policy::default()
    };
    store.set_policy(team, "c", &policy).await.expect("policy");
    let now = now_ms() / 1000;
    store
        .create_grant(&grant(team, "live", Some(2), now + 3600))
        .await
        .expect("grant");
    store
        .create_grant(&grant(team, "expired", None, now - 1))
        .await
        .expect("grant");
    store
        .create_grant(&grant(team, "revoked", None, now + 3600))
        .await
        .expect("grant");
    store.revoke_grant(team, "revoked").await.expect("revoke");
    let amy = store
        .create_account("amy@example.com", "h")
        .await
        .expect("account");
    store
        .set_membership(team, amy, MemberRole::Approver)
        .await
        .expect("membership");
    store
        .set_member_credentials(team, "amy@example.com", &["c".into()])
        .await
        .expect("assign");
    store
        .set_link(&Link {
            team_internal_id: team,
            home_team_internal_id: home,
            home_team: "home".into(),
            agent_id: "visitor".into(),
            role: Some("ops".into()),
            created_at: 0,
        })
        .await
        .expect("link");

    let snap = store.snapshot().await.expect("snapshot");
    assert_eq!(snap.revision, store.revision().await.expect("revision"));
    assert_eq!(snap.teams, store.teams().await.expect("teams"));
    let mut agents = snap.agents.clone();
    agents.sort_by(|x, y| (x.team_internal_id, &x.id).cmp(&(y.team_internal_id, &y.id)));
    assert_eq!(agents, vec![bot, visitor]);
    let mut credentials = snap.credentials.clone();
    credentials.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(
        credentials,
        store.credentials(team).await.expect("credentials")
    );
    assert_eq!(snap.roles, vec![ops]);
    assert_eq!(snap.policies, vec![(team, "c".to_owned(), policy)]);
    let grants: Vec<&str> = snap.grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(grants, ["live"], "only unrevoked, unexpired grants");
    let members: Vec<(i64, &str, MemberRole, &[String])> = snap
        .members
        .iter()
        .map(|(t, m)| (*t, m.email.as_str(), m.role, &m.credentials[..]))
        .collect();
    assert_eq!(
        members,
        [(
            team,
            "amy@example.com",
            MemberRole::Approver,
            &["c".to_owned()][..]
        )]
    );
    assert_eq!(snap.links, store.links(team).await.expect("links"));
    assert_eq!(snap.links.len(), 1);
}
