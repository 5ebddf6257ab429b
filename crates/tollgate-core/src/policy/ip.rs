//! Client addresses: the `ip` claim (addresses and CIDR ranges) and the
//! trusted-proxy-aware derivation of the client address of a request.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
///
/// ```
/// use tollgate_core::policy::{ForwardedHeader, IpBinding};
///
/// // nginx with `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`
/// let binding = IpBinding::new()
///     .trusted_proxies(["127.0.0.1"])?
///     .forwarded_header(ForwardedHeader::XForwardedFor);
/// # let _ = binding;
/// # Ok::<(), tollgate_core::policy::BadIpNet>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// Both headers; when both are present they must agree on the client,
    /// else [`Error::AddressMismatch`].
    #[default]
    Both,
    /// `X-Forwarded-For` only (nginx, HAProxy, most cloud load balancers).
    XForwardedFor,
    /// `Forwarded` only, RFC 7239 (its `for=` parameters), read by its
    /// grammar: quoted strings are one value, a parameter given twice in
    /// an element or any syntax error is [`Error::MalformedForwarded`].
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
                forwarded_hops(header_text(value)?, &mut hops)?;
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

/// The hops of one `Forwarded` header value (RFC 7239 §4), left to right,
/// appended to `hops`: one per element, `None` where the element discloses
/// no address (`for` absent, `unknown`, or an obfuscated identifier).
///
/// The grammar is read as written, quoted strings included:
///
/// ```text
/// Forwarded         = 1#forwarded-element
/// forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
/// forwarded-pair    = token "=" value
/// value             = token / quoted-string
/// ```
///
/// Commas and semicolons inside a quoted string split nothing, so whatever
/// a proxy quoted (a client's text included) stays one value. Optional
/// whitespace is accepted around `,` and `;`, empty list elements are
/// skipped (RFC 7230 §7). A parameter given twice in one element (RFC 7239
/// §4), a pair without `=`, an unterminated quoted string, a bad escape, a
/// value that is not a node (RFC 7239 §6) or a value without any element is
/// [`Error::MalformedForwarded`].
fn forwarded_hops(value: &str, hops: &mut Vec<Option<IpAddr>>) -> Result<(), Error> {
    let mut p = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    let before = hops.len();
    loop {
        p.skip_ows();
        match p.peek() {
            None => break,
            // An empty list element.
            Some(b',') => p.i += 1,
            Some(_) => {
                hops.push(forwarded_element(&mut p)?);
                // The element ends at a comma outside quotes or at the end.
                if p.peek() == Some(b',') {
                    p.i += 1;
                }
            }
        }
    }
    if hops.len() == before {
        return Err(Error::MalformedForwarded);
    }
    Ok(())
}

/// One `forwarded-element`, up to (not past) the comma that ends it: its
/// `for` node (`None` when absent or undisclosed).
fn forwarded_element(p: &mut Cursor<'_>) -> Result<Option<IpAddr>, Error> {
    let mut names: Vec<&str> = Vec::new();
    let mut node = None;
    loop {
        p.skip_ows();
        match p.peek() {
            None | Some(b',') => return Ok(node),
            // An empty pair.
            Some(b';') => p.i += 1,
            Some(_) => {
                let name = p.token()?;
                if !p.eat(b'=') {
                    return Err(Error::MalformedForwarded);
                }
                let value = if p.peek() == Some(b'"') {
                    p.quoted()?
                } else {
                    Cow::Borrowed(p.token()?)
                };
                if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    return Err(Error::MalformedForwarded);
                }
                names.push(name);
                if name.eq_ignore_ascii_case("for") {
                    node = parse_node(&value)?;
                }
                p.skip_ows();
                if !matches!(p.peek(), None | Some(b',' | b';')) {
                    return Err(Error::MalformedForwarded);
                }
            }
        }
    }
}

/// A position in a header value that [`header_text`] accepted (ASCII).
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `token = 1*tchar` (RFC 7230 §3.2.6).
    fn token(&mut self) -> Result<&'a str, Error> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        if self.i == start {
            return Err(Error::MalformedForwarded);
        }
        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| Error::MalformedForwarded)
    }

    /// `quoted-string` (RFC 7230 §3.2.6) starting at the opening quote;
    /// answers its content with the `\` escapes undone.
    fn quoted(&mut self) -> Result<Cow<'a, str>, Error> {
        self.i += 1;
        let start = self.i;
        let mut unescaped: Option<String> = None;
        loop {
            match self.peek() {
                // Unterminated.
                None => return Err(Error::MalformedForwarded),
                Some(b'"') => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return match unescaped {
                        Some(text) => Ok(Cow::Owned(text)),
                        None => std::str::from_utf8(raw)
                            .map(Cow::Borrowed)
                            .map_err(|_| Error::MalformedForwarded),
                    };
                }
                Some(b'\\') => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR ); the header is
                    // ASCII, so the byte after the backslash is a char.
                    let escaped = self.s.get(self.i + 1).copied();
                    let Some(b) = escaped.filter(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
                    else {
                        return Err(Error::MalformedForwarded);
                    };
                    let text = unescaped.get_or_insert_with(|| {
                        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
                    });
                    text.push(char::from(b));
                    self.i += 2;
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E
                Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) => {
                    if let Some(text) = &mut unescaped {
                        text.push(char::from(b));
                    }
                    self.i += 1;
                }
                Some(_) => return Err(Error::MalformedForwarded),
            }
        }
    }
}

/// `tchar` (RFC 7230 §3.2.6).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `Forwarded` node (RFC 7239 §6): `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::17]`, `[2001:db8::17]:4711`, `unknown` or an obfuscated
/// identifier (`_gazonk`), each with an optional port (`:80`, `:_p`).
/// `None` for a node that discloses no address.
fn parse_node(node: &str) -> Result<Option<IpAddr>, Error> {
    let (ip, port) = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(Error::MalformedForwarded)?;
        let ip = v6
            .parse::<Ipv6Addr>()
            .map_err(|_| Error::MalformedForwarded)?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or(Error::MalformedForwarded)?),
        };
        (Some(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match node.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (node, None),
        };
        let ip = if name.eq_ignore_ascii_case("unknown") || is_obfuscated(name) {
            None
        } else {
            let v4 = name
                .parse::<Ipv4Addr>()
                .map_err(|_| Error::MalformedForwarded)?;
            Some(IpAddr::V4(v4))
        };
        (ip, port)
    };
    if let Some(port) = port {
        let numeric = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
        if !numeric && !is_obfuscated(port) {
            return Err(Error::MalformedForwarded);
        }
    }
    Ok(ip.map(|ip| ip.to_canonical()))
}

/// `obfnode` / `obfport`: `"_" 1*( ALPHA / DIGIT / "." / "_" / "-" )`.
fn is_obfuscated(s: &str) -> bool {
    s.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// An `X-Forwarded-For` hop as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`,
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

    /// The client a trusted proxy at 10.0.0.1 names in its `Forwarded`
    /// header (10.0.0.0/8 trusted, `Forwarded` only).
    fn forwarded_client(value: &str) -> Result<IpAddr, Error> {
        let trusted = TrustedProxies {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            header: ForwardedHeader::Forwarded,
        };
        let mut h = HeaderMap::new();
        h.insert(http::header::FORWARDED, value.parse().unwrap());
        trusted.client_in(ip("10.0.0.1"), &h)
    }

    #[test]
    fn forwarded_headers_as_proxies_write_them() {
        for (value, client) in [
            // nginx: `proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;by=$server_addr"`.
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            // HAProxy `option forwarded` and Envoy, with ports and IPv6.
            ("proto=https;host=api.example;for=192.0.2.43", "192.0.2.43"),
            ("for=\"192.0.2.43:47011\"", "192.0.2.43"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            (
                "for=\"[2001:db8:cafe::17]\";proto=https",
                "2001:db8:cafe::17",
            ),
            ("for=\"[::ffff:192.0.2.9]\"", "192.0.2.9"),
            // RFC 7239 §7.1: two elements, two proxies.
            ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
            (
                "for=192.0.2.43,for=\"[2001:db8:cafe::17]\";by=10.0.0.2",
                "2001:db8:cafe::17",
            ),
            // The right-most untrusted hop, trusted proxies skipped.
            ("for=198.51.100.17, for=\"10.0.0.3:80\"", "198.51.100.17"),
            // Parameter names are case-insensitive; quoted tokens are tokens.
            ("For=\"198.51.100.17\";PROTO=https", "198.51.100.17"),
            // Optional whitespace around the separators; an empty pair and
            // empty list elements.
            (
                "for=192.0.2.43 ; proto=https ;, ,for=198.51.100.17",
                "198.51.100.17",
            ),
            // Escapes in a quoted string are undone (RFC 7230 §3.2.6).
            ("for=\"\\198.51.100.17\"", "198.51.100.17"),
            // A quoted value of another parameter keeps its commas and
            // semicolons to itself.
            ("host=\"a, b;c\";for=198.51.100.17", "198.51.100.17"),
        ] {
            assert_eq!(forwarded_client(value), Ok(ip(client)), "{value}");
        }
        // Two header lines are one list.
        let trusted = TrustedProxies {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            header: ForwardedHeader::Forwarded,
        };
        let mut h = HeaderMap::new();
        h.append(http::header::FORWARDED, "for=192.0.2.43".parse().unwrap());
        h.append(
            http::header::FORWARDED,
            "for=198.51.100.17".parse().unwrap(),
        );
        assert_eq!(
            trusted.client_in(ip("10.0.0.1"), &h),
            Ok(ip("198.51.100.17"))
        );
    }

    #[test]
    fn forwarded_undisclosed_nodes_match_no_address() {
        for value in [
            "for=unknown",
            "for=UNKNOWN;proto=https",
            "For=\"_gazonk\"",
            "for=_hidden",
            "for=\"_hidden:_port\"",
            "for=\"unknown:8080\"",
            "for=\"[2001:db8::1]:_p\", for=_x.y-z",
            "by=203.0.113.43;proto=https",
            ";",
        ] {
            assert_eq!(
                forwarded_client(value),
                Err(Error::AddressMismatch),
                "{value}"
            );
        }
    }

    #[test]
    fn forwarded_quoted_client_text_chooses_no_address() {
        // A proxy that quotes what the client sent (a host, or an address
        // it was handed) keeps that text one value: it can break the header
        // (400) but never name the client.
        for value in [
            "for=\"1.2.3.4;for=10.0.0.1\"",
            "for=\"10.0.0.1, for=127.0.0.1\"",
            "for=\"198.51.100.17\\\", for=127.0.0.1\"",
        ] {
            assert_eq!(
                forwarded_client(value),
                Err(Error::MalformedForwarded),
                "{value}"
            );
        }
        for (value, client) in [
            (
                "host=\"evil, for=10.0.0.1;x=\";for=192.0.2.60",
                "192.0.2.60",
            ),
            (
                "host=\"evil, for=127.0.0.1;x=\";for=\"192.0.2.60:1234\"",
                "192.0.2.60",
            ),
            ("proto=\"x;for=203.0.113.9\";for=192.0.2.60", "192.0.2.60"),
            ("for=192.0.2.60;host=\"a, for=203.0.113.9\"", "192.0.2.60"),
        ] {
            assert_eq!(forwarded_client(value), Ok(ip(client)), "{value}");
        }
    }

    #[test]
    fn forwarded_grammar_errors_are_malformed() {
        for value in [
            "",
            " , ",
            "garbage",
            "for",
            "for=",
            "=192.0.2.1",
            "for=not-an-ip",
            // A parameter given twice in one element (RFC 7239 §4).
            "for=192.0.2.43;for=198.51.100.17",
            "for=192.0.2.43;FOR=198.51.100.17",
            "proto=http;by=_a;proto=https;for=192.0.2.43",
            // Unterminated quoted strings and bad escapes.
            "for=\"192.0.2.43",
            "for=\"192.0.2.43\\",
            "for=\"192.0.2.43\\\"",
            // Text after a value, spaces inside a pair.
            "for=\"192.0.2.43\"x",
            "for=192.0.2.43 proto=https",
            "for = 192.0.2.43",
            // Nodes that are not nodes: unbracketed IPv6 or IPv6 with a
            // port must be quoted, and `[`/`:` are not token characters.
            "for=2001:db8::1",
            "for=[2001:db8::1]",
            "for=192.0.2.43:80",
            "for=\"2001:db8::1\"",
            "for=\"[2001:db8::1\"",
            "for=\"[2001:db8::1]80\"",
            "for=\"192.0.2.43:\"",
            "for=\"192.0.2.43:123456\"",
            "for=\"192.0.2.43:8a\"",
            "for=\"[192.0.2.43]\"",
            "for=_",
            "for=\"_a b\"",
            "for=\"unknown:\"",
        ] {
            assert_eq!(
                forwarded_client(value),
                Err(Error::MalformedForwarded),
                "{value:?}"
            );
        }
    }
}
