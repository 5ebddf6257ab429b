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
    /// The range `addr/prefix`; `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
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
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
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
        let prefix = prefix.unwrap_or(full);
        // `::ffff:10.0.0.0/104` is the IPv4 range `10.0.0.0/8`.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && prefix >= 96 => {
                (addr.to_canonical(), prefix - 96)
            }
            _ => (addr, prefix),
        };
        IpNet::new(addr, prefix).ok_or(BadIpNet)
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

/// Proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(pub(crate) Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that arrived from `peer`: the peer
    /// itself, or, when the peer is a trusted proxy, the right-most address
    /// in `Forwarded` (preferred) or `X-Forwarded-For` that is not a trusted
    /// proxy. When every hop is trusted the left-most one is the client.
    pub(crate) fn client_address(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, Error> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Ok(peer);
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        let forwarded = headers.get_all(http::header::FORWARDED);
        if forwarded.iter().next().is_some() {
            for value in forwarded {
                let value = value.to_str().map_err(|_| Error::MalformedForwarded)?;
                for element in value.split(',') {
                    hops.push(forwarded_for(element)?);
                }
            }
        } else {
            for value in headers.get_all("x-forwarded-for") {
                let value = value.to_str().map_err(|_| Error::MalformedForwarded)?;
                for hop in value.split(',') {
                    hops.push(parse_hop(hop.trim())?);
                }
            }
        }
        let Some(first) = hops.first().copied() else {
            // A trusted proxy that forwards nothing: it is the client.
            return Ok(peer);
        };
        Ok(hops
            .iter()
            .rev()
            .copied()
            .find(|ip| !self.trusts(*ip))
            .unwrap_or(first))
    }
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239 §4).
fn forwarded_for(element: &str) -> Result<IpAddr, Error> {
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
            return parse_hop(value);
        }
    }
    Err(Error::MalformedForwarded)
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
        let trusted = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
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
        h.insert(
            http::header::FORWARDED,
            "for=\"[2001:db8::1]:443\";proto=https, for=10.0.0.7"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h).unwrap(),
            ip("2001:db8::1")
        );
        h.insert(http::header::FORWARDED, "for=unknown".parse().unwrap());
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h),
            Err(Error::MalformedForwarded)
        );
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
