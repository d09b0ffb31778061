//! The WebAuthn relying party and the ceremonies in progress (bounded,
//! expiring, in this process). Held by the proxy state; the handlers live in
//! [`super::passkey`] and [`super::passkey_login`].

use std::sync::Arc;

use webauthn_rs::prelude::{PasskeyAuthentication, PasskeyRegistration, Webauthn, WebauthnBuilder};

use crate::config::WebauthnConfig;

/// A ceremony must finish within this long after it began.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Ceremonies in progress at once (oldest dropped beyond).
const MAX_CEREMONIES: u64 = 10_000;

pub enum Ceremony {
    Register {
        state: PasskeyRegistration,
        name: String,
        started_ms: i64,
    },
    Approve {
        state: PasskeyAuthentication,
        txn_id: String,
        request_hash: String,
        started_ms: i64,
    },
    /// A passkey sign-in; `state` is `None` for a decoy (an unknown e-mail or
    /// one without passkeys), which can only fail.
    SignIn {
        state: Option<PasskeyAuthentication>,
        account_id: i64,
        started_ms: i64,
    },
}

/// The relying party could not be set up from `TAP_WEBAUTHN_*`.
#[derive(Debug, thiserror::Error)]
#[error("WebAuthn relying party: {0}")]
pub struct PasskeySetupError(#[source] webauthn_rs::prelude::WebauthnError);

/// The relying party and the ceremonies in progress.
pub struct PasskeyService {
    pub(super) webauthn: Webauthn,
    pub(super) ceremonies: moka::sync::Cache<String, Arc<Ceremony>>,
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
            ceremonies: moka::sync::Cache::builder()
                .max_capacity(MAX_CEREMONIES)
                .time_to_live(std::time::Duration::from_millis(
                    u64::try_from(CEREMONY_TTL_MS).unwrap_or(300_000),
                ))
                .build(),
            rp_id: config.rp_id.clone(),
        })
    }

    /// The relying party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }
}
