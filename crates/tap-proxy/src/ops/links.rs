//! Links (SPEC §3.6): another team's agent used in this team with a role.

use serde::{Deserialize, Serialize};
use tap_core::model::Link;
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// A link to create or replace (`POST /team/links`, `tap link add`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateLink {
    /// Agent id in its home team.
    pub agent_id: String,
    /// The agent's home team slug.
    pub home_team: String,
    /// Role of this team the agent gets; without one the link grants nothing.
    #[serde(default)]
    pub role: Option<String>,
}

/// A link made by a team.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The linking team (whose credentials the agent uses).
    pub team: String,
    /// Agent id.
    pub agent_id: String,
    /// The agent's home team.
    pub home_team: String,
    /// The role granted; `null` grants nothing.
    pub role: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl LinkView {
    fn new(team: &str, l: &Link) -> Self {
        Self {
            team: team.to_owned(),
            agent_id: l.agent_id.clone(),
            home_team: l.home_team.clone(),
            role: l.role.clone(),
            created_at: rfc3339_ms(l.created_at),
        }
    }
}

/// Which link was removed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LinkKey {
    /// The agent's home team.
    pub home_team: String,
    /// Agent id.
    pub agent_id: String,
}

/// A removed link.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LinkRemovedView {
    /// The removed link.
    pub deleted: LinkKey,
}

impl Ops {
    /// Links made by the scope's team.
    pub async fn links(&self, scope: &Scope) -> OpsResult<Vec<LinkView>> {
        scope.require(Need::Read)?;
        Ok(self
            .store
            .links(scope.team.internal_id)
            .await?
            .iter()
            .map(|l| LinkView::new(&scope.team.slug, l))
            .collect())
    }

    /// Creates or replaces the scope's team's link of `home_team/agent_id`.
    pub async fn create_link(&self, scope: &Scope, cmd: CreateLink) -> OpsResult<LinkView> {
        scope.require(Need::Write)?;
        let team = &scope.team;
        let home_team = cmd.home_team.trim();
        let agent_id = cmd.agent_id.trim();
        // An unknown team, an unknown agent and the agent's own home team all
        // answer alike: a team admin learns nothing about other teams here.
        let unlinkable =
            || OpsError::NotFound("no agent with that id in that team can be linked here".into());
        let home = match self.store.team(home_team).await? {
            Some(h) if h.internal_id != team.internal_id => h,
            _ => return Err(unlinkable()),
        };
        if self
            .store
            .agent(home.internal_id, agent_id)
            .await?
            .is_none()
        {
            return Err(unlinkable());
        }
        let role = cmd.role.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if let Some(r) = role
            && self.store.role(team.internal_id, r).await?.is_none()
        {
            return Err(OpsError::NotFound(format!(
                "role {r} in team {}",
                team.slug
            )));
        }
        let link = Link {
            team_internal_id: team.internal_id,
            home_team_internal_id: home.internal_id,
            home_team: home.slug,
            agent_id: agent_id.to_owned(),
            role: role.map(str::to_owned),
            created_at: 0,
        };
        self.store.set_link(&link).await?;
        self.wrote().await?;
        // Read back for the stored creation time.
        let stored = self
            .store
            .links(team.internal_id)
            .await?
            .into_iter()
            .find(|l| {
                l.home_team_internal_id == link.home_team_internal_id && l.agent_id == link.agent_id
            })
            .unwrap_or(link);
        Ok(LinkView::new(&team.slug, &stored))
    }

    /// Removes the scope's team's link of `home_team/agent_id`.
    pub async fn delete_link(
        &self,
        scope: &Scope,
        home_team: &str,
        agent_id: &str,
    ) -> OpsResult<LinkRemovedView> {
        scope.require(Need::Write)?;
        let home = self.team(home_team).await?;
        if !self
            .store
            .delete_link(scope.team.internal_id, home.internal_id, agent_id)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "link of {home_team}/{agent_id} in team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        Ok(LinkRemovedView {
            deleted: LinkKey {
                home_team: home.slug,
                agent_id: agent_id.to_owned(),
            },
        })
    }
}
