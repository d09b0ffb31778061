//! OAuth 2 token requests (SPEC §6.3): the refresh-token grant (RFC 6749 §6)
//! and the client-credentials grant (RFC 6749 §4.4), as the protocol only.
//!
//! This module builds the form a token endpoint receives and reads its
//! answer; the proxy sends it (through its guarded client), caches the
//! access token and persists a rotated refresh token. Client authentication
//! is `client_secret_post` (the client id and secret in the form), which
//! Google and most providers accept.

use std::fmt;

use tap_core::inject::TokenShape;
use tap_core::secret::{CredentialValue, Secret};
use url::form_urlencoded;
use zeroize::Zeroizing;

/// Largest token endpoint answer read (a token answer is a few KiB).
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Errors building a token request or reading its answer. Never carries a
/// secret: fields are named, values never shown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The value lacks a string field the grant needs.
    #[error("credential value has no string field {0:?}")]
    FieldMissing(&'static str),
    /// The token endpoint's answer is not a JSON object.
    #[error("the token endpoint's answer is not a JSON object")]
    NotJson,
    /// The answer has no usable `access_token`.
    #[error("the token endpoint's answer has no usable access_token")]
    NoAccessToken,
    /// The answer is larger than [`MAX_TOKEN_RESPONSE`].
    #[error("the token endpoint's answer is too large")]
    TooLarge,
}

/// One token request: where it goes and the form it sends.
pub struct TokenRequest {
    /// The token endpoint (the value's `token_url`, or the default).
    pub url: String,
    /// `application/x-www-form-urlencoded` body; holds the client secret and
    /// the refresh token.
    pub form: Zeroizing<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .field("form", &"[redacted]")
            .finish()
    }
}

fn text(s: &Secret) -> Zeroizing<String> {
    Zeroizing::new(String::from_utf8_lossy(s.expose()).into_owned())
}

/// The token request for a value of `shape`. `refresh_token`, when given,
/// replaces the value's own (a rotated token not yet in the value);
/// `default_url` is the endpoint of a refresh bundle without `token_url`.
pub fn token_request(
    shape: TokenShape,
    value: &CredentialValue,
    refresh_token: Option<&Secret>,
    default_url: &str,
) -> Result<TokenRequest, TokenError> {
    let field = |name: &'static str| value.field(name).ok_or(TokenError::FieldMissing(name));
    let client_id = field("client_id")?;
    let client_secret = field("client_secret")?;
    let url = match (value.field("token_url"), shape) {
        (Some(u), _) => String::from_utf8_lossy(u.expose()).trim().to_owned(),
        (None, TokenShape::RefreshToken) => default_url.to_owned(),
        (None, TokenShape::ClientCredentials) => return Err(TokenError::FieldMissing("token_url")),
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    match shape {
        TokenShape::RefreshToken => {
            let stored;
            let refresh = match refresh_token {
                Some(r) => r,
                None => {
                    stored = field("refresh_token")?;
                    &stored
                }
            };
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", &text(refresh));
        }
        TokenShape::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
        }
    }
    form.append_pair("client_id", &text(&client_id));
    form.append_pair("client_secret", &text(&client_secret));
    if let Some(scope) = value.field("scope") {
        form.append_pair("scope", &text(&scope));
    }
    Ok(TokenRequest {
        url,
        form: Zeroizing::new(form.finish()),
    })
}

/// A successful token answer.
pub struct TokenGrant {
    /// The access token: visible ASCII, no spaces or control characters.
    pub access_token: Secret,
    /// Seconds the token is valid, when the endpoint said.
    pub expires_in: Option<u64>,
    /// A new refresh token, when the endpoint rotated it.
    pub refresh_token: Option<Secret>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("expires_in", &self.expires_in)
            .field("rotated", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

fn usable_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a token endpoint's JSON answer (RFC 6749 §5.1).
pub fn parse_token_response(body: &[u8]) -> Result<TokenGrant, TokenError> {
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(TokenError::TooLarge);
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| TokenError::NotJson)?;
    let obj = v.as_object().ok_or(TokenError::NotJson)?;
    let access = obj
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| usable_token(t))
        .ok_or(TokenError::NoAccessToken)?;
    let expires_in = match obj.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        // Some providers send it as a string.
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let refresh_token = obj
        .get("refresh_token")
        .and_then(|t| t.as_str())
        .filter(|t| usable_token(t))
        .map(|t| Secret::new(t.as_bytes().to_vec()));
    Ok(TokenGrant {
        access_token: Secret::new(access.as_bytes().to_vec()),
        expires_in,
        refresh_token,
    })
}

/// `value` with its `refresh_token` replaced by `rotated` (every other field
/// kept); `None` when `value` is not a JSON object.
pub fn with_refresh_token(value: &CredentialValue, rotated: &Secret) -> Option<CredentialValue> {
    let raw = value.sealed_form();
    let mut v: serde_json::Value = serde_json::from_slice(raw.expose()).ok()?;
    let obj = v.as_object_mut()?;
    obj.insert(
        "refresh_token".to_owned(),
        serde_json::Value::String(String::from_utf8_lossy(rotated.expose()).into_owned()),
    );
    let bytes = Zeroizing::new(serde_json::to_vec(&v).ok()?);
    // Drop the parsed copy's strings promptly (serde_json does not zeroize).
    drop(v);
    CredentialValue::parse(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tap_core::inject::GOOGLE_TOKEN_URL;

    fn v(s: &str) -> CredentialValue {
        CredentialValue::parse(s.as_bytes()).unwrap()
    }

    fn form(req: &TokenRequest) -> Vec<(String, String)> {
        form_urlencoded::parse(req.form.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn a_refresh_bundle_without_token_url_goes_to_the_default_endpoint() {
        let value = v(r#"{"client_id":"cid","client_secret":"c s","refresh_token":"r/1"}"#);
        let req = token_request(TokenShape::RefreshToken, &value, None, GOOGLE_TOKEN_URL).unwrap();
        assert_eq!(req.url, GOOGLE_TOKEN_URL);
        assert_eq!(
            form(&req),
            [
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "r/1".into()),
                ("client_id".into(), "cid".into()),
                ("client_secret".into(), "c s".into()),
            ]
        );
        let debug = format!("{req:?}");
        assert!(!debug.contains("r/1") && !debug.contains("c s"), "{debug}");
    }

    #[test]
    fn a_rotated_refresh_token_replaces_the_stored_one() {
        let value = v(
            r#"{"client_id":"cid","client_secret":"cs","refresh_token":"old","token_url":"http://t/x"}"#,
        );
        let rotated = Secret::from("new");
        let req =
            token_request(TokenShape::RefreshToken, &value, Some(&rotated), "unused").unwrap();
        assert_eq!(req.url, "http://t/x");
        assert!(form(&req).contains(&("refresh_token".into(), "new".into())));
        let next = with_refresh_token(&value, &rotated).unwrap();
        assert_eq!(next.field("refresh_token").unwrap().expose(), b"new");
        assert_eq!(next.field("token_url").unwrap().expose(), b"http://t/x");
    }

    #[test]
    fn client_credentials_need_a_token_url_and_send_the_scope() {
        let value =
            v(r#"{"client_id":"cid","client_secret":"cs","token_url":"http://t/x","scope":"a b"}"#);
        let req = token_request(TokenShape::ClientCredentials, &value, None, "unused").unwrap();
        assert_eq!(
            form(&req),
            [
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "cid".into()),
                ("client_secret".into(), "cs".into()),
                ("scope".into(), "a b".into()),
            ]
        );
        let no_url = v(r#"{"client_id":"cid","client_secret":"cs"}"#);
        assert_eq!(
            token_request(TokenShape::ClientCredentials, &no_url, None, "x").unwrap_err(),
            TokenError::FieldMissing("token_url")
        );
    }

    #[test]
    fn reads_token_answers_and_refuses_unusable_ones() {
        let g = parse_token_response(
            br#"{"access_token":"at-1","expires_in":3599,"token_type":"Bearer","refresh_token":"rt-2"}"#,
        )
        .unwrap();
        assert_eq!(g.access_token.expose(), b"at-1");
        assert_eq!(g.expires_in, Some(3599));
        assert_eq!(g.refresh_token.unwrap().expose(), b"rt-2");
        let s = parse_token_response(br#"{"access_token":"at","expires_in":"60"}"#).unwrap();
        assert_eq!(s.expires_in, Some(60));
        assert!(s.refresh_token.is_none());
        for bad in [
            &b"not json"[..],
            br#"["x"]"#,
            br#"{"error":"invalid_grant"}"#,
            br#"{"access_token":"a b"}"#,
            br#"{"access_token":"a\r\nX-Evil: 1"}"#,
            br#"{"access_token":""}"#,
        ] {
            assert!(parse_token_response(bad).is_err());
        }
        let big = vec![b' '; MAX_TOKEN_RESPONSE + 1];
        assert_eq!(
            parse_token_response(&big).unwrap_err(),
            TokenError::TooLarge
        );
    }
}
