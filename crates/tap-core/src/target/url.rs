//! [`TargetUrl`]: an agent's target, parsed once and checked, and the
//! `relative_target` join.

use std::fmt;
use std::net::IpAddr;

use percent_encoding::percent_decode_str;
use url::{Host, Url};

use super::error::TargetError;
use super::host::{check_domain, strip_one_dot};

/// Longest accepted target, in bytes (raw, before parsing).
pub const MAX_TARGET_BYTES: usize = 8192;

/// Longest scheme echoed back in [`TargetError::UnsupportedScheme`]; longer
/// or non-alphabetic schemes are reported as `other` so that an error never
/// repeats a string that might be a secret.
const MAX_ECHOED_SCHEME: usize = 12;

/// How many rounds of percent-decoding [`TargetUrl::join_relative`] looks
/// through when searching for `..` (catches `%2e%2e` and `%252e%252e`).
const MAX_DECODE_ROUNDS: usize = 3;

/// An absolute http(s) target parsed once with WHATWG rules (the `url` crate).
/// The host checked is the host connected to.
///
/// Invariants, established by [`TargetUrl::parse`] and never broken:
/// - the scheme is `http` or `https`;
/// - there is no userinfo;
/// - the host is an IP literal or a non-empty DNS name of lower-case ASCII
///   labels (`a-z`, `0-9`, `-`, `_`) after IDNA normalisation;
/// - numeric IPv4 spellings (decimal, octal, hex, short) are already folded
///   into dotted-quad by the `url` crate, so [`TargetUrl::ip`] sees them;
/// - the port is not 0;
/// - the raw input was at most [`MAX_TARGET_BYTES`] and held no control
///   characters and no surrounding whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl {
    url: Url,
    host: String,
    ip: Option<IpAddr>,
    port: u16,
}

impl TargetUrl {
    /// Parses an absolute `http://` or `https://` target.
    ///
    /// Refuses, before the WHATWG parser sees the input: the empty string
    /// ([`TargetError::Missing`]), more than [`MAX_TARGET_BYTES`]
    /// ([`TargetError::TooLong`]), any control character including tab, CR,
    /// LF and NUL ([`TargetError::ControlCharacter`]), leading or trailing
    /// whitespace ([`TargetError::Whitespace`]), relative and
    /// scheme-relative references ([`TargetError::Relative`]), other schemes,
    /// anything but exactly `//` after the scheme ([`TargetError::Ambiguous`])
    /// and any `@` in the authority, even an empty userinfo
    /// ([`TargetError::UserInfo`]).
    ///
    /// Accepted and normalised by WHATWG (the result is what is checked and
    /// what is connected to): upper-case schemes and hosts, IDNA hosts
    /// (to punycode), percent-encoded hosts (decoded), numeric IPv4 spellings
    /// (to dotted-quad), and backslashes after the host, which count as `/`
    /// (`http://a.test\@b.test/` has host `a.test`).
    pub fn parse(raw: &str) -> Result<TargetUrl, TargetError> {
        check_raw(raw)?;
        let rest = match split_scheme(raw) {
            None => return Err(TargetError::Relative),
            Some((scheme, rest)) => {
                if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                    return Err(TargetError::UnsupportedScheme(echoable_scheme(scheme)));
                }
                rest
            }
        };
        let Some(after_slashes) = rest.strip_prefix("//") else {
            return Err(TargetError::Ambiguous(
                "the scheme must be followed by exactly '//'",
            ));
        };
        if after_slashes.starts_with(['/', '\\']) {
            return Err(TargetError::Ambiguous(
                "the scheme must be followed by exactly '//'",
            ));
        }
        // WHATWG ends the authority at the first of these for http(s).
        let authority_end = after_slashes
            .find(['/', '\\', '?', '#'])
            .unwrap_or(after_slashes.len());
        let authority = &after_slashes[..authority_end];
        if authority.contains('@') {
            return Err(TargetError::UserInfo);
        }
        if authority.is_empty() {
            return Err(TargetError::NoHost);
        }

        let url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::EmptyHost => TargetError::NoHost,
            // `url`'s messages name no input; lower-cased for house style.
            other => TargetError::Unparseable(other.to_string().to_ascii_lowercase()),
        })?;
        Self::from_parsed(url)
    }

    /// Validates an already WHATWG-parsed URL and extracts host, IP and port.
    fn from_parsed(url: Url) -> Result<TargetUrl, TargetError> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(TargetError::UnsupportedScheme(echoable_scheme(
                url.scheme(),
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::UserInfo);
        }
        let (host, ip) = match url.host() {
            None => return Err(TargetError::NoHost),
            Some(Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
            Some(Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
            Some(Host::Domain(d)) => {
                let d = strip_one_dot(d);
                if d.is_empty() {
                    return Err(TargetError::NoHost);
                }
                check_domain(d).map_err(TargetError::InvalidHost)?;
                (d.to_owned(), None)
            }
        };
        if url.port() == Some(0) {
            return Err(TargetError::InvalidPort);
        }
        let port = url
            .port_or_known_default()
            .ok_or(TargetError::InvalidPort)?;
        Ok(TargetUrl {
            url,
            host,
            ip,
            port,
        })
    }

    /// Builds the target of a `relative_target` credential: `base`'s origin,
    /// then `base`'s path without its trailing `/`, then `path`.
    ///
    /// `path` must start with exactly one `/` (`//x` and `/\x` are refused
    /// with [`TargetError::NotAPath`], so nothing can look like a
    /// scheme-relative URL) and must not contain a `..` segment, literally,
    /// percent-encoded in any case (`%2e%2e`, `.%2E`), double-encoded
    /// (`%252e%252e`), behind an encoded slash (`a%2f..`) or with a
    /// `;param` (`..;`) — all [`TargetError::PathTraversal`]. The result
    /// goes through [`TargetUrl::parse`] again and is guaranteed to have
    /// `base`'s scheme, host and port, and a path starting with `base`'s path.
    pub fn join_relative(base: &TargetUrl, path: &str) -> Result<TargetUrl, TargetError> {
        check_raw(path)?;
        if !path.starts_with('/') || path[1..].starts_with(['/', '\\']) {
            return Err(TargetError::NotAPath);
        }
        let path_only = &path[..path.find(['?', '#']).unwrap_or(path.len())];
        if has_dot_dot_segment(path_only) {
            return Err(TargetError::PathTraversal);
        }
        let base_path = base.url.path().trim_end_matches('/');
        let origin = &base.url[..url::Position::BeforePath];
        let joined = TargetUrl::parse(&format!("{origin}{base_path}{path}"))?;
        // Defence in depth: the checks above make these impossible.
        if joined.url.scheme() != base.url.scheme()
            || joined.host != base.host
            || joined.port != base.port
        {
            return Err(TargetError::Ambiguous("relative target changed the origin"));
        }
        if !joined.url.path().starts_with(base_path) {
            return Err(TargetError::PathTraversal);
        }
        Ok(joined)
    }

    /// The parsed URL, as the `url` crate normalised it. This is what is
    /// forwarded; its host may still carry the trailing dot that
    /// [`TargetUrl::host_str`] strips.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `http` or `https`, lower-case.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The host to match, pin and resolve: lower-case ASCII (IDNA hosts in
    /// punycode), IPv6 without brackets, one trailing dot removed
    /// (`example.com.` and `example.com` are the same DNS name). Never empty.
    pub fn host_str(&self) -> &str {
        &self.host
    }

    /// The address when the host is an IP literal (any IPv4 spelling or a
    /// bracketed IPv6), else `None`.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The explicit port, or the scheme's default (80 or 443). Never 0.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The normalised URL as a string (what is forwarded and audited).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Common refusals for anything an agent sends as a target or path.
fn check_raw(raw: &str) -> Result<(), TargetError> {
    if raw.is_empty() {
        return Err(TargetError::Missing);
    }
    if raw.len() > MAX_TARGET_BYTES {
        return Err(TargetError::TooLong);
    }
    if raw.chars().any(char::is_control) {
        return Err(TargetError::ControlCharacter);
    }
    if raw.starts_with(char::is_whitespace) || raw.ends_with(char::is_whitespace) {
        return Err(TargetError::Whitespace);
    }
    Ok(())
}

/// Splits `scheme:rest` when the input starts with a syntactically valid
/// scheme (RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn split_scheme(raw: &str) -> Option<(&str, &str)> {
    let colon = raw.find(':')?;
    let scheme = &raw[..colon];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then(|| (scheme, &raw[colon + 1..]))
}

/// A scheme safe to repeat in an error: short and alphabetic, else `other`.
fn echoable_scheme(scheme: &str) -> String {
    if scheme.len() <= MAX_ECHOED_SCHEME && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
        scheme.to_ascii_lowercase()
    } else {
        "other".to_owned()
    }
}

/// True when a path (without query and fragment) has a `..` segment under up
/// to [`MAX_DECODE_ROUNDS`] rounds of percent-decoding, with `/` and `\` as
/// separators and `;params` ignored.
fn has_dot_dot_segment(path: &str) -> bool {
    let is_dot_dot = |p: &str| {
        p.split(['/', '\\'])
            .any(|seg| seg.split(';').next().is_some_and(|s| s == ".."))
    };
    let mut current = path.to_owned();
    for _ in 0..=MAX_DECODE_ROUNDS {
        if is_dot_dot(&current) {
            return true;
        }
        let decoded = percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == current {
            return false;
        }
        current = decoded;
    }
    is_dot_dot(&current)
}
