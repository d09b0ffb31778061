//! What a human sees before approving (SPEC §11): the whole request, nothing
//! hidden. The body in full (JSON laid out one member per line, its tokens and
//! order untouched, so duplicate keys stay visible), a digest of the exact
//! bytes, every forwarded header with its value, and the names of the headers
//! the credential will inject. Invisible and direction-changing characters are
//! shown as visible escapes, so text cannot pretend to be other text.

use serde::Serialize;
use tap_core::crypto::sha256_hex;
use tap_core::model::Connector;
use utoipa::ToSchema;

use super::captured::CapturedRequest;
use crate::directory::CredentialEntry;

/// A forwarded header with its value, as shown to a human.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeaderLine {
    /// Lower-case name.
    pub name: String,
    /// The value, scrubbed, with invisible characters escaped.
    pub value: String,
}

/// The captured request of an approval, as shown to a human.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RequestDisplay {
    /// The whole body: JSON laid out, text as is, other bytes as `\xNN`;
    /// scrubbed, with invisible characters escaped.
    pub body: String,
    /// `empty`, `json`, `text` or `binary`.
    pub body_format: &'static str,
    /// Length of the exact bytes that will be forwarded.
    pub body_bytes: usize,
    /// SHA-256 of those bytes, hex.
    pub body_sha256: String,
    /// Every header that will be forwarded, in order.
    pub headers: Vec<HeaderLine>,
    /// What the credential adds: header names (values never shown), or
    /// `?param` for a query parameter.
    pub injected: Vec<String>,
}

impl RequestDisplay {
    /// Renders `captured`, scrubbing every text shown with `scrub`.
    pub fn new(
        captured: &CapturedRequest,
        credential: Option<&CredentialEntry>,
        scrub: impl Fn(&str) -> String,
    ) -> Self {
        let bytes = captured.body_bytes().unwrap_or_default();
        let (text, body_format) = if bytes.is_empty() {
            (String::new(), "empty")
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(s) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => {
                    (lay_out_json(s), "json")
                }
                Ok(s) => (s.to_owned(), "text"),
                Err(_) => (escape_bytes(&bytes), "binary"),
            }
        };
        let header_map = captured.header_map().unwrap_or_default();
        Self {
            body: visible(&scrub(&text)),
            body_format,
            body_bytes: bytes.len(),
            body_sha256: sha256_hex(&bytes),
            headers: header_map
                .iter()
                .map(|(n, v)| HeaderLine {
                    name: n.as_str().to_owned(),
                    value: visible(&scrub(&escape_bytes(v.as_bytes()))),
                })
                .collect(),
            injected: if captured.legacy {
                // Placeholder mode: the headers whose placeholders are substituted.
                header_map
                    .iter()
                    .filter(|(_, v)| tap_core::placeholder::find_marker(v.as_bytes()).is_some())
                    .map(|(n, _)| n.as_str().to_owned())
                    .collect()
            } else {
                credential.map(injected).unwrap_or_default()
            },
        }
    }
}

/// What a credential adds to a request, by name only.
fn injected(c: &CredentialEntry) -> Vec<String> {
    if c.connector == Connector::Sidecar {
        return vec!["(signed by the sidecar)".to_owned()];
    }
    if c.bindings.is_empty() {
        return vec!["authorization".to_owned()];
    }
    c.bindings
        .iter()
        .filter_map(|b| {
            b.header
                .as_ref()
                .map(|h| h.to_ascii_lowercase())
                .or_else(|| b.query.as_ref().map(|q| format!("?{q}")))
        })
        .collect()
}

/// UTF-8 as is, every other byte as `\xNN`.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

pub use tap_core::text::visible;

/// Lays valid JSON out one member per line with two-space indents, keeping
/// every token byte for byte and in order (duplicate keys, number spellings
/// and escapes stay as the upstream will read them).
fn lay_out_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Empty containers stay on one line.
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_laid_out_with_every_token_kept() {
        let s = r#"{"amount":1,"amount":1e6,"to":"a\"b","list":[1, 2],"e":{}, "n":[ ]}"#;
        assert_eq!(
            lay_out_json(s),
            "{\n  \"amount\": 1,\n  \"amount\": 1e6,\n  \"to\": \"a\\\"b\",\n  \"list\": [\n    1,\n    2\n  ],\n  \"e\": {},\n  \"n\": []\n}"
        );
    }

    #[test]
    fn hidden_characters_become_visible_escapes() {
        assert_eq!(
            visible("pay \u{202E}321\u{202C} to\u{200B}bob\r\n"),
            "pay \\u{202E}321\\u{202C} to\\u{200B}bob\\u{000D}\n"
        );
        assert_eq!(visible("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(visible("tag\u{E0041}"), "tag\\u{E0041}");
    }

    #[test]
    fn other_bytes_are_shown_as_hex_escapes() {
        assert_eq!(escape_bytes(b"ok\xff\xfe!"), "ok\\xFF\\xFE!");
    }
}
