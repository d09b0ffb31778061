//! The WebAuthn relying party and the ceremonies in progress. Held by the
//! proxy state; the handlers live in [`super::passkey`] and
//! [`super::passkey_login`].
//!
//! Nothing about a ceremony stays in this process: `begin` puts the
//! library's state (it holds the challenge) into the store, and `finish`
//! takes it out there in one statement, so a ceremony begun on one replica
//! finishes on any other, and at most once even when two race. The store
//! row's id is a keyed hash, never what the browser or the session holds.

use tap_core::model::{CeremonyKind, CeremonyRecord};
use tap_core::store::{Store, StoreError};
use webauthn_rs::prelude::{PasskeyAuthentication, PasskeyRegistration, Webauthn, WebauthnBuilder};

use crate::config::WebauthnConfig;
use crate::keyring::Keyring;

/// A ceremony must finish within this long after it began.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Ceremonies of one kind in progress at once across the deployment; a new
/// begin beyond that drops the oldest of its kind, so a flood of
/// unauthenticated sign-in begins cannot grow the table without limit, cannot
/// refuse anyone's new begin, and cannot touch members' registrations and
/// approvals.
pub const MAX_CEREMONIES: u32 = 10_000;

/// A ceremony in progress, as the handlers use it.
pub(super) enum Ceremony {
    Register {
        state: PasskeyRegistration,
        account_id: i64,
        name: String,
    },
    Approve {
        state: PasskeyAuthentication,
        account_id: i64,
        txn_id: String,
        request_hash: String,
    },
    /// A passkey sign-in; `state` is `None` for a decoy (an unknown e-mail or
    /// one without passkeys), which can only fail.
    SignIn {
        state: Option<PasskeyAuthentication>,
        account_id: Option<i64>,
    },
}

impl Ceremony {
    fn kind(&self) -> CeremonyKind {
        match self {
            Self::Register { .. } => CeremonyKind::Register,
            Self::Approve { .. } => CeremonyKind::Approve,
            Self::SignIn { .. } => CeremonyKind::SignIn,
        }
    }

    /// The store row; `None` when the library state does not serialise.
    fn record(&self, id: String, now: i64) -> Option<CeremonyRecord> {
        let mut r = CeremonyRecord {
            id,
            kind: self.kind(),
            state: None,
            account_id: None,
            name: None,
            txn_id: None,
            request_hash: None,
            created_at: now,
            expires_at: now.saturating_add(CEREMONY_TTL_MS),
        };
        match self {
            Self::Register {
                state,
                account_id,
                name,
            } => {
                r.state = Some(serde_json::to_string(state).ok()?);
                r.account_id = Some(*account_id);
                r.name = Some(name.clone());
            }
            Self::Approve {
                state,
                account_id,
                txn_id,
                request_hash,
            } => {
                r.state = Some(serde_json::to_string(state).ok()?);
                r.account_id = Some(*account_id);
                r.txn_id = Some(txn_id.clone());
                r.request_hash = Some(request_hash.clone());
            }
            Self::SignIn { state, account_id } => {
                r.state = match state {
                    Some(s) => Some(serde_json::to_string(s).ok()?),
                    None => None,
                };
                r.account_id = *account_id;
            }
        }
        Some(r)
    }

    /// Back from a store row; `None` when a field is missing or the state
    /// does not parse (then the ceremony is unusable: fail closed).
    fn from_record(r: CeremonyRecord) -> Option<Self> {
        Some(match r.kind {
            CeremonyKind::Register => Self::Register {
                state: serde_json::from_str(r.state.as_deref()?).ok()?,
                account_id: r.account_id?,
                name: r.name?,
            },
            CeremonyKind::Approve => Self::Approve {
                state: serde_json::from_str(r.state.as_deref()?).ok()?,
                account_id: r.account_id?,
                txn_id: r.txn_id?,
                request_hash: r.request_hash?,
            },
            CeremonyKind::SignIn => Self::SignIn {
                state: match r.state.as_deref() {
                    Some(s) => Some(serde_json::from_str(s).ok()?),
                    None => None,
                },
                account_id: r.account_id,
            },
        })
    }
}

/// Why a ceremony could not be kept.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeepError {
    /// Puts racing this one filled its kind again ([`MAX_CEREMONIES`]).
    #[error("too many passkey ceremonies in progress")]
    Full,
    /// The library's state did not serialise.
    #[error("the passkey ceremony could not be stored")]
    Encode,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The relying party could not be set up from `TAP_WEBAUTHN_*`.
#[derive(Debug, thiserror::Error)]
#[error("WebAuthn relying party: {0}")]
pub struct PasskeySetupError(#[source] webauthn_rs::prelude::WebauthnError);

/// The relying party.
pub struct PasskeyService {
    pub(super) webauthn: Webauthn,
    rp_id: String,
}

impl std::fmt::Debug for PasskeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyService")
    }
}

impl PasskeyService {
    /// The relying party of `TAP_WEBAUTHN_RP_ID` and `TAP_WEBAUTHN_ORIGIN`.
    pub fn new(config: &WebauthnConfig) -> Result<Self, PasskeySetupError> {
        let webauthn = WebauthnBuilder::new(&config.rp_id, &config.origin)
            .and_then(|b| b.rp_name("TAP").build())
            .map_err(PasskeySetupError)?;
        Ok(Self {
            webauthn,
            rp_id: config.rp_id.clone(),
        })
    }

    /// The relying party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Keeps `ceremony` under `key` (what its finish presents: the session
    /// and purpose, or the sign-in's ceremony id) for [`CEREMONY_TTL_MS`],
    /// replacing an earlier one under the same key.
    pub(super) async fn keep(
        &self,
        store: &dyn Store,
        keys: &Keyring,
        key: &str,
        ceremony: &Ceremony,
        now: i64,
    ) -> Result<(), KeepError> {
        let record = ceremony
            .record(row_id(keys, ceremony.kind(), key), now)
            .ok_or(KeepError::Encode)?;
        if store.put_ceremony(&record, now, MAX_CEREMONIES).await? {
            Ok(())
        } else {
            Err(KeepError::Full)
        }
    }

    /// Takes the ceremony of `kind` under `key` out, once: `None` when there
    /// is none (never begun, finished already, replaced, expired).
    pub(super) async fn take(
        &self,
        store: &dyn Store,
        keys: &Keyring,
        kind: CeremonyKind,
        key: &str,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError> {
        let Some(record) = store
            .take_ceremony(&row_id(keys, kind, key), kind, now)
            .await?
        else {
            return Ok(None);
        };
        let ceremony = Ceremony::from_record(record);
        if ceremony.is_none() {
            tracing::warn!(
                kind = kind.as_str(),
                "a stored passkey ceremony did not decode"
            );
        }
        Ok(ceremony)
    }
}

/// The store row's id for `key`: keyed, so the table holds neither session
/// hashes nor the ids browsers present.
fn row_id(keys: &Keyring, kind: CeremonyKind, key: &str) -> String {
    keys.mac()
        .digest(&format!("webauthn-ceremony|{}|{key}", kind.as_str()))
}
