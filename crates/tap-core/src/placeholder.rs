//! Legacy placeholder mode (SPEC §3.2): `<CREDENTIAL:name>` and
//! `<CREDENTIAL:name.field>` in header values.
//!
//! Pure and total: every function here takes untrusted agent input, runs in
//! time linear in its length, never panics and never allocates more than a
//! constant factor of the input. [`parse`] is the entry point a fuzz target
//! calls; [`find_marker`] finds placeholders where they are not allowed (the
//! body, the URL, other headers), also when they are percent-, JSON- or
//! HTML-escaped, so a placeholder the proxy would not substitute is refused
//! instead of forwarded literally.

use std::fmt;

use crate::names::validate_name;

/// The keyword after `<` that opens a placeholder (matched case-insensitively).
const KEYWORD: &[u8] = b"credential";

/// Longest field name accepted in `<CREDENTIAL:name.field>`.
pub const MAX_FIELD_LEN: usize = 128;

/// Header names (lower-case) in which a placeholder of any credential may stand.
/// A credential's own bound header names are allowed too (SPEC §3.2).
pub const ALLOWED_HEADERS: &[&str] = &["authorization", "x-api-key", "x-auth-token"];

/// One placeholder: the credential it names and, for `name.field`, the field.
///
/// Invariant: `credential` passes [`validate_name`]; `field`, when present, is
/// 1–[`MAX_FIELD_LEN`] ASCII letters, digits, `_` or `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The credential name.
    pub credential: &'a str,
    /// The field of a JSON value, for `<CREDENTIAL:name.field>`.
    pub field: Option<&'a str>,
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "<CREDENTIAL:{}.{field}>", self.credential),
            None => write!(f, "<CREDENTIAL:{}>", self.credential),
        }
    }
}

/// A piece of a parsed header value. Invariant: the literals are the input
/// between placeholders, in order, and never contain a plain marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text kept as it is.
    Literal(&'a str),
    /// A placeholder to substitute.
    Reference(Reference<'a>),
}

/// Why a header value's placeholders do not parse. Offsets are byte offsets of
/// the placeholder's `<` in the input; messages never repeat the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// `<CREDENTIAL:` without a closing `>`.
    #[error("placeholder at byte {0} is not closed with '>'")]
    Unterminated(usize),
    /// A `<` inside a placeholder.
    #[error("placeholder at byte {0} contains another '<' (placeholders do not nest)")]
    Nested(usize),
    /// The name is not a credential name.
    #[error(
        "placeholder at byte {0} does not name a credential (lower-case letters, digits, '-' and '_')"
    )]
    InvalidName(usize),
    /// The field is empty, too long or holds other characters.
    #[error(
        "placeholder at byte {0} has an invalid field (1-128 letters, digits, '-' and '_' after one '.')"
    )]
    InvalidField(usize),
}

/// True when `input[i..]` starts with `needle`, ASCII case-insensitively.
fn starts_with_ci(input: &[u8], i: usize, needle: &[u8]) -> bool {
    input
        .get(i..i.saturating_add(needle.len()))
        .is_some_and(|s| s.eq_ignore_ascii_case(needle))
}

/// Length of a literal `<CREDENTIAL:` at `i` (case-insensitive), if one starts there.
fn plain_marker_at(input: &[u8], i: usize) -> Option<usize> {
    (input.get(i) == Some(&b'<')
        && starts_with_ci(input, i + 1, KEYWORD)
        && input.get(i + 1 + KEYWORD.len()) == Some(&b':'))
    .then_some(2 + KEYWORD.len())
}

/// Splits a header value into literals and placeholders.
///
/// A placeholder opens with `<CREDENTIAL:` (the keyword in any case) and ends
/// at the next `>`; it must hold a credential name, optionally followed by one
/// `.field`. Anything else after an opening marker is an error: a malformed
/// placeholder is refused, never forwarded literally.
pub fn parse(input: &str) -> Result<Vec<Segment<'_>>, PlaceholderError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(open_len) = plain_marker_at(bytes, i) else {
            i += 1;
            continue;
        };
        let inner_start = i + open_len;
        let mut j = inner_start;
        let close = loop {
            match bytes.get(j) {
                None => return Err(PlaceholderError::Unterminated(i)),
                Some(b'>') => break j,
                Some(b'<') => return Err(PlaceholderError::Nested(i)),
                Some(_) => j += 1,
            }
        };
        // Every byte at the split points is ASCII: the slices are on char boundaries.
        let inner = &input[inner_start..close];
        let (credential, field) = match inner.split_once('.') {
            Some((c, f)) => (c, Some(f)),
            None => (inner, None),
        };
        if validate_name("credential", credential).is_err() {
            return Err(PlaceholderError::InvalidName(i));
        }
        if let Some(f) = field
            && (f.is_empty()
                || f.len() > MAX_FIELD_LEN
                || !f
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(PlaceholderError::InvalidField(i));
        }
        if literal_start < i {
            out.push(Segment::Literal(&input[literal_start..i]));
        }
        out.push(Segment::Reference(Reference { credential, field }));
        i = close + 1;
        literal_start = i;
    }
    if literal_start < bytes.len() {
        out.push(Segment::Literal(&input[literal_start..]));
    }
    Ok(out)
}

/// The placeholders of a header value, in order (see [`parse`]).
pub fn references(input: &str) -> Result<Vec<Reference<'_>>, PlaceholderError> {
    Ok(parse(input)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Reference(r) => Some(r),
            Segment::Literal(_) => None,
        })
        .collect())
}

/// Spellings of `<` an agent, a URL encoder or a JSON/HTML serialiser may produce.
const OPENERS: &[&[u8]] = &[
    b"<", b"%3c", b"\\u003c", b"&lt;", b"&#60;", b"&#x3c;", b"\\x3c",
];
/// Spellings of `:`.
const COLONS: &[&[u8]] = &[b":", b"%3a", b"\\u003a", b"&#58;", b"&#x3a;", b"\\x3a"];

/// The byte offset of the first placeholder marker in `input`, in any of the
/// spellings above (case-insensitive), or `None`.
///
/// Used for positions where placeholders are never substituted (body, URL,
/// other headers): it matches more than [`parse`] would substitute on purpose,
/// so an encoded placeholder is refused rather than sent upstream verbatim.
pub fn find_marker(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if matches!(b, b'<' | b'%' | b'\\' | b'&') {
            for open in OPENERS {
                if starts_with_ci(input, i, open) {
                    let k = i + open.len();
                    if starts_with_ci(input, k, KEYWORD) {
                        let c = k + KEYWORD.len();
                        if COLONS.iter().any(|colon| starts_with_ci(input, c, colon)) {
                            return Some(i);
                        }
                    }
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests;
