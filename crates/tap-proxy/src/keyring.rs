//! The deployment's keys: the master key (KEK) and the MAC key it wraps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tap_core::crypto::{AuditKey, Dek, KeyMac, MasterKey, ct_eq};
use tap_core::model::Team;
use tap_core::store::{ResealedValue, Store, TeamKeyChange};

pub(crate) const META_CHECK: &str = "kek_check";
const META_MAC: &str = "mac_key";
const META_KEK_ID: &str = "kek_id";
/// Deployment metadata key of the store's public id (`/health` sends it as
/// `X-TAP-Store-Id`, so `tap status` can tell its own proxy from another).
pub const STORE_ID_META: &str = "store_id";

/// Why the keys could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The store has keys sealed under another master key.
    #[error(
        "the master key does not match this store (store key id {stored}, given key id {given}); set TAP_MASTER_KEY / TAP_MASTER_KEY_FILE / TAP_MASTER_KEY_COMMAND to the key this store was created with"
    )]
    WrongKey {
        /// Key id recorded in the store.
        stored: String,
        /// Key id of the key given.
        given: String,
    },
    /// The store has no key check yet.
    #[error("the store has no master key check; run `tap init`")]
    NotInitialized,
    /// Stored key material is damaged.
    #[error("stored key material is damaged: {0}")]
    Damaged(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tap_core::store::StoreError),
}

/// Re-reads the master key from where this process got it (a key file or
/// command), after another process rotated it; `None` when it cannot.
pub type KeyReload = Arc<dyn Fn() -> Option<MasterKey> + Send + Sync>;

/// How long a failed re-read of the key source is not retried.
const RELOAD_BACKOFF: Duration = Duration::from_secs(5);
/// Bound on the cache of opened team data keys (one per team and DEK id).
const MAX_CACHED_DEKS: usize = 100_000;

/// What `tap key rotate` changed.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The keyring of the new master key.
    pub keys: Keyring,
    /// Values re-sealed under new team data keys (0 without `--reencrypt`).
    pub resealed: usize,
    /// Teams whose data key was replaced (0 without `--reencrypt`).
    pub new_deks: usize,
}

/// Opened keys, shared by every clone. Invariants: the KEK passed the store's
/// sealed check value when it was installed; the MAC key never changes;
/// a cached DEK was unwrapped for its (team slug, DEK id).
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    kek: RwLock<MasterKey>,
    mac: KeyMac,
    deks: Mutex<HashMap<(String, String), Dek>>,
    reload: Option<KeyReload>,
    last_failed_reload: Mutex<Option<Instant>>,
    /// The store's master key is not ours and re-reading the source failed.
    behind: AtomicBool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(kek id={})", self.kek_id())
    }
}

impl Keyring {
    fn new(kek: MasterKey, mac: KeyMac) -> Self {
        Self {
            inner: Arc::new(Inner {
                kek: RwLock::new(kek),
                mac,
                deks: Mutex::new(HashMap::new()),
                reload: None,
                last_failed_reload: Mutex::new(None),
                behind: AtomicBool::new(false),
            }),
        }
    }

    /// This keyring, able to re-read the master key through `reload` when
    /// another process (`tap key rotate`) replaced it in the store.
    #[must_use]
    pub fn with_reload(self, reload: KeyReload) -> Self {
        let kek = self.kek();
        let deks = lock(&self.inner.deks).clone();
        Self {
            inner: Arc::new(Inner {
                kek: RwLock::new(kek),
                mac: self.inner.mac.clone(),
                deks: Mutex::new(deks),
                reload: Some(reload),
                last_failed_reload: Mutex::new(None),
                behind: AtomicBool::new(false),
            }),
        }
    }

    /// Records the check value and a fresh wrapped MAC key when the store has none;
    /// otherwise opens the existing ones; either way gives the store the audit
    /// key. Returns the keyring and whether it was created.
    pub async fn create_or_open(
        store: &dyn Store,
        kek: MasterKey,
    ) -> Result<(Self, bool), KeyringError> {
        if store.meta(META_CHECK).await?.is_some() {
            return Ok((Self::open(store, kek).await?, false));
        }
        let mac = KeyMac::generate().map_err(|e| KeyringError::Damaged(e.to_string()))?;
        let wrapped = kek
            .wrap_mac_key(&mac)
            .map_err(|e| KeyringError::Damaged(e.to_string()))?;
        let check = kek
            .seal_check()
            .map_err(|e| KeyringError::Damaged(e.to_string()))?;
        store.set_meta(META_MAC, &wrapped).await?;
        store.set_meta(META_KEK_ID, kek.key_id().as_bytes()).await?;
        store.set_meta(META_CHECK, &check).await?;
        store.set_audit_key(mac.audit_key()).await?;
        Ok((Self::new(kek, mac), true))
    }

    /// Opens the keys, refusing a key that does not match the store, and gives
    /// the store the audit key.
    pub async fn open(store: &dyn Store, kek: MasterKey) -> Result<Self, KeyringError> {
        let mac = Self::check(store, &kek).await?;
        // Every process that opens the keys chains audit rows with the key.
        store.set_audit_key(mac.audit_key()).await?;
        Ok(Self::new(kek, mac))
    }

    /// The MAC key `kek` opens, once `kek` passed the store's check value.
    async fn check(store: &dyn Store, kek: &MasterKey) -> Result<KeyMac, KeyringError> {
        let check = store
            .meta(META_CHECK)
            .await?
            .ok_or(KeyringError::NotInitialized)?;
        if !kek.verify_check(&check) {
            let stored = store
                .meta(META_KEK_ID)
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(KeyringError::WrongKey {
                stored,
                given: kek.key_id(),
            });
        }
        let wrapped = store
            .meta(META_MAC)
            .await?
            .ok_or(KeyringError::NotInitialized)?;
        kek.unwrap_mac_key(&wrapped)
            .map_err(|e| KeyringError::Damaged(format!("mac key: {e}")))
    }

    /// Follows a rotation made by another process: when the store's key id
    /// is no longer this keyring's, re-reads the key source and installs the
    /// new key once it passes the store's check. Data keys opened before stay
    /// cached, so a running proxy keeps serving through a rotation even when
    /// the source cannot be re-read; only what needs the new key (a new
    /// team, a team whose data key was replaced) fails, with `WrongKey`.
    pub async fn follow(&self, store: &dyn Store) -> Result<(), KeyringError> {
        let Some(stored) = store.meta(META_KEK_ID).await? else {
            return Ok(());
        };
        let stored = String::from_utf8_lossy(&stored).into_owned();
        let ours = self.kek_id();
        if stored == ours {
            self.inner.behind.store(false, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.behind.store(true, Ordering::Relaxed);
        let wrong = || KeyringError::WrongKey {
            stored: stored.clone(),
            given: ours.clone(),
        };
        let Some(reload) = self.inner.reload.clone() else {
            return Err(wrong());
        };
        if lock(&self.inner.last_failed_reload).is_some_and(|t| t.elapsed() < RELOAD_BACKOFF) {
            return Err(wrong());
        }
        let fresh = tokio::task::spawn_blocking(move || reload())
            .await
            .ok()
            .flatten();
        let installed = match fresh {
            Some(kek) => match Self::check(store, &kek).await {
                Ok(mac)
                    if ct_eq(
                        mac.digest("tap keyring").as_bytes(),
                        self.inner.mac.digest("tap keyring").as_bytes(),
                    ) =>
                {
                    *self
                        .inner
                        .kek
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = kek;
                    true
                }
                Ok(_) => {
                    return Err(KeyringError::Damaged(
                        "the store's MAC key changed under a running process".into(),
                    ));
                }
                Err(_) => false,
            },
            None => false,
        };
        if installed {
            tracing::info!(key_id = %stored, "master key rotated by another process; using the new key");
            *lock(&self.inner.last_failed_reload) = None;
            self.inner.behind.store(false, Ordering::Relaxed);
            Ok(())
        } else {
            tracing::error!(
                stored_key_id = %stored,
                key_id = %ours,
                "the master key was rotated and its source does not give the new key; restart with the new key"
            );
            *lock(&self.inner.last_failed_reload) = Some(Instant::now());
            Err(wrong())
        }
    }

    /// Master-key rotation: every team's DEK and the MAC key re-wrapped under
    /// `new`, with a new check value and key id, in one store transaction.
    /// With `reencrypt`, every team also gets a new DEK and every sealed
    /// value is re-sealed under it in the same transaction. The MAC key stays
    /// (agent keys, admin tokens and the audit chain key keep working); the
    /// old master key no longer opens the store.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        new: MasterKey,
        reencrypt: bool,
    ) -> Result<Rotation, KeyringError> {
        let damaged = |e: tap_core::crypto::CryptoError| KeyringError::Damaged(e.to_string());
        let snapshot = if reencrypt {
            Some(store.snapshot().await?)
        } else {
            None
        };
        let mut teams = Vec::new();
        let (mut resealed, mut new_deks) = (0, 0);
        for t in store.teams().await? {
            let dek = self.team_dek(&t)?;
            let Some(snap) = &snapshot else {
                teams.push(TeamKeyChange {
                    team_internal_id: t.internal_id,
                    dek_id: t.dek_id.clone(),
                    new_dek_id: t.dek_id.clone(),
                    wrapped_dek: new.wrap_dek(&t.slug, &dek).map_err(damaged)?,
                    values: Vec::new(),
                });
                continue;
            };
            let next = Dek::generate().map_err(damaged)?;
            let mut values = Vec::new();
            for c in snap
                .credentials
                .iter()
                .filter(|c| c.team_internal_id == t.internal_id)
            {
                let Some(sealed) = &c.sealed_value else {
                    continue;
                };
                let plain = dek.open(t.internal_id, &c.name, sealed).map_err(|e| {
                    KeyringError::Damaged(format!("team {} credential {}: {e}", t.slug, c.name))
                })?;
                values.push(ResealedValue {
                    credential: c.name.clone(),
                    sealed: sealed.clone(),
                    resealed: next.seal(t.internal_id, &c.name, &plain).map_err(damaged)?,
                });
            }
            resealed += values.len();
            new_deks += 1;
            teams.push(TeamKeyChange {
                team_internal_id: t.internal_id,
                dek_id: t.dek_id.clone(),
                new_dek_id: next.id().to_owned(),
                wrapped_dek: new.wrap_dek(&t.slug, &next).map_err(damaged)?,
                values,
            });
        }
        let meta = vec![
            (
                META_MAC.to_owned(),
                new.wrap_mac_key(&self.inner.mac).map_err(damaged)?,
            ),
            (META_KEK_ID.to_owned(), new.key_id().into_bytes()),
            (META_CHECK.to_owned(), new.seal_check().map_err(damaged)?),
        ];
        store.rewrap_keys(&teams, &meta).await?;
        Ok(Rotation {
            keys: Self::new(new, self.inner.mac.clone()),
            resealed,
            new_deks,
        })
    }

    /// True while the store holds a master key this keyring could not follow
    /// yet ([`Self::follow`] retries).
    pub fn behind(&self) -> bool {
        self.inner.behind.load(Ordering::Relaxed)
    }

    /// The master key's public id.
    pub fn kek_id(&self) -> String {
        self.inner
            .kek
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .key_id()
    }

    fn kek(&self) -> MasterKey {
        self.inner
            .kek
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wraps a new team's DEK under the master key.
    pub fn wrap_dek(&self, team_slug: &str, dek: &Dek) -> Result<Vec<u8>, KeyringError> {
        self.kek()
            .wrap_dek(team_slug, dek)
            .map_err(|e| KeyringError::Damaged(e.to_string()))
    }

    /// The MAC key for agent keys and admin tokens.
    pub fn mac(&self) -> &KeyMac {
        &self.inner.mac
    }

    /// The key of the audit chain's MACs, derived from the MAC key (so a
    /// master-key rotation leaves it unchanged).
    pub fn audit_key(&self) -> AuditKey {
        self.inner.mac.audit_key()
    }

    /// The team's DEK: from the cache, else unwrapped with the master key.
    pub fn team_dek(&self, team: &Team) -> Result<Dek, KeyringError> {
        let id = (team.slug.clone(), team.dek_id.clone());
        if let Some(d) = lock(&self.inner.deks).get(&id) {
            return Ok(d.clone());
        }
        let dek = self
            .kek()
            .unwrap_dek(&team.slug, &team.dek_id, &team.wrapped_dek)
            .map_err(|e| KeyringError::Damaged(format!("team {} data key: {e}", team.slug)))?;
        let mut cache = lock(&self.inner.deks);
        if cache.len() >= MAX_CACHED_DEKS {
            cache.clear();
        }
        cache.insert(id, dek.clone());
        Ok(dek)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
