//! Agent roles: named sets of credentials (SPEC §4), and who holds them.

use serde::{Deserialize, Serialize};
use tap_core::model::{Role, Team};
use tap_core::names::validate_name;
use utoipa::ToSchema;

use super::credentials::Deleted;
use super::{Need, Ops, OpsError, OpsResult, Scope};

/// Body of `POST /team/roles`; `tap role create`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct CreateRole {
    /// `^[a-z0-9][a-z0-9_-]{0,63}$`, unique in the team.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Credentials the role grants (each must exist).
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
    /// Requests per rolling hour for each agent holding the role.
    #[serde(default)]
    pub rate_limit_per_hour: Option<u32>,
}

/// Body of `PUT /team/roles/{name}`: creates the role when absent, otherwise
/// replaces its credentials (absent `credentials` means none).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct PutRole {
    /// Free text (used when the role is created).
    #[serde(default)]
    pub description: Option<String>,
    /// The whole set of credentials the role grants.
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
    /// Requests per rolling hour (used when the role is created).
    #[serde(default)]
    pub rate_limit_per_hour: Option<u32>,
}

/// A role as answered and printed.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RoleView {
    /// Role name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Credentials granted by the role.
    pub credentials: Vec<String>,
    /// Requests per rolling hour for each agent holding it; null means unlimited.
    pub rate_limit_per_hour: Option<u32>,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            credentials: r.credentials.clone(),
            rate_limit_per_hour: r.rate_limit_per_hour,
        }
    }
}

/// A credential added to or removed from a role (`tap role add-credential|remove-credential`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RoleCredentialChanged {
    /// Role name.
    pub role: String,
    /// Credential.
    pub credential: String,
    /// True when added, false when removed.
    pub added: bool,
}

/// A role given to or taken from an agent (`tap role assign|unassign`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RoleAssigned {
    /// Role name.
    pub role: String,
    /// Agent id.
    pub agent: String,
    /// True when given, false when taken.
    pub assigned: bool,
}

impl Ops {
    async fn stored_role(&self, team: &Team, name: &str) -> OpsResult<Role> {
        self.store
            .role(team.internal_id, name)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("role {name}")))
    }

    /// Roles of the scope's team.
    pub async fn roles(&self, scope: &Scope) -> OpsResult<Vec<RoleView>> {
        scope.require(Need::Read)?;
        Ok(self
            .store
            .roles(scope.team.internal_id)
            .await?
            .iter()
            .map(RoleView::from)
            .collect())
    }

    /// One role.
    pub async fn role(&self, scope: &Scope, name: &str) -> OpsResult<RoleView> {
        scope.require(Need::Read)?;
        Ok(RoleView::from(&self.stored_role(&scope.team, name).await?))
    }

    /// Creates a role; `Conflict` when it exists.
    pub async fn create_role(&self, scope: &Scope, cmd: CreateRole) -> OpsResult<RoleView> {
        scope.require(Need::Write)?;
        validate_name("role", &cmd.name).map_err(|e| OpsError::Invalid(e.to_string()))?;
        let credentials = cmd.credentials.unwrap_or_default();
        self.require_credentials(&scope.team, &credentials).await?;
        let role = Role {
            team_internal_id: scope.team.internal_id,
            name: cmd.name,
            description: cmd.description.unwrap_or_default(),
            credentials,
            rate_limit_per_hour: cmd.rate_limit_per_hour,
        };
        self.store.create_role(&role).await?;
        self.wrote().await?;
        Ok(RoleView::from(&role))
    }

    /// `PUT /team/roles/{name}`: creates the role, or replaces its credentials
    /// (and description and rate limit when given).
    pub async fn put_role(&self, scope: &Scope, name: &str, cmd: PutRole) -> OpsResult<RoleView> {
        scope.require(Need::Write)?;
        let want = cmd.credentials.unwrap_or_default();
        self.require_credentials(&scope.team, &want).await?;
        let existing = self.store.role(scope.team.internal_id, name).await?;
        if existing.is_none() {
            validate_name("role", name).map_err(|e| OpsError::Invalid(e.to_string()))?;
        }
        // Fields left out keep their stored value; the credential set is replaced.
        let role = Role {
            team_internal_id: scope.team.internal_id,
            name: name.to_owned(),
            description: cmd
                .description
                .or_else(|| existing.as_ref().map(|r| r.description.clone()))
                .unwrap_or_default(),
            credentials: want,
            rate_limit_per_hour: cmd
                .rate_limit_per_hour
                .or_else(|| existing.as_ref().and_then(|r| r.rate_limit_per_hour)),
        };
        // One store transaction: the role is replaced whole or not at all.
        self.store.put_role(&role).await?;
        self.wrote().await?;
        Ok(RoleView::from(&self.stored_role(&scope.team, name).await?))
    }

    /// Adds a credential to a role (it must exist) or removes it.
    pub async fn set_role_credential(
        &self,
        scope: &Scope,
        role: &str,
        credential: &str,
        present: bool,
    ) -> OpsResult<RoleCredentialChanged> {
        scope.require(Need::Write)?;
        if present {
            self.require_credentials(&scope.team, &[credential.to_owned()])
                .await?;
        }
        if !self
            .store
            .set_role_credential(scope.team.internal_id, role, credential, present)
            .await?
        {
            return Err(OpsError::NotFound(format!("role {role}")));
        }
        self.wrote().await?;
        Ok(RoleCredentialChanged {
            role: role.to_owned(),
            credential: credential.to_owned(),
            added: present,
        })
    }

    /// Gives a role to an agent (the role must exist) or takes it away.
    pub async fn set_agent_role(
        &self,
        scope: &Scope,
        agent: &str,
        role: &str,
        held: bool,
    ) -> OpsResult<RoleAssigned> {
        scope.require(Need::Write)?;
        if !self
            .store
            .set_agent_role(scope.team.internal_id, agent, role, held)
            .await?
        {
            return Err(OpsError::NotFound(format!("agent {agent}")));
        }
        self.wrote().await?;
        Ok(RoleAssigned {
            role: role.to_owned(),
            agent: agent.to_owned(),
            assigned: held,
        })
    }

    /// Deletes a role.
    pub async fn delete_role(&self, scope: &Scope, name: &str) -> OpsResult<Deleted> {
        scope.require(Need::Write)?;
        if !self.store.delete_role(scope.team.internal_id, name).await? {
            return Err(OpsError::NotFound(format!("role {name}")));
        }
        self.wrote().await?;
        Ok(Deleted {
            deleted: name.to_owned(),
        })
    }
}
