//! Token-flow and signing-key shapes (SPEC §6.3, §6.4): a credential value
//! whose fields name an OAuth 2 grant is not injected as it is; the proxy
//! trades it for an access token at a token endpoint and injects that. A
//! value with `algorithm` and `private_key` is a signing key, used only by
//! `POST /sign`.
//!
//! Recognised by field names only (never values), so that the proxy and the
//! CLI agree on them.

use super::{DEFAULT_AUTH_FORMAT, Format};
use crate::secret::CredentialValue;

/// Google's OAuth 2 token endpoint: the default for a refresh-token bundle
/// without `token_url`.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// A credential value shape traded for an access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenShape {
    /// OAuth 2 refresh-token bundle: `client_id`, `client_secret`,
    /// `refresh_token`, optional `token_url` (Google's by default), optional
    /// `scope`.
    RefreshToken,
    /// OAuth 2 client credentials: `client_id`, `client_secret`, `token_url`,
    /// optional `scope`; no `refresh_token`.
    ClientCredentials,
}

impl TokenShape {
    /// The shape's name as shown to operators (`tap cred show`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RefreshToken => "oauth2_refresh_token",
            Self::ClientCredentials => "oauth2_client_credentials",
        }
    }

    /// The shape of a value, by the fields it has.
    pub fn of(value: &CredentialValue) -> Option<Self> {
        if !value.is_json() {
            return None;
        }
        let names = value.field_names();
        let has = |n: &str| names.iter().any(|f| f == n);
        if !(has("client_id") && has("client_secret")) {
            return None;
        }
        if has("refresh_token") {
            Some(Self::RefreshToken)
        } else if has("token_url") {
            Some(Self::ClientCredentials)
        } else {
            None
        }
    }

    /// The token shape a direct credential is injected with: a value of a
    /// token shape, no bindings, and an effective format (the default
    /// included) using the bare `{value}`, which then stands for the minted
    /// access token. A format picking fields keeps the static injection.
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

/// True for a signing bundle (`algorithm` and `private_key` fields): usable
/// only through `POST /sign`, refused on `/forward`.
pub fn is_signing_key(value: &CredentialValue) -> bool {
    value.is_json() && value.field("algorithm").is_some() && value.field("private_key").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> CredentialValue {
        CredentialValue::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn recognises_refresh_and_client_credentials_bundles() {
        let refresh = v(r#"{"client_id":"c","client_secret":"s","refresh_token":"r"}"#);
        assert_eq!(TokenShape::of(&refresh), Some(TokenShape::RefreshToken));
        let cc = v(r#"{"client_id":"c","client_secret":"s","token_url":"https://t/x"}"#);
        assert_eq!(TokenShape::of(&cc), Some(TokenShape::ClientCredentials));
        let neither = v(r#"{"client_id":"c","client_secret":"s"}"#);
        assert_eq!(TokenShape::of(&neither), None);
        assert_eq!(TokenShape::of(&v("plain")), None);
    }

    #[test]
    fn a_field_picking_format_keeps_static_injection() {
        let refresh = v(r#"{"client_id":"c","client_secret":"s","refresh_token":"r"}"#);
        assert_eq!(
            TokenShape::for_credential(None, false, &refresh),
            Some(TokenShape::RefreshToken)
        );
        assert_eq!(
            TokenShape::for_credential(Some("Bearer {value.refresh_token}"), false, &refresh),
            None
        );
        assert_eq!(TokenShape::for_credential(None, true, &refresh), None);
    }

    #[test]
    fn a_signing_key_needs_algorithm_and_private_key() {
        assert!(is_signing_key(&v(
            r#"{"algorithm":"ed25519","private_key":"00"}"#
        )));
        assert!(!is_signing_key(&v(r#"{"algorithm":"ed25519"}"#)));
        assert!(!is_signing_key(&v("ed25519")));
    }
}
