//! The admin service: every administrative operation of SPEC §4 and §10,
//! shared by the admin API, the CLI (and later MCP and the dashboard).
//!
//! Operations take a [`Scope`] (who acts in which team) and check the role
//! there, once. Everything that seals a value, mints a key or hashes a
//! password happens here, so no caller handles key material itself. A write
//! made through a service attached to a running proxy ([`Ops::attach`]) is
//! visible to that proxy before the call returns; other processes see it
//! within their reload interval (1 s).

pub mod agents;
mod approvals;
pub mod audit;
pub mod channels;
pub mod credentials;
mod error;
pub mod grants;
pub mod links;
pub mod members;
pub mod policies;
pub mod roles;
mod scope;
pub mod team;
pub mod tokens;
pub mod views;

use std::sync::Arc;

use serde::Serialize;
use tap_core::crypto::{Dek, MasterKey, generate_admin_token, generate_password};
use tap_core::model::{MemberRole, Team};
use tap_core::names::{normalize_email, validate_slug};
use tap_core::policy::ApprovalMode;
use tap_core::store::{Store, StoreError};
use tap_core::time::{Clock, SystemClock};

pub use credentials::CredentialSpec;
pub use error::{OpsError, OpsResult};
pub use scope::{Need, Scope};

use crate::approval::broker::Broker;
use crate::directory::DirectoryHandle;
use crate::keyring::Keyring;
use members::hash_password;

/// The team `tap init` creates.
pub const DEFAULT_TEAM: &str = "default";
/// The deployment-wide role of the process that initialises an empty store.
const INIT_ROLE: &str = "init";
/// How long a process waits for another one that is initialising the store.
const INIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a waiting process looks whether the initialisation is done.
const INIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// The owner `tap init` creates unless told otherwise.
pub const DEFAULT_OWNER_EMAIL: &str = "admin@localhost.localdomain";

/// Metadata key of the owner `tap init` created (the default terminal approver).
pub const META_INIT_OWNER: &str = "init_owner";

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

/// The parts of a running proxy a write must reach before it returns.
#[derive(Clone)]
struct Live {
    directory: Arc<DirectoryHandle>,
    broker: Arc<Broker>,
}

/// Administrative operations over one store with opened keys.
#[derive(Clone)]
pub struct Ops {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The keys.
    pub keys: Arc<Keyring>,
    /// The one source of wall-clock time.
    pub clock: Arc<dyn Clock>,
    live: Option<Live>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("attached", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// A service over `store` and its opened keys.
    pub fn new(store: Arc<dyn Store>, keys: Arc<Keyring>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            keys,
            clock,
            live: None,
        }
    }

    /// Attaches the service to a running proxy: its writes reach the proxy's
    /// configuration view, and its approval decisions wake the proxy's waiters,
    /// before they return.
    pub fn attach(mut self, directory: Arc<DirectoryHandle>, broker: Arc<Broker>) -> Self {
        self.live = Some(Live { directory, broker });
        self
    }

    /// Read your writes: called at the end of every configuration write.
    pub(crate) async fn wrote(&self) -> OpsResult<()> {
        if let Some(live) = &self.live {
            live.directory
                .refresh(self.store.as_ref(), &self.keys)
                .await?;
        }
        Ok(())
    }

    /// Wakes the attached proxy's approval waiters and executor.
    pub(crate) fn approvals_changed(&self) {
        if let Some(live) = &self.live {
            live.broker.changed.notify_waiters();
        }
    }

    /// The attached proxy's broker, when there is one.
    pub(crate) fn broker(&self) -> Option<&Arc<Broker>> {
        self.live.as_ref().map(|l| &l.broker)
    }

    /// The configuration as the proxy sees it (secrets opened): the attached
    /// proxy's view, or one built from the store now.
    pub(crate) async fn directory(&self) -> OpsResult<Arc<crate::directory::Directory>> {
        if let Some(live) = &self.live {
            return Ok(live.directory.get());
        }
        let snapshot = self.store.snapshot().await?;
        Ok(Arc::new(crate::directory::Directory::build(
            snapshot, &self.keys, None,
        )))
    }
}

impl Ops {
    /// Initialises a store: schema, keys, team `default` (gated), an owner and an
    /// admin token. Idempotent: on an initialised store it only opens the keys
    /// (refusing a wrong master key) and reports `created: false`.
    pub async fn init(
        store: Arc<dyn Store>,
        kek: MasterKey,
        owner_email: Option<&str>,
    ) -> OpsResult<(Self, InitReport)> {
        store.migrate().await?;
        wait_for_initialiser(store.as_ref()).await?;
        let (keys, _) = Keyring::create_or_open(store.as_ref(), kek).await?;
        let ops = Self::new(store, Arc::new(keys), Arc::new(SystemClock));
        if let Some(team) = ops.store.team(DEFAULT_TEAM).await? {
            let owner = ops
                .store
                .members(team.internal_id)
                .await?
                .into_iter()
                .find(|m| m.role == MemberRole::Owner)
                .map(|m| m.email)
                .unwrap_or_default();
            return Ok((
                ops,
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
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        let team = ops.create_team(DEFAULT_TEAM).await?;
        let password = generate_password().map_err(|e| OpsError::Invalid(e.to_string()))?;
        let account = match ops.store.account_by_email(&email).await? {
            Some(a) => a.id,
            None => {
                ops.store
                    .create_account(&email, &hash_password(&password)?)
                    .await?
            }
        };
        ops.store
            .set_membership(team.internal_id, account, MemberRole::Owner)
            .await?;
        // Remembered so that `tap team create` makes this owner an owner of new teams
        // and `tap approve` without `--as` acts as them.
        ops.store
            .set_meta(META_INIT_OWNER, email.as_bytes())
            .await?;
        let token = generate_admin_token().map_err(|e| OpsError::Invalid(e.to_string()))?;
        ops.store
            .create_admin_token(
                account,
                &ops.keys.mac().digest(&token),
                "created by tap init",
            )
            .await?;
        Ok((
            ops,
            InitReport {
                created: true,
                team: team.slug,
                owner_email: email,
                owner_password: Some(password.to_string()),
                admin_token: Some(token.to_string()),
            },
        ))
    }

    /// True once `store` holds what `init` makes (schema, keys, team
    /// `default`): then it is opened, not initialised.
    pub async fn is_initialized(store: &dyn Store) -> OpsResult<bool> {
        Ok(store.is_initialized().await?
            && store.meta(crate::keyring::META_CHECK).await?.is_some()
            && store.team(DEFAULT_TEAM).await?.is_some())
    }

    /// Opens an initialised store, refusing a wrong key.
    pub async fn open(store: Arc<dyn Store>, kek: MasterKey) -> OpsResult<Self> {
        if !store.is_initialized().await? {
            return Err(OpsError::Store(StoreError::Uninitialized));
        }
        store.migrate().await?;
        let keys = Keyring::open(store.as_ref(), kek).await?;
        Ok(Self::new(store, Arc::new(keys), Arc::new(SystemClock)))
    }

    /// A team by slug.
    pub async fn team(&self, slug: &str) -> OpsResult<Team> {
        self.store
            .team(slug)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("team {slug}")))
    }

    /// Creates a team with a fresh DEK, gated by default.
    pub async fn create_team(&self, slug: &str) -> OpsResult<Team> {
        validate_slug(slug).map_err(|e| OpsError::Invalid(e.to_string()))?;
        let dek = Dek::generate().map_err(|e| OpsError::Invalid(e.to_string()))?;
        // Never wrap a new data key under a master key the store no longer has.
        self.keys.follow(self.store.as_ref()).await?;
        let wrapped = self.keys.wrap_dek(slug, &dek)?;
        Ok(self
            .store
            .create_team(slug, ApprovalMode::Gated, dek.id(), &wrapped)
            .await?)
    }
}

/// Several processes may start at once on one empty shared store (replicas
/// on PostgreSQL): one leads the initialisation, the others wait until it is
/// done and then only open the keys, so every process holds the same keys.
/// Where one process owns the store (SQLite) it always leads.
async fn wait_for_initialiser(store: &dyn Store) -> OpsResult<()> {
    let deadline = std::time::Instant::now() + INIT_WAIT;
    while !store.lead(INIT_ROLE).await? {
        if Ops::is_initialized(store).await? {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(OpsError::Conflict(
                "another process is initialising the store; try again".into(),
            ));
        }
        tokio::time::sleep(INIT_POLL).await;
    }
    Ok(())
}
