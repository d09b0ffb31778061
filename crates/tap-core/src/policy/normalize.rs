//! Target normalisation for policy matching.
//!
//! One *exact* reading of a target path is what `auto` patterns (and grants)
//! trust; a handful of *liberal* readings are what `require` patterns also
//! match, so that an agent cannot dress a protected path up as something else.
//!
//! The exact reading mirrors what the upstream receives: the proxy forwards the
//! WHATWG serialisation of the target, and this module canonicalises that
//! (unreserved escapes decoded, other escapes upper-cased, dot segments
//! removed, repeated slashes collapsed). Anything an upstream could reasonably
//! read differently — encoded separators, NUL, invalid or double escapes,
//! overlong UTF-8, `;`-parameterised dot segments — makes the target
//! ineligible for `auto` matching (fail closed) and is folded into the liberal
//! readings instead.

use std::fmt;

use percent_encoding::percent_decode_str;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Value of one ASCII hex digit.
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`: the only characters whose escapes are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` minus `%`: bytes kept literally in a canonical segment.
fn is_pchar_literal(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// The byte encoded by a well-formed `%XX` escape starting at `i`, if any.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex_val(*bytes.get(i + 1)?)?;
    let lo = hex_val(*bytes.get(i + 2)?)?;
    Some((hi << 4) | lo)
}

fn push_escape(out: &mut String, b: u8, table: &[u8; 16]) {
    out.push('%');
    out.push(char::from(table[usize::from(b >> 4)]));
    out.push(char::from(table[usize::from(b & 0x0F)]));
}

/// Non-empty segments of a `/`-separated path.
pub(super) fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A path in canonical form plus what the canonicalisation had to paper over.
pub(super) struct NormalPath {
    /// Starts with `/`; no `//`; no `.`/`..` segment; every `%` starts a
    /// `%XX` escape with upper-case hex of a byte that is not unreserved.
    pub(super) path: String,
    /// The input held a `%` not followed by two hex digits (kept as `%25`).
    pub(super) invalid_escape: bool,
}

/// True when `raw` is already canonical and free of escapes, so that
/// [`normalize_path`] would return it unchanged with no invalid escape.
pub(super) fn is_plain_canonical(raw: &str) -> bool {
    raw.starts_with('/')
        && !raw.contains("//")
        && raw
            .bytes()
            .all(|b| b == b'/' || (b != b'%' && is_pchar_literal(b)))
        && !raw.split('/').any(|s| s == "." || s == "..")
}

/// Canonicalises a raw path (with or without its leading `/`).
///
/// Idempotent: normalising `path` again yields `path` unchanged.
pub(super) fn normalize_path(raw: &str) -> NormalPath {
    let bytes = raw.as_bytes();
    let mut canon = String::with_capacity(raw.len() + 1);
    let mut invalid_escape = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let Some(v) = escape_at(bytes, i) {
                if is_unreserved(v) {
                    canon.push(char::from(v));
                } else {
                    push_escape(&mut canon, v, HEX_UPPER);
                }
                i += 3;
                continue;
            }
            // A stray `%` becomes `%25` so that a later escape cannot be
            // assembled from it (`%2%46` must not turn into `%2F`).
            invalid_escape = true;
            canon.push_str("%25");
        } else if b == b'\\' {
            // WHATWG reads a backslash as a separator in http(s) paths.
            canon.push('/');
        } else if b == b'/' || is_pchar_literal(b) {
            canon.push(char::from(b));
        } else {
            // Controls, space, delimiters and every non-ASCII byte.
            push_escape(&mut canon, b, HEX_UPPER);
        }
        i += 1;
    }
    NormalPath {
        path: resolve_dots(&canon),
        invalid_escape,
    }
}

/// Removes dot segments the WHATWG way (an empty segment counts as a segment
/// for `..`), then collapses empty segments. Keeps one trailing slash.
fn resolve_dots(path: &str) -> String {
    let body = path.strip_prefix('/').unwrap_or(path);
    let mut stack: Vec<&str> = Vec::new();
    let mut ends_in_dot = false;
    for seg in body.split('/') {
        ends_in_dot = false;
        match seg {
            "." => ends_in_dot = true,
            ".." => {
                stack.pop();
                ends_in_dot = true;
            }
            _ => stack.push(seg),
        }
    }
    let trailing_slash = ends_in_dot || stack.last() == Some(&"");
    join_collapsed(stack.iter().copied(), trailing_slash)
}

/// `/`-joins the non-empty segments; `/` when there are none.
fn join_collapsed<'s>(segs: impl Iterator<Item = &'s str>, trailing_slash: bool) -> String {
    let mut out = String::new();
    for seg in segs.filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// True when a canonical path holds an escape of `/`, `\` or NUL, an escape
/// sequence that is not valid UTF-8 (overlong forms included), or `%25`
/// standing for a stray `%`.
fn has_forbidden_escape(path: &str) -> bool {
    let bytes = path.as_bytes();
    let forbidden = (0..bytes.len()).any(|i| matches!(escape_at(bytes, i), Some(b'/' | b'\\' | 0)));
    forbidden || (path.contains('%') && percent_decode_str(path).decode_utf8().is_err())
}

/// The part of a segment an upstream that strips matrix parameters reads.
fn cut_params(seg: &str) -> &str {
    let semi = seg.find(';').unwrap_or(seg.len());
    let encoded = seg.find("%3B").unwrap_or(seg.len());
    seg.get(..semi.min(encoded)).unwrap_or(seg)
}

/// True when some upstream could read a canonical path differently from its
/// segments: a double escape (`%25` + two hex digits) or a segment that is
/// empty, `.` or `..` once `;params` are cut (`/public/..;/admin`).
fn is_ambiguous(path: &str) -> bool {
    let bytes = path.as_bytes();
    let double = (0..bytes.len()).any(|i| {
        escape_at(bytes, i) == Some(b'%')
            && bytes.get(i + 3).copied().and_then(hex_val).is_some()
            && bytes.get(i + 4).copied().and_then(hex_val).is_some()
    });
    double || segments(path).any(|s| matches!(cut_params(s), "" | "." | ".."))
}

/// A byte of a path after percent-decoding, remembering whether it was escaped.
#[derive(Clone, Copy)]
struct Tok {
    byte: u8,
    decoded: bool,
}

/// Decodes a canonical path into bytes, reading `%25XX` as `%XX` (one extra
/// round for double-decoding upstreams) and overlong UTF-8 forms of ASCII as
/// the ASCII byte (`%C0%AF` is `/` to a lax decoder).
fn liberal_tokens(path: &str) -> Vec<Tok> {
    let bytes = path.as_bytes();
    let mut toks = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match escape_at(bytes, i) {
            Some(b'%') => {
                let inner = bytes
                    .get(i + 3)
                    .copied()
                    .and_then(hex_val)
                    .zip(bytes.get(i + 4).copied().and_then(hex_val));
                if let Some((hi, lo)) = inner {
                    toks.push(Tok {
                        byte: (hi << 4) | lo,
                        decoded: true,
                    });
                    i += 5;
                } else {
                    toks.push(Tok {
                        byte: b'%',
                        decoded: true,
                    });
                    i += 3;
                }
            }
            Some(v) => {
                toks.push(Tok {
                    byte: v,
                    decoded: true,
                });
                i += 3;
            }
            None => {
                toks.push(Tok {
                    byte: b,
                    decoded: false,
                });
                i += 1;
            }
        }
    }
    fold_overlong(&toks)
}

fn continuation(t: Option<&Tok>, range: std::ops::RangeInclusive<u8>) -> Option<u8> {
    t.filter(|t| t.decoded && range.contains(&t.byte))
        .map(|t| t.byte & 0x3F)
}

fn fold_overlong(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while let Some(&t) = toks.get(i) {
        if t.decoded
            && matches!(t.byte, 0xC0 | 0xC1)
            && let Some(c1) = continuation(toks.get(i + 1), 0x80..=0xBF)
        {
            out.push(Tok {
                byte: ((t.byte & 0x01) << 6) | c1,
                decoded: true,
            });
            i += 2;
            continue;
        }
        if t.decoded && t.byte == 0xE0 {
            // 0xE0 0x80..=0x81 0x80..=0xBF encodes U+0000..=U+007F overlong.
            let c1 = continuation(toks.get(i + 1), 0x80..=0x81);
            let c2 = continuation(toks.get(i + 2), 0x80..=0xBF);
            if let Some((c1, c2)) = c1.zip(c2) {
                out.push(Tok {
                    byte: (c1 << 6) | c2,
                    decoded: true,
                });
                i += 3;
                continue;
            }
        }
        out.push(t);
        i += 1;
    }
    out
}

/// The liberal, `/`-separated form of a canonical path: each segment is cut
/// at `;` (literal or decoded) and at a decoded NUL, `?` or `#`; ASCII is
/// lower-cased; every other byte is a lower-case `%xx` escape. With
/// `decode_separators`, decoded `/` and `\` separate segments; without, they
/// stay `%2f`/`%5c` inside one. Empty and dot segments are left for the
/// caller to resolve.
fn liberal_flat(path: &str, decode_separators: bool) -> String {
    let toks = liberal_tokens(path);
    let mut out = String::with_capacity(path.len());
    let mut cut = false;
    for t in &toks {
        let separator = t.byte == b'/' || t.byte == b'\\';
        if separator && (decode_separators || !t.decoded) {
            out.push('/');
            cut = false;
            continue;
        }
        if cut {
            continue;
        }
        // `;` starts matrix parameters, NUL ends C strings, and a decoded `?`
        // or `#` ends the path for an upstream that decodes and re-parses.
        if matches!(t.byte, b';' | 0) || (t.decoded && matches!(t.byte, b'?' | b'#')) {
            cut = true;
        } else if is_pchar_literal(t.byte) {
            out.push(char::from(t.byte.to_ascii_lowercase()));
        } else {
            push_escape(&mut out, t.byte, HEX_LOWER);
        }
    }
    out
}

fn push_distinct(readings: &mut Vec<String>, reading: String) {
    if !readings.contains(&reading) {
        readings.push(reading);
    }
}

/// The distinct liberal forms of a pattern's canonical path: lower-cased as
/// is, and lower-cased with `;params` cut, encoded separators kept or decoded.
pub(super) fn liberal_pattern_paths(path: &str) -> Vec<String> {
    let mut forms = vec![path.to_ascii_lowercase()];
    for decode in [false, true] {
        push_distinct(&mut forms, resolve_dots(&liberal_flat(path, decode)));
    }
    forms
}

/// Every distinct liberal reading of a canonical path: the path lower-cased
/// as is; and, with `;params` cut and encoded separators either kept or
/// decoded, dot segments resolved WHATWG-style, resolved after merging
/// slashes (nginx-style) and kept (a prefix before `..` still counts). Empty
/// when the only reading is `path` itself, which is the case for any path
/// without `%`, `;` or upper case.
fn liberal_readings(path: &str) -> Vec<String> {
    if !path
        .bytes()
        .any(|b| b == b'%' || b == b';' || b.is_ascii_uppercase())
    {
        return Vec::new();
    }
    let mut readings = vec![path.to_ascii_lowercase()];
    for decode in [false, true] {
        let flat = liberal_flat(path, decode);
        push_distinct(&mut readings, resolve_dots(&flat));
        push_distinct(
            &mut readings,
            resolve_dots(&join_collapsed(segments(&flat), false)),
        );
        push_distinct(
            &mut readings,
            join_collapsed(segments(&flat).filter(|s| *s != "."), false),
        );
    }
    readings
}

/// The default port of `scheme`, `0` for a scheme without one.
fn default_port(scheme: &str) -> u16 {
    match scheme {
        "http" => 80,
        "https" => 443,
        _ => 0,
    }
}

/// A request target as policy sees it: scheme and host lower-cased, default
/// port dropped, path canonicalised, query and fragment dropped.
///
/// Invariants: `path()` starts with `/`, holds no `//` and no `.`/`..`
/// segment, and every `%` in it begins an upper-case `%XX` escape of a byte
/// that is not RFC 3986 unreserved. Normalising the [`as_display`] form again
/// yields an equal path.
///
/// [`as_display`]: NormalizedTarget::as_display
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NormalizedTarget {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
    unsafe_escape: bool,
    ambiguous: bool,
    /// Distinct liberal readings; empty means "just `path`".
    liberal: Vec<String>,
}

impl NormalizedTarget {
    /// Normalises an already WHATWG-parsed http(s) URL.
    ///
    /// Never fails: a URL without a host yields an empty host, which no
    /// host-bound pattern matches.
    pub fn from_url(url: &url::Url) -> NormalizedTarget {
        let scheme = url.scheme().to_ascii_lowercase();
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port().filter(|p| *p != default_port(&scheme));
        let NormalPath {
            path,
            invalid_escape,
        } = normalize_path(url.path());
        NormalizedTarget {
            unsafe_escape: invalid_escape || has_forbidden_escape(&path),
            ambiguous: is_ambiguous(&path),
            liberal: liberal_readings(&path),
            scheme,
            host,
            port,
            path,
        }
    }

    /// The host, lower-case, as WHATWG serialises it (IPv6 in brackets,
    /// internationalised names in punycode).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port; `None` when the URL used the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port the upstream is reached on, defaults filled in.
    pub(super) fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| default_port(&self.scheme))
    }

    /// The scheme, lower-case (`http` or `https`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The canonical path (see the type's invariants). Never empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when the path still holds `%2F`, `%5C` or `%00` (any case), or an
    /// invalid escape: a `%` without two hex digits, or escapes that do not
    /// decode to valid UTF-8 (overlong forms such as `%C0%AF` included).
    /// Such a target never matches an `auto` pattern or a grant.
    pub fn has_unsafe_escape(&self) -> bool {
        self.unsafe_escape
    }

    /// True when `auto` patterns and grants may match this target at all:
    /// no unsafe escape, no double escape (`%25` followed by two hex digits)
    /// and no segment that is empty, `.` or `..` once cut at `;`/`%3B`.
    pub fn is_auto_matchable(&self) -> bool {
        !self.unsafe_escape && !self.ambiguous
    }

    /// The liberal readings `require` patterns also match (lower-case, dot
    /// segments and `;params` handled, encoded separators kept or decoded).
    pub(super) fn liberal_readings(&self) -> impl Iterator<Item = &str> {
        let only_path = self.liberal.is_empty().then_some(self.path.as_str());
        only_path
            .into_iter()
            .chain(self.liberal.iter().map(String::as_str))
    }

    /// `scheme://host[:port]/path`, without query or fragment.
    pub fn as_display(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for NormalizedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.path)
    }
}
