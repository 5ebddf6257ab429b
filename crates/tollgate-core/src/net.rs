//! Address ranges: the `ip` claim's addresses and CIDR ranges, and the
//! trusted proxies' ranges, on the `ipnet` crate. IPv4-mapped IPv6
//! addresses compare as IPv4.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::Error;

/// An address range: an address and a prefix length (`/32` or `/128` for
/// one address). IPv4-mapped IPv6 addresses compare as IPv4.
///
/// ```
/// use tollgate_core::policy::IpNet;
///
/// let office: IpNet = "203.0.113.0/24".parse()?;
/// assert!(office.contains("203.0.113.9".parse()?));
/// assert!(office.contains("::ffff:203.0.113.9".parse()?)); // IPv4-mapped
/// assert!(!office.contains("198.51.100.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet(ipnet::IpNet);

/// A string that is not an address or a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR range")]
pub struct BadIpNet;

impl IpNet {
    /// The range `addr/prefix`; `None` when the prefix is too long. An
    /// IPv4-mapped range of at least `/96` (`::ffff:10.0.0.0/104`) is the
    /// IPv4 range it maps (`10.0.0.0/8`); a shorter one stays IPv6.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        ipnet::IpNet::new(addr, prefix).ok().map(IpNet)
    }

    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.0, ip.to_canonical()) {
            (ipnet::IpNet::V4(net), IpAddr::V4(ip)) => net.contains(&ip),
            // An IPv4 client against a short IPv6 range: as mapped.
            (ipnet::IpNet::V6(net), IpAddr::V4(ip)) => net.contains(&ip.to_ipv6_mapped()),
            (ipnet::IpNet::V6(net), IpAddr::V6(ip)) => net.contains(&ip),
            (ipnet::IpNet::V4(_), IpAddr::V6(_)) => false,
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
        self.0.fmt(f)
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
}
