//! Administrative operations shared by the CLI and the admin API.
//!
//! Everything that seals a value, mints a key or hashes a password happens
//! here, so no caller handles key material itself.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher};
use serde::Serialize;
use tap_core::audit::{Verification, verify_chain};
use tap_core::crypto::{
    Dek, MasterKey, generate_admin_token, generate_agent_key, generate_password,
};
use tap_core::inject::{AuthBinding, Format};
use tap_core::model::{Agent, Connector, Credential, MemberRole, Team};
use tap_core::names::{normalize_email, validate_name, validate_slug};
use tap_core::policy::ApprovalMode;
use tap_core::secret::{CredentialValue, Secret};
use tap_core::store::{NewAgent, Store, StoreError};
use tap_core::target::{HostPattern, TargetUrl};
use zeroize::Zeroizing;

use crate::keyring::{Keyring, KeyringError};

/// The team `tap init` creates.
pub const DEFAULT_TEAM: &str = "default";
/// The owner `tap init` creates unless told otherwise.
pub const DEFAULT_OWNER_EMAIL: &str = "admin@localhost.localdomain";

/// Metadata key of the owner `tap init` created (the default terminal approver).
pub const META_INIT_OWNER: &str = "init_owner";

/// Errors of administrative operations; messages are for operators and never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Missing object.
    #[error("{0} not found")]
    NotFound(String),
    /// Invariant or uniqueness conflict.
    #[error("{0}")]
    Conflict(String),
    /// Keys.
    #[error(transparent)]
    Keys(#[from] KeyringError),
    /// Store.
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Store(other),
        }
    }
}

/// Result alias.
pub type AdminResult<T> = Result<T, AdminError>;

/// What `tap init` did.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// False when the store was already initialised (nothing changed).
    pub created: bool,
    /// The default team.
    pub team: String,
    /// The owner's e-mail.
    pub owner_email: String,
    /// Shown once, only when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_password: Option<String>,
    /// Shown once, only when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

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
    pub fn validate(&mut self) -> AdminResult<()> {
        validate_name("credential", &self.name).map_err(|e| AdminError::Invalid(e.to_string()))?;
        if self.connector == Connector::Sidecar {
            return Err(AdminError::Invalid(
                "the sidecar connector is not supported by this build yet; use --connector direct"
                    .into(),
            ));
        }
        let mut hosts = Vec::with_capacity(self.allowed_hosts.len());
        for h in &self.allowed_hosts {
            let p = HostPattern::parse(h)
                .map_err(|e| AdminError::Invalid(format!("allowed host {h:?}: {e}")))?;
            hosts.push(p.as_str().to_owned());
        }
        self.allowed_hosts = hosts;
        if self.allowed_hosts.is_empty() && !self.allow_any_host {
            return Err(AdminError::Invalid(format!(
                "credential {} needs at least one allowed host (--allowed-host api.example.com), or --allow-any-host to send it anywhere",
                self.name
            )));
        }
        if let Some(f) = &self.auth_header_format {
            Format::parse(f).map_err(|e| AdminError::Invalid(e.to_string()))?;
        }
        for b in &self.auth_bindings {
            b.validate()
                .map_err(|e| AdminError::Invalid(e.to_string()))?;
        }
        if let Some(base) = &self.api_base {
            TargetUrl::parse(base).map_err(|e| AdminError::Invalid(format!("api_base: {e}")))?;
        }
        if self.relative_target && self.api_base.is_none() {
            return Err(AdminError::Invalid(
                "a relative-target credential needs --api-base".into(),
            ));
        }
        Ok(())
    }
}

fn hash_password(password: &str) -> AdminResult<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Invalid(format!("password hashing failed: {e}")))
}

/// Administrative operations over one store with opened keys.
#[derive(Clone)]
pub struct Admin {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The keys.
    pub keys: Keyring,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

impl Admin {
    /// Initialises a store: schema, keys, team `default` (gated), an owner and an
    /// admin token. Idempotent: on an initialised store it only opens the keys
    /// (refusing a wrong master key) and reports `created: false`.
    pub async fn init(
        store: Arc<dyn Store>,
        kek: MasterKey,
        owner_email: Option<&str>,
    ) -> AdminResult<(Self, InitReport)> {
        store.migrate().await?;
        let (keys, _) = Keyring::create_or_open(store.as_ref(), kek).await?;
        let admin = Self { store, keys };
        if let Some(team) = admin.store.team(DEFAULT_TEAM).await? {
            let owner = admin
                .store
                .members(team.internal_id)
                .await?
                .into_iter()
                .find(|m| m.role == MemberRole::Owner)
                .map(|m| m.email)
                .unwrap_or_default();
            return Ok((
                admin,
                InitReport {
                    created: false,
                    team: team.slug,
                    owner_email: owner,
                    owner_password: None,
                    admin_token: None,
                },
            ));
        }
        let email = normalize_email(owner_email.unwrap_or(DEFAULT_OWNER_EMAIL))
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let team = admin.create_team(DEFAULT_TEAM).await?;
        let password = generate_password().map_err(|e| AdminError::Invalid(e.to_string()))?;
        let account = match admin.store.account_by_email(&email).await? {
            Some(a) => a.id,
            None => {
                admin
                    .store
                    .create_account(&email, &hash_password(&password)?)
                    .await?
            }
        };
        admin
            .store
            .set_membership(team.internal_id, account, MemberRole::Owner)
            .await?;
        // Remembered so that `tap team create` makes this owner an owner of new teams
        // and `tap approve` without `--as` acts as them.
        admin
            .store
            .set_meta(META_INIT_OWNER, email.as_bytes())
            .await?;
        let token = generate_admin_token().map_err(|e| AdminError::Invalid(e.to_string()))?;
        admin
            .store
            .create_admin_token(
                account,
                &admin.keys.mac().digest(&token),
                "created by tap init",
            )
            .await?;
        Ok((
            admin,
            InitReport {
                created: true,
                team: team.slug,
                owner_email: email,
                owner_password: Some(password.to_string()),
                admin_token: Some(token.to_string()),
            },
        ))
    }

    /// Opens an initialised store, refusing a wrong key.
    pub async fn open(store: Arc<dyn Store>, kek: MasterKey) -> AdminResult<Self> {
        if !store.is_initialized().await? {
            return Err(AdminError::Store(StoreError::Uninitialized));
        }
        store.migrate().await?;
        let keys = Keyring::open(store.as_ref(), kek).await?;
        Ok(Self { store, keys })
    }

    /// A team by slug.
    pub async fn team(&self, slug: &str) -> AdminResult<Team> {
        self.store
            .team(slug)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("team {slug}")))
    }

    /// Creates a team with a fresh DEK, gated by default.
    pub async fn create_team(&self, slug: &str) -> AdminResult<Team> {
        validate_slug(slug).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let dek = Dek::generate().map_err(|e| AdminError::Invalid(e.to_string()))?;
        let wrapped = self
            .keys
            .kek()
            .wrap_dek(slug, &dek)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        Ok(self
            .store
            .create_team(slug, ApprovalMode::Gated, dek.id(), &wrapped)
            .await?)
    }

    fn seal(&self, team: &Team, name: &str, value: &CredentialValue) -> AdminResult<Vec<u8>> {
        let dek = self.keys.team_dek(team)?;
        dek.seal(team.internal_id, name, value.sealed_form())
            .map_err(|e| AdminError::Invalid(e.to_string()))
    }

    /// Adds or updates a credential; the value, when given, is sealed. Returns true when created.
    pub async fn put_credential(
        &self,
        team: &Team,
        mut spec: CredentialSpec,
        value: Option<&CredentialValue>,
    ) -> AdminResult<bool> {
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
        Ok(self.store.upsert_credential(&c).await?)
    }

    /// Replaces a credential's value.
    pub async fn set_credential_value(
        &self,
        team: &Team,
        name: &str,
        value: &CredentialValue,
    ) -> AdminResult<()> {
        let sealed = self.seal(team, name, value)?;
        if !self
            .store
            .set_credential_value(team.internal_id, name, &sealed, value.is_json())
            .await?
        {
            return Err(AdminError::NotFound(format!("credential {name}")));
        }
        Ok(())
    }

    /// Creates an agent; returns it and its key (shown once).
    pub async fn create_agent(
        &self,
        team: &Team,
        id: &str,
        description: &str,
        roles: &[String],
        credentials: &[String],
        rate_limit_per_hour: Option<u32>,
    ) -> AdminResult<(Agent, Zeroizing<String>)> {
        validate_name("agent", id).map_err(|e| AdminError::Invalid(e.to_string()))?;
        for c in credentials {
            if self.store.credential(team.internal_id, c).await?.is_none() {
                return Err(AdminError::NotFound(format!("credential {c}")));
            }
        }
        let key = generate_agent_key().map_err(|e| AdminError::Invalid(e.to_string()))?;
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
        Ok((agent, key))
    }

    /// Gives an agent a new key; the old one stops working on the next reload (≤ 1 s).
    pub async fn rotate_agent_key(&self, team: &Team, id: &str) -> AdminResult<Zeroizing<String>> {
        let key = generate_agent_key().map_err(|e| AdminError::Invalid(e.to_string()))?;
        if !self
            .store
            .set_agent_key(team.internal_id, id, &self.keys.mac().digest(&key))
            .await?
        {
            return Err(AdminError::NotFound(format!("agent {id}")));
        }
        Ok(key)
    }

    /// Checks a team's audit chain.
    pub async fn verify_audit(&self, team: &Team) -> AdminResult<Verification> {
        let (anchor, first, rows) = self.store.audit_chain(team.internal_id).await?;
        Ok(verify_chain(&anchor, first, &rows))
    }

    /// The e-mail `tap approve` acts as without `--as`: the owner `tap init` created,
    /// else the team's first owner.
    pub async fn default_actor(&self, team: &Team) -> AdminResult<String> {
        if let Some(raw) = self.store.meta(META_INIT_OWNER).await? {
            let email = String::from_utf8_lossy(&raw).into_owned();
            if self
                .store
                .members(team.internal_id)
                .await?
                .iter()
                .any(|m| m.email == email)
            {
                return Ok(email);
            }
        }
        self.store
            .members(team.internal_id)
            .await?
            .into_iter()
            .find(|m| m.role == MemberRole::Owner)
            .map(|m| m.email)
            .ok_or_else(|| AdminError::NotFound(format!("an owner of team {}", team.slug)))
    }

    /// Adds an account (when new) and its membership; returns a generated password when
    /// none was given and the account is new.
    pub async fn add_member(
        &self,
        team: &Team,
        email: &str,
        role: MemberRole,
        password: Option<&str>,
    ) -> AdminResult<(String, Option<Zeroizing<String>>)> {
        let email = normalize_email(email).map_err(|e| AdminError::Invalid(e.to_string()))?;
        if self
            .store
            .members(team.internal_id)
            .await?
            .iter()
            .any(|m| m.email == email)
        {
            return Err(AdminError::Conflict(format!(
                "{email} is already a member of team {}",
                team.slug
            )));
        }
        let (account, generated) = match self.store.account_by_email(&email).await? {
            Some(a) => (a.id, None),
            None => {
                let generated = match password {
                    Some(_) => None,
                    None => {
                        Some(generate_password().map_err(|e| AdminError::Invalid(e.to_string()))?)
                    }
                };
                let pw = password
                    .map(str::to_owned)
                    .or_else(|| generated.as_ref().map(|g| g.to_string()));
                let pw = pw.unwrap_or_default();
                if pw.len() < 8 {
                    return Err(AdminError::Invalid(
                        "a password needs at least 8 characters".into(),
                    ));
                }
                (
                    self.store
                        .create_account(&email, &hash_password(&pw)?)
                        .await?,
                    generated,
                )
            }
        };
        self.store
            .set_membership(team.internal_id, account, role)
            .await?;
        Ok((email, generated))
    }

    /// Parses an operator-given value.
    pub fn parse_value(raw: &[u8]) -> AdminResult<CredentialValue> {
        CredentialValue::parse(raw).map_err(|e| AdminError::Invalid(e.to_string()))
    }

    /// Wraps raw bytes as a secret (for callers reading stdin).
    pub fn secret(raw: Vec<u8>) -> Secret {
        Secret::new(raw)
    }
}
