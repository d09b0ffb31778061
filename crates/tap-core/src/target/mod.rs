//! Upstream targets and where a secret may go (SPEC §3.1 row 4 and 8–10, §4 `allowed_hosts`, §8).
//!
//! A target is parsed exactly once, with the WHATWG URL rules of the `url`
//! crate, into a [`TargetUrl`]. Every later decision — the credential's host
//! binding ([`AllowedHosts`]), the private-address rule ([`is_private`],
//! [`OutboundRule`]) and DNS pins ([`ResolvePins`]) — looks at the host that
//! `url` reports, which is the host the proxy connects to. Inputs that the
//! WHATWG parser would silently repair (tabs, newlines, surrounding
//! whitespace, missing or extra slashes after the scheme, userinfo) are
//! refused instead, so that no other parser can read a different host out of
//! the same string.
//!
//! Nothing here performs I/O: no DNS, no sockets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use percent_encoding::percent_decode_str;
use url::{Host, Url};

/// Longest accepted target, in bytes (raw, before parsing).
pub const MAX_TARGET_BYTES: usize = 8192;

/// Longest scheme echoed back in [`TargetError::UnsupportedScheme`]; longer
/// or non-alphabetic schemes are reported as `other` so that an error never
/// repeats a string that might be a secret.
const MAX_ECHOED_SCHEME: usize = 12;

/// How many rounds of percent-decoding [`TargetUrl::join_relative`] looks
/// through when searching for `..` (catches `%2e%2e` and `%252e%252e`).
const MAX_DECODE_ROUNDS: usize = 3;

/// Longest DNS name (without the trailing dot) and longest label.
const MAX_DOMAIN_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

/// Why a target, an `allowed_hosts` entry or an outbound-safety setting was
/// refused. Messages are lower-case and never contain the rejected input
/// beyond a short, harmless fragment (a scheme name or a reason).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// The target was empty.
    #[error("target is missing")]
    Missing,
    /// The target was longer than [`MAX_TARGET_BYTES`].
    #[error("target is longer than 8192 bytes")]
    TooLong,
    /// The target starts or ends with whitespace.
    #[error("target has leading or trailing whitespace")]
    Whitespace,
    /// The target contains a tab, CR, LF, NUL or another control character
    /// (WHATWG would silently drop some of them; TAP refuses).
    #[error("target contains a control character")]
    ControlCharacter,
    /// The `url` crate refused the target; carries its reason, not the input.
    #[error("target is not a valid url: {0}")]
    Unparseable(String),
    /// The scheme is not `http` or `https`. Carries the scheme only when it is
    /// short and alphabetic, else `other`.
    #[error("unsupported scheme {0:?}: only http and https targets are allowed")]
    UnsupportedScheme(String),
    /// The target has userinfo (`user:pw@`, or even a bare `@`) before the host.
    #[error(
        "target contains userinfo (`user@`); credentials are injected by tap, never taken from the url"
    )]
    UserInfo,
    /// The target has no host, or an empty one.
    #[error("target has no host")]
    NoHost,
    /// The target is a relative reference (`/path`, `host/path`) or
    /// scheme-relative (`//host/path`).
    #[error("target is relative; an absolute http:// or https:// url is required")]
    Relative,
    /// The target is absolute but spelled in a way parsers disagree on, such
    /// as `http:host`, `http:/host`, `http:///host` or `http:\\host`.
    #[error("ambiguous target: {0}")]
    Ambiguous(&'static str),
    /// The host is not a plain DNS name after IDNA normalisation (only
    /// `a-z`, `0-9`, `-`, `_` in non-empty labels), nor an IP literal.
    #[error("target host is not valid: {0}")]
    InvalidHost(&'static str),
    /// The port is 0.
    #[error("target port is not valid")]
    InvalidPort,
    /// A `relative_target` path does not start with exactly one `/`.
    #[error("relative target must be a path starting with a single '/'")]
    NotAPath,
    /// A `relative_target` path contains a `..` segment, literally or
    /// percent-encoded (`%2e%2e` in any case).
    #[error("relative target contains a '..' segment")]
    PathTraversal,
    /// An `allowed_hosts` entry is not `[http://|https://]host[:port]` or `*.suffix`.
    #[error("invalid allowed_hosts entry: {0}")]
    InvalidHostPattern(&'static str),
    /// An entry of `TAP_PRIVATE_ALLOWLIST` is neither a host nor an IP/CIDR.
    #[error("invalid TAP_PRIVATE_ALLOWLIST entry {entry}: {reason}")]
    InvalidAllowlist {
        /// 1-based position of the entry in the comma-separated list.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of `TAP_RESOLVE` is not `host=ip`.
    #[error("invalid TAP_RESOLVE entry {entry}: {reason}")]
    InvalidResolvePin {
        /// 1-based position of the entry in the comma-separated list.
        entry: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

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

fn strip_one_dot(d: &str) -> &str {
    d.strip_suffix('.').unwrap_or(d)
}

/// A DNS name as TAP accepts it after IDNA: non-empty labels of `a-z0-9-_`,
/// at most 63 bytes each and 253 in all. `url` lets through more (`*`, `!`,
/// `,`, `{`...); those are refused so that suffix matching stays unambiguous.
fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.is_empty() {
        return Err("empty host");
    }
    if d.len() > MAX_DOMAIN_BYTES {
        return Err("host name longer than 253 bytes");
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err("empty label in host name");
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err("host label longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err("host name may only contain a-z, 0-9, '-', '_' and '.'");
        }
    }
    Ok(())
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

/// Normalises a host written by an operator (pattern, allowlist, pin) the way
/// WHATWG normalises a target host: IDNA, lower case, numeric IPv4 folding,
/// one trailing dot removed; then applies [`check_domain`].
fn normalise_config_host(s: &str) -> Result<Host<String>, &'static str> {
    if s.is_empty() {
        return Err("empty host");
    }
    if s.contains('%') {
        return Err("percent-encoding is not allowed in a host");
    }
    match Host::parse(s).map_err(|_| "not a valid host name or ip address")? {
        Host::Domain(d) => {
            let d = strip_one_dot(&d);
            check_domain(d)?;
            Ok(Host::Domain(d.to_owned()))
        }
        ip => Ok(ip),
    }
}

/// Lower-cases, strips brackets and one trailing dot: the light normalisation
/// applied to hosts handed to lookups (they normally come from
/// [`TargetUrl::host_str`] and are already normal).
fn lookup_key(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    strip_one_dot(h).to_ascii_lowercase()
}

fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    match s.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => Ipv6Addr::from_str(inner).ok().map(IpAddr::V6),
        None => IpAddr::from_str(s).ok(),
    }
}

/// The scheme an [`HostPattern`] admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The host part of an [`HostPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternHost {
    /// Exactly this DNS name (normalised, no trailing dot).
    Name(String),
    /// Exactly this IP literal.
    Ip(IpAddr),
    /// Any name strictly below this suffix (`*.suffix`).
    Below(String),
}

/// One `allowed_hosts` entry: `[http://|https://]host[:port]` or `*.suffix`
/// (optionally with scheme and port too).
///
/// Invariants:
/// - without a scheme only `https` matches; with one, only that scheme;
/// - without a port only the scheme's default port matches (80 or 443);
/// - `*.example.com` matches deeper hosts (`a.example.com`,
///   `a.b.example.com`), never `example.com` itself, never an IP literal;
/// - hosts compare case-insensitively after the same IDNA, numeric-IPv4 and
///   trailing-dot normalisation as [`TargetUrl`]; look-alikes such as
///   `api.github.com.evil.test` or `evilgithub.com` never match
///   `api.github.com`;
/// - IP literals are allowed (IPv6 in brackets) and match only that literal;
/// - paths, queries, userinfo, percent-encoding, whitespace, control
///   characters, the empty string, a bare `*` and wildcards anywhere but a
///   leading `*.` are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Scheme,
    host: PatternHost,
    port: Option<u16>,
    text: String,
}

impl HostPattern {
    /// Parses one `allowed_hosts` entry; see the type's invariants.
    pub fn parse(s: &str) -> Result<HostPattern, TargetError> {
        let bad = TargetError::InvalidHostPattern;
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("whitespace or control character"));
        }
        let lower_prefix = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        let (scheme, explicit, rest) = if lower_prefix("https://") {
            (Scheme::Https, true, &s["https://".len()..])
        } else if lower_prefix("http://") {
            (Scheme::Http, true, &s["http://".len()..])
        } else if s.contains("://") {
            return Err(bad("only http:// and https:// may prefix a host"));
        } else {
            (Scheme::Https, false, s)
        };
        if rest.contains('@') {
            return Err(bad("userinfo is not allowed"));
        }
        if rest.contains(['/', '\\', '?', '#']) {
            return Err(bad("only a host and an optional port are allowed, no path"));
        }
        let (host_part, port_part) = split_host_port(rest).map_err(bad)?;
        let port = port_part.map(parse_port).transpose().map_err(bad)?;

        let host = if host_part == "*" {
            return Err(bad("a bare '*' is not allowed; use allow_any_host"));
        } else if let Some(suffix) = host_part.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(bad("'*' is only allowed as a leading '*.'"));
            }
            match normalise_config_host(suffix).map_err(bad)? {
                Host::Domain(d) => PatternHost::Below(d),
                Host::Ipv4(_) | Host::Ipv6(_) => {
                    return Err(bad("a wildcard cannot stand before an ip address"));
                }
            }
        } else if host_part.contains('*') {
            return Err(bad("'*' is only allowed as a leading '*.'"));
        } else {
            match normalise_config_host(host_part).map_err(bad)? {
                Host::Domain(d) => PatternHost::Name(d),
                Host::Ipv4(a) => PatternHost::Ip(IpAddr::V4(a)),
                Host::Ipv6(a) => PatternHost::Ip(IpAddr::V6(a)),
            }
        };

        let mut text = String::new();
        if explicit {
            text.push_str(scheme.as_str());
            text.push_str("://");
        }
        match &host {
            PatternHost::Name(d) => text.push_str(d),
            PatternHost::Ip(IpAddr::V4(a)) => text.push_str(&a.to_string()),
            PatternHost::Ip(IpAddr::V6(a)) => text.push_str(&format!("[{a}]")),
            PatternHost::Below(d) => {
                text.push_str("*.");
                text.push_str(d);
            }
        }
        if let Some(p) = port {
            text.push_str(&format!(":{p}"));
        }
        Ok(HostPattern {
            scheme,
            host,
            port,
            text,
        })
    }

    /// True when `t`'s scheme, port and host are all admitted by this entry.
    pub fn matches(&self, t: &TargetUrl) -> bool {
        if t.scheme() != self.scheme.as_str() {
            return false;
        }
        if t.port() != self.port.unwrap_or(self.scheme.default_port()) {
            return false;
        }
        match &self.host {
            PatternHost::Name(d) => t.ip().is_none() && t.host_str() == d,
            PatternHost::Ip(ip) => t.ip() == Some(*ip),
            PatternHost::Below(suffix) => {
                let h = t.host_str();
                t.ip().is_none()
                    && h.len() > suffix.len() + 1
                    && h.ends_with(suffix.as_str())
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            }
        }
    }

    /// True when this entry names exactly the IP literal `ip` (the §8
    /// exception that lets a credential reach a private address it names).
    /// Names and wildcards never count, whatever they resolve to.
    pub fn is_exact_ip(&self, ip: IpAddr) -> bool {
        self.host == PatternHost::Ip(ip)
    }

    /// The normalised spelling: scheme and port kept only if written, host
    /// lower-case ASCII (punycode), numeric IPv4 folded, IPv6 in brackets,
    /// trailing dot removed.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `host[:port]`, where an IPv6 host must be bracketed.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), &'static str> {
    if s.starts_with('[') {
        let close = s.find(']').ok_or("unclosed '[' in ipv6 literal")?;
        let (host, after) = s.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("unexpected text after ipv6 literal"),
        };
    }
    match s.split_once(':') {
        None => Ok((s, None)),
        Some((_, port)) if port.contains(':') => Err("ipv6 literals must be in brackets"),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number from 1 to 65535");
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be a number from 1 to 65535"),
        Ok(n) => Ok(n),
    }
}

/// The credential's host binding.
///
/// Invariant: `Any` exists only when the operator sent `allow_any_host`
/// explicitly; an empty `List` matches nothing.
#[derive(Clone, Debug)]
pub enum AllowedHosts {
    /// Any host (`allow_any_host: true`). Never counts as naming an IP, so it
    /// grants no private-address exception.
    Any,
    /// Only targets matched by at least one entry.
    List(Vec<HostPattern>),
}

impl AllowedHosts {
    /// True when the binding admits `t` (row 8 of SPEC §3.1).
    pub fn matches(&self, t: &TargetUrl) -> bool {
        match self {
            AllowedHosts::Any => true,
            AllowedHosts::List(list) => list.iter().any(|p| p.matches(t)),
        }
    }

    /// True when some entry is exactly the IP literal `ip`. Always false for
    /// [`AllowedHosts::Any`].
    pub fn names_exact_ip(&self, ip: IpAddr) -> bool {
        match self {
            AllowedHosts::Any => false,
            AllowedHosts::List(list) => list.iter().any(|p| p.is_exact_ip(ip)),
        }
    }
}

/// Non-global IPv4 blocks (IANA special-purpose registry, plus 6to4 relay
/// anycast). Everything in here is private to TAP.
const PRIVATE_V4: [Ipv4Net; 15] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), // "this network", unspecified
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), // CGNAT
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, cloud metadata
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24), // TEST-NET-1
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24), // TEST-NET-2
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24), // TEST-NET-3
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, broadcast
];

/// IPv6 global unicast (2000::/3): the only IPv6 space TAP treats as public,
/// apart from the forms that embed an IPv4 address.
const GLOBAL_UNICAST_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// Non-global blocks inside 2000::/3.
const PRIVATE_V6_IN_GLOBAL: [Ipv6Net; 3] = [
    // IETF protocol assignments: Teredo 2001::/32 (its client address is
    // NAT-obfuscated and reached through relays, so it is refused whole),
    // benchmarking 2001:2::/48, ORCHID.
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
    Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
];

/// The IPv4 address an IPv6 address stands for, where it has one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d` (including `::` and `::1`), NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = a.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match a.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// True for every address a secret must not reach by default.
///
/// IPv4: 0/8 (incl. unspecified), 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16
/// (link-local, cloud metadata), 172.16/12, 192.0.0/24, 192.0.2/24,
/// 192.88.99/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24,
/// 224/4 (multicast), 240/4 (reserved, incl. 255.255.255.255).
///
/// IPv6: forms embedding an IPv4 address (mapped `::ffff:0:0/96`,
/// translated `::ffff:0:0:0/96`, compatible `::/96` — which covers `::` and
/// `::1` —, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by that
/// IPv4 address. Otherwise everything outside global unicast 2000::/3 is
/// private (loopback, unspecified, ULA fc00::/7, link-local fe80::/10,
/// site-local fec0::/10, multicast ff00::/8, NAT64 local-use 64:ff9b:1::/48,
/// discard 100::/64, unassigned space), and inside it 2001::/23 (Teredo,
/// benchmarking, ORCHID), 2001:db8::/32 and 3fff::/20 are private.
/// When unsure, private.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => v4_is_private(a),
        IpAddr::V6(a) => v6_is_private(a),
    }
}

fn v4_is_private(a: Ipv4Addr) -> bool {
    PRIVATE_V4.iter().any(|n| n.contains(&a))
}

fn v6_is_private(a: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(a) {
        return v4_is_private(v4);
    }
    !GLOBAL_UNICAST_V6.contains(&a) || PRIVATE_V6_IN_GLOBAL.iter().any(|n| n.contains(&a))
}

/// `TAP_PRIVATE_ALLOWLIST`: comma-separated hosts (exact, case-insensitive)
/// and IP addresses or CIDRs that may be reached although private.
///
/// Invariants: host entries are normalised like [`TargetUrl::host_str`]
/// (lower-case, IDNA, no trailing dot) and never contain wildcards; CIDRs
/// are stored truncated to their network. The default is empty and allows
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct PrivateAllowlist {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl PrivateAllowlist {
    /// Parses the variable. Entries are separated by `,`; spaces around an
    /// entry and empty entries are ignored. An entry with `/` is a CIDR, an
    /// IP literal (IPv6 with or without brackets) is a single address, any
    /// other entry is a host name.
    pub fn parse(s: &str) -> Result<PrivateAllowlist, TargetError> {
        let mut list = PrivateAllowlist::default();
        for (i, raw) in s.split(',').enumerate() {
            let bad = |reason| TargetError::InvalidAllowlist {
                entry: i + 1,
                reason,
            };
            let e = raw.trim_matches([' ', '\t']);
            if e.is_empty() {
                continue;
            }
            if e.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(bad("whitespace or control character"));
            }
            if e.contains('/') {
                let net = IpNet::from_str(e).map_err(|_| bad("not a valid cidr"))?;
                list.nets.push(net.trunc());
            } else if let Some(ip) = parse_ip_literal(e) {
                list.nets.push(IpNet::from(ip));
            } else if e.contains(['*', '@', ':', '?', '#', '\\']) {
                return Err(bad("hosts are exact names, without wildcard, port or path"));
            } else {
                match normalise_config_host(e).map_err(bad)? {
                    Host::Domain(d) => list.hosts.push(d),
                    Host::Ipv4(a) => list.nets.push(IpNet::from(IpAddr::V4(a))),
                    Host::Ipv6(a) => list.nets.push(IpNet::from(IpAddr::V6(a))),
                }
            }
        }
        Ok(list)
    }

    /// True when `host` (as from [`TargetUrl::host_str`]; compared
    /// case-insensitively, one trailing dot ignored) is listed, or `ip` (or
    /// the IPv4 address an IPv4-mapped `ip` stands for) is inside a listed
    /// CIDR.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        let key = lookup_key(host);
        if self.hosts.contains(&key) {
            return true;
        }
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }
}

/// `TAP_RESOLVE`: `host=ip,host=ip` pins that replace DNS for those names.
///
/// Invariants: each host is a normalised DNS name (not an IP literal) and
/// appears once; pinned addresses are still subject to [`OutboundRule`].
#[derive(Clone, Debug, Default)]
pub struct ResolvePins {
    pins: BTreeMap<String, IpAddr>,
}

impl ResolvePins {
    /// Parses the variable. Entries are separated by `,`; spaces around an
    /// entry and empty entries are ignored. The IP may be an IPv6 literal
    /// with or without brackets. A host listed twice is an error.
    pub fn parse(s: &str) -> Result<ResolvePins, TargetError> {
        let mut pins = BTreeMap::new();
        for (i, raw) in s.split(',').enumerate() {
            let bad = |reason| TargetError::InvalidResolvePin {
                entry: i + 1,
                reason,
            };
            let e = raw.trim_matches([' ', '\t']);
            if e.is_empty() {
                continue;
            }
            let (host, ip) = e.split_once('=').ok_or_else(|| bad("expected host=ip"))?;
            let (host, ip) = (host.trim_matches(' '), ip.trim_matches(' '));
            if host.contains(['*', '@', ':', '/', '?', '#', '\\', ' '])
                || host.chars().any(char::is_control)
            {
                return Err(bad("host must be a plain name"));
            }
            let host = match normalise_config_host(host).map_err(bad)? {
                Host::Domain(d) => d,
                Host::Ipv4(_) | Host::Ipv6(_) => {
                    return Err(bad("host must be a name, not an ip address"));
                }
            };
            let ip = parse_ip_literal(ip).ok_or_else(|| bad("not a valid ip address"))?;
            if pins.insert(host, ip).is_some() {
                return Err(bad("host is pinned twice"));
            }
        }
        Ok(ResolvePins { pins })
    }

    /// The pinned address for `host` (as from [`TargetUrl::host_str`];
    /// compared case-insensitively, one trailing dot ignored), if any.
    pub fn get(&self, host: &str) -> Option<IpAddr> {
        self.pins.get(&lookup_key(host)).copied()
    }
}

/// The outbound rule: may a secret go to `ip`, reached for `host`?
///
/// Invariant: a private address (see [`is_private`]) is reached only through
/// one of the three explicit exceptions of SPEC §8; public addresses always
/// pass (the host binding is checked separately, before).
#[derive(Clone, Debug, Default)]
pub struct OutboundRule {
    /// `TAP_ALLOW_PRIVATE_TARGETS=true`: every private address is allowed.
    pub allow_all_private: bool,
    /// `TAP_PRIVATE_ALLOWLIST`: hosts and CIDRs allowed although private.
    pub allowlist: PrivateAllowlist,
}

impl OutboundRule {
    /// True when `ip` is public; or, for a private `ip`, when private targets
    /// are allowed for the deployment, or the allowlist admits `host`/`ip`,
    /// or `host` is that very IP literal and the credential's
    /// `allowed_hosts` names it exactly. Call it with the address actually
    /// connected to.
    pub fn permits(&self, host: &str, ip: IpAddr, allowed: &AllowedHosts) -> bool {
        if !is_private(ip) {
            return true;
        }
        self.allow_all_private
            || self.allowlist.allows(host, ip)
            || (parse_ip_literal(host) == Some(ip) && allowed.names_exact_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TargetUrl {
        TargetUrl::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::List(entries.iter().map(|e| p(e)).collect())
    }

    // ---- TargetUrl::parse -------------------------------------------------

    #[test]
    fn parses_plain_https_target() {
        let u = t("https://api.github.com/repos/x?y=1");
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.host_str(), "api.github.com");
        assert_eq!(u.port(), 443);
        assert_eq!(u.ip(), None);
        assert_eq!(u.as_str(), "https://api.github.com/repos/x?y=1");
        assert_eq!(u.to_string(), u.as_str());
        assert_eq!(u.url().path(), "/repos/x");
    }

    #[test]
    fn default_and_explicit_ports() {
        assert_eq!(t("http://a.test/").port(), 80);
        assert_eq!(t("https://a.test:8443/").port(), 8443);
        assert_eq!(t("https://a.test:443/").port(), 443);
        assert_eq!(t("http://a.test:00080/").port(), 80);
    }

    #[test]
    fn lower_cases_scheme_and_host() {
        let u = t("HTTPS://API.GitHub.COM/Path");
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.host_str(), "api.github.com");
        assert_eq!(u.url().path(), "/Path");
    }

    #[test]
    fn refusals_table() {
        use TargetError as E;
        let cases: &[(&str, TargetError)] = &[
            ("", E::Missing),
            (" https://a.test/", E::Whitespace),
            ("https://a.test/ ", E::Whitespace),
            ("https://a.test/\u{a0}", E::Whitespace),
            ("\thttps://a.test/", E::ControlCharacter),
            ("https://a.test/\t", E::ControlCharacter),
            ("https://a.t\test/", E::ControlCharacter),
            ("https://a.test/\r\nx", E::ControlCharacter),
            ("https://a.test/\n", E::ControlCharacter),
            ("https://a.test\0.evil/", E::ControlCharacter),
            ("https://a.test/\u{7f}", E::ControlCharacter),
            ("https://a.test/\u{85}", E::ControlCharacter),
            ("ftp://a.test/", E::UnsupportedScheme("ftp".into())),
            ("file:///etc/passwd", E::UnsupportedScheme("file".into())),
            ("gopher://a.test/", E::UnsupportedScheme("gopher".into())),
            ("ws://a.test/", E::UnsupportedScheme("ws".into())),
            (
                "javascript:alert(1)",
                E::UnsupportedScheme("javascript".into()),
            ),
            ("data:text/plain,x", E::UnsupportedScheme("data".into())),
            (
                "sk-live-0123456789abcdef://a.test/",
                E::UnsupportedScheme("other".into()),
            ),
            ("localhost:8080/x", E::UnsupportedScheme("localhost".into())),
            ("//a.test/x", E::Relative),
            ("\\\\a.test/x", E::Relative),
            ("/\\a.test/x", E::Relative),
            ("/path", E::Relative),
            ("a.test/path", E::Relative),
            ("?q=1", E::Relative),
            ("#frag", E::Relative),
            (
                "http:a.test/",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            (
                "http:/a.test/",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            (
                "http:///a.test/",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            (
                "http:\\\\a.test/",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            (
                "http://\\a.test/",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            ("https://user:pw@a.test/", E::UserInfo),
            ("https://user@a.test/", E::UserInfo),
            ("https://@a.test/", E::UserInfo),
            ("https://:@a.test/", E::UserInfo),
            ("https://a.test@evil.test/", E::UserInfo),
            (
                "https:///",
                E::Ambiguous("the scheme must be followed by exactly '//'"),
            ),
            ("https://", E::NoHost),
            ("https://:443/", E::NoHost),
            ("https://?x", E::NoHost),
            ("https://a.test:0/", E::InvalidPort),
            ("http://./", E::NoHost),
        ];
        for (raw, want) in cases {
            assert_eq!(TargetUrl::parse(raw).as_ref().err(), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn refuses_invalid_hosts_via_url_or_domain_check() {
        for raw in [
            "https://a..test/",
            "https://*.a.test/",
            "https://evil.test,.a.test/",
            "https://a.test{}/",
            "https://a b.test/",
            "https://a.test:99999/",
            "https://a.test:x/",
            "https://[::1/",
            "https://[zz::1]/",
            "https://256.0.0.1/",
            "https://1.2.3.4.5/",
            "https://%00.test/",
            "https://a%2fb.test/",
            "https://a%40b.test/",
            "https://a.test%2f@evil.test/",
            &format!("https://{}.test/", "a".repeat(64)),
            &format!("https://{}test/", "a.".repeat(130)),
        ] {
            assert!(TargetUrl::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn error_messages_never_echo_the_input() {
        let secret = "sk_live_SECRET123";
        for raw in [
            format!("https://{secret}@a.test/"),
            format!("https://a.test/{secret}\n"),
            format!("ftp://a.test/{secret}"),
            format!("https://{secret}..test/"),
            format!("https://[{secret}]/"),
            format!("/{secret}"),
        ] {
            let e = TargetUrl::parse(&raw).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert_eq!(
                e.to_string(),
                e.to_string().to_lowercase(),
                "messages are lower-case"
            );
        }
    }

    #[test]
    fn size_limit_is_8_kib() {
        let prefix = "https://a.test/";
        let ok = format!("{prefix}{}", "a".repeat(MAX_TARGET_BYTES - prefix.len()));
        assert_eq!(ok.len(), 8192);
        assert!(TargetUrl::parse(&ok).is_ok());
        let long = format!("{ok}a");
        assert_eq!(TargetUrl::parse(&long).unwrap_err(), TargetError::TooLong);
        let huge = "x".repeat(1 << 20);
        assert_eq!(TargetUrl::parse(&huge).unwrap_err(), TargetError::TooLong);
    }

    #[test]
    fn numeric_ipv4_spellings_fold_to_dotted_quad_and_are_private() {
        for raw in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://127.0.0.1./",
            "http://127.000.000.001/",
            "http://0x7F.0.0.1/",
            "http://%31%32%37.0.0.1/",
            "http://１２７.0.0.1/",
        ] {
            let u = t(raw);
            assert_eq!(u.ip(), Some(ip("127.0.0.1")), "{raw}");
            assert_eq!(u.host_str(), "127.0.0.1", "{raw}");
            assert!(is_private(ip(u.host_str())), "{raw}");
        }
        assert_eq!(t("http://0/").ip(), Some(ip("0.0.0.0")));
        assert_eq!(t("http://2852039166/").ip(), Some(ip("169.254.169.254")));
    }

    #[test]
    fn ipv6_literals_lose_brackets_in_host_str() {
        let u = t("http://[::1]:8080/x");
        assert_eq!(u.host_str(), "::1");
        assert_eq!(u.ip(), Some(ip("::1")));
        assert_eq!(u.port(), 8080);
        let m = t("http://[::ffff:127.0.0.1]/");
        assert_eq!(m.ip(), Some(ip("::ffff:127.0.0.1")));
        assert!(is_private(m.ip().unwrap()));
        assert_eq!(
            t("http://[2606:4700:0::1111]/").host_str(),
            "2606:4700::1111"
        );
    }

    #[test]
    fn backslash_after_host_is_a_slash_and_the_checked_host_is_the_one_url_reports() {
        // WHATWG: for http(s) '\' ends the authority like '/', so the '@'
        // after it is path, not userinfo. The host checked is `a.test`,
        // and that is also the host `url` connects to.
        let u = t("http://a.test\\@evil.test/");
        assert_eq!(u.host_str(), "a.test");
        assert_eq!(u.url().host_str(), Some("a.test"));
        assert_eq!(u.url().path(), "/@evil.test/");
        assert!(list(&["http://a.test"]).matches(&u));
        assert!(!list(&["http://evil.test"]).matches(&u));

        let v = t("https://api.github.com\\repos\\x");
        assert_eq!(v.host_str(), "api.github.com");
        assert_eq!(v.url().path(), "/repos/x");
    }

    #[test]
    fn fragment_and_query_cannot_move_the_host() {
        let u = t("https://api.github.com#@evil.test/");
        assert_eq!(u.host_str(), "api.github.com");
        let v = t("https://api.github.com?@evil.test/");
        assert_eq!(v.host_str(), "api.github.com");
        let w = t("https://api.github.com/x#https://evil.test/");
        assert_eq!(w.host_str(), "api.github.com");
    }

    #[test]
    fn percent_encoded_host_is_decoded_before_checking() {
        let u = t("https://%61pi.github.com/");
        assert_eq!(u.host_str(), "api.github.com");
        assert_eq!(u.url().host_str(), Some("api.github.com"));
        let e = t("https://api.github.com%2eevil.test/");
        assert_eq!(e.host_str(), "api.github.com.evil.test");
        assert!(!list(&["api.github.com"]).matches(&e));
    }

    #[test]
    fn idna_hosts_normalise_to_punycode() {
        let u = t("https://bücher.example/");
        assert_eq!(u.host_str(), "xn--bcher-kva.example");
        // Full-width letters map to ASCII.
        assert_eq!(t("https://ＡＰＩ.github.com/").host_str(), "api.github.com");
        // A Cyrillic 'а' look-alike is a different name.
        let homograph = t("https://аpi.github.com/");
        assert_ne!(homograph.host_str(), "api.github.com");
        assert!(homograph.host_str().starts_with("xn--"));
        assert!(!list(&["api.github.com"]).matches(&homograph));
        // Ideographic full stop is a dot.
        assert_eq!(t("https://api。github.com/").host_str(), "api.github.com");
    }

    #[test]
    fn strips_exactly_one_trailing_dot_for_matching() {
        let u = t("https://api.github.com./x");
        assert_eq!(u.host_str(), "api.github.com");
        assert_eq!(u.url().host_str(), Some("api.github.com."));
        assert!(list(&["api.github.com"]).matches(&u));
        assert!(TargetUrl::parse("https://api.github.com../").is_err());
    }

    #[test]
    fn interior_spaces_are_percent_encoded_not_refused() {
        let u = t("https://a.test/a b?q=c d");
        assert_eq!(u.as_str(), "https://a.test/a%20b?q=c%20d");
    }

    #[test]
    fn underscore_hosts_are_accepted() {
        assert_eq!(
            t("https://my_service.internal/").host_str(),
            "my_service.internal"
        );
    }

    // ---- join_relative ----------------------------------------------------

    #[test]
    fn join_relative_appends_path_to_base_path() {
        let base = t("https://api.twitter.com/2/");
        let j = TargetUrl::join_relative(&base, "/tweets?ids=1").unwrap();
        assert_eq!(j.as_str(), "https://api.twitter.com/2/tweets?ids=1");
        let root = t("https://api.example.com");
        assert_eq!(
            TargetUrl::join_relative(&root, "/v1/x").unwrap().as_str(),
            "https://api.example.com/v1/x"
        );
        let port = t("http://[::1]:9000/base");
        assert_eq!(
            TargetUrl::join_relative(&port, "/y").unwrap().as_str(),
            "http://[::1]:9000/base/y"
        );
        // Base query and fragment are dropped.
        let q = t("https://a.test/v1?k=1#f");
        assert_eq!(
            TargetUrl::join_relative(&q, "/x").unwrap().as_str(),
            "https://a.test/v1/x"
        );
    }

    #[test]
    fn join_relative_refuses_traversal_and_non_paths() {
        use TargetError as E;
        let base = t("https://api.example.com/v1/");
        let cases: &[(&str, TargetError)] = &[
            ("", E::Missing),
            ("x/y", E::NotAPath),
            ("https://evil.test/", E::NotAPath),
            ("//evil.test/x", E::NotAPath),
            ("/\\evil.test/x", E::NotAPath),
            ("/..", E::PathTraversal),
            ("/../admin", E::PathTraversal),
            ("/a/../../admin", E::PathTraversal),
            ("/a/..", E::PathTraversal),
            ("/a\\..\\b", E::PathTraversal),
            ("/%2e%2e/admin", E::PathTraversal),
            ("/%2E%2e/admin", E::PathTraversal),
            ("/%2E%2E/admin", E::PathTraversal),
            ("/.%2e/admin", E::PathTraversal),
            ("/%2e./admin", E::PathTraversal),
            ("/a%2f..%2fadmin", E::PathTraversal),
            ("/a%5c..%5cadmin", E::PathTraversal),
            ("/%252e%252e/admin", E::PathTraversal),
            ("/..;/admin", E::PathTraversal),
            ("/x\t", E::ControlCharacter),
            ("/x\r\nHost: evil", E::ControlCharacter),
            ("/x ", E::Whitespace),
        ];
        for (path, want) in cases {
            assert_eq!(
                TargetUrl::join_relative(&base, path).as_ref().err(),
                Some(want),
                "{path:?}"
            );
        }
    }

    #[test]
    fn join_relative_allows_dots_that_are_not_traversal() {
        let base = t("https://api.example.com/v1");
        for (path, want) in [
            ("/a..b", "https://api.example.com/v1/a..b"),
            ("/...", "https://api.example.com/v1/..."),
            ("/x?p=../..", "https://api.example.com/v1/x?p=../.."),
            ("/file.tar.gz", "https://api.example.com/v1/file.tar.gz"),
            ("/a@evil.test", "https://api.example.com/v1/a@evil.test"),
        ] {
            assert_eq!(
                TargetUrl::join_relative(&base, path).unwrap().as_str(),
                want,
                "{path}"
            );
        }
    }

    #[test]
    fn join_relative_never_changes_origin() {
        let base = t("https://api.example.com/v1");
        for path in [
            "/@evil.test",
            "/:80@evil.test/",
            "/#@evil.test",
            "/?//evil.test",
            "/\\/evil.test",
        ] {
            if let Ok(j) = TargetUrl::join_relative(&base, path) {
                assert_eq!(j.host_str(), "api.example.com", "{path}");
                assert_eq!(j.port(), 443, "{path}");
                assert!(j.url().path().starts_with("/v1"), "{path}");
            }
        }
    }

    // ---- HostPattern ------------------------------------------------------

    #[test]
    fn look_alikes_do_not_match_exact_host() {
        let allowed = list(&["api.github.com"]);
        assert!(allowed.matches(&t("https://api.github.com/x")));
        assert!(allowed.matches(&t("https://API.GITHUB.COM/x")));
        for raw in [
            "https://api.github.com.evil.test/",
            "https://evilgithub.com/",
            "https://evilapi.github.com/",
            "https://api.github.co/",
            "https://github.com/",
            "https://x.api.github.com/",
            "http://api.github.com/",
            "https://api.github.com:8443/",
            "https://api.github.com:80/",
            "http://api.github.com:443/",
        ] {
            assert!(!allowed.matches(&t(raw)), "{raw} must not match");
        }
    }

    #[test]
    fn scheme_and_port_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("api.test", "https://api.test/", true),
            ("api.test", "https://api.test:443/", true),
            ("api.test", "http://api.test/", false),
            ("api.test", "http://api.test:443/", false),
            ("api.test:8443", "https://api.test:8443/", true),
            ("api.test:8443", "https://api.test/", false),
            ("api.test:8443", "http://api.test:8443/", false),
            ("http://api.test", "http://api.test/", true),
            ("http://api.test", "http://api.test:80/", true),
            ("http://api.test", "https://api.test/", false),
            ("http://api.test", "http://api.test:8080/", false),
            ("http://api.test:8080", "http://api.test:8080/", true),
            ("HTTPS://api.test", "https://api.test/", true),
            ("https://api.test", "http://api.test/", false),
            ("https://api.test:443", "https://api.test/", true),
        ];
        for (pat, raw, want) in cases {
            assert_eq!(p(pat).matches(&t(raw)), *want, "{pat} vs {raw}");
        }
    }

    #[test]
    fn wildcard_suffix_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.example.com", "https://a.example.com/", true),
            ("*.example.com", "https://a.b.example.com/", true),
            ("*.example.com", "https://A.EXAMPLE.COM./", true),
            ("*.example.com", "https://example.com/", false),
            ("*.example.com", "https://example.com./", false),
            ("*.example.com", "https://aexample.com/", false),
            ("*.example.com", "https://a.example.com.evil.test/", false),
            ("*.example.com", "https://example.com.evil.test/", false),
            ("*.example.com", "http://a.example.com/", false),
            ("*.example.com", "https://a.example.com:8443/", false),
            (
                "http://*.example.com:8080",
                "http://a.example.com:8080/",
                true,
            ),
            ("http://*.example.com:8080", "http://a.example.com/", false),
            ("*.Example.COM.", "https://a.example.com/", true),
            ("*.bücher.example", "https://a.bücher.example/", true),
            ("*.bücher.example", "https://a.xn--bcher-kva.example/", true),
        ];
        for (pat, raw, want) in cases {
            assert_eq!(p(pat).matches(&t(raw)), *want, "{pat} vs {raw}");
        }
    }

    #[test]
    fn ip_literal_patterns_match_only_that_literal() {
        let v4 = p("10.0.0.5:8080");
        assert!(v4.matches(&t("https://10.0.0.5:8080/")));
        assert!(v4.matches(&t("https://0x0a.0.0.5:8080/")));
        assert!(!v4.matches(&t("https://10.0.0.6:8080/")));
        assert!(v4.is_exact_ip(ip("10.0.0.5")));
        assert!(!v4.is_exact_ip(ip("10.0.0.6")));
        assert!(!v4.is_exact_ip(ip("::ffff:10.0.0.5")));

        let v6 = p("http://[::1]:9000");
        assert!(v6.matches(&t("http://[::1]:9000/")));
        assert!(v6.matches(&t("http://[0:0::1]:9000/")));
        assert!(!v6.matches(&t("http://127.0.0.1:9000/")));
        assert!(v6.is_exact_ip(ip("::1")));
        assert_eq!(v6.as_str(), "http://[::1]:9000");

        assert!(!p("api.test").is_exact_ip(ip("10.0.0.5")));
        assert!(!p("*.test").is_exact_ip(ip("10.0.0.5")));
        // A name pattern never matches an IP-literal target.
        assert!(!p("localhost").matches(&t("https://127.0.0.1/")));
    }

    #[test]
    fn pattern_refusals() {
        for s in [
            "",
            " ",
            " api.test",
            "api.test ",
            "api.\ttest",
            "*",
            "https://*",
            "*.",
            "*.*.test",
            "a*.test",
            "*a.test",
            "a.*.test",
            "api.test/path",
            "api.test/",
            "api.test?x",
            "api.test#x",
            "api.test\\x",
            "user@api.test",
            "https://user:pw@api.test",
            "ftp://api.test",
            "ws://api.test",
            "//api.test",
            "api.test:",
            "api.test:0",
            "api.test:65536",
            "api.test:443x",
            "api.test:-1",
            "::1",
            "[::1",
            "[::1]x",
            "*.10.0.0.1",
            "*.[::1]",
            "a..test",
            "api%2etest",
            "a,b.test",
        ] {
            assert!(HostPattern::parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn pattern_as_str_is_normalised() {
        for (input, want) in [
            ("API.GitHub.com", "api.github.com"),
            ("api.github.com.", "api.github.com"),
            ("HTTP://Api.Test:8080", "http://api.test:8080"),
            ("*.Example.COM", "*.example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("[0:0::1]", "[::1]"),
            ("2130706433", "127.0.0.1"),
            ("https://api.test:443", "https://api.test:443"),
        ] {
            let pat = p(input);
            assert_eq!(pat.as_str(), want, "{input}");
            assert_eq!(pat.to_string(), want, "{input}");
        }
        assert_eq!(p("API.test"), p("api.test."));
    }

    #[test]
    fn allowed_hosts_any_matches_all_but_names_no_ip() {
        assert!(AllowedHosts::Any.matches(&t("https://anything.test/")));
        assert!(!AllowedHosts::Any.names_exact_ip(ip("127.0.0.1")));
        assert!(!AllowedHosts::List(vec![]).matches(&t("https://anything.test/")));
        let l = list(&["api.test", "10.1.2.3"]);
        assert!(l.names_exact_ip(ip("10.1.2.3")));
        assert!(!l.names_exact_ip(ip("10.1.2.4")));
    }

    // ---- is_private -------------------------------------------------------

    #[test]
    fn private_address_table() {
        let private = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "100::1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1::808:808",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "4000::1",
            "::2:1:1:1",
            // IPv4-mapped / translated / compatible / NAT64 / 6to4 of private v4
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::0.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101:1::1",
        ];
        for a in private {
            assert!(is_private(ip(a)), "{a} must be private");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "203.0.114.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:200::1",
            "3ffe::1",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b::101:101",
            "2002:808:808::1",
        ];
        for a in public {
            assert!(!is_private(ip(a)), "{a} must be public");
        }
    }

    // ---- PrivateAllowlist, ResolvePins, OutboundRule ------------------------

    #[test]
    fn allowlist_hosts_and_cidrs() {
        let a = PrivateAllowlist::parse(
            "internal.corp, 10.1.0.0/16,192.168.5.5, [fd00::1],fd10::/16,,",
        )
        .unwrap();
        assert!(!a.is_empty());
        assert!(a.allows("internal.corp", ip("10.9.9.9")));
        assert!(a.allows("INTERNAL.corp.", ip("172.16.0.1")));
        assert!(!a.allows("x.internal.corp", ip("172.16.0.1")));
        assert!(!a.allows("internal.corp.evil", ip("172.16.0.1")));
        assert!(a.allows("svc.test", ip("10.1.200.3")));
        assert!(!a.allows("svc.test", ip("10.2.0.1")));
        assert!(a.allows("svc.test", ip("::ffff:10.1.0.9")));
        assert!(a.allows("svc.test", ip("192.168.5.5")));
        assert!(!a.allows("svc.test", ip("192.168.5.6")));
        assert!(a.allows("svc.test", ip("fd00::1")));
        assert!(a.allows("svc.test", ip("fd10:1::1")));
        assert!(!a.allows("svc.test", ip("fd11::1")));
        // Host bits in a CIDR are truncated, not refused.
        assert!(
            PrivateAllowlist::parse("10.1.2.3/8")
                .unwrap()
                .allows("x", ip("10.200.0.1"))
        );
        assert!(PrivateAllowlist::parse("").unwrap().is_empty());
        assert!(PrivateAllowlist::default().is_empty());
        assert!(!PrivateAllowlist::default().allows("localhost", ip("127.0.0.1")));
    }

    #[test]
    fn allowlist_refusals_name_the_entry() {
        for (s, entry) in [
            ("ok.test,*.corp", 2),
            ("10.0.0.0/33", 1),
            ("a.test,b.test:80", 2),
            ("a.test/path", 1),
            ("a..b", 1),
            ("user@a.test", 1),
            ("a b", 1),
        ] {
            match PrivateAllowlist::parse(s) {
                Err(TargetError::InvalidAllowlist { entry: e, .. }) => assert_eq!(e, entry, "{s}"),
                other => panic!("{s:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn resolve_pins_parse_and_lookup() {
        let r =
            ResolvePins::parse("api.test=127.0.0.1, Other.Test.=[::1],v6.test=fd00::2").unwrap();
        assert_eq!(r.get("api.test"), Some(ip("127.0.0.1")));
        assert_eq!(r.get("API.TEST."), Some(ip("127.0.0.1")));
        assert_eq!(r.get("other.test"), Some(ip("::1")));
        assert_eq!(r.get("v6.test"), Some(ip("fd00::2")));
        assert_eq!(r.get("missing.test"), None);
        assert_eq!(ResolvePins::parse("").unwrap().get("api.test"), None);
        for s in [
            "api.test",
            "api.test=",
            "=127.0.0.1",
            "api.test=localhost",
            "api.test=1.2.3.4,API.test=1.2.3.5",
            "*.test=1.2.3.4",
            "1.2.3.4=1.2.3.4",
            "a.test:80=1.2.3.4",
            "a.test=1.2.3.4/8",
        ] {
            assert!(ResolvePins::parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn outbound_rule_table() {
        let none = AllowedHosts::List(vec![]);
        let names_ip = list(&["10.0.0.5:8080"]);
        let default = OutboundRule::default();
        // Public addresses always pass.
        assert!(default.permits("api.test", ip("8.8.8.8"), &none));
        assert!(default.permits("2606:4700::1111", ip("2606:4700::1111"), &none));
        // Private addresses are refused by default, also when a name resolves there.
        assert!(!default.permits("api.test", ip("10.0.0.5"), &names_ip));
        assert!(!default.permits("127.0.0.1", ip("127.0.0.1"), &AllowedHosts::Any));
        assert!(!default.permits("metadata.test", ip("169.254.169.254"), &AllowedHosts::Any));
        // Exact IP literal named in allowed_hosts, reached as that literal.
        assert!(default.permits("10.0.0.5", ip("10.0.0.5"), &names_ip));
        assert!(!default.permits("10.0.0.6", ip("10.0.0.6"), &names_ip));
        assert!(!default.permits("10.0.0.5", ip("10.0.0.6"), &names_ip));
        let v6 = list(&["[::1]"]);
        assert!(default.permits("::1", ip("::1"), &v6));
        assert!(default.permits("[::1]", ip("::1"), &v6));
        assert!(!default.permits("localhost", ip("::1"), &v6));
        // Deployment-wide switch.
        let all = OutboundRule {
            allow_all_private: true,
            ..OutboundRule::default()
        };
        assert!(all.permits("api.test", ip("127.0.0.1"), &none));
        // Allowlist by host or CIDR.
        let allow = OutboundRule {
            allow_all_private: false,
            allowlist: PrivateAllowlist::parse("internal.corp,192.168.0.0/24").unwrap(),
        };
        assert!(allow.permits("internal.corp", ip("10.9.9.9"), &none));
        assert!(allow.permits("x.test", ip("192.168.0.7"), &none));
        assert!(!allow.permits("x.test", ip("192.168.1.7"), &none));
    }

    #[test]
    fn end_to_end_numeric_loopback_target_is_refused_without_exception() {
        let allowed = list(&["http://api.test"]);
        let target = t("http://0x7f.1/");
        assert!(!allowed.matches(&target));
        let rule = OutboundRule::default();
        let addr = target.ip().unwrap();
        assert!(!rule.permits(target.host_str(), addr, &AllowedHosts::Any));
    }

    // ---- properties -------------------------------------------------------

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in any::<String>()) {
                let _ = TargetUrl::parse(&s);
                let _ = HostPattern::parse(&s);
                let _ = PrivateAllowlist::parse(&s);
                let _ = ResolvePins::parse(&s);
            }

            #[test]
            fn parse_never_panics_on_url_like_input(
                s in r"(https?|HTTP|ftp)?:?[/\\]{0,3}[a-zA-Z0-9.:@/\\?#%\[\]_~ \t\n\x00\u{80}-\u{10ffff}-]{0,40}"
            ) {
                if let Ok(u) = TargetUrl::parse(&s) {
                    prop_assert!(u.scheme() == "http" || u.scheme() == "https");
                    prop_assert!(!u.host_str().is_empty());
                    prop_assert!(u.port() != 0);
                    prop_assert_eq!(u.url().username(), "");
                    prop_assert!(!u.host_str().bytes().any(|b| b.is_ascii_uppercase()));
                    // Re-parsing the normalised form is stable.
                    let again = TargetUrl::parse(u.as_str());
                    prop_assert_eq!(again.as_ref().map(TargetUrl::host_str).ok(), Some(u.host_str()));
                    prop_assert_eq!(again.as_ref().map(TargetUrl::port).ok(), Some(u.port()));
                }
            }

            #[test]
            fn accepted_targets_hold_the_invariants(
                s in r"(http|https|HTTP)://[a-zA-Z0-9.%@:\[\]\\_~\u{80}-\u{3000}-]{1,24}([/\\?#][ -~\u{80}-\u{ff}]{0,30})?"
            ) {
                if let Ok(u) = TargetUrl::parse(&s) {
                    prop_assert!(!u.host_str().is_empty());
                    prop_assert!(u.host_str().is_ascii());
                    prop_assert!(!u.host_str().bytes().any(|b| b.is_ascii_uppercase()));
                    prop_assert!(u.as_str().is_ascii());
                    prop_assert_eq!(u.url().username(), "");
                    prop_assert!(u.url().password().is_none());
                    let again = TargetUrl::parse(u.as_str());
                    prop_assert_eq!(again.as_ref().map(TargetUrl::host_str).ok(), Some(u.host_str()));
                    prop_assert_eq!(again.as_ref().map(TargetUrl::ip).ok(), Some(u.ip()));
                    prop_assert_eq!(again.as_ref().map(TargetUrl::port).ok(), Some(u.port()));
                }
            }

            #[test]
            fn join_relative_never_panics_and_keeps_origin(path in "(?s)[ -~\u{80}-\u{ff}\t\n\0]{0,40}") {
                let base = TargetUrl::parse("https://api.example.com/v1/").unwrap();
                if let Ok(j) = TargetUrl::join_relative(&base, &path) {
                    prop_assert_eq!(j.host_str(), "api.example.com");
                    prop_assert_eq!(j.port(), 443);
                    prop_assert!(j.url().path().starts_with("/v1/"));
                    prop_assert!(!j.url().path().split('/').any(|s| s == ".."));
                }
            }

            #[test]
            fn suffixes_of_an_allowed_name_never_match(label in "[a-z0-9-]{1,20}") {
                let pat = HostPattern::parse("api.github.com").unwrap();
                for raw in [
                    format!("https://api.github.com.{label}/"),
                    format!("https://{label}api.github.com/"),
                    format!("https://{label}.api.github.com/"),
                ] {
                    if let Ok(u) = TargetUrl::parse(&raw) {
                        prop_assert!(!pat.matches(&u), "{}", raw);
                    }
                }
            }

            #[test]
            fn is_private_agrees_on_mapped_forms(a in any::<u32>()) {
                let v4 = Ipv4Addr::from(a);
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                let compat = IpAddr::V6(v4.to_ipv6_compatible());
                prop_assert_eq!(is_private(IpAddr::V4(v4)), is_private(mapped));
                prop_assert_eq!(is_private(IpAddr::V4(v4)), is_private(compat));
            }
        }
    }
}
