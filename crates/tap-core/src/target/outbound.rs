//! The outbound policy of SPEC §8: the [`OutboundRule`] that decides whether
//! a secret may reach an address, its [`PrivateAllowlist`], and the
//! [`ResolvePins`] that replace DNS for chosen names.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use url::Host;

use super::error::TargetError;
use super::host::{lookup_key, normalise_config_host, parse_ip_literal};
use super::host_pattern::AllowedHosts;
use super::private::is_private;

/// `TAP_PRIVATE_ALLOWLIST`: comma-separated hosts (exact, case-insensitive)
/// and IP addresses or CIDRs that may be reached although private.
///
/// Invariants: host entries are normalised like [`TargetUrl::host_str`]
/// (lower-case, IDNA, no trailing dot) and never contain wildcards; CIDRs
/// are stored truncated to their network. The default is empty and allows
/// nothing.
///
/// [`TargetUrl::host_str`]: super::TargetUrl::host_str
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
    ///
    /// [`TargetUrl::host_str`]: super::TargetUrl::host_str
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
    ///
    /// [`TargetUrl::host_str`]: super::TargetUrl::host_str
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
