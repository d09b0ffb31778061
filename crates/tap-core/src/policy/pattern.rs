//! URL patterns of `auto_approve_urls`, `require_approval_urls` and grant
//! route scopes.

use std::fmt;

use super::PolicyError;
use super::normalize::{NormalizedTarget, liberal_pattern_paths, normalize_path, segments};

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
        let normal = normalize_path(path);
        if normal.invalid_escape {
            return Err("invalid percent escape");
        }
        let exact = compile_segments(&normal.path, true)?;
        let liberal = liberal_pattern_paths(&normal.path)
            .iter()
            .map(|form| compile_segments(form, false))
            .collect::<Result<_, _>>()?;
        Ok(UrlPattern {
            source: source.to_owned(),
            scheme,
            host,
            port,
            exact,
            liberal,
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
            && self.host_matches(t, false)
            && segments_match(&self.exact, segments(t.path()))
    }

    /// Liberal match for `require_approval_urls`: true whenever
    /// [`matches_auto`](Self::matches_auto) is, and also when the pattern matches any liberal reading
    /// of the target (`%2F`/`%5C` decoded to `/`, segments cut at `;`, ASCII
    /// case ignored, double escapes and overlong UTF-8 decoded, dot segments
    /// resolved either way or kept). The scheme is ignored and a host's
    /// trailing dot is not significant.
    pub fn matches_require(&self, t: &NormalizedTarget) -> bool {
        self.host_matches(t, true)
            && (segments_match(&self.exact, segments(t.path()))
                || t.liberal_readings().any(|r| {
                    self.liberal
                        .iter()
                        .any(|form| segments_match(form, segments(r)))
                }))
    }

    fn host_matches(&self, t: &NormalizedTarget, liberal: bool) -> bool {
        let Some(host) = &self.host else {
            return true;
        };
        let same_host = if liberal {
            host.trim_end_matches('.') == t.host().trim_end_matches('.')
        } else {
            host == t.host()
        };
        same_host && self.port.is_none_or(|p| p == t.effective_port())
    }
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

/// Compiles the segments of a canonical path. With `strict`, a `*` that is
/// not a whole segment is an error; otherwise it is a literal character.
fn compile_segments(path: &str, strict: bool) -> Result<Vec<Segment>, Reason> {
    segments(path)
        .map(|seg| {
            if seg == "*" {
                Ok(Segment::Any)
            } else if strict && seg.contains('*') {
                Err("`*` must be a whole segment")
            } else {
                Ok(Segment::Literal(seg.into()))
            }
        })
        .collect()
}

/// True when `target` starts with segments matching `pattern`.
fn segments_match<'t>(pattern: &[Segment], mut target: impl Iterator<Item = &'t str>) -> bool {
    pattern.iter().all(|p| match (p, target.next()) {
        (_, None) => false,
        (Segment::Any, Some(t)) => !t.is_empty(),
        (Segment::Literal(l), Some(t)) => **l == *t,
    })
}
