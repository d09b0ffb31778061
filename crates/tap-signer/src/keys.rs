//! Signing keys for `POST /sign` (SPEC §6.4, §15): a credential value
//! `{"algorithm": "ed25519"|"secp256k1"|"p256", "private_key": "<64 hex>"}`.
//!
//! ed25519 signs the raw payload (RFC 8032). secp256k1 and p256 sign
//! SHA-256(payload) with RFC 6979 deterministic nonces, low-S normalised,
//! as the 64-byte `r‖s`. Public keys: the 32-byte ed25519 key or the 33-byte
//! compressed SEC1 point. Everything is hex (lower case).
//!
//! The private key is parsed into the curve crate's zeroizing key type for
//! one signature and dropped; it never leaves this module, and errors name
//! fields, never values.

use tap_core::secret::CredentialValue;
use zeroize::Zeroizing;

/// A supported signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032) over the raw payload.
    Ed25519,
    /// ECDSA on secp256k1 over SHA-256(payload).
    Secp256k1,
    /// ECDSA on NIST P-256 over SHA-256(payload).
    P256,
}

impl Algorithm {
    /// Parses the `algorithm` field (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ed25519" => Some(Self::Ed25519),
            "secp256k1" => Some(Self::Secp256k1),
            "p256" => Some(Self::P256),
            _ => None,
        }
    }

    /// The spelling used in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Secp256k1 => "secp256k1",
            Self::P256 => "p256",
        }
    }
}

/// Why a signing bundle cannot sign. Never carries key bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The value lacks a string field.
    #[error("signing key has no string field {0:?}")]
    FieldMissing(&'static str),
    /// `algorithm` names something unsupported (a descriptor, safe to show).
    #[error("unsupported algorithm {0:?}: use ed25519, secp256k1 or p256")]
    UnsupportedAlgorithm(String),
    /// `private_key` is not 32 bytes of hex, or not a valid scalar.
    #[error("private_key must be 32 bytes in hex and a valid key for the algorithm")]
    BadPrivateKey,
}

/// A signature and the public key that verifies it, both hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The algorithm used.
    pub algorithm: Algorithm,
    /// 64 bytes: ed25519's signature, or ECDSA's `r‖s` (low S).
    pub signature: String,
    /// 32 bytes (ed25519) or 33 bytes (compressed SEC1).
    pub public_key: String,
}

/// The algorithm of a signing bundle, checked without touching the key.
pub fn algorithm_of(value: &CredentialValue) -> Result<Algorithm, KeyError> {
    let alg = value
        .field("algorithm")
        .ok_or(KeyError::FieldMissing("algorithm"))?;
    let alg = String::from_utf8_lossy(alg.expose()).into_owned();
    Algorithm::parse(&alg).ok_or(KeyError::UnsupportedAlgorithm(alg))
}

fn private_key(value: &CredentialValue) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let raw = value
        .field("private_key")
        .ok_or(KeyError::FieldMissing("private_key"))?;
    let text = raw.expose().trim_ascii();
    let text = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
        .unwrap_or(text);
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, &mut key[..]).map_err(|_| KeyError::BadPrivateKey)?;
    Ok(key)
}

/// Signs `payload` with the bundle in `value`.
pub fn sign(value: &CredentialValue, payload: &[u8]) -> Result<Signed, KeyError> {
    let algorithm = algorithm_of(value)?;
    let key = private_key(value)?;
    let (signature, public_key) = match algorithm {
        Algorithm::Ed25519 => {
            use ed25519_dalek::Signer as _;
            let sk = ed25519_dalek::SigningKey::from_bytes(&key);
            let sig = sk.sign(payload);
            (
                hex::encode(sig.to_bytes()),
                hex::encode(sk.verifying_key().to_bytes()),
            )
        }
        Algorithm::Secp256k1 => {
            use k256::ecdsa::signature::Signer as _;
            let sk = k256::ecdsa::SigningKey::from_slice(&key[..])
                .map_err(|_| KeyError::BadPrivateKey)?;
            let sig: k256::ecdsa::Signature = sk.sign(payload);
            (
                hex::encode(sig.normalize_s().to_bytes()),
                hex::encode(sk.verifying_key().to_sec1_point(true).as_bytes()),
            )
        }
        Algorithm::P256 => {
            use p256::ecdsa::signature::Signer as _;
            let sk = p256::ecdsa::SigningKey::from_slice(&key[..])
                .map_err(|_| KeyError::BadPrivateKey)?;
            let sig: p256::ecdsa::Signature = sk.sign(payload);
            (
                hex::encode(sig.normalize_s().to_bytes()),
                hex::encode(sk.verifying_key().to_sec1_point(true).as_bytes()),
            )
        }
    };
    Ok(Signed {
        algorithm,
        signature,
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(alg: &str, key: &str) -> CredentialValue {
        CredentialValue::parse(
            format!(r#"{{"algorithm":"{alg}","private_key":"{key}"}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn ed25519_matches_the_rfc_8032_test_vector() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let v = bundle(
            "ed25519",
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        );
        let s = sign(&v, b"").unwrap();
        assert_eq!(
            s.public_key,
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            s.signature,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn ecdsa_signatures_are_deterministic_low_s_and_verify() {
        use p256::ecdsa::signature::Verifier as _;
        let key = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
        for alg in ["p256", "secp256k1"] {
            let v = bundle(alg, key);
            let a = sign(&v, b"sample").unwrap();
            let b = sign(&v, b"sample").unwrap();
            assert_eq!(a, b, "{alg}: RFC 6979 is deterministic");
            assert_eq!(a.signature.len(), 128);
            assert_eq!(a.public_key.len(), 66);
            let sig = hex::decode(&a.signature).unwrap();
            let pk = hex::decode(&a.public_key).unwrap();
            if alg == "p256" {
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&pk).unwrap();
                let s = p256::ecdsa::Signature::from_slice(&sig).unwrap();
                assert_eq!(s.normalize_s(), s, "low S");
                vk.verify(b"sample", &s).unwrap();
            } else {
                let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk).unwrap();
                let s = k256::ecdsa::Signature::from_slice(&sig).unwrap();
                assert_eq!(s.normalize_s(), s, "low S");
                k256::ecdsa::signature::Verifier::verify(&vk, b"sample", &s).unwrap();
            }
        }
    }

    #[test]
    fn p256_public_key_matches_rfc_6979_a_2_5() {
        // RFC 6979 A.2.5: the P-256 key pair (Ux = 60FED4BA…, Uy odd → 0x03).
        let v = bundle(
            "p256",
            "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
        );
        let s = sign(&v, b"sample").unwrap();
        assert_eq!(
            s.public_key,
            "0360fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
        );
    }

    #[test]
    fn refuses_bad_bundles_without_showing_the_key() {
        let short = bundle("ed25519", "abcd");
        assert_eq!(sign(&short, b"x").unwrap_err(), KeyError::BadPrivateKey);
        let zero = bundle("p256", &"00".repeat(32));
        assert_eq!(sign(&zero, b"x").unwrap_err(), KeyError::BadPrivateKey);
        let rsa = bundle("rsa", &"11".repeat(32));
        let e = sign(&rsa, b"x").unwrap_err();
        assert_eq!(e, KeyError::UnsupportedAlgorithm("rsa".into()));
        assert!(!e.to_string().contains(&"11".repeat(32)));
        let none = CredentialValue::parse(br#"{"algorithm":"p256"}"#).unwrap();
        assert_eq!(
            sign(&none, b"x").unwrap_err(),
            KeyError::FieldMissing("private_key")
        );
    }
}
