//! [`HostPattern`] and [`AllowedHosts`]: a credential's binding to the
//! hosts its secret may be sent to.

use std::fmt;
use std::net::IpAddr;

use url::Host;

use super::error::TargetError;
use super::host::normalise_config_host;
use super::url::TargetUrl;

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
