//! The SSRF guard of the client (spec [DISC-11](crate::requirements#DISC-11), RFC 9728 §7.7): what kind of network place a
//! URL's host names, and whether a URL taken from a challenge or from metadata may be fetched
//! when the user asked for a given MCP server.
//!
//! The rule, like the official Rust SDK's (rmcp) private-address check: a URL that names the
//! MCP server's own host is always acceptable; a public host too; a loopback host only when the
//! MCP server itself is on loopback; a private-network host only when the MCP server is on a
//! private-network address of its own, or under the named switch
//! [`crate::client::ClientConfig::allow_private_addresses`]; link-local, unspecified,
//! multicast, reserved addresses, cloud metadata names and ambiguous numeric spellings never.
//!
//! Only the literal host is judged here (the core does no DNS). A driver that resolves names
//! may apply [`ip_class`] to the addresses it gets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::uri::parse_uri;

/// Where a host or address lies, for the SSRF guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostClass {
    /// A host name, or an address on the public internet.
    Public,
    /// This machine: `localhost`, `*.localhost`, 127.0.0.0/8, `::1`.
    Loopback,
    /// A private network: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 (shared
    /// address space), fc00::/7.
    Private,
    /// Never fetched: link-local (169.254.0.0/16, fe80::/10, where cloud metadata services
    /// live), unspecified, broadcast, multicast, reserved and benchmarking ranges, cloud
    /// metadata host names, and numeric host spellings a resolver might read as an address
    /// (`127.1`, `0x7f000001`, `2130706433`).
    Blocked,
}

/// Cloud metadata service names (GCP, Azure) that resolve to link-local addresses.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.azure.internal",
];

/// The class of a URI host as [`parse_uri`] gives it (a reg-name, an IPv4 literal, or an IP
/// literal in brackets).
#[must_use]
pub fn host_class(host: &str) -> HostClass {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
            .map_or(HostClass::Blocked, |a| ip_class(IpAddr::V6(a)));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if name.is_empty() || name.contains('%') || name.ends_with('.') {
        return HostClass::Blocked;
    }
    // A last label that is a number makes the whole host an IPv4 address to a resolver
    // (inet_aton accepts `127.1`, octal and hex parts): only the canonical dotted-decimal
    // form is classified, any other numeric spelling is refused.
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit())));
    if numeric {
        return name
            .parse::<Ipv4Addr>()
            .map_or(HostClass::Blocked, |a| ip_class(IpAddr::V4(a)));
    }
    if name == "localhost" || name.ends_with(".localhost") {
        HostClass::Loopback
    } else if METADATA_HOSTS.contains(&name.as_str()) {
        HostClass::Blocked
    } else {
        HostClass::Public
    }
}

/// The class of an IP address (IPv4 addresses embedded in IPv6 ones are judged as IPv4).
#[must_use]
pub fn ip_class(ip: IpAddr) -> HostClass {
    match ip {
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or_else(|| ipv6_class(v6), ipv4_class),
    }
}

fn ipv4_class(a: Ipv4Addr) -> HostClass {
    let [o0, o1, _, _] = a.octets();
    if a.is_loopback() {
        HostClass::Loopback
    } else if a.is_private() || (o0 == 100 && (64..=127).contains(&o1)) {
        HostClass::Private
    } else if a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || o0 == 0
        || o0 >= 240
        || (o0 == 198 && (o1 == 18 || o1 == 19))
    {
        HostClass::Blocked
    } else {
        HostClass::Public
    }
}

fn ipv6_class(a: Ipv6Addr) -> HostClass {
    let s = a.segments();
    if a.is_loopback() {
        HostClass::Loopback
    } else if (s[0] & 0xfe00) == 0xfc00 {
        HostClass::Private
    } else if a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || s[..2] == [0x2001, 0] // Teredo
        || s[..3] == [0x64, 0xff9b, 1]
    // local-use NAT64
    {
        HostClass::Blocked
    } else {
        HostClass::Public
    }
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) or 6to4
/// (2002::/16) address.
fn embedded_ipv4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] | [0x64, 0xff9b, 0, 0, 0, 0] => Some(low),
        [0, 0, 0, 0, 0, 0] if !a.is_loopback() && !a.is_unspecified() => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2]))),
        _ => None,
    }
}

/// May the client fetch `url`, taken from a challenge or from metadata, when the user asked
/// for the MCP server whose host is `server_host`? `allow_private` lets URLs name
/// private-network addresses whatever the server's class (off by default). Loopback URLs
/// need a loopback server, whatever the switch. An unparsable URL is refused.
// spec: DISC-11
#[must_use]
pub fn may_follow(server_host: &str, url: &str, allow_private: bool) -> bool {
    let Ok(target) = parse_uri(url) else {
        return false;
    };
    if target.host.eq_ignore_ascii_case(server_host) {
        return true;
    }
    match host_class(target.host) {
        HostClass::Public => true,
        HostClass::Loopback => host_class(server_host) == HostClass::Loopback,
        HostClass::Private => allow_private || host_class(server_host) == HostClass::Private,
        HostClass::Blocked => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: DISC-11
    #[test]
    fn hosts_are_classified() {
        for (host, class) in [
            ("mcp.example.com", HostClass::Public),
            ("h", HostClass::Public),
            ("8.8.8.8", HostClass::Public),
            ("[2606:4700::1111]", HostClass::Public),
            ("localhost", HostClass::Loopback),
            ("LOCALHOST.", HostClass::Loopback),
            ("a.localhost", HostClass::Loopback),
            ("127.0.0.1", HostClass::Loopback),
            ("127.9.9.9", HostClass::Loopback),
            ("[::1]", HostClass::Loopback),
            ("[::ffff:127.0.0.1]", HostClass::Loopback),
            ("10.0.0.1", HostClass::Private),
            ("172.16.5.4", HostClass::Private),
            ("192.168.1.1", HostClass::Private),
            ("100.64.0.1", HostClass::Private),
            ("[fd00::1]", HostClass::Private),
            ("[::ffff:10.1.2.3]", HostClass::Private),
            ("169.254.169.254", HostClass::Blocked),
            ("[fe80::1]", HostClass::Blocked),
            ("[::ffff:169.254.169.254]", HostClass::Blocked),
            ("[2002:a9fe:a9fe::]", HostClass::Blocked),
            ("0.0.0.0", HostClass::Blocked),
            ("[::]", HostClass::Blocked),
            ("255.255.255.255", HostClass::Blocked),
            ("224.0.0.1", HostClass::Blocked),
            ("metadata.google.internal", HostClass::Blocked),
            ("127.1", HostClass::Blocked),
            ("2130706433", HostClass::Blocked),
            ("0x7f000001", HostClass::Blocked),
            ("127.000.0.1", HostClass::Blocked),
            ("a.b.1", HostClass::Blocked),
            ("%31.0.0.1", HostClass::Blocked),
            ("[not-v6]", HostClass::Blocked),
        ] {
            assert_eq!(host_class(host), class, "{host}");
        }
    }

    // spec: DISC-11
    #[test]
    fn urls_follow_the_class_of_the_server() {
        let public = "mcp.example.com";
        assert!(may_follow(public, "https://as.example.com/x", false));
        assert!(may_follow(public, "https://mcp.example.com/prm", false));
        assert!(!may_follow(public, "http://127.0.0.1:6379/", false));
        assert!(!may_follow(public, "https://localhost/x", false));
        assert!(!may_follow(public, "https://10.0.0.1/x", false));
        assert!(may_follow(public, "https://10.0.0.1/x", true));
        assert!(!may_follow(public, "https://127.0.0.1/x", true));
        assert!(!may_follow(public, "https://169.254.169.254/latest", true));
        assert!(!may_follow(public, "not a url", true));
        assert!(may_follow("127.0.0.1", "http://localhost:9000/x", false));
        assert!(!may_follow("127.0.0.1", "https://192.168.0.2/x", false));
        assert!(may_follow("192.168.0.1", "https://192.168.0.2/x", false));
        assert!(!may_follow("192.168.0.1", "http://127.0.0.1/x", false));
        assert!(!may_follow("127.0.0.1", "https://169.254.169.254/x", true));
    }
}
