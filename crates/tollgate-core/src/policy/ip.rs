//! Client addresses: the `ip` claim (addresses and CIDR ranges) and the
//! trusted-proxy-aware derivation of the client address of a request.

use std::net::IpAddr;

use crate::error::Error;
use crate::net::IpNet;

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
    pub(crate) fn client_address<'h>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'h [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'h [u8]>,
    ) -> Result<IpAddr, Error> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Ok(peer);
        }
        let from_forwarded = |values: &mut dyn Iterator<Item = &'h [u8]>| {
            let mut hops = Vec::new();
            for value in values {
                for element in header_text(value)?.split(',') {
                    hops.push(forwarded_for(element)?);
                }
            }
            Ok::<_, Error>(hops)
        };
        let from_x_forwarded_for = |values: &mut dyn Iterator<Item = &'h [u8]>| {
            let mut hops = Vec::new();
            for value in values {
                for hop in header_text(value)?.split(',') {
                    let hop = hop.trim();
                    hops.push(if hop.eq_ignore_ascii_case("unknown") {
                        None
                    } else {
                        Some(parse_hop(hop)?)
                    });
                }
            }
            Ok::<_, Error>(hops)
        };
        let mut forwarded = forwarded.into_iter();
        let mut x_forwarded_for = x_forwarded_for.into_iter();
        match self.header {
            ForwardedHeader::Forwarded => self.client_of(peer, &from_forwarded(&mut forwarded)?),
            ForwardedHeader::XForwardedFor => {
                self.client_of(peer, &from_x_forwarded_for(&mut x_forwarded_for)?)
            }
            ForwardedHeader::Both => {
                let f = from_forwarded(&mut forwarded)?;
                let x = from_x_forwarded_for(&mut x_forwarded_for)?;
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

/// A header value as text: visible ASCII, spaces and tabs (what
/// `http::HeaderValue::to_str` accepts), whatever `http` version carried it.
fn header_text(value: &[u8]) -> Result<&str, Error> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        std::str::from_utf8(value).map_err(|_| Error::MalformedForwarded)
    } else {
        Err(Error::MalformedForwarded)
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
    use http::HeaderMap;

    impl TrustedProxies {
        fn client_in(&self, peer: IpAddr, h: &HeaderMap) -> Result<IpAddr, Error> {
            let values = |name| h.get_all(name).into_iter().map(|v| v.as_bytes());
            self.client_address(peer, values("forwarded"), values("x-forwarded-for"))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
        assert_eq!(trusted.client_in(ip("9.9.9.9"), &h).unwrap(), ip("9.9.9.9"));
        // Trusted peer: right-most untrusted hop.
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
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
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
            ip("2.2.2.2")
        );
        h.insert("x-forwarded-for", "1.1.1.1, unknown".parse().unwrap());
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h),
            Err(Error::AddressMismatch)
        );
        trusted.header = ForwardedHeader::Forwarded;
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
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
                trusted.client_in(ip("10.0.0.1"), &h),
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
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        for malformed in ["garbage", "for=not-an-ip"] {
            h.insert(http::header::FORWARDED, malformed.parse().unwrap());
            assert_eq!(
                trusted.client_in(ip("10.0.0.1"), &h),
                Err(Error::MalformedForwarded),
                "{malformed}"
            );
        }
        // Both (the default): either header alone, or both agreeing.
        trusted.header = ForwardedHeader::Both;
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.3".parse().unwrap());
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        h.insert(http::header::FORWARDED, "for=203.0.113.9".parse().unwrap());
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
            ip("203.0.113.9")
        );
        // A client's own header, passed through, disagrees with the proxy's.
        h.insert(http::header::FORWARDED, "for=198.51.100.4".parse().unwrap());
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h),
            Err(Error::AddressMismatch)
        );
        h.remove("x-forwarded-for");
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h).unwrap(),
            ip("198.51.100.4")
        );
        trusted.header = ForwardedHeader::XForwardedFor;
        let mut all_trusted = HeaderMap::new();
        all_trusted.insert("x-forwarded-for", "10.0.0.9, 10.0.0.8".parse().unwrap());
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &all_trusted).unwrap(),
            ip("10.0.0.9")
        );
        assert_eq!(
            trusted
                .client_in(ip("10.0.0.1"), &HeaderMap::new())
                .unwrap(),
            ip("10.0.0.1")
        );
    }
}
