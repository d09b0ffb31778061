//! Envelope encryption (SPEC §9) and keyed hashing of agent keys (SPEC §3.5).
//!
//! The master key (KEK) wraps one data key (DEK) per team and the MAC key used
//! to look up agent keys and admin tokens. Credential values are sealed with the
//! team DEK under AES-256-GCM, a random 96-bit nonce and an AAD binding the row
//! (team internal id, credential name, DEK id): a ciphertext moved to another
//! row fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Length of every symmetric key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const BLOB_VERSION: u8 = 1;
const CHECK_PLAINTEXT: &[u8] = b"tap master key check v1";
/// Prefix of every agent API key, so secret scanners recognise leaked keys.
pub const AGENT_KEY_PREFIX: &str = "tap_";
/// Prefix of admin API tokens and sessions.
pub const ADMIN_TOKEN_PREFIX: &str = "tapadm_";

/// Errors of the crypto layer. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The key source is neither 64 hex digits nor base64 of 32 bytes.
    #[error("master key must be 64 hex digits or base64 of 32 bytes")]
    BadKeyFormat,
    /// Authentication failed: wrong key, tampered blob or blob moved to another row.
    #[error("decryption failed: wrong key or tampered data")]
    Decrypt,
    /// A blob is shorter than a nonce and tag or has an unknown version.
    #[error("malformed sealed blob")]
    Malformed,
    /// The OS random source failed.
    #[error("random source unavailable")]
    Random,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| CryptoError::Random)?;
    Ok(b)
}

fn seal_raw(key: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Malformed)?;
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let nonce = Nonce::from(nonce_bytes);
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(BLOB_VERSION);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_raw(key: &[u8], blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != BLOB_VERSION {
        return Err(CryptoError::Malformed);
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Malformed)?;
    let nonce_bytes: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    let nonce = Nonce::from(nonce_bytes);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &blob[1 + NONCE_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Decrypt)
}

/// The key-encryption key. Invariant: 32 bytes, zeroed on drop, never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.key_id())
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random_bytes::<KEY_LEN>()?)))
    }

    /// Parses a key source (env value, file content or command output): trimmed,
    /// hex when 64 hex digits, else base64 (standard or url-safe, padded or not)
    /// decoding to exactly 32 bytes.
    pub fn parse(source: &str) -> Result<Self, CryptoError> {
        let s = source.trim();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(s, &mut key[..]).map_err(|_| CryptoError::BadKeyFormat)?;
            return Ok(Self(key));
        }
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(bytes) = engine.decode(s) {
                let bytes = Zeroizing::new(bytes);
                if bytes.len() == KEY_LEN {
                    key.copy_from_slice(&bytes);
                    return Ok(Self(key));
                }
            }
        }
        Err(CryptoError::BadKeyFormat)
    }

    /// The key encoded for a key file: 64 lower-case hex digits.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// A public identifier of this key (16 hex digits), safe to print and store.
    pub fn key_id(&self) -> String {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.0[..]).expect("hmac accepts any key length");
        mac.update(b"tap kek id v1");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// A sealed check value; [`Self::verify_check`] tells whether a key is the one that made it.
    pub fn seal_check(&self) -> Result<Vec<u8>, CryptoError> {
        seal_raw(&self.0[..], CHECK_PLAINTEXT, b"tap|check")
    }

    /// True when `blob` was made by [`Self::seal_check`] under this key.
    pub fn verify_check(&self, blob: &[u8]) -> bool {
        matches!(open_raw(&self.0[..], blob, b"tap|check"), Ok(p) if p.as_slice() == CHECK_PLAINTEXT)
    }

    /// Wraps a team's DEK; the AAD binds the team slug and the DEK id.
    pub fn wrap_dek(&self, team_slug: &str, dek: &Dek) -> Result<Vec<u8>, CryptoError> {
        seal_raw(&self.0[..], &dek.key[..], &dek_aad(team_slug, &dek.id))
    }

    /// Unwraps a team's DEK.
    pub fn unwrap_dek(
        &self,
        team_slug: &str,
        dek_id: &str,
        blob: &[u8],
    ) -> Result<Dek, CryptoError> {
        let raw = open_raw(&self.0[..], blob, &dek_aad(team_slug, dek_id))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() != KEY_LEN {
            return Err(CryptoError::Malformed);
        }
        key.copy_from_slice(&raw);
        Ok(Dek {
            id: dek_id.to_owned(),
            key,
        })
    }

    /// Wraps the MAC key used for agent keys and admin tokens.
    pub fn wrap_mac_key(&self, mac: &KeyMac) -> Result<Vec<u8>, CryptoError> {
        seal_raw(&self.0[..], &mac.0[..], b"tap|mac-key")
    }

    /// Unwraps the MAC key.
    pub fn unwrap_mac_key(&self, blob: &[u8]) -> Result<KeyMac, CryptoError> {
        let raw = open_raw(&self.0[..], blob, b"tap|mac-key")?;
        if raw.len() != KEY_LEN {
            return Err(CryptoError::Malformed);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&raw);
        Ok(KeyMac(key))
    }
}

fn dek_aad(team_slug: &str, dek_id: &str) -> Vec<u8> {
    format!("tap|dek|{team_slug}|{dek_id}").into_bytes()
}

fn value_aad(team_internal_id: i64, credential: &str, dek_id: &str) -> Vec<u8> {
    format!("{team_internal_id}|{credential}|{dek_id}").into_bytes()
}

/// A team's data key. Invariant: zeroed on drop, never printed.
#[derive(Clone)]
pub struct Dek {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dek(id={})", self.id)
    }
}

impl Dek {
    /// A fresh random DEK with a random id.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            id: hex::encode(random_bytes::<8>()?),
            key: Zeroizing::new(random_bytes::<KEY_LEN>()?),
        })
    }

    /// The DEK id stored beside the wrapped key and bound into every value's AAD.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals a credential value for (team, credential name).
    pub fn seal(
        &self,
        team_internal_id: i64,
        credential: &str,
        plaintext: &Secret,
    ) -> Result<Vec<u8>, CryptoError> {
        seal_raw(
            &self.key[..],
            plaintext.expose(),
            &value_aad(team_internal_id, credential, &self.id),
        )
    }

    /// Opens a value sealed by [`Self::seal`] for the same (team, credential name).
    pub fn open(
        &self,
        team_internal_id: i64,
        credential: &str,
        blob: &[u8],
    ) -> Result<Secret, CryptoError> {
        let p = open_raw(
            &self.key[..],
            blob,
            &value_aad(team_internal_id, credential, &self.id),
        )?;
        Ok(Secret::new(p.to_vec()))
    }
}

/// The keyed hash under which agent keys and admin tokens are stored.
#[derive(Clone)]
pub struct KeyMac(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for KeyMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMac([redacted])")
    }
}

impl KeyMac {
    /// A fresh random MAC key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random_bytes::<KEY_LEN>()?)))
    }

    /// HMAC-SHA-256 of a presented key, hex-encoded (the lookup column).
    pub fn digest(&self, presented: &str) -> String {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.0[..]).expect("hmac accepts any key length");
        mac.update(presented.as_bytes());
        digest_hex(&mac.finalize().into_bytes().into())
    }

    /// HMAC-SHA-256 of arbitrary bytes, hex-encoded (binds approved requests).
    pub fn digest_bytes(&self, data: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.0[..]).expect("hmac accepts any key length");
        mac.update(data);
        digest_hex(&mac.finalize().into_bytes().into())
    }

    /// Constant-time check that `data` hashes to `stored_hex`.
    pub fn verify_bytes(&self, data: &[u8], stored_hex: &str) -> bool {
        let d = self.digest_bytes(data);
        d.as_bytes().ct_eq(stored_hex.as_bytes()).into()
    }

    /// Constant-time check that `presented` hashes to `stored_hex`.
    pub fn verify(&self, presented: &str, stored_hex: &str) -> bool {
        let d = self.digest(presented);
        d.as_bytes().ct_eq(stored_hex.as_bytes()).into()
    }
}

/// HKDF `info` of the audit chain key: the label that separates it from every
/// other key derived from the MAC key.
const AUDIT_KEY_INFO: &[u8] = b"tap audit chain v1";

impl KeyMac {
    /// The key of the audit chain's MACs (SPEC §9), derived with HKDF-SHA-256
    /// from this MAC key under its own label. The MAC key is random and
    /// wrapped by the KEK, so a master-key rotation (which re-wraps it) leaves
    /// the audit key, and every MAC made under it, unchanged.
    pub fn audit_key(&self) -> AuditKey {
        let hk = hkdf::Hkdf::<Sha256>::new(None, &self.0[..]);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        // Cannot fail: 32 bytes is far below HKDF-SHA-256's 8160-byte limit.
        let _ = hk.expand(AUDIT_KEY_INFO, &mut key[..]);
        AuditKey(key)
    }
}

/// The key under which audit rows and chain heads are MACed. Invariant: 32
/// bytes, zeroed on drop, never printed.
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

impl AuditKey {
    /// A key from raw bytes (tests, and stores that keep the key elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// HMAC-SHA-256 of the length-prefixed `parts` after a domain `label`,
    /// lower-case hex. Length prefixes make the encoding injective: no two
    /// different part lists MAC the same bytes.
    pub fn mac_hex(&self, label: &[u8], parts: &[&[u8]]) -> String {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.0[..]).expect("hmac accepts any key length");
        mac.update(&(label.len() as u64).to_be_bytes());
        mac.update(label);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        digest_hex(&mac.finalize().into_bytes().into())
    }

    /// Constant-time check that [`Self::mac_hex`] of `label` and `parts` is `stored_hex`.
    pub fn verify_hex(&self, label: &[u8], parts: &[&[u8]], stored_hex: &str) -> bool {
        ct_eq(self.mac_hex(label, parts).as_bytes(), stored_hex.as_bytes())
    }
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A new agent key: `tap_` + 256 random bits, base64url without padding.
pub fn generate_agent_key() -> Result<Zeroizing<String>, CryptoError> {
    generate_token(AGENT_KEY_PREFIX)
}

/// A new admin token or session: `tapadm_` + 256 random bits.
pub fn generate_admin_token() -> Result<Zeroizing<String>, CryptoError> {
    generate_token(ADMIN_TOKEN_PREFIX)
}

fn generate_token(prefix: &str) -> Result<Zeroizing<String>, CryptoError> {
    let raw = Zeroizing::new(random_bytes::<32>()?);
    let mut s = Zeroizing::new(String::with_capacity(prefix.len() + 43));
    s.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw[..], &mut s);
    Ok(s)
}

/// A random public identifier: 16 bytes as 32 lower-case hex digits.
pub fn generate_id() -> Result<String, CryptoError> {
    Ok(hex::encode(random_bytes::<16>()?))
}

/// A random password for generated member accounts (24 base64url chars).
pub fn generate_password() -> Result<Zeroizing<String>, CryptoError> {
    let raw = Zeroizing::new(random_bytes::<18>()?);
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..]),
    ))
}

/// Lower-case hex SHA-256, used by the audit hash chain and approval binding.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    digest_hex(&Sha256::digest(data).into())
}

/// Lower-case hex SHA-256 of the concatenation of `parts`, without building it.
pub fn sha256_hex_parts(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    digest_hex(&h.finalize().into())
}

/// Lower-case hex of a 32-byte digest in one step (`hex::encode` pushes one
/// `char` at a time; these run several times per request: key lookup, audit chain).
fn digest_hex(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    // Cannot fail: the output is exactly twice the input.
    let _ = hex::encode_to_slice(digest, &mut out);
    // Hex digits are ASCII, so this borrows and copies once.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lower_case_hex_of_the_sha256_test_vector() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert_eq!(sha256_hex_parts(&[b"a", b"", b"bc"]), abc);
        let mac = KeyMac::generate().unwrap();
        let d = mac.digest("tap_key");
        assert_eq!(d.len(), 64);
        assert!(
            d.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(d, mac.digest_bytes(b"tap_key"));
    }

    #[test]
    fn key_parses_hex_and_base64_and_rejects_other_lengths() {
        let k = MasterKey::generate().unwrap();
        let hex = k.to_hex();
        assert_eq!(
            MasterKey::parse(&format!("  {}\n", hex.as_str()))
                .unwrap()
                .key_id(),
            k.key_id()
        );
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(hex.as_str()).unwrap());
        assert_eq!(MasterKey::parse(&b64).unwrap().key_id(), k.key_id());
        assert_eq!(
            MasterKey::parse("abcd").unwrap_err(),
            CryptoError::BadKeyFormat
        );
        assert_eq!(MasterKey::parse("").unwrap_err(), CryptoError::BadKeyFormat);
    }

    #[test]
    fn check_value_detects_wrong_key() {
        let k = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let check = k.seal_check().unwrap();
        assert!(k.verify_check(&check));
        assert!(!other.verify_check(&check));
    }

    #[test]
    fn sealed_value_is_bound_to_its_row() {
        let dek = Dek::generate().unwrap();
        let secret = Secret::from("xoxb-very-secret");
        let blob = dek.seal(1, "slack", &secret).unwrap();
        assert_eq!(
            dek.open(1, "slack", &blob).unwrap().expose(),
            secret.expose()
        );
        assert_eq!(
            dek.open(2, "slack", &blob).unwrap_err(),
            CryptoError::Decrypt
        );
        assert_eq!(
            dek.open(1, "github", &blob).unwrap_err(),
            CryptoError::Decrypt
        );
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            dek.open(1, "slack", &tampered).unwrap_err(),
            CryptoError::Decrypt
        );
        assert!(!blob.windows(secret.len()).any(|w| w == secret.expose()));
    }

    #[test]
    fn nonces_are_unique() {
        let dek = Dek::generate().unwrap();
        let s = Secret::from("x");
        let a = dek.seal(1, "a", &s).unwrap();
        let b = dek.seal(1, "a", &s).unwrap();
        assert_ne!(a[1..13], b[1..13]);
    }

    #[test]
    fn dek_and_mac_key_round_trip_through_the_kek() {
        let k = MasterKey::generate().unwrap();
        let dek = Dek::generate().unwrap();
        let wrapped = k.wrap_dek("acme", &dek).unwrap();
        let back = k.unwrap_dek("acme", dek.id(), &wrapped).unwrap();
        let blob = dek.seal(7, "c", &Secret::from("v")).unwrap();
        assert_eq!(back.open(7, "c", &blob).unwrap().expose(), b"v");
        assert!(k.unwrap_dek("other", dek.id(), &wrapped).is_err());
        let mac = KeyMac::generate().unwrap();
        let w = k.wrap_mac_key(&mac).unwrap();
        let mac2 = k.unwrap_mac_key(&w).unwrap();
        let key = generate_agent_key().unwrap();
        assert!(key.starts_with("tap_"));
        assert!(mac2.verify(&key, &mac.digest(&key)));
        assert!(!mac2.verify("tap_other", &mac.digest(&key)));
    }

    #[test]
    fn the_audit_key_is_derived_from_the_mac_key_and_survives_rewrapping() {
        let mac = KeyMac::generate().unwrap();
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let rewrapped = new
            .unwrap_mac_key(
                &new.wrap_mac_key(
                    &old.unwrap_mac_key(&old.wrap_mac_key(&mac).unwrap())
                        .unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
        let a = mac.audit_key().mac_hex(b"l", &[b"x"]);
        assert_eq!(a, rewrapped.audit_key().mac_hex(b"l", &[b"x"]));
        assert_ne!(
            a,
            KeyMac::generate()
                .unwrap()
                .audit_key()
                .mac_hex(b"l", &[b"x"])
        );
        // Domain separated from the MAC key's own digests.
        assert_ne!(mac.audit_key().mac_hex(b"", &[]), mac.digest_bytes(b""));
        // Length-prefixed: moving bytes between parts changes the MAC.
        let k = mac.audit_key();
        assert_ne!(
            k.mac_hex(b"l", &[b"ab", b"c"]),
            k.mac_hex(b"l", &[b"a", b"bc"])
        );
        assert!(k.verify_hex(b"l", &[b"x"], &k.mac_hex(b"l", &[b"x"])));
        assert!(!k.verify_hex(b"l", &[b"y"], &k.mac_hex(b"l", &[b"x"])));
        assert_eq!(format!("{k:?}"), "AuditKey([redacted])");
    }

    #[test]
    fn debug_hides_key_material() {
        let k = MasterKey::generate().unwrap();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(k.to_hex().as_str()));
    }
}
