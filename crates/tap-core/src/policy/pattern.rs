//! URL patterns of `auto_approve_urls`, `require_approval_urls` and grant
//! route scopes.

use std::borrow::Cow;
use std::fmt;

use super::PolicyError;
use super::normalize::{
    NormalizedTarget, is_plain_canonical, liberal_pattern_paths, normalize_path, segments,
};

/// Longest accepted pattern, in bytes; keeps matching cost bounded.
pub const MAX_PATTERN_LEN: usize = 2048;

/// One compiled path segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `*`: exactly one non-empty segment.
    Any,
    /// A canonical segment compared byte for byte.
    Literal(Box<str>),
}

/// A compiled URL pattern: `/path`, `host[:port]/path` or
/// `http(s)://host[:port]/path`.
///
/// Invariants: the path part is stored canonical (as [`NormalizedTarget`]
/// normalises paths) so a pattern and a target spelled differently but read
/// the same by the upstream compare equal; `*` is only ever a whole segment;
/// matches end on a segment boundary (`/admin` matches `/admin`, `/admin/`
/// and `/admin/x`, never `/administrator`); a trailing `/` in the pattern is
/// not significant; the pattern `/` matches every path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPattern {
    source: String,
    scheme: Option<&'static str>,
    host: Option<String>,
    port: Option<u16>,
    exact: Vec<Segment>,
    /// Distinct liberal forms (lower-cased; `;params` cut; separators kept
    /// or decoded), each matched against every liberal target reading.
    liberal: Vec<Vec<Segment>>,
}

type Reason = &'static str;

impl UrlPattern {
    /// Parses and compiles a pattern (surrounding whitespace is ignored).
    ///
    /// Refuses: empty patterns, whitespace or control characters inside, a
    /// query or fragment (`?`, `#`: patterns match paths only), schemes other
    /// than http(s), userinfo, wildcard or invalid hosts, invalid ports,
    /// invalid percent escapes, `*` inside a segment, and patterns longer
    /// than [`MAX_PATTERN_LEN`].
    pub fn parse(s: &str) -> Result<UrlPattern, PolicyError> {
        let source = s.trim();
        Self::compile(source).map_err(|reason| PolicyError::InvalidUrlPattern {
            pattern: super::clip(source),
            reason,
        })
    }

    fn compile(source: &str) -> Result<UrlPattern, Reason> {
        let Parts {
            scheme,
            host,
            port,
            path,
        } = Parts::parse(source)?;
        Ok(UrlPattern {
            source: source.to_owned(),
            exact: compile_segments(&path),
            liberal: liberal_pattern_paths(&path)
                .iter()
                .map(|form| compile_segments(form))
                .collect(),
            scheme,
            host,
            port,
        })
    }

    /// The pattern as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Strict match for `auto_approve_urls` and grants: the target must be
    /// [auto-matchable](NormalizedTarget::is_auto_matchable) and its canonical,
    /// case-sensitive path must start with the pattern's segments; the host
    /// (when given) must be equal, the port (when given) equal to the
    /// target's effective port, the scheme (when given) equal.
    pub fn matches_auto(&self, t: &NormalizedTarget) -> bool {
        t.is_auto_matchable()
            && self.scheme.is_none_or(|s| s == t.scheme())
            && host_matches(self.host.as_deref(), self.port, t, false)
            && segments_match(self.exact.iter().map(Segment::borrowed), t.path())
    }

    /// Liberal match for `require_approval_urls`: true whenever
    /// [`matches_auto`](Self::matches_auto) is, and also when the pattern
    /// matches any liberal reading of the target (ASCII case ignored;
    /// segments cut at `;`; `%2F`/`%5C` decoded to `/` or kept; double
    /// escapes and overlong UTF-8 decoded; dot segments resolved either way
    /// or kept). The scheme is ignored and a host's trailing dot is not
    /// significant.
    pub fn matches_require(&self, t: &NormalizedTarget) -> bool {
        host_matches(self.host.as_deref(), self.port, t, true)
            && (segments_match(self.exact.iter().map(Segment::borrowed), t.path())
                || t.liberal_readings().any(|r| {
                    self.liberal
                        .iter()
                        .any(|form| segments_match(form.iter().map(Segment::borrowed), r))
                }))
    }
}

/// Same as `UrlPattern::parse(scope)?.matches_auto(t)`, without compiling
/// the liberal forms: grants are matched strictly only. A scope that does not
/// parse matches nothing.
pub(super) fn grant_scope_matches(scope: &str, t: &NormalizedTarget) -> bool {
    t.is_auto_matchable()
        && Parts::parse(scope.trim()).is_ok_and(|p| {
            p.scheme.is_none_or(|s| s == t.scheme())
                && host_matches(p.host.as_deref(), p.port, t, false)
                && segments_match(segments(&p.path).map(SegmentRef::of), t.path())
        })
}

/// A pattern split and checked, its path canonical.
struct Parts<'a> {
    scheme: Option<&'static str>,
    host: Option<String>,
    port: Option<u16>,
    path: Cow<'a, str>,
}

impl<'a> Parts<'a> {
    fn parse(source: &'a str) -> Result<Parts<'a>, Reason> {
        if source.is_empty() {
            return Err("empty pattern");
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err("pattern is too long");
        }
        if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("whitespace and control characters are not allowed");
        }
        if source.contains(['?', '#']) {
            return Err("patterns match paths only: remove the query or fragment");
        }
        let (scheme, rest) = split_scheme(source)?;
        let (authority, path) = if rest.starts_with(['/', '\\']) {
            (None, rest)
        } else {
            let end = rest.find(['/', '\\']).unwrap_or(rest.len());
            (rest.get(..end), rest.get(end..).unwrap_or_default())
        };
        let (host, port) = match authority {
            Some(authority) => parse_authority(authority)?,
            None => (None, None),
        };
        let path = if is_plain_canonical(path) {
            // Grant scopes are stored canonical: skip the copy.
            Cow::Borrowed(path)
        } else {
            let normal = normalize_path(path);
            if normal.invalid_escape {
                return Err("invalid percent escape");
            }
            Cow::Owned(normal.path)
        };
        if segments(&path).any(|seg| seg != "*" && seg.contains('*')) {
            return Err("`*` must be a whole segment");
        }
        Ok(Parts {
            scheme,
            host,
            port,
            path,
        })
    }
}

/// Host (when given) equal — or equal up to a trailing dot when `liberal` —
/// and port (when given) equal to the target's effective port.
fn host_matches(
    host: Option<&str>,
    port: Option<u16>,
    t: &NormalizedTarget,
    liberal: bool,
) -> bool {
    let Some(host) = host else {
        return true;
    };
    let same_host = if liberal {
        host.trim_end_matches('.') == t.host().trim_end_matches('.')
    } else {
        host == t.host()
    };
    same_host && port.is_none_or(|p| p == t.effective_port())
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for UrlPattern {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits off an `http://` / `https://` prefix (case-insensitive).
fn split_scheme(source: &str) -> Result<(Option<&'static str>, &str), Reason> {
    let Some(idx) = source.find("://") else {
        return Ok((None, source));
    };
    let (scheme, rest) = source.split_at(idx);
    if scheme.contains(['/', '\\']) {
        // `://` inside the path, not a scheme.
        return Ok((None, source));
    }
    let rest = rest.get(3..).unwrap_or_default();
    if rest.is_empty() || rest.starts_with(['/', '\\']) {
        return Err("a pattern with a scheme needs a host");
    }
    if scheme.eq_ignore_ascii_case("http") {
        Ok((Some("http"), rest))
    } else if scheme.eq_ignore_ascii_case("https") {
        Ok((Some("https"), rest))
    } else {
        Err("only http and https schemes are supported")
    }
}

/// Parses `host[:port]` into the WHATWG host serialisation and the port.
fn parse_authority(authority: &str) -> Result<(Option<String>, Option<u16>), Reason> {
    if authority.is_empty() {
        return Err("empty host");
    }
    if authority.contains('@') {
        return Err("userinfo is not allowed");
    }
    if authority.contains('*') {
        return Err("wildcard hosts are not supported");
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or("invalid ipv6 host")?;
        let (host, rest) = authority.split_at(close + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return Err("invalid ipv6 host"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("ipv6 hosts need brackets");
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "invalid port")?)
        }
        Some(_) => return Err("invalid port"),
    };
    let host = url::Host::parse(host).map_err(|_| "invalid host")?;
    Ok((Some(host.to_string()), port))
}

/// Compiles the segments of a canonical path; a whole-segment `*` is the
/// wildcard, anything else a literal.
fn compile_segments(path: &str) -> Vec<Segment> {
    segments(path)
        .map(|seg| match SegmentRef::of(seg) {
            SegmentRef::Any => Segment::Any,
            SegmentRef::Literal(l) => Segment::Literal(l.into()),
        })
        .collect()
}

/// A borrowed [`Segment`].
#[derive(Clone, Copy)]
enum SegmentRef<'a> {
    Any,
    Literal(&'a str),
}

impl<'a> SegmentRef<'a> {
    fn of(seg: &'a str) -> Self {
        if seg == "*" {
            SegmentRef::Any
        } else {
            SegmentRef::Literal(seg)
        }
    }
}

impl Segment {
    fn borrowed(&self) -> SegmentRef<'_> {
        match self {
            Segment::Any => SegmentRef::Any,
            Segment::Literal(l) => SegmentRef::Literal(l),
        }
    }
}

/// True when the segments of `path` start with segments matching `pattern`.
fn segments_match<'p>(mut pattern: impl Iterator<Item = SegmentRef<'p>>, path: &str) -> bool {
    let mut target = segments(path);
    pattern.all(|p| match (p, target.next()) {
        (_, None) => false,
        (SegmentRef::Any, Some(t)) => !t.is_empty(),
        (SegmentRef::Literal(l), Some(t)) => l == t,
    })
}
