//! Where outbound requests may go, judged on the addresses a name resolved to.
//!
//! Every request muon sends for someone else (a guest's outbound HTTP, a rule's URL target, an
//! `http:invoke` task) is checked here after name resolution, so an allowed name that resolves
//! to an internal address is refused too. Never allowed: unspecified, link-local (which holds
//! cloud metadata endpoints such as `169.254.169.254`), multicast and broadcast addresses, and
//! muon's own listening sockets (its control API above all). Loopback and private ranges
//! (RFC 1918, CGNAT, IPv6 unique-local) only when the operator opts in.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The destination policy of one `muon up`.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    own: Vec<SocketAddr>,
    allow_private: bool,
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub addr: SocketAddr,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination {} refused: {}", self.addr, self.why)
    }
}

impl std::error::Error for Refused {}

const PRIVATE: &str = "it is a loopback or private address (start muon with --allow-private-destinations to allow those)";

impl Destinations {
    /// A policy that refuses `own` (muon's listening sockets) and, unless `allow_private`,
    /// loopback and private addresses.
    pub fn new(own: Vec<SocketAddr>, allow_private: bool) -> Self {
        Self { own, allow_private }
    }

    /// Whether `addr` is one of muon's own listening sockets.
    pub fn is_own(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.own.iter().any(|o| {
            o.port() == addr.port()
                && (canonical(o.ip()) == ip
                    || (o.ip().is_unspecified() && (ip.is_loopback() || private(ip))))
        })
    }

    /// Checks one resolved address.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refused> {
        let refuse = |why| Err(Refused { addr, why });
        let ip = canonical(addr.ip());
        if self.is_own(addr) {
            return refuse("it is muon's own address");
        }
        if let Some(why) = never(ip) {
            return refuse(why);
        }
        if !self.allow_private && (ip.is_loopback() || private(ip)) {
            return refuse(PRIVATE);
        }
        Ok(())
    }

    /// Checks every address a name resolved to: one refused address refuses the name, so an
    /// answer that mixes an internal address in cannot be used to reach it.
    pub fn check_all(&self, addrs: &[SocketAddr]) -> Result<(), Refused> {
        addrs.iter().try_for_each(|a| self.check(*a))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is never a destination, if it is not.
fn never(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a == Ipv4Addr::new(169, 254, 169, 254) {
                Some("it is the cloud metadata address")
            } else if o[0] == 0 {
                Some("it is an unspecified address")
            } else if a.is_link_local() {
                Some("it is a link-local address")
            } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
                Some("it is a multicast, broadcast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("it is the cloud metadata address")
            } else if a.is_unspecified() {
                Some("it is an unspecified address")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("it is a link-local address")
            } else if a.is_multicast() {
                Some("it is a multicast address")
            } else {
                None
            }
        }
    }
}

/// RFC 1918, CGNAT (100.64.0.0/10) and IPv6 unique-local (fc00::/7) addresses.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || (o[0] == 100 && o[1] & 0xc0 == 64)
        }
        IpAddr::V6(a) => a.segments()[0] & 0xfe00 == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_destinations_are_refused() {
        let strict = Destinations::new(vec![addr("127.0.0.1:8081")], false);
        for bad in [
            "169.254.169.254:80",
            "[fd00:ec2::254]:80",
            "169.254.1.1:80",
            "[fe80::1]:80",
            "0.0.0.0:80",
            "[::]:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "127.0.0.1:8081",
            "127.0.0.1:6379",
            "[::1]:80",
            "10.0.0.1:80",
            "172.16.5.4:80",
            "192.168.1.1:80",
            "100.64.0.1:80",
            "[fd12::1]:80",
            "[::ffff:169.254.169.254]:80",
            "[::ffff:127.0.0.1]:8081",
        ] {
            assert!(strict.check(addr(bad)).is_err(), "{bad}");
        }
        for good in [
            "93.184.216.34:443",
            "[2606:2800:220:1::]:443",
            "100.128.0.1:80",
        ] {
            assert_eq!(strict.check(addr(good)), Ok(()), "{good}");
        }
    }

    #[test]
    fn private_ranges_need_the_opt_in_and_own_sockets_stay_refused() {
        let open = Destinations::new(vec![addr("127.0.0.1:8081"), addr("0.0.0.0:8080")], true);
        assert_eq!(open.check(addr("127.0.0.1:6379")), Ok(()));
        assert_eq!(open.check(addr("10.1.2.3:80")), Ok(()));
        assert!(open.check(addr("127.0.0.1:8081")).is_err());
        assert!(open.check(addr("[::ffff:127.0.0.1]:8081")).is_err());
        // A socket bound to every interface is reached through any local address.
        assert!(open.check(addr("127.0.0.2:8080")).is_err());
        assert!(open.check(addr("10.0.0.5:8080")).is_err());
        assert!(open.check(addr("169.254.169.254:80")).is_err());
        assert!(
            open.check_all(&[addr("10.0.0.1:80"), addr("169.254.169.254:80")])
                .is_err()
        );
    }
}
