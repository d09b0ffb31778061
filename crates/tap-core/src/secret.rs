//! Secret values as types, never as strings.
//!
//! A [`Secret`] zeroes its bytes on drop, prints as `[redacted]`, has no
//! `Serialize`, and is read only through [`Secret::expose`].

use std::fmt;

use zeroize::Zeroizing;

/// Bytes of a secret. Invariant: never printed, never serialised, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes; the caller's copy should itself be zeroizing.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads the secret. Callers must not log, format or persist the result in clear.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Field names of a JSON credential value that are descriptors, not secrets (SPEC §14).
pub const DESCRIPTOR_FIELDS: &[&str] = &[
    "algorithm",
    "key_encoding",
    "token_url",
    "region",
    "service",
    "scope",
    "client_id",
    // OAuth 1.0a's `HMAC-SHA1` / `HMAC-SHA256`: as a "secret" it would be
    // redacted from every answer and refuse agent requests naming it.
    "signature_method",
];

/// A decrypted credential value: a single string or a JSON object of fields.
///
/// Invariant: every string field that is not a descriptor is a secret; the
/// `Debug` output names fields but never shows a value.
#[derive(Clone)]
pub enum CredentialValue {
    /// A plain secret string (API key, token).
    Text(Secret),
    /// A JSON object; the raw JSON is kept sealed-equivalent in memory.
    Json(Secret),
}

/// Errors reading a credential value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// The value is empty.
    #[error("credential value is empty")]
    Empty,
    /// The value looked like JSON but is not a JSON object.
    #[error("credential value JSON must be an object of fields")]
    NotAnObject,
}

impl CredentialValue {
    /// Parses input as given by an operator: a JSON object becomes a multi-secret
    /// value, anything else a text secret. Surrounding ASCII whitespace (a trailing
    /// newline from stdin) is trimmed.
    pub fn parse(raw: &[u8]) -> Result<Self, ValueError> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(ValueError::Empty);
        }
        if trimmed.first() == Some(&b'{') {
            return match serde_json::from_slice::<serde_json::Value>(trimmed) {
                Ok(serde_json::Value::Object(_)) => Ok(Self::Json(Secret::new(trimmed.to_vec()))),
                _ => Err(ValueError::NotAnObject),
            };
        }
        Ok(Self::Text(Secret::new(trimmed.to_vec())))
    }

    /// The bytes to seal in the store.
    pub fn sealed_form(&self) -> &Secret {
        match self {
            Self::Text(s) | Self::Json(s) => s,
        }
    }

    /// Rebuilds from the bytes stored by [`Self::sealed_form`] and the stored kind.
    pub fn from_stored(bytes: Vec<u8>, is_json: bool) -> Self {
        if is_json {
            Self::Json(Secret::new(bytes))
        } else {
            Self::Text(Secret::new(bytes))
        }
    }

    /// True for a JSON object value.
    pub fn is_json(&self) -> bool {
        matches!(self, Self::Json(_))
    }

    /// A string field of a JSON value (`None` for text values or missing / non-string fields).
    pub fn field(&self, name: &str) -> Option<Secret> {
        let Self::Json(raw) = self else { return None };
        let v: serde_json::Value = serde_json::from_slice(raw.expose()).ok()?;
        match v.get(name)? {
            serde_json::Value::String(s) => Some(Secret::new(s.as_bytes().to_vec())),
            _ => None,
        }
    }

    /// Every secret string in this value with its scrub label: the whole value
    /// for text, each non-descriptor string field (`<name>.<field>`) for JSON.
    pub fn secrets(&self, credential: &str) -> Vec<(String, Secret)> {
        match self {
            Self::Text(s) => vec![(credential.to_owned(), s.clone())],
            Self::Json(raw) => {
                let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_slice::<serde_json::Value>(raw.expose())
                else {
                    return Vec::new();
                };
                map.iter()
                    .filter(|(k, _)| !DESCRIPTOR_FIELDS.contains(&k.as_str()))
                    .filter_map(|(k, v)| match v {
                        serde_json::Value::String(s) if !s.is_empty() => Some((
                            format!("{credential}.{k}"),
                            Secret::new(s.as_bytes().to_vec()),
                        )),
                        _ => None,
                    })
                    .collect()
            }
        }
    }

    /// Names of the fields of a JSON value (for display; never values).
    pub fn field_names(&self) -> Vec<String> {
        let Self::Json(raw) = self else {
            return Vec::new();
        };
        match serde_json::from_slice::<serde_json::Value>(raw.expose()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for CredentialValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("CredentialValue::Text([redacted])"),
            Self::Json(_) => write!(f, "CredentialValue::Json({:?})", self.field_names()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_value() {
        let s = Secret::from("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let v =
            CredentialValue::parse(br#"{"user":"u","password":"hunter2-very-secret"}"#).unwrap();
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("password"));
    }

    #[test]
    fn parses_text_trimming_newline_and_json_objects() {
        let v = CredentialValue::parse(b"abc\n").unwrap();
        assert_eq!(v.sealed_form().expose(), b"abc");
        assert!(!v.is_json());
        let j = CredentialValue::parse(br#"{"a":"1","region":"eu"}"#).unwrap();
        assert!(j.is_json());
        assert_eq!(j.field("a").unwrap().expose(), b"1");
        let secrets = j.secrets("aws");
        assert_eq!(secrets.len(), 1, "descriptors are not secrets");
        assert_eq!(secrets[0].0, "aws.a");
        assert_eq!(
            CredentialValue::parse(b"  ").unwrap_err(),
            ValueError::Empty
        );
        assert_eq!(
            CredentialValue::parse(b"{nope").unwrap_err(),
            ValueError::NotAnObject
        );
    }
}
