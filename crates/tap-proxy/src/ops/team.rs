//! The team: what a member sees of it, its settings, and (for the operator)
//! creating and listing teams.

use serde::{Deserialize, Serialize};
use tap_core::model::Team;
use tap_core::policy::ApprovalMode;
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// Body of `PUT /team/settings`; `tap team settings`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct TeamSettings {
    /// `gated` or `autonomous`: what happens for credentials without a policy.
    pub default_approval_mode: String,
}

/// The selected team as its member sees it (`GET /team`, `tap team show`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TeamView {
    /// Team slug.
    pub team: String,
    /// `gated` or `autonomous`.
    pub default_approval_mode: String,
    /// The acting member's role (the operator acts as an owner).
    pub your_role: String,
    /// The acting member's e-mail.
    pub your_email: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A team's settings after a change (`PUT /team/settings`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TeamSettingsView {
    /// Team slug.
    pub team: String,
    /// `gated` or `autonomous`.
    pub default_approval_mode: String,
}

/// A team in the operator's list (`tap team list|create`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TeamSummary {
    /// Team slug.
    pub team: String,
    /// `gated` or `autonomous`.
    pub default_approval_mode: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Team> for TeamSummary {
    fn from(t: &Team) -> Self {
        Self {
            team: t.slug.clone(),
            default_approval_mode: t.default_approval_mode.as_str().to_owned(),
            created_at: rfc3339_ms(t.created_at),
        }
    }
}

impl Ops {
    /// The scope's team and the member's place in it.
    pub async fn team_view(&self, scope: &Scope) -> OpsResult<TeamView> {
        scope.require(Need::Member)?;
        // Read again: the scope may have been built before a settings change.
        let team = self.team(&scope.team.slug).await?;
        Ok(TeamView {
            team: team.slug,
            default_approval_mode: team.default_approval_mode.as_str().to_owned(),
            your_role: scope.role.as_str().to_owned(),
            your_email: scope.email.clone(),
            created_at: rfc3339_ms(team.created_at),
        })
    }

    /// Sets the team's default approval mode.
    pub async fn set_team_settings(
        &self,
        scope: &Scope,
        cmd: TeamSettings,
    ) -> OpsResult<TeamSettingsView> {
        scope.require(Need::Write)?;
        let mode: ApprovalMode = cmd.default_approval_mode.parse().map_err(|_| {
            OpsError::Invalid("default_approval_mode must be gated or autonomous".into())
        })?;
        self.store
            .set_team_mode(scope.team.internal_id, mode)
            .await?;
        self.wrote().await?;
        Ok(TeamSettingsView {
            team: scope.team.slug.clone(),
            default_approval_mode: mode.as_str().to_owned(),
        })
    }

    /// Every team of the deployment. Not scoped: only the operator (who holds
    /// the master key, `tap team list`) sees teams they are not a member of.
    pub async fn teams(&self) -> OpsResult<Vec<TeamSummary>> {
        Ok(self
            .store
            .teams()
            .await?
            .iter()
            .map(TeamSummary::from)
            .collect())
    }

    /// Creates a team (`tap team create`); operator only, like [`Ops::teams`].
    pub async fn add_team(&self, slug: &str) -> OpsResult<TeamSummary> {
        let t = self.create_team(slug).await?;
        self.wrote().await?;
        Ok(TeamSummary::from(&t))
    }
}
