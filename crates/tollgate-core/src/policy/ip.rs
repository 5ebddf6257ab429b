//! Client addresses: the `ip` claim (addresses and CIDR ranges) and the
//! trusted-proxy-aware derivation of the client address of a request.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

use crate::error::Error;

/// An address range: an address and a prefix length (`/32` or `/128` for
/// one address). IPv4-mapped IPv6 addresses compare as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not an address or a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR range")]
pub struct BadIpNet;

impl IpNet {
    /// The range `addr/prefix`; `None` when the prefix is too long. An
    /// IPv4-mapped range of at least `/96` (`::ffff:10.0.0.0/104`) is the
    /// IPv4 range it maps (`10.0.0.0/8`); a shorter one stays IPv6.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Some(IpNet { addr, prefix })
    }

    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), ip) => {
                // An IPv4 client against a short IPv6 range: as mapped.
                let ip = match ip {
                    IpAddr::V6(v6) => v6,
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                };
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = BadIpNet;

    fn from_str(s: &str) -> Result<IpNet, BadIpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                // Digits only: no sign, no spaces.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(BadIpNet);
                }
                (a, Some(p.parse::<u8>().map_err(|_| BadIpNet)?))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| BadIpNet)?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        IpNet::new(addr, prefix.unwrap_or(full)).ok_or(BadIpNet)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Reads the address claim: one string, or an array of strings, each an
/// address or a CIDR range. An empty array binds to nothing and is refused.
pub(crate) fn parse_claim(raw: &str, name: &str) -> Result<Box<[IpNet]>, Error> {
    let bad = || Error::InvalidClaim(name.to_owned());
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let nets = match value {
        serde_json::Value::String(s) => vec![s.parse().map_err(|_| bad())?],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or(BadIpNet)?.parse())
            .collect::<Result<Vec<IpNet>, BadIpNet>>()
            .map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if nets.is_empty() {
        return Err(bad());
    }
    Ok(nets.into_boxed_slice())
}

/// The forwarding header the trusted proxies write.
///
/// A proxy appends to the header it knows and passes any other one through
/// from the client untouched, so a header the proxy does not write says
/// whatever the client wants. Name the proxy's header when you know it;
/// the default reads both and, when both are present, requires them to
/// name the same client, which no client can arrange against a proxy that
/// always writes its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// Both headers; when both are present they must agree on the client,
    /// else [`Error::AddressMismatch`].
    #[default]
    Both,
    /// `X-Forwarded-For` only (nginx, HAProxy, most cloud load balancers).
    XForwardedFor,
    /// `Forwarded` only, RFC 7239 (its `for=` parameters).
    Forwarded,
}

/// Proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    pub(crate) nets: Vec<IpNet>,
    pub(crate) header: ForwardedHeader,
}

impl TrustedProxies {
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that arrived from `peer`: the peer
    /// itself, or, when the peer is a trusted proxy, the right-most address
    /// in the configured forwarding header that is not a trusted proxy.
    /// When every hop is trusted the left-most one is the client. A client
    /// hop the proxy wrote as `unknown` or obfuscated (RFC 7239 §6) cannot
    /// match any address: [`Error::AddressMismatch`].
    pub(crate) fn client_address(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, Error> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Ok(peer);
        }
        let from_forwarded = || -> Result<Vec<Option<IpAddr>>, Error> {
            let mut hops = Vec::new();
            for value in headers.get_all(http::header::FORWARDED) {
                let value = value.to_str().map_err(|_| Error::MalformedForwarded)?;
                for element in value.split(',') {
                    hops.push(forwarded_for(element)?);
                }
            }
            Ok(hops)
        };
        let from_x_forwarded_for = || -> Result<Vec<Option<IpAddr>>, Error> {
            let mut hops = Vec::new();
            for value in headers.get_all("x-forwarded-for") {
                let value = value.to_str().map_err(|_| Error::MalformedForwarded)?;
                for hop in value.split(',') {
                    let hop = hop.trim();
                    hops.push(if hop.eq_ignore_ascii_case("unknown") {
                        None
                    } else {
                        Some(parse_hop(hop)?)
                    });
                }
            }
            Ok(hops)
        };
        match self.header {
            ForwardedHeader::Forwarded => self.client_of(peer, &from_forwarded()?),
            ForwardedHeader::XForwardedFor => self.client_of(peer, &from_x_forwarded_for()?),
            ForwardedHeader::Both => {
                let (f, x) = (from_forwarded()?, from_x_forwarded_for()?);
                match (f.is_empty(), x.is_empty()) {
                    (true, _) => self.client_of(peer, &x),
                    (_, true) => self.client_of(peer, &f),
                    _ => {
                        let client = self.client_of(peer, &f)?;
                        if client == self.client_of(peer, &x)? {
                            Ok(client)
                        } else {
                            Err(Error::AddressMismatch)
                        }
                    }
                }
            }
        }
    }

    /// The client among `hops` (`None`: a hop whose address is not
    /// disclosed) of a request from the trusted proxy `peer`.
    fn client_of(&self, peer: IpAddr, hops: &[Option<IpAddr>]) -> Result<IpAddr, Error> {
        let Some(first) = hops.first().copied() else {
            // A trusted proxy that forwards nothing: it is the client.
            return Ok(peer);
        };
        hops.iter()
            .rev()
            .copied()
            .find(|hop| !hop.is_some_and(|ip| self.trusts(ip)))
            .unwrap_or(first)
            .ok_or(Error::AddressMismatch)
    }
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239 §4): `None`
/// when it is `unknown`, an obfuscated identifier (`_hidden`), or absent.
fn forwarded_for(element: &str) -> Result<Option<IpAddr>, Error> {
    for pair in element.split(';') {
        let Some((name, value)) = pair.trim().split_once('=') else {
            return Err(Error::MalformedForwarded);
        };
        if name.trim().eq_ignore_ascii_case("for") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            // RFC 7239 §6.2 and §6.3: undisclosed nodes.
            if value.eq_ignore_ascii_case("unknown") || value.starts_with('_') {
                return Ok(None);
            }
            return parse_hop(value).map(Some);
        }
    }
    Ok(None)
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`,
/// `[::1]:80` or a bare IPv6 address.
fn parse_hop(hop: &str) -> Result<IpAddr, Error> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Ok(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']').ok_or(Error::MalformedForwarded)?;
        return ip
            .parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
            .map_err(|_| Error::MalformedForwarded);
    }
    match hop.rsplit_once(':') {
        Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => ip
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| Error::MalformedForwarded),
        _ => Err(Error::MalformedForwarded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        let one: IpNet = "203.0.113.7".parse().unwrap();
        assert!(one.contains(ip("203.0.113.7")) && !one.contains(ip("203.0.113.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        // Shorter than /96, a mapped range stays IPv6: `::ffff:0:0/80`
        // holds every IPv4-mapped address, not `0.0.0.0/80`.
        let short: IpNet = "::ffff:10.0.0.0/80".parse().unwrap();
        assert!(short.contains(ip("10.9.9.9")) && short.contains(ip("192.0.2.1")));
        assert!(!short.contains(ip("2001:db8::1")));
        // `::ffff:10.0.0.0/8` is `::/8` (every mapped address among
        // others), not `10.0.0.0/8`.
        let short = IpNet::new(ip("::ffff:10.0.0.0"), 8).unwrap();
        assert!(short.contains(ip("192.0.2.1")) && !short.contains(ip("2001:db8::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0",
            "::/129",
            "x/8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_forms() {
        assert_eq!(parse_claim(r#""127.0.0.1""#, "ip").unwrap().len(), 1);
        assert_eq!(
            parse_claim(r#"["127.0.0.1","10.0.0.0/8","::1"]"#, "ip")
                .unwrap()
                .len(),
            3
        );
        for bad in [
            r#"[]"#,
            r#"5"#,
            r#"["1.2.3.4", 5]"#,
            r#""1.2.3.4/40""#,
            "null",
        ] {
            assert_eq!(
                parse_claim(bad, "ip").unwrap_err(),
                Error::InvalidClaim("ip".into())
            );
        }
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let mut trusted = TrustedProxies {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            header: ForwardedHeader::XForwardedFor,
        };
        assert_eq!(TrustedProxies::default().header, ForwardedHeader::Both);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2, 10.0.0.5".parse().unwrap(),
        );
        // Untrusted peer: headers ignored.
        assert_eq!(
            trusted.client_address(ip("9.9.9.9"), &h).unwrap(),
            ip("9.9.9.9")
        );
        // Trusted peer: right-most untrusted hop.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("2.2.2.2")
        );
        // A `Forwarded` header the proxy passed through is not read when
        // the proxy writes `X-Forwarded-For`.
        h.insert(
            http::header::FORWARDED,
            "for=\"[2001:db8::1]:443\";proto=https, for=10.0.0.7"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("2.2.2.2")
        );
        h.insert("x-forwarded-for", "1.1.1.1, unknown".parse().unwrap());
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h),
            Err(Error::AddressMismatch)
        );
        trusted.header = ForwardedHeader::Forwarded;
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("2001:db8::1")
        );
        for undisclosed in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"_x\";by=_p",
        ] {
            h.insert(http::header::FORWARDED, undisclosed.parse().unwrap());
            assert_eq!(
                trusted.client_address(ip("10.0.0.1"), &h),
                Err(Error::AddressMismatch),
                "{undisclosed}"
            );
        }
        // Undisclosed hops left of the client do not matter.
        h.insert(
            http::header::FORWARDED,
            "for=unknown, for=203.0.113.9, for=10.0.0.3"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        for malformed in ["garbage", "for=not-an-ip"] {
            h.insert(http::header::FORWARDED, malformed.parse().unwrap());
            assert_eq!(
                trusted.client_address(ip("10.0.0.1"), &h),
                Err(Error::MalformedForwarded),
                "{malformed}"
            );
        }
        // Both (the default): either header alone, or both agreeing.
        trusted.header = ForwardedHeader::Both;
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.3".parse().unwrap());
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        h.insert(http::header::FORWARDED, "for=203.0.113.9".parse().unwrap());
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        // A client's own header, passed through, disagrees with the proxy's.
        h.insert(http::header::FORWARDED, "for=198.51.100.4".parse().unwrap());
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h),
            Err(Error::AddressMismatch)
        );
        h.remove("x-forwarded-for");
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("198.51.100.4")
        );
        trusted.header = ForwardedHeader::XForwardedFor;
        let mut all_trusted = HeaderMap::new();
        all_trusted.insert("x-forwarded-for", "10.0.0.9, 10.0.0.8".parse().unwrap());
        assert_eq!(
            trusted
                .client_address(ip("10.0.0.1"), &all_trusted)
                .unwrap(),
            ip("10.0.0.9")
        );
        assert_eq!(
            trusted
                .client_address(ip("10.0.0.1"), &HeaderMap::new())
                .unwrap(),
            ip("10.0.0.1")
        );
    }
}
