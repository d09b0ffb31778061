//! The deployment's keys: the master key (KEK) and the MAC key it wraps.

use tap_core::crypto::{AuditKey, Dek, KeyMac, MasterKey};
use tap_core::model::Team;
use tap_core::store::Store;

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

/// Opened keys. Invariant: the KEK passed the store's sealed check value.
#[derive(Clone, Debug)]
pub struct Keyring {
    kek: MasterKey,
    mac: KeyMac,
}

impl Keyring {
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
        Ok((Self { kek, mac }, true))
    }

    /// Opens the keys, refusing a key that does not match the store, and gives
    /// the store the audit key.
    pub async fn open(store: &dyn Store, kek: MasterKey) -> Result<Self, KeyringError> {
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
        let mac = kek
            .unwrap_mac_key(&wrapped)
            .map_err(|e| KeyringError::Damaged(format!("mac key: {e}")))?;
        // Every process that opens the keys chains audit rows with the key.
        store.set_audit_key(mac.audit_key()).await?;
        Ok(Self { kek, mac })
    }

    /// Master-key rotation: every team's DEK and the MAC key re-wrapped under
    /// `new`, with a new check value and key id, in one store transaction.
    /// The DEKs and the MAC key themselves stay (agent keys, admin tokens,
    /// sealed values and the audit chain key keep working); the old master
    /// key no longer opens the store. Returns the keyring of the new key.
    pub async fn rotate(&self, store: &dyn Store, new: MasterKey) -> Result<Self, KeyringError> {
        let damaged = |e: tap_core::crypto::CryptoError| KeyringError::Damaged(e.to_string());
        let mut teams = Vec::new();
        for t in store.teams().await? {
            let dek = self.team_dek(&t)?;
            let wrapped = new.wrap_dek(&t.slug, &dek).map_err(damaged)?;
            teams.push((t.internal_id, t.dek_id.clone(), wrapped));
        }
        let meta = vec![
            (
                META_MAC.to_owned(),
                new.wrap_mac_key(&self.mac).map_err(damaged)?,
            ),
            (META_KEK_ID.to_owned(), new.key_id().into_bytes()),
            (META_CHECK.to_owned(), new.seal_check().map_err(damaged)?),
        ];
        store.rewrap_keys(&teams, &meta).await?;
        Ok(Self {
            kek: new,
            mac: self.mac.clone(),
        })
    }

    /// The master key.
    pub fn kek(&self) -> &MasterKey {
        &self.kek
    }

    /// The MAC key for agent keys and admin tokens.
    pub fn mac(&self) -> &KeyMac {
        &self.mac
    }

    /// The key of the audit chain's MACs, derived from the MAC key (so a
    /// master-key rotation leaves it unchanged).
    pub fn audit_key(&self) -> AuditKey {
        self.mac.audit_key()
    }

    /// The team's DEK.
    pub fn team_dek(&self, team: &Team) -> Result<Dek, KeyringError> {
        self.kek
            .unwrap_dek(&team.slug, &team.dek_id, &team.wrapped_dek)
            .map_err(|e| KeyringError::Damaged(format!("team {} data key: {e}", team.slug)))
    }
}
