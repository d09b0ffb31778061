//! Agents: creation with a key shown once, updates, key rotation, views.

use serde::{Deserialize, Serialize};
use tap_core::crypto::generate_agent_key;
use tap_core::model::{Agent, Team};
use tap_core::names::validate_name;
use tap_core::store::{AgentUpdate, NewAgent};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::credentials::Deleted;
use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// What an agent-create answer says about its key.
pub const KEY_SHOWN_ONCE: &str = "Store this key now: it is shown only once.";

/// Body of `POST /team/agents`; `tap agent create`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct CreateAgent {
    /// `^[a-z0-9][a-z0-9_-]{0,63}$`, unique in the team.
    pub id: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Roles held (each must exist).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Credentials granted directly (each must exist).
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
    /// Requests per rolling hour; absent means unlimited.
    #[serde(default)]
    pub rate_limit_per_hour: Option<u32>,
}

/// Body of `PATCH /team/agents/{id}`: each field given replaces the stored one.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct PatchAgent {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Enabled or disabled (disabled agents get `invalid_tap_key`).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The whole set of roles held.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The whole set of credentials granted directly.
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
}

/// An agent as answered and printed: never its key or key hash.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AgentView {
    /// Agent id.
    pub id: String,
    /// Home team slug.
    pub team: String,
    /// Free text.
    pub description: String,
    /// Disabled agents are refused.
    pub enabled: bool,
    /// Roles held.
    pub roles: Vec<String>,
    /// Credentials granted directly.
    pub credentials: Vec<String>,
    /// Requests per rolling hour; null means unlimited.
    pub rate_limit_per_hour: Option<u32>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Agent> for AgentView {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id.clone(),
            team: a.team.clone(),
            description: a.description.clone(),
            enabled: a.enabled,
            roles: a.roles.clone(),
            credentials: a.credentials.clone(),
            rate_limit_per_hour: a.rate_limit_per_hour,
            created_at: rfc3339_ms(a.created_at),
        }
    }
}

/// A new key, shown once: the answer of agent create (`201` on the API) and
/// key rotation, and `tap agent create|rotate-key --json`.
#[derive(Clone, Serialize, ToSchema)]
pub struct AgentKeyView {
    /// Agent id.
    pub id: String,
    /// Home team slug.
    pub team: String,
    /// The key (`tap_…`); never shown again. Wiped from memory on drop.
    #[serde(serialize_with = "expose_key")]
    #[schema(value_type = String)]
    pub api_key: Zeroizing<String>,
    /// A reminder that the key is shown once.
    pub message: String,
}

fn expose_key<S: serde::Serializer>(k: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

impl std::fmt::Debug for AgentKeyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeyView")
            .field("id", &self.id)
            .field("team", &self.team)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// An agent enabled or disabled.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentEnabled {
    /// Agent id.
    pub id: String,
    /// The new state.
    pub enabled: bool,
}

/// A direct credential grant changed (`tap agent grant|ungrant`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentGranted {
    /// Agent id.
    pub id: String,
    /// Credential.
    pub credential: String,
    /// True when granted, false when removed.
    pub granted: bool,
}

impl Ops {
    async fn stored_agent(&self, team: &Team, id: &str) -> OpsResult<Agent> {
        self.store
            .agent(team.internal_id, id)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("agent {id}")))
    }

    pub(super) async fn require_credentials(&self, team: &Team, names: &[String]) -> OpsResult<()> {
        for c in names {
            if self.store.credential(team.internal_id, c).await?.is_none() {
                return Err(OpsError::NotFound(format!("credential {c}")));
            }
        }
        Ok(())
    }

    async fn require_roles(&self, team: &Team, names: &[String]) -> OpsResult<()> {
        for r in names {
            if self.store.role(team.internal_id, r).await?.is_none() {
                return Err(OpsError::NotFound(format!("role {r}")));
            }
        }
        Ok(())
    }

    /// Agents of the scope's team.
    pub async fn agents(&self, scope: &Scope) -> OpsResult<Vec<AgentView>> {
        scope.require(Need::Read)?;
        Ok(self
            .store
            .agents(scope.team.internal_id)
            .await?
            .iter()
            .map(AgentView::from)
            .collect())
    }

    /// One agent.
    pub async fn agent(&self, scope: &Scope, id: &str) -> OpsResult<AgentView> {
        scope.require(Need::Read)?;
        Ok(AgentView::from(&self.stored_agent(&scope.team, id).await?))
    }

    /// Creates an agent; its key is in the answer and never again.
    pub async fn create_agent(&self, scope: &Scope, cmd: CreateAgent) -> OpsResult<AgentKeyView> {
        scope.require(Need::Write)?;
        validate_name("agent", &cmd.id).map_err(|e| OpsError::Invalid(e.to_string()))?;
        let roles = cmd.roles.unwrap_or_default();
        let credentials = cmd.credentials.unwrap_or_default();
        self.require_credentials(&scope.team, &credentials).await?;
        let key = generate_agent_key().map_err(|e| OpsError::Invalid(e.to_string()))?;
        let agent = self
            .store
            .create_agent(&NewAgent {
                team_internal_id: scope.team.internal_id,
                id: cmd.id,
                description: cmd.description.unwrap_or_default(),
                key_hash: self.keys.mac().digest(&key),
                roles,
                credentials,
                rate_limit_per_hour: cmd.rate_limit_per_hour,
            })
            .await?;
        self.wrote().await?;
        Ok(AgentKeyView {
            id: agent.id,
            team: agent.team,
            api_key: key,
            message: KEY_SHOWN_ONCE.into(),
        })
    }

    /// `PATCH /team/agents/{id}`: replaces what is given, checks every name first.
    pub async fn patch_agent(
        &self,
        scope: &Scope,
        id: &str,
        cmd: PatchAgent,
    ) -> OpsResult<AgentView> {
        scope.require(Need::Write)?;
        let agent = self.stored_agent(&scope.team, id).await?;
        if let Some(c) = &cmd.credentials {
            self.require_credentials(&scope.team, c).await?;
        }
        if let Some(r) = &cmd.roles {
            self.require_roles(&scope.team, r).await?;
        }
        self.apply_agent_update(&scope.team, &agent, &cmd).await?;
        self.wrote().await?;
        Ok(AgentView::from(&self.stored_agent(&scope.team, id).await?))
    }

    /// Writes a checked patch.
    // one transaction once Store::update_agent lands: this body becomes
    // `self.store.update_agent(team.internal_id, &agent.id, &update)` (which also
    // stores the description); until then the writes below are separate, made
    // after every name was checked so that only a store failure can leave a
    // patch half applied.
    async fn apply_agent_update(
        &self,
        team: &Team,
        agent: &Agent,
        p: &PatchAgent,
    ) -> OpsResult<()> {
        // One store transaction: a PATCH is applied whole or not at all.
        let update = AgentUpdate {
            description: p.description.clone(),
            enabled: p.enabled,
            roles: p.roles.clone(),
            credentials: p.credentials.clone(),
            rate_limit_per_hour: None,
        };
        if self
            .store
            .update_agent(team.internal_id, &agent.id, &update)
            .await?
            .is_none()
        {
            return Err(OpsError::NotFound(format!("agent {}", agent.id)));
        }
        Ok(())
    }

    /// Enables or disables an agent; effective on the next request.
    pub async fn set_agent_enabled(
        &self,
        scope: &Scope,
        id: &str,
        enabled: bool,
    ) -> OpsResult<AgentEnabled> {
        scope.require(Need::Write)?;
        if !self
            .store
            .set_agent_enabled(scope.team.internal_id, id, enabled)
            .await?
        {
            return Err(OpsError::NotFound(format!("agent {id}")));
        }
        self.wrote().await?;
        Ok(AgentEnabled {
            id: id.to_owned(),
            enabled,
        })
    }

    /// Grants (or removes) one credential directly.
    pub async fn grant_agent_credential(
        &self,
        scope: &Scope,
        id: &str,
        credential: &str,
        granted: bool,
    ) -> OpsResult<AgentGranted> {
        scope.require(Need::Write)?;
        if granted {
            self.require_credentials(&scope.team, &[credential.to_owned()])
                .await?;
        }
        if !self
            .store
            .set_agent_credential(scope.team.internal_id, id, credential, granted)
            .await?
        {
            return Err(OpsError::NotFound(format!("agent {id}")));
        }
        self.wrote().await?;
        Ok(AgentGranted {
            id: id.to_owned(),
            credential: credential.to_owned(),
            granted,
        })
    }

    /// Deletes an agent and its grants.
    pub async fn delete_agent(&self, scope: &Scope, id: &str) -> OpsResult<Deleted> {
        scope.require(Need::Write)?;
        if !self.store.delete_agent(scope.team.internal_id, id).await? {
            return Err(OpsError::NotFound(format!("agent {id}")));
        }
        self.wrote().await?;
        Ok(Deleted {
            deleted: id.to_owned(),
        })
    }

    /// Gives an agent a new key; the old one stops working on the next request.
    pub async fn rotate_agent_key(&self, scope: &Scope, id: &str) -> OpsResult<AgentKeyView> {
        scope.require(Need::Write)?;
        let key = generate_agent_key().map_err(|e| OpsError::Invalid(e.to_string()))?;
        if !self
            .store
            .set_agent_key(scope.team.internal_id, id, &self.keys.mac().digest(&key))
            .await?
        {
            return Err(OpsError::NotFound(format!("agent {id}")));
        }
        self.wrote().await?;
        Ok(AgentKeyView {
            id: id.to_owned(),
            team: scope.team.slug.clone(),
            api_key: key,
            message: KEY_SHOWN_ONCE.into(),
        })
    }
}
