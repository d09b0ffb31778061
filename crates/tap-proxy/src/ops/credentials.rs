//! Credentials: definitions, sealed values, views. Values are write-only: they
//! come in through [`ValueInput`] (which never prints) and no view holds them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tap_core::inject::{AuthBinding, Format, SignedShape};
use tap_core::model::{Connector, Credential, Team};
use tap_core::names::validate_name;
use tap_core::secret::{CredentialValue, Secret};
use tap_core::target::{HostPattern, TargetUrl};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

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
        if self.connector == Connector::Sidecar && self.api_base.is_none() {
            return Err(OpsError::Invalid(
                "a sidecar credential needs --api-base, the sidecar's URL (e.g. http://127.0.0.1:8090)"
                    .into(),
            ));
        }
        if self.relative_target && self.api_base.is_none() {
            return Err(OpsError::Invalid(
                "a relative-target credential needs --api-base".into(),
            ));
        }
        Ok(())
    }
}

/// A header or query binding of a credential (SPEC §6.1), as sent and answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthBindingView {
    /// Header name, when the binding sets a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter key, when the binding sets a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The format rendered into the header or parameter, e.g. `Token {value}`.
    pub format: String,
}

impl From<&AuthBinding> for AuthBindingView {
    fn from(b: &AuthBinding) -> Self {
        Self {
            header: b.header.clone(),
            query: b.query.clone(),
            format: b.format.clone(),
        }
    }
}

impl From<AuthBindingView> for AuthBinding {
    fn from(b: AuthBindingView) -> Self {
        Self {
            header: b.header,
            query: b.query,
            format: b.format,
        }
    }
}

/// A credential value as an operator sends it: a string, or a JSON object (a
/// multi-secret value). Never printed: its `Debug` is redacted, and nothing
/// serialises it.
pub struct ValueInput(Zeroizing<Vec<u8>>);

impl ValueInput {
    /// Raw bytes read by the CLI (stdin or a no-echo prompt).
    pub fn from_bytes(raw: impl Into<Zeroizing<Vec<u8>>>) -> Self {
        Self(raw.into())
    }

    fn parse(&self) -> OpsResult<CredentialValue> {
        Ops::parse_value(&self.0)
    }
}

impl std::fmt::Debug for ValueInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for ValueInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(Zeroizing::new(s.into_bytes()))),
            v @ Value::Object(_) => Ok(Self(Zeroizing::new(v.to_string().into_bytes()))),
            _ => Err(serde::de::Error::custom(
                "value must be a string or a JSON object",
            )),
        }
    }
}

/// Body of `POST /team/credentials` (every field but `name` optional) and of
/// `PATCH /team/credentials/{name}` (fields given replace the stored ones).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CredentialFields {
    /// `^[a-z0-9][a-z0-9_-]{0,63}$`; required on create, must match the path on PATCH.
    pub name: Option<String>,
    /// Free text shown to agents.
    pub description: Option<String>,
    /// `direct` (default) or `sidecar`.
    pub connector: Option<String>,
    /// Base URL for relative targets and agent hints.
    pub api_base: Option<String>,
    /// Targets are paths appended to `api_base`.
    pub relative_target: Option<bool>,
    /// `Authorization` format, default `Bearer {value}`.
    pub auth_header_format: Option<String>,
    /// Header or query bindings.
    pub auth_bindings: Option<Vec<AuthBindingView>>,
    /// `[http://]host[:port]` or `*.suffix`; required on create unless `allow_any_host`.
    pub allowed_hosts: Option<Vec<String>>,
    /// Explicit opt-out of host binding.
    pub allow_any_host: Option<bool>,
    /// The value: a string or a JSON object. Write-only.
    #[schema(value_type = Option<Object>)]
    pub value: Option<ValueInput>,
}

/// Body of `PUT /team/credentials/{name}/secret`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetSecret {
    /// A string or a JSON object. Write-only.
    #[schema(value_type = Object)]
    pub value: ValueInput,
}

/// `tap add`: a whole definition (flags not given take their defaults, the
/// description excepted) and an optional value.
#[derive(Debug)]
pub struct PutCredential {
    /// The definition.
    pub spec: CredentialSpec,
    /// Keep the stored description (no `--description` given).
    pub keep_description: bool,
    /// The value, when given.
    pub value: Option<ValueInput>,
}

/// A credential as answered and printed (`GET /team/credentials`, `tap cred list`):
/// never the value or any part of it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CredentialView {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `direct` or `sidecar`.
    pub connector: String,
    /// Base URL.
    pub api_base: Option<String>,
    /// Targets are paths appended to `api_base`.
    pub relative_target: bool,
    /// `Authorization` format.
    pub auth_header_format: Option<String>,
    /// Header or query bindings.
    pub auth_bindings: Vec<AuthBindingView>,
    /// Host patterns the value may be sent to.
    pub allowed_hosts: Vec<String>,
    /// Explicit opt-out of host binding.
    pub allow_any_host: bool,
    /// Whether a value is stored.
    pub value_set: bool,
    /// `text` or `json` (a multi-secret object); null without a value.
    pub value_kind: Option<String>,
    /// The signed shape a JSON value is recognised as (SPEC §6.3: `oauth1`,
    /// `aws_sigv4`), on a single credential shown: names the scheme the
    /// proxy signs with, never a value. Absent for static values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_shape: Option<String>,
    /// The credential's approval policy, on a single credential shown to a
    /// member who may read policies, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Value>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Credential> for CredentialView {
    fn from(c: &Credential) -> Self {
        Self {
            name: c.name.clone(),
            description: c.description.clone(),
            connector: c.connector.as_str().to_owned(),
            api_base: c.api_base.clone(),
            relative_target: c.relative_target,
            auth_header_format: c.auth_header_format.clone(),
            auth_bindings: c.auth_bindings.iter().map(AuthBindingView::from).collect(),
            allowed_hosts: c.allowed_hosts.clone(),
            allow_any_host: c.allow_any_host,
            value_set: c.sealed_value.is_some(),
            value_kind: c
                .sealed_value
                .as_ref()
                .map(|_| if c.value_is_json { "json" } else { "text" }.to_owned()),
            value_shape: None,
            policy: None,
            created_at: rfc3339_ms(c.created_at),
            updated_at: rfc3339_ms(c.updated_at),
        }
    }
}

/// What `tap add` did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CredentialPut {
    /// The credential now.
    #[serde(flatten)]
    pub credential: CredentialView,
    /// True when it was created, false when updated.
    pub created: bool,
}

/// A value was replaced (`PUT /team/credentials/{name}/secret`, `tap cred set-value`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ValueSet {
    /// Credential name.
    pub name: String,
    /// Always true.
    pub value_set: bool,
}

/// An object was deleted (`{"deleted": <name or id>}`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Name or id of what was deleted.
    pub deleted: String,
}

fn spec_from(
    name: String,
    b: &CredentialFields,
    base: Option<&Credential>,
) -> OpsResult<CredentialSpec> {
    let connector = match b.connector.as_deref() {
        Some(c) => c
            .parse()
            .map_err(|e: tap_core::model::ParseEnumError| OpsError::Invalid(e.to_string()))?,
        None => base.map(|c| c.connector).unwrap_or_default(),
    };
    Ok(CredentialSpec {
        name,
        description: b
            .description
            .clone()
            .or_else(|| base.map(|c| c.description.clone()))
            .unwrap_or_default(),
        connector,
        api_base: b
            .api_base
            .clone()
            .or_else(|| base.and_then(|c| c.api_base.clone())),
        relative_target: b
            .relative_target
            .or(base.map(|c| c.relative_target))
            .unwrap_or(false),
        auth_header_format: b
            .auth_header_format
            .clone()
            .or_else(|| base.and_then(|c| c.auth_header_format.clone())),
        auth_bindings: b
            .auth_bindings
            .clone()
            .map(|v| v.into_iter().map(AuthBinding::from).collect())
            .or_else(|| base.map(|c| c.auth_bindings.clone()))
            .unwrap_or_default(),
        allowed_hosts: b
            .allowed_hosts
            .clone()
            .or_else(|| base.map(|c| c.allowed_hosts.clone()))
            .unwrap_or_default(),
        allow_any_host: b
            .allow_any_host
            .or(base.map(|c| c.allow_any_host))
            .unwrap_or(false),
    })
}

impl Ops {
    /// Seals under the team's data key as stored now (`tap key rotate
    /// --reencrypt` may have replaced it since `team` was read), following a
    /// master-key rotation made by another process first.
    async fn seal(&self, team: &Team, name: &str, value: &CredentialValue) -> OpsResult<Vec<u8>> {
        self.keys.follow(self.store.as_ref()).await?;
        let team = self.team(&team.slug).await?;
        let dek = self.keys.team_dek(&team)?;
        dek.seal(team.internal_id, name, value.sealed_form())
            .map_err(|e| OpsError::Invalid(e.to_string()))
    }

    /// The stored credential, or `NotFound`.
    /// The signed shape of a stored JSON value (opened only to read its
    /// field names); `None` for text, no value, or no signed shape.
    fn value_shape(&self, team: &Team, c: &Credential) -> Option<String> {
        let blob = c.sealed_value.as_ref().filter(|_| c.value_is_json)?;
        let plain = self
            .keys
            .team_dek(team)
            .ok()?
            .open(team.internal_id, &c.name, blob)
            .ok()?;
        let value = CredentialValue::from_stored(plain.expose().to_vec(), true);
        if tap_core::inject::is_signing_key(&value) {
            return Some("signing_key".to_owned());
        }
        SignedShape::of(&value)
            .map(|s| s.name())
            .or_else(|| tap_core::inject::TokenShape::of(&value).map(|s| s.name()))
            .map(str::to_owned)
    }

    async fn stored_credential(&self, team: &Team, name: &str) -> OpsResult<Credential> {
        self.store
            .credential(team.internal_id, name)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("credential {name}")))
    }

    /// Validates and stores a definition (and a value, sealed) in one upsert.
    /// Returns true when created.
    async fn store_credential(
        &self,
        team: &Team,
        mut spec: CredentialSpec,
        value: Option<&CredentialValue>,
    ) -> OpsResult<bool> {
        spec.validate()?;
        let sealed = match value {
            Some(v) => Some(self.seal(team, &spec.name, v).await?),
            None => None,
        };
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

    /// Credentials of the scope's team; approvers see only their assigned ones.
    pub async fn credentials(&self, scope: &Scope) -> OpsResult<Vec<CredentialView>> {
        scope.require(Need::Member)?;
        Ok(self
            .store
            .credentials(scope.team.internal_id)
            .await?
            .iter()
            .filter(|c| scope.sees_credential(&c.name))
            .map(CredentialView::from)
            .collect())
    }

    /// One credential, with its policy for members who may read policies. An
    /// approver asking for a credential not assigned to them gets `NotFound`,
    /// as if it did not exist.
    pub async fn credential(&self, scope: &Scope, name: &str) -> OpsResult<CredentialView> {
        scope.require(Need::Member)?;
        if !scope.sees_credential(name) {
            return Err(OpsError::NotFound(format!("credential {name}")));
        }
        let c = self.stored_credential(&scope.team, name).await?;
        let mut v = CredentialView::from(&c);
        v.value_shape = self.value_shape(&scope.team, &c);
        if Need::Read.allows(scope.role)
            && let Some(p) = self.store.policy(scope.team.internal_id, name).await?
        {
            v.policy = Some(serde_json::to_value(p).map_err(|e| OpsError::Invalid(e.to_string()))?);
        }
        Ok(v)
    }

    /// `POST /team/credentials`: creates; `Conflict` when the name exists.
    pub async fn create_credential(
        &self,
        scope: &Scope,
        cmd: CredentialFields,
    ) -> OpsResult<CredentialView> {
        scope.require(Need::Write)?;
        let Some(name) = cmd.name.clone() else {
            return Err(OpsError::Invalid("name is required".into()));
        };
        if self
            .store
            .credential(scope.team.internal_id, &name)
            .await?
            .is_some()
        {
            return Err(OpsError::Conflict(format!(
                "credential {name} already exists"
            )));
        }
        let spec = spec_from(name.clone(), &cmd, None)?;
        let value = cmd.value.as_ref().map(ValueInput::parse).transpose()?;
        self.store_credential(&scope.team, spec, value.as_ref())
            .await?;
        Ok(CredentialView::from(
            &self.stored_credential(&scope.team, &name).await?,
        ))
    }

    /// `PATCH /team/credentials/{name}`: fields given replace the stored ones.
    pub async fn patch_credential(
        &self,
        scope: &Scope,
        name: &str,
        cmd: CredentialFields,
    ) -> OpsResult<CredentialView> {
        scope.require(Need::Write)?;
        if cmd.name.as_deref().is_some_and(|n| n != name) {
            return Err(OpsError::Invalid(
                "renaming a credential is not supported; create a new one".into(),
            ));
        }
        let existing = self.stored_credential(&scope.team, name).await?;
        let spec = spec_from(name.to_owned(), &cmd, Some(&existing))?;
        let value = cmd.value.as_ref().map(ValueInput::parse).transpose()?;
        self.store_credential(&scope.team, spec, value.as_ref())
            .await?;
        Ok(CredentialView::from(
            &self.stored_credential(&scope.team, name).await?,
        ))
    }

    /// `tap add`: adds or replaces a definition, with its value when given.
    pub async fn put_credential(
        &self,
        scope: &Scope,
        cmd: PutCredential,
    ) -> OpsResult<CredentialPut> {
        scope.require(Need::Write)?;
        let mut spec = cmd.spec;
        if cmd.keep_description
            && let Some(c) = self
                .store
                .credential(scope.team.internal_id, &spec.name)
                .await?
        {
            spec.description = c.description;
        }
        let name = spec.name.clone();
        let value = cmd.value.as_ref().map(ValueInput::parse).transpose()?;
        let created = self
            .store_credential(&scope.team, spec, value.as_ref())
            .await?;
        Ok(CredentialPut {
            credential: CredentialView::from(&self.stored_credential(&scope.team, &name).await?),
            created,
        })
    }

    /// Replaces a credential's value.
    pub async fn set_credential_value(
        &self,
        scope: &Scope,
        name: &str,
        cmd: SetSecret,
    ) -> OpsResult<ValueSet> {
        scope.require(Need::Write)?;
        let value = cmd.value.parse()?;
        let sealed = self.seal(&scope.team, name, &value).await?;
        if !self
            .store
            .set_credential_value(scope.team.internal_id, name, &sealed, value.is_json())
            .await?
        {
            return Err(OpsError::NotFound(format!("credential {name}")));
        }
        self.wrote().await?;
        Ok(ValueSet {
            name: name.to_owned(),
            value_set: true,
        })
    }

    /// Deletes a credential, its grants and policy; `Conflict` while a role names it.
    pub async fn delete_credential(&self, scope: &Scope, name: &str) -> OpsResult<Deleted> {
        scope.require(Need::Write)?;
        if !self
            .store
            .delete_credential(scope.team.internal_id, name)
            .await?
        {
            return Err(OpsError::NotFound(format!("credential {name}")));
        }
        self.wrote().await?;
        Ok(Deleted {
            deleted: name.to_owned(),
        })
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
