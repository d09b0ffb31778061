//! Signed injection (SPEC §6.3): a credential value whose shape names a
//! signing scheme is not rendered into a header ahead of time; a [`Signer`]
//! signs the exact request the proxy sends, at the moment it sends it.
//!
//! The shapes are recognised here, by field names only (never values), so
//! that the injection plan and the CLI agree on them; the signers themselves
//! live in `tap-signer`.

use std::fmt;

use url::Url;

use super::{DEFAULT_AUTH_FORMAT, Format};
use crate::secret::{CredentialValue, Secret};
use crate::time::Clock;

/// A credential value shape signed per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedShape {
    /// OAuth 1.0a key set (RFC 5849): `consumer_key`, `consumer_secret`,
    /// `access_token` (or `token`), `access_token_secret` (or `token_secret`),
    /// optional `signature_method` (`HMAC-SHA1`, the default, or `HMAC-SHA256`).
    OAuth1,
    /// AWS Signature Version 4: `access_key_id`, `secret_access_key`,
    /// optional `session_token`, `region` and `service` (else read from an
    /// `*.amazonaws.com` host).
    AwsSigV4,
}

impl SignedShape {
    /// The shape's name as shown to operators (`tap cred show`).
    pub fn name(self) -> &'static str {
        match self {
            Self::OAuth1 => "oauth1",
            Self::AwsSigV4 => "aws_sigv4",
        }
    }

    /// The shape of a value, by the fields it has; `None` for a text value or
    /// a JSON value of no signed shape.
    pub fn of(value: &CredentialValue) -> Option<Self> {
        if !value.is_json() {
            return None;
        }
        let names = value.field_names();
        let has = |n: &str| names.iter().any(|f| f == n);
        let oauth1 = has("consumer_key")
            && has("consumer_secret")
            && (has("access_token") || has("token"))
            && (has("access_token_secret") || has("token_secret"));
        if oauth1 {
            return Some(Self::OAuth1);
        }
        (has("access_key_id") && has("secret_access_key")).then_some(Self::AwsSigV4)
    }

    /// The shape a direct credential is signed with: its value has a signed
    /// shape, it has no bindings, and its effective format (the default
    /// included) injects the bare `{value}`. A format that picks fields
    /// (`{value.consumer_key}`) keeps the static injection the operator chose.
    pub fn for_credential(
        auth_header_format: Option<&str>,
        has_bindings: bool,
        value: &CredentialValue,
    ) -> Option<Self> {
        if has_bindings {
            return None;
        }
        let bare = Format::parse(auth_header_format.unwrap_or(DEFAULT_AUTH_FORMAT))
            .is_ok_and(|f| f.uses_bare_value());
        if !bare {
            return None;
        }
        Self::of(value)
    }
}

/// `X-TAP-Auth-Mode` (SPEC §3.1): how a hybrid X/Twitter credential (an
/// OAuth 1.0a key set with a `bearer_token`) authenticates one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// The credential's own scheme (OAuth 1.0a for a key set).
    #[default]
    Auto,
    /// `Authorization: Bearer <bearer_token>` (X's app-only authentication).
    Bearer,
    /// OAuth 1.0a user-context signing.
    OAuth1,
}

impl AuthMode {
    /// Parses a header value (case-insensitive; empty is `auto`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "bearer" => Some(Self::Bearer),
            "oauth1" => Some(Self::OAuth1),
            _ => None,
        }
    }

    /// The header spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Bearer => "bearer",
            Self::OAuth1 => "oauth1",
        }
    }
}

/// The request a [`Signer`] signs: exactly what goes upstream.
#[derive(Clone, Copy)]
pub struct OutboundRequest<'a> {
    /// The method, upper-case.
    pub method: &'a str,
    /// The final URL, query included (injected query parameters too).
    pub url: &'a Url,
    /// The `Content-Type` the request carries, if any.
    pub content_type: Option<&'a str>,
    /// The other headers sent as they are (lower-case names, visible-ASCII
    /// values), before the signer's own headers replace any of the same name.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, byte for byte.
    pub body: &'a [u8],
}

impl fmt::Debug for OutboundRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL and body may hold injected or agent data: never printed.
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Errors building a signer or signing. Never carries secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The value lacks a string field the scheme needs.
    #[error("credential value has no string field {0:?}")]
    FieldMissing(&'static str),
    /// A descriptor field holds a value the scheme does not support.
    #[error("unsupported {field}: {value:?}")]
    Unsupported {
        /// The descriptor field.
        field: &'static str,
        /// Its value (a descriptor, never a secret).
        value: String,
    },
    /// The system's random source failed (no nonce).
    #[error("no randomness for a nonce")]
    Random,
    /// The signing library refused the request (an unusable URL or header).
    #[error("the request could not be signed")]
    Failed,
    /// A produced header value holds a control character.
    #[error("signed header value contains a control character")]
    ControlChar,
}

/// Signs one outbound request.
///
/// Invariant: implementations are pure apart from reading `clock` and the
/// system's random source; they never log, and neither their `Debug` output
/// nor their errors show a secret.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The headers (lower-case names) to set on `req` before it is sent;
    /// each replaces any header of that name.
    fn sign(
        &self,
        req: &OutboundRequest<'_>,
        clock: &dyn Clock,
    ) -> Result<Vec<(String, Secret)>, SignError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> CredentialValue {
        CredentialValue::parse(s.as_bytes()).unwrap()
    }

    const OAUTH1: &str = r#"{"consumer_key":"ck","consumer_secret":"cs","access_token":"t","access_token_secret":"ts"}"#;

    #[test]
    fn recognises_the_oauth1_key_set_and_its_aliases() {
        assert_eq!(SignedShape::of(&v(OAUTH1)), Some(SignedShape::OAuth1));
        let alias =
            r#"{"consumer_key":"ck","consumer_secret":"cs","token":"t","token_secret":"ts"}"#;
        assert_eq!(SignedShape::of(&v(alias)), Some(SignedShape::OAuth1));
        let partial = r#"{"consumer_key":"ck","consumer_secret":"cs","token":"t"}"#;
        assert_eq!(SignedShape::of(&v(partial)), None);
        let aws = r#"{"access_key_id":"AKID","secret_access_key":"s","region":"eu-west-1"}"#;
        assert_eq!(SignedShape::of(&v(aws)), Some(SignedShape::AwsSigV4));
        assert_eq!(SignedShape::of(&v("plain")), None);
    }

    #[test]
    fn a_field_picking_format_or_bindings_keep_static_injection() {
        let value = v(OAUTH1);
        assert_eq!(
            SignedShape::for_credential(None, false, &value),
            Some(SignedShape::OAuth1)
        );
        assert_eq!(
            SignedShape::for_credential(Some("OAuth {value}"), false, &value),
            Some(SignedShape::OAuth1)
        );
        assert_eq!(
            SignedShape::for_credential(Some("Bearer {value.access_token}"), false, &value),
            None
        );
        assert_eq!(SignedShape::for_credential(None, true, &value), None);
    }
}
