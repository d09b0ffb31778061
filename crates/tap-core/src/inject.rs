//! The injection format language of SPEC §6.1.
//!
//! `{value}`, `{value.field}` and `{base64(expr)}` where expr mixes literal text
//! with `value` / `value.field`. Formats are parsed when a credential is saved
//! (so a bad format is refused at create) and rendered per request into
//! [`Secret`]s that never leave this module as strings.

mod signer;
mod token;

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use self::signer::{AuthMode, OutboundRequest, SignError, SignedShape, Signer};
pub use self::token::{GOOGLE_TOKEN_URL, TokenShape, is_signing_key};
use crate::secret::{CredentialValue, Secret};
use crate::target::TargetUrl;

/// The format used when a credential names none.
pub const DEFAULT_AUTH_FORMAT: &str = "Bearer {value}";

/// Errors parsing or rendering a format. Never carries secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    /// The format text is malformed.
    #[error("invalid injection format: {0}")]
    BadFormat(String),
    /// `{value.field}` names a field the JSON value does not have as a string.
    #[error("credential value has no string field {0:?}")]
    FieldMissing(String),
    /// A JSON value is injected whole through bare `{value}`.
    #[error(
        "credential value is a JSON object but the format injects the whole value; bind each field"
    )]
    MultiSecretUnbound,
    /// A rendered header value holds CR, LF or NUL.
    #[error("rendered header value contains a control character")]
    ControlChar,
    /// A binding names neither a header nor a query parameter, or an invalid header name.
    #[error("invalid binding: {0}")]
    BadBinding(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Value,
    Field(String),
    Base64(Vec<Seg>),
}

/// A parsed format. Invariant: `Base64` segments never nest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    segs: Vec<Seg>,
}

fn parse_expr(inner: &str) -> Result<Vec<Seg>, InjectError> {
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut rest = inner;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("value") {
            let (seg, consumed) = if let Some(f) = after.strip_prefix('.') {
                let n = f
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                if n == 0 {
                    return Err(InjectError::BadFormat("'value.' needs a field name".into()));
                }
                (Seg::Field(f[..n].to_owned()), 5 + 1 + n)
            } else {
                (Seg::Value, 5)
            };
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(seg);
            rest = &rest[consumed..];
        } else {
            let ch = rest.chars().next().unwrap_or_default();
            lit.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok(segs)
}

impl Format {
    /// Parses a format such as `Bearer {value}` or `Basic {base64(value.user:value.pass)}`.
    pub fn parse(s: &str) -> Result<Self, InjectError> {
        if s.len() > 1024 {
            return Err(InjectError::BadFormat("longer than 1024 bytes".into()));
        }
        if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(InjectError::BadFormat(
                "contains a control character".into(),
            ));
        }
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                return Err(InjectError::BadFormat("unclosed '{'".into()));
            };
            let token = &rest[open + 1..open + close];
            let seg = if token == "value" {
                Seg::Value
            } else if let Some(field) = token.strip_prefix("value.") {
                if field.is_empty()
                    || !field
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(InjectError::BadFormat(format!(
                        "bad field name in {{{token}}}"
                    )));
                }
                Seg::Field(field.to_owned())
            } else if let Some(inner) = token
                .strip_prefix("base64(")
                .and_then(|t| t.strip_suffix(')'))
            {
                let expr = parse_expr(inner)?;
                if !expr.iter().any(|s| matches!(s, Seg::Value | Seg::Field(_))) {
                    return Err(InjectError::BadFormat(
                        "base64() must use value or value.field".into(),
                    ));
                }
                Seg::Base64(expr)
            } else {
                return Err(InjectError::BadFormat(format!(
                    "unknown placeholder {{{token}}}"
                )));
            };
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(seg);
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(InjectError::BadFormat("unmatched '}'".into()));
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        if !segs.iter().any(|s| !matches!(s, Seg::Lit(_))) {
            return Err(InjectError::BadFormat("format must use {value}".into()));
        }
        Ok(Self { segs })
    }

    /// True when the format injects the whole value through bare `value`.
    pub fn uses_bare_value(&self) -> bool {
        fn any(segs: &[Seg]) -> bool {
            segs.iter().any(|s| match s {
                Seg::Value => true,
                Seg::Base64(inner) => any(inner),
                _ => false,
            })
        }
        any(&self.segs)
    }

    /// Renders the format with a value. The output is a secret.
    pub fn render(&self, value: &CredentialValue) -> Result<Secret, InjectError> {
        let mut out = Zeroizing::new(Vec::new());
        render_into(&self.segs, value, &mut out)?;
        Ok(Secret::new(std::mem::take(&mut *out)))
    }
}

fn render_into(
    segs: &[Seg],
    value: &CredentialValue,
    out: &mut Vec<u8>,
) -> Result<(), InjectError> {
    for seg in segs {
        match seg {
            Seg::Lit(l) => out.extend_from_slice(l.as_bytes()),
            Seg::Value => match value {
                CredentialValue::Text(s) => out.extend_from_slice(s.expose()),
                CredentialValue::Json(_) => return Err(InjectError::MultiSecretUnbound),
            },
            Seg::Field(f) => {
                let s = value
                    .field(f)
                    .ok_or_else(|| InjectError::FieldMissing(f.clone()))?;
                out.extend_from_slice(s.expose());
            }
            Seg::Base64(inner) => {
                let mut raw = Zeroizing::new(Vec::new());
                render_into(inner, value, &mut raw)?;
                let mut enc = Zeroizing::new(String::new());
                base64::engine::general_purpose::STANDARD.encode_string(&raw[..], &mut enc);
                out.extend_from_slice(enc.as_bytes());
            }
        }
    }
    Ok(())
}

/// Where a bound secret goes: a header or a query parameter (beyond SPEC §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthBinding {
    /// Header name, when the binding sets a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter key, when the binding sets a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The format rendered into the header or parameter.
    pub format: String,
}

fn valid_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 128
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl AuthBinding {
    /// Checks the target (exactly one of header / query) and the format.
    pub fn validate(&self) -> Result<(), InjectError> {
        match (&self.header, &self.query) {
            (Some(h), None) if valid_header_name(h) => {
                let lower = h.to_ascii_lowercase();
                if lower == "host"
                    || lower == "content-length"
                    || lower == "transfer-encoding"
                    || lower.starts_with("x-tap-")
                {
                    return Err(InjectError::BadBinding(format!(
                        "header {h} cannot be bound"
                    )));
                }
            }
            (None, Some(q)) if !q.is_empty() && q.len() <= 128 => {}
            _ => {
                return Err(InjectError::BadBinding(
                    "set exactly one of a valid header name or a query key".into(),
                ));
            }
        }
        Format::parse(&self.format).map(|_| ())
    }
}

/// What to inject into one upstream request. Values are secrets.
#[derive(Debug, Default)]
pub struct Injection {
    /// Header name (lower-case) and value.
    pub headers: Vec<(String, Secret)>,
    /// Query key and value.
    pub query: Vec<(String, Secret)>,
    /// Signs the final request (SPEC §6.3) after the static parts are applied.
    pub signer: Option<Arc<dyn Signer>>,
    /// Tokens minted for this request (SPEC §6.3): scrubbed from its answer
    /// as `[REDACTED:<credential>.token]`.
    pub minted: Vec<Secret>,
    /// A sidecar (SPEC §6.2) the request is sent to instead of its target,
    /// which then travels in `X-OAuth-Target`. `None`: sent to the target.
    pub via: Option<TargetUrl>,
}

impl Injection {
    /// An injection that only signs.
    pub fn signed(signer: Arc<dyn Signer>) -> Self {
        Self {
            headers: Vec::new(),
            query: Vec::new(),
            signer: Some(signer),
            minted: Vec::new(),
            via: None,
        }
    }
}

/// The names of headers a credential injects (lower-case); agents may not pre-set them.
pub fn injected_header_names(bindings: &[AuthBinding]) -> Vec<String> {
    if bindings.is_empty() {
        return vec!["authorization".to_owned()];
    }
    bindings
        .iter()
        .filter_map(|b| b.header.as_ref().map(|h| h.to_ascii_lowercase()))
        .collect()
}

/// Builds the injection for a direct credential (SPEC §6.1).
pub fn plan(
    auth_header_format: Option<&str>,
    bindings: &[AuthBinding],
    value: &CredentialValue,
) -> Result<Injection, InjectError> {
    let mut inj = Injection::default();
    if bindings.is_empty() {
        let format = Format::parse(auth_header_format.unwrap_or(DEFAULT_AUTH_FORMAT))?;
        if value.is_json() && format.uses_bare_value() {
            return Err(InjectError::MultiSecretUnbound);
        }
        let v = format.render(value)?;
        check_header_value(&v)?;
        inj.headers.push(("authorization".to_owned(), v));
        return Ok(inj);
    }
    for b in bindings {
        let format = Format::parse(&b.format)?;
        let v = format.render(value)?;
        match (&b.header, &b.query) {
            (Some(h), _) => {
                check_header_value(&v)?;
                inj.headers.push((h.to_ascii_lowercase(), v));
            }
            (None, Some(q)) => inj.query.push((q.clone(), v)),
            (None, None) => return Err(InjectError::BadBinding("binding without target".into())),
        }
    }
    Ok(inj)
}

fn check_header_value(v: &Secret) -> Result<(), InjectError> {
    if v.expose()
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || b == 0)
    {
        Err(InjectError::ControlChar)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> CredentialValue {
        CredentialValue::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn default_format_is_bearer() {
        let inj = plan(None, &[], &text("sk-123")).unwrap();
        assert_eq!(inj.headers[0].0, "authorization");
        assert_eq!(inj.headers[0].1.expose(), b"Bearer sk-123");
    }

    #[test]
    fn basic_auth_from_fields() {
        let v = CredentialValue::parse(br#"{"username":"u","password":"p:w"}"#).unwrap();
        let inj = plan(
            Some("Basic {base64(value.username:value.password)}"),
            &[],
            &v,
        )
        .unwrap();
        assert_eq!(inj.headers[0].1.expose(), b"Basic dTpwOnc=");
    }

    #[test]
    fn json_value_with_bare_value_is_unbound() {
        let v = CredentialValue::parse(br#"{"a":"b"}"#).unwrap();
        assert_eq!(
            plan(None, &[], &v).unwrap_err(),
            InjectError::MultiSecretUnbound
        );
    }

    #[test]
    fn missing_field_is_named() {
        let v = CredentialValue::parse(br#"{"a":"b"}"#).unwrap();
        let b = [AuthBinding {
            header: Some("X-Key".into()),
            query: None,
            format: "{value.key}".into(),
        }];
        assert_eq!(
            plan(None, &b, &v).unwrap_err(),
            InjectError::FieldMissing("key".into())
        );
        assert_eq!(
            plan(None, &b, &text("plain")).unwrap_err(),
            InjectError::FieldMissing("key".into())
        );
    }

    #[test]
    fn bindings_set_headers_and_query() {
        let v = CredentialValue::parse(br#"{"key":"k1","secret":"s1"}"#).unwrap();
        let b = [
            AuthBinding {
                header: Some("X-Api-Key".into()),
                query: None,
                format: "{value.key}".into(),
            },
            AuthBinding {
                header: None,
                query: Some("sig".into()),
                format: "{value.secret}".into(),
            },
        ];
        let inj = plan(None, &b, &v).unwrap();
        assert_eq!(inj.headers[0].0, "x-api-key");
        assert_eq!(inj.headers[0].1.expose(), b"k1");
        assert_eq!(inj.query[0].1.expose(), b"s1");
        assert_eq!(injected_header_names(&b), vec!["x-api-key".to_string()]);
    }

    #[test]
    fn bad_formats_are_refused() {
        for f in [
            "Bearer",
            "{value",
            "{nope}",
            "{value.}",
            "x}",
            "{base64(abc)}",
            "a\r\n{value}",
        ] {
            assert!(Format::parse(f).is_err(), "{f}");
        }
    }

    #[test]
    fn control_chars_in_value_are_refused() {
        assert_eq!(
            plan(None, &[], &text("a\nb")).unwrap_err(),
            InjectError::ControlChar
        );
    }
}
