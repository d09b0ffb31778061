//! OAuth 1.0a request signing (RFC 5849 §3), HMAC-SHA1 and HMAC-SHA256.
//!
//! The signature base string (§3.4.1) covers the upper-case method, the base
//! string URI (scheme and host lower-case, non-default port, path), the query
//! parameters, the body parameters of a single-part
//! `application/x-www-form-urlencoded` body, and the protocol parameters —
//! each pair decoded from its form encoding, re-encoded per §3.6, sorted by
//! name then value. Every request gets a fresh nonce (128 random bits) and the
//! clock's timestamp.

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use tap_core::inject::{OutboundRequest, SignError, Signer};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::time::Clock;
use url::Url;
use zeroize::Zeroizing;

#[cfg(test)]
mod tests;

/// The signature method (RFC 5849 §3.4.2; HMAC-SHA256 is the common extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `HMAC-SHA1`, the default.
    HmacSha1,
    /// `HMAC-SHA256`.
    HmacSha256,
}

impl Method {
    /// The `oauth_signature_method` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC-SHA1",
            Self::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// Parses an `oauth_signature_method` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("HMAC-SHA1") {
            Some(Self::HmacSha1)
        } else if s.eq_ignore_ascii_case("HMAC-SHA256") {
            Some(Self::HmacSha256)
        } else {
            None
        }
    }
}

/// An OAuth 1.0a key set. Invariant: the secrets are never shown (`Debug`
/// prints only the method).
#[derive(Clone)]
pub struct KeySet {
    /// `oauth_consumer_key`.
    pub consumer_key: Secret,
    /// The consumer (client) shared secret.
    pub consumer_secret: Secret,
    /// `oauth_token`.
    pub token: Secret,
    /// The token shared secret.
    pub token_secret: Secret,
    /// The signature method.
    pub method: Method,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Reads the key set from a JSON credential value (SPEC §6.3 field names;
    /// `token` / `token_secret` accepted for `access_token` / `access_token_secret`).
    pub fn from_value(value: &CredentialValue) -> Result<Self, SignError> {
        let field = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|n| value.field(n))
                .ok_or(SignError::FieldMissing(names[0]))
        };
        let method = match value.field("signature_method") {
            None => Method::HmacSha1,
            Some(m) => {
                let text = String::from_utf8_lossy(m.expose()).into_owned();
                Method::parse(&text).ok_or(SignError::Unsupported {
                    field: "signature_method",
                    value: text,
                })?
            }
        };
        Ok(Self {
            consumer_key: field(&["consumer_key"])?,
            consumer_secret: field(&["consumer_secret"])?,
            token: field(&["access_token", "token"])?,
            token_secret: field(&["access_token_secret", "token_secret"])?,
            method,
        })
    }
}

/// Percent-encodes per RFC 5849 §3.6: every byte but `A-Z a-z 0-9 - . _ ~`
/// as `%XX` with upper-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes one `application/x-www-form-urlencoded` name or value: `+` is a
/// space, `%XX` a byte; a `%` not followed by two hex digits stays as is.
fn form_decode(s: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The decoded pairs of a form-encoded string (empty parts skipped; a part
/// without `=` is a name with an empty value).
fn form_pairs(s: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    s.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|p| {
        match p.iter().position(|&b| b == b'=') {
            Some(eq) => (form_decode(&p[..eq]), form_decode(&p[eq + 1..])),
            None => (form_decode(p), Vec::new()),
        }
    })
}

/// True when the body's parameters are signed (§3.4.1.3.1): the content type
/// is `application/x-www-form-urlencoded`.
fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// The base string URI (§3.4.1.2): scheme and host lower-case, the port only
/// when not the scheme's default, the path; no query, no fragment.
fn base_uri(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let scheme = url.scheme().to_ascii_lowercase();
    // `url` already drops a default port; `port()` is the explicit other one.
    match url.port() {
        Some(p) => format!("{scheme}://{host}:{p}{}", url.path()),
        None => format!("{scheme}://{host}{}", url.path()),
    }
}

/// The signature base string (§3.4.1) for `req` with the protocol parameters
/// `oauth` (already decoded, without `oauth_signature`).
pub fn base_string(req: &OutboundRequest<'_>, oauth: &[(&str, &[u8])]) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(q) = req.url.query() {
        pairs.extend(form_pairs(q.as_bytes()).map(|(k, v)| (encode(&k), encode(&v))));
    }
    if is_form(req.content_type) {
        pairs.extend(form_pairs(req.body).map(|(k, v)| (encode(&k), encode(&v))));
    }
    pairs.extend(oauth.iter().map(|(k, v)| (encode(k.as_bytes()), encode(v))));
    pairs.sort();
    let normalized = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        encode(req.method.to_ascii_uppercase().as_bytes()),
        encode(base_uri(req.url).as_bytes()),
        encode(normalized.as_bytes())
    )
}

/// The HMAC signature (§3.4.2) of `base` under the key set, base64.
pub fn signature(keys: &KeySet, base: &str) -> String {
    let key = Zeroizing::new(format!(
        "{}&{}",
        encode(keys.consumer_secret.expose()),
        encode(keys.token_secret.expose())
    ));
    let digest = match keys.method {
        Method::HmacSha1 => {
            let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(key.as_bytes())
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Method::HmacSha256 => {
            let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(key.as_bytes())
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The `Authorization` header value (§3.5.1) for `req`, signed with the
/// given timestamp and nonce.
pub fn authorization(
    keys: &KeySet,
    req: &OutboundRequest<'_>,
    timestamp: i64,
    nonce: &str,
) -> Secret {
    let timestamp = timestamp.max(0).to_string();
    let oauth: [(&str, &[u8]); 5] = [
        ("oauth_consumer_key", keys.consumer_key.expose()),
        ("oauth_nonce", nonce.as_bytes()),
        ("oauth_signature_method", keys.method.as_str().as_bytes()),
        ("oauth_timestamp", timestamp.as_bytes()),
        ("oauth_token", keys.token.expose()),
    ];
    let sig = signature(keys, &base_string(req, &oauth));
    let mut header = Zeroizing::new(String::from("OAuth "));
    for (k, v) in oauth
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain([("oauth_signature", sig.as_bytes())])
    {
        if header.len() > "OAuth ".len() {
            header.push_str(", ");
        }
        header.push_str(k);
        header.push_str("=\"");
        header.push_str(&encode(v));
        header.push('"');
    }
    Secret::new(header.as_bytes().to_vec())
}

/// A fresh nonce: 128 random bits as hex.
fn nonce() -> Result<String, SignError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| SignError::Random)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Signs requests with an OAuth 1.0a key set.
#[derive(Debug)]
pub struct OAuth1Signer {
    keys: KeySet,
}

impl OAuth1Signer {
    /// A signer for a key set.
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }

    /// A signer for a JSON credential value (see [`KeySet::from_value`]).
    pub fn from_value(value: &CredentialValue) -> Result<Self, SignError> {
        KeySet::from_value(value).map(Self::new)
    }
}

impl Signer for OAuth1Signer {
    fn sign(
        &self,
        req: &OutboundRequest<'_>,
        clock: &dyn Clock,
    ) -> Result<Vec<(String, Secret)>, SignError> {
        let header = authorization(&self.keys, req, clock.now_secs(), &nonce()?);
        if header
            .expose()
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0)
        {
            return Err(SignError::ControlChar);
        }
        Ok(vec![("authorization".to_owned(), header)])
    }
}
