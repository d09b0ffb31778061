//! Credentials: definitions, sealed values, views. Values are write-only.

use tap_core::inject::{AuthBinding, Format};
use tap_core::model::{Connector, Credential, Team};
use tap_core::names::validate_name;
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{HostPattern, TargetUrl};

use super::{Ops, OpsError, OpsResult};

/// A credential definition as an operator gives it (no value).
#[derive(Clone, Debug, Default)]
pub struct CredentialSpec {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Connector.
    pub connector: Connector,
    /// Base URL.
    pub api_base: Option<String>,
    /// Targets are paths appended to `api_base`.
    pub relative_target: bool,
    /// Authorization format.
    pub auth_header_format: Option<String>,
    /// Bindings.
    pub auth_bindings: Vec<AuthBinding>,
    /// Host patterns.
    pub allowed_hosts: Vec<String>,
    /// Explicit opt-out of host binding.
    pub allow_any_host: bool,
}

impl CredentialSpec {
    /// Checks every field; the first problem is reported.
    pub fn validate(&mut self) -> OpsResult<()> {
        validate_name("credential", &self.name).map_err(|e| OpsError::Invalid(e.to_string()))?;
        if self.connector == Connector::Sidecar {
            return Err(OpsError::Invalid(
                "the sidecar connector is not supported by this build yet; use --connector direct"
                    .into(),
            ));
        }
        let mut hosts = Vec::with_capacity(self.allowed_hosts.len());
        for h in &self.allowed_hosts {
            let p = HostPattern::parse(h)
                .map_err(|e| OpsError::Invalid(format!("allowed host {h:?}: {e}")))?;
            hosts.push(p.as_str().to_owned());
        }
        self.allowed_hosts = hosts;
        if self.allowed_hosts.is_empty() && !self.allow_any_host {
            return Err(OpsError::Invalid(format!(
                "credential {} needs at least one allowed host (--allowed-host api.example.com), or --allow-any-host to send it anywhere",
                self.name
            )));
        }
        if let Some(f) = &self.auth_header_format {
            Format::parse(f).map_err(|e| OpsError::Invalid(e.to_string()))?;
        }
        for b in &self.auth_bindings {
            b.validate().map_err(|e| OpsError::Invalid(e.to_string()))?;
        }
        if let Some(base) = &self.api_base {
            TargetUrl::parse(base).map_err(|e| OpsError::Invalid(format!("api_base: {e}")))?;
        }
        if self.relative_target && self.api_base.is_none() {
            return Err(OpsError::Invalid(
                "a relative-target credential needs --api-base".into(),
            ));
        }
        Ok(())
    }
}

impl Ops {
    fn seal(&self, team: &Team, name: &str, value: &CredentialValue) -> OpsResult<Vec<u8>> {
        let dek = self.keys.team_dek(team)?;
        dek.seal(team.internal_id, name, value.sealed_form())
            .map_err(|e| OpsError::Invalid(e.to_string()))
    }

    /// Adds or updates a credential; the value, when given, is sealed. Returns true when created.
    pub async fn put_credential(
        &self,
        team: &Team,
        mut spec: CredentialSpec,
        value: Option<&CredentialValue>,
    ) -> OpsResult<bool> {
        spec.validate()?;
        let sealed = value.map(|v| self.seal(team, &spec.name, v)).transpose()?;
        let c = Credential {
            team_internal_id: team.internal_id,
            name: spec.name,
            description: spec.description,
            connector: spec.connector,
            api_base: spec.api_base,
            relative_target: spec.relative_target,
            auth_header_format: spec.auth_header_format,
            auth_bindings: spec.auth_bindings,
            allowed_hosts: spec.allowed_hosts,
            allow_any_host: spec.allow_any_host,
            value_is_json: value.is_some_and(CredentialValue::is_json),
            sealed_value: sealed,
            created_at: 0,
            updated_at: 0,
        };
        let created = self.store.upsert_credential(&c).await?;
        self.wrote().await?;
        Ok(created)
    }

    /// Replaces a credential's value.
    pub async fn set_credential_value(
        &self,
        team: &Team,
        name: &str,
        value: &CredentialValue,
    ) -> OpsResult<()> {
        let sealed = self.seal(team, name, value)?;
        if !self
            .store
            .set_credential_value(team.internal_id, name, &sealed, value.is_json())
            .await?
        {
            return Err(OpsError::NotFound(format!("credential {name}")));
        }
        self.wrote().await
    }

    /// Parses an operator-given value.
    pub fn parse_value(raw: &[u8]) -> OpsResult<CredentialValue> {
        CredentialValue::parse(raw).map_err(|e| OpsError::Invalid(e.to_string()))
    }

    /// Wraps raw bytes as a secret (for callers reading stdin).
    pub fn secret(raw: Vec<u8>) -> Secret {
        Secret::new(raw)
    }
}
