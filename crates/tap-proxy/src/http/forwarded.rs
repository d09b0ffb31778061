//! `TAP_TRUSTED_PROXIES`: the load balancers whose `X-Forwarded-For` names
//! the client. Behind one, every TCP peer is the balancer, so without this
//! one stranger's failures would lock every client out of the per-address
//! limits ([`super::limiter`]). Only peers in the list are believed: from any
//! other peer the header is ignored, so a client cannot pick its own address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// The header a trusted proxy names the client in; each hop appends the
/// address it received the request from (nginx: `$proxy_add_x_forwarded_for`).
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The trusted proxies: IP addresses and CIDRs.
///
/// Invariants: CIDRs are stored truncated to their network; the default is
/// empty and trusts no peer, so the TCP peer is always the client address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses the variable: comma-separated IP addresses and CIDRs; spaces
    /// around an entry and empty entries are ignored. `Err(n)` names the
    /// first entry (1-based) that is neither.
    pub fn parse(s: &str) -> Result<Self, usize> {
        let mut nets = Vec::new();
        for (i, raw) in s.split(',').enumerate() {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let net = if e.contains('/') {
                IpNet::from_str(e).map(|n| n.trunc()).ok()
            } else {
                IpAddr::from_str(e.trim_start_matches('[').trim_end_matches(']'))
                    .ok()
                    .map(IpNet::from)
            };
            nets.push(net.ok_or(i + 1)?);
        }
        Ok(Self { nets })
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// True when `ip` (or the IPv4 address an IPv4-mapped `ip` stands for)
    /// is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
    }

    /// The client address of a request from TCP peer `peer`: the peer itself
    /// unless it is a trusted proxy; then the right-most `X-Forwarded-For`
    /// address (across every such header, in order) that is not itself a
    /// trusted proxy, or the left-most one when all are. An entry on the way
    /// that is not an address (or no header at all) gives the peer: what a
    /// client wrote left of the address its proxy appended is never read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.nets.is_empty() || !self.contains(peer) {
            return peer;
        }
        let values: Vec<&[u8]> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let mut leftmost = None;
        for value in values.iter().rev() {
            for entry in value.rsplit(|b| *b == b',') {
                let Some(ip) = parse_entry(entry) else {
                    return peer;
                };
                if !self.contains(ip) {
                    return ip;
                }
                leftmost = Some(ip);
            }
        }
        leftmost.unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an IP address, optionally with a port
/// (`1.2.3.4:5`, `[2001:db8::1]:5`) or in brackets.
fn parse_entry(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(s) {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| IpAddr::from_str(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, http::HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_addresses_and_cidrs_and_names_a_bad_entry() {
        let t = TrustedProxies::parse(" 10.0.0.1, 172.16.0.0/12,,[::1] ,2001:db8::/32").unwrap();
        assert!(t.contains(ip("10.0.0.1")));
        assert!(!t.contains(ip("10.0.0.2")));
        assert!(t.contains(ip("172.31.255.1")));
        assert!(t.contains(ip("::ffff:172.20.0.5")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(TrustedProxies::parse("10.0.0.1,nginx"), Err(2));
        assert_eq!(TrustedProxies::parse("10.0.0.0/33"), Err(1));
        assert_eq!(TrustedProxies::parse("*"), Err(1));
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let lb = ip("10.0.0.5");
        let cases: &[(&[&[u8]], &str)] = &[
            // nginx appended the client.
            (&[b"203.0.113.7"], "203.0.113.7"),
            // What the client wrote itself is left of it and never read.
            (&[b"198.51.100.1, 203.0.113.7"], "203.0.113.7"),
            (&[b"not an address, 203.0.113.7"], "203.0.113.7"),
            (&[b"\xff\xfe, 203.0.113.7"], "203.0.113.7"),
            // Inner trusted hops are skipped.
            (&[b"203.0.113.7, 10.1.1.1"], "203.0.113.7"),
            // Several headers read as one list, in order.
            (&[b"198.51.100.1", b"203.0.113.7, 10.9.9.9"], "203.0.113.7"),
            // Ports and brackets.
            (&[b"203.0.113.7:4711"], "203.0.113.7"),
            (&[b"[2001:db8::7]:4711"], "2001:db8::7"),
            (&[b"[2001:db8::7]"], "2001:db8::7"),
            (&[b"2001:db8::7"], "2001:db8::7"),
            // Every hop trusted: the farthest one.
            (&[b"10.3.3.3, 10.1.1.1"], "10.3.3.3"),
            // Malformed where it is read, or missing: the peer.
            (&[b"203.0.113.7, garbage"], "10.0.0.5"),
            (&[b"203.0.113.7, "], "10.0.0.5"),
            (&[b""], "10.0.0.5"),
            (&[], "10.0.0.5"),
        ];
        for (values, want) in cases {
            assert_eq!(
                t.client(lb, &headers(values)),
                ip(want),
                "{:?}",
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn an_untrusted_peer_or_an_empty_list_ignores_the_header() {
        let h = headers(&[b"203.0.113.7"]);
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(t.client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }
}
