//! Agents: creation with a key shown once, key rotation.

use tap_core::crypto::generate_agent_key;
use tap_core::model::{Agent, Team};
use tap_core::names::validate_name;
use tap_core::store::NewAgent;
use zeroize::Zeroizing;

use super::{Ops, OpsError, OpsResult};

impl Ops {
    /// Creates an agent; returns it and its key (shown once).
    pub async fn create_agent(
        &self,
        team: &Team,
        id: &str,
        description: &str,
        roles: &[String],
        credentials: &[String],
        rate_limit_per_hour: Option<u32>,
    ) -> OpsResult<(Agent, Zeroizing<String>)> {
        validate_name("agent", id).map_err(|e| OpsError::Invalid(e.to_string()))?;
        for c in credentials {
            if self.store.credential(team.internal_id, c).await?.is_none() {
                return Err(OpsError::NotFound(format!("credential {c}")));
            }
        }
        let key = generate_agent_key().map_err(|e| OpsError::Invalid(e.to_string()))?;
        let agent = self
            .store
            .create_agent(&NewAgent {
                team_internal_id: team.internal_id,
                id: id.to_owned(),
                description: description.to_owned(),
                key_hash: self.keys.mac().digest(&key),
                roles: roles.to_vec(),
                credentials: credentials.to_vec(),
                rate_limit_per_hour,
            })
            .await?;
        self.wrote().await?;
        Ok((agent, key))
    }

    /// Gives an agent a new key; the old one stops working on the next reload (≤ 1 s).
    pub async fn rotate_agent_key(&self, team: &Team, id: &str) -> OpsResult<Zeroizing<String>> {
        let key = generate_agent_key().map_err(|e| OpsError::Invalid(e.to_string()))?;
        if !self
            .store
            .set_agent_key(team.internal_id, id, &self.keys.mac().digest(&key))
            .await?
        {
            return Err(OpsError::NotFound(format!("agent {id}")));
        }
        self.wrote().await?;
        Ok(key)
    }
}
