//! Which addresses are private: [`is_private`] over the IANA special-purpose
//! blocks, with IPv6 forms that embed an IPv4 address judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

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
