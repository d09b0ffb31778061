//! Host names and IP literals: the normalisation and checks shared by
//! targets, `allowed_hosts` patterns and the outbound settings.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use url::Host;

/// Longest DNS name (without the trailing dot) and longest label.
const MAX_DOMAIN_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

pub(super) fn strip_one_dot(d: &str) -> &str {
    d.strip_suffix('.').unwrap_or(d)
}

/// A DNS name as TAP accepts it after IDNA: non-empty labels of `a-z0-9-_`,
/// at most 63 bytes each and 253 in all. `url` lets through more (`*`, `!`,
/// `,`, `{`...); those are refused so that suffix matching stays unambiguous.
pub(super) fn check_domain(d: &str) -> Result<(), &'static str> {
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

/// Normalises a host written by an operator (pattern, allowlist, pin) the way
/// WHATWG normalises a target host: IDNA, lower case, numeric IPv4 folding,
/// one trailing dot removed; then applies [`check_domain`].
pub(super) fn normalise_config_host(s: &str) -> Result<Host<String>, &'static str> {
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
///
/// [`TargetUrl::host_str`]: super::TargetUrl::host_str
pub(super) fn lookup_key(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    strip_one_dot(h).to_ascii_lowercase()
}

pub(super) fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    match s.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => Ipv6Addr::from_str(inner).ok().map(IpAddr::V6),
        None => IpAddr::from_str(s).ok(),
    }
}
