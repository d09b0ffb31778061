//! Request signing for TAP (SPEC §6.3, §6.5).
//!
//! Each signer implements [`tap_core::inject::Signer`]: it is built once from
//! a credential value of a known shape (which it checks) and signs the exact
//! request the proxy is about to send. Signers hold the value's secrets as
//! [`tap_core::secret::Secret`]s; their `Debug` output never shows one, and
//! their errors name fields, never values.

pub mod keys;
pub mod oauth1;
pub mod oauth2;
pub mod serve;
pub mod sigv4;

use std::sync::Arc;

use tap_core::inject::{SignError, SignedShape, Signer};
use tap_core::secret::CredentialValue;
use url::Url;

/// The signer for a value of `shape` used towards `target`. Fails (naming a
/// field, never a value) when the value lacks what the shape needs.
pub fn signer_for(
    shape: SignedShape,
    value: &CredentialValue,
    target: &Url,
) -> Result<Arc<dyn Signer>, SignError> {
    match shape {
        SignedShape::OAuth1 => Ok(Arc::new(oauth1::OAuth1Signer::from_value(value)?)),
        SignedShape::AwsSigV4 => Ok(Arc::new(sigv4::SigV4Signer::from_value(value, target)?)),
    }
}
