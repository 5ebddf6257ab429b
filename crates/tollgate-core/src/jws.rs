//! Compact JWS (RFC 7515 §7.1) parsing and verification.
//!
//! The request path splits the token, decodes the header into borrowed
//! fields and checks the signature with an already parsed key. Header
//! parameters that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read:
//! the key always comes from the configured key set.
//!
//! [`verify_compact`] is the low-level entry: one token, one key, the payload
//! back. It does no claim validation; use the
//! [`Authenticator`](crate::Authenticator) for bearer tokens.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use crate::algorithm::Algorithm;
use crate::error::{Error, Result};
use crate::key::VerifyingKey;

/// Largest signature accepted: RSA-8192 (1,024 bytes).
const MAX_SIGNATURE: usize = 1024;

/// The three parts of a compact JWS, still encoded.
pub(crate) struct Compact<'t> {
    pub(crate) header: &'t str,
    pub(crate) payload: &'t str,
    pub(crate) signature: &'t str,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'t [u8],
}

/// The JOSE header members Tollgate reads.
pub(crate) struct Header<'a> {
    pub(crate) alg: Cow<'a, str>,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    /// `crit` was present (any `crit` is refused: Tollgate understands no
    /// extension).
    pub(crate) crit: bool,
}

/// Longest `kid` accepted, in bytes. Key ids are short names or hashes; a
/// longer one is a malformed token, and never reaches a cache.
pub(crate) const MAX_KID_LEN: usize = 256;

impl<'de> Deserialize<'de> for Header<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

/// A JOSE header is a JSON object (RFC 7515 §4): an array is refused, and a
/// registered member of the wrong JSON type (`null` included) is an error,
/// never "absent". A member given twice is refused.
struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Header<'de>, A::Error> {
        let (mut alg, mut kid, mut typ, mut crit) = (None, None, None, false);
        fn once<T, E: de::Error>(
            slot: &mut Option<T>,
            v: T,
            name: &'static str,
        ) -> std::result::Result<(), E> {
            match slot.replace(v) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "alg" => once(&mut alg, map.next_value::<Text<'de>>()?.0, "alg")?,
                "kid" => once(&mut kid, map.next_value::<Text<'de>>()?.0, "kid")?,
                "typ" => once(&mut typ, map.next_value::<Text<'de>>()?.0, "typ")?,
                "crit" => {
                    if crit {
                        return Err(de::Error::duplicate_field("crit"));
                    }
                    // RFC 7515 §4.1.11: an array of names; any other type is malformed.
                    map.next_value::<Vec<IgnoredAny>>()?;
                    crit = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(Header {
            alg,
            kid,
            typ,
            crit,
        })
    }
}

/// A JSON string, borrowed unless it had escapes; anything else is an error.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

pub(crate) fn split(token: &str) -> Result<Compact<'_>> {
    let b = token.as_bytes();
    let first = b.iter().position(|&c| c == b'.');
    let second = first.and_then(|i| {
        b[i + 1..]
            .iter()
            .position(|&c| c == b'.')
            .map(|j| i + 1 + j)
    });
    let (Some(i), Some(j)) = (first, second) else {
        return Err(Error::MalformedToken("not three dot-separated parts"));
    };
    let (header, payload, signature) = (&token[..i], &token[i + 1..j], &token[j + 1..]);
    if signature.contains('.') {
        return Err(Error::MalformedToken("not three dot-separated parts"));
    }
    // An empty payload is a valid JWS (RFC 7515 allows it); a bearer token
    // then fails on its claims, which must be a JSON object.
    if header.is_empty() {
        return Err(Error::MalformedToken("empty header"));
    }
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input: &b[..j],
    })
}

pub(crate) fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::MalformedToken(what))
}

/// Decodes a part into `stack` when it fits, else into `heap`; saves an
/// allocation for the usual token.
pub(crate) fn decode_part_buf<'b>(
    part: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
    what: &'static str,
) -> Result<&'b [u8]> {
    if part.len().div_ceil(4) * 3 <= stack.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(part, stack)
            .map_err(|_| Error::MalformedToken(what))?;
        Ok(&stack[..n])
    } else {
        *heap = decode_part(part, what)?;
        Ok(heap)
    }
}

/// Parses the header and checks what does not depend on the key: a known
/// algorithm and no critical extensions.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<(Header<'_>, Algorithm)> {
    let header: Header<'_> = serde_json::from_slice(bytes)
        .map_err(|_| Error::MalformedToken("header is not a valid JOSE header"))?;
    // RFC 7515 §4.1.11: a recipient must reject `crit` extensions it does not
    // understand. Tollgate understands none, so any `crit` is rejected.
    if header.crit {
        return Err(Error::UnsupportedCriticalHeader);
    }
    if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(Error::MalformedToken("kid is too long"));
    }
    let alg = Algorithm::from_name(&header.alg).ok_or(Error::UnsupportedAlgorithm)?;
    Ok((header, alg))
}

/// Checks `signature` (still base64url) over the signing input.
pub(crate) fn check_signature(key: &VerifyingKey, compact: &Compact<'_>) -> Result<()> {
    let sig = compact.signature;
    // Encoded length bound first, so an oversized signature never decodes.
    if sig.len() > MAX_SIGNATURE.div_ceil(3) * 4 {
        return Err(Error::InvalidSignature);
    }
    // HMAC and ECDSA signatures fit in 132 bytes; only RSA needs the large buffer.
    let mut small = [0u8; 132];
    let mut large;
    let buf: &mut [u8] = if sig.len().div_ceil(4) * 3 <= small.len() {
        &mut small
    } else {
        large = [0u8; MAX_SIGNATURE];
        &mut large
    };
    let n = URL_SAFE_NO_PAD
        .decode_slice(sig, buf)
        .map_err(|_| Error::InvalidSignature)?;
    if key.verify(compact.signing_input, &buf[..n]) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

/// Verifies a compact JWS with one key and returns its decoded payload.
///
/// The header's `alg` must be the key's algorithm, `crit` must be absent, and
/// the signature must verify. The payload is not interpreted.
///
/// ```
/// use tollgate_core::{Algorithm, VerifyingKey, jws};
///
/// // RFC 7515 Appendix A.1 (HS256).
/// let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
///     .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
///     .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// let secret = base64::Engine::decode(
///     &base64::engine::general_purpose::URL_SAFE_NO_PAD,
///     "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
/// ).unwrap();
/// let key = VerifyingKey::hmac(&secret, Algorithm::HS256).unwrap();
/// let payload = jws::verify_compact(token, &key).unwrap();
/// assert!(payload.starts_with(b"{\"iss\":\"joe\""));
/// ```
pub fn verify_compact(token: &str, key: &VerifyingKey) -> Result<Vec<u8>> {
    let compact = split(token)?;
    let header_bytes = decode_part(compact.header, "header is not base64url")?;
    let (_, alg) = parse_header(&header_bytes)?;
    if alg != key.algorithm() {
        return Err(Error::AlgorithmNotAllowed);
    }
    check_signature(key, &compact)?;
    decode_part(compact.payload, "payload is not base64url")
}

/// A JOSE header, decoded.
#[derive(Clone)]
pub(crate) struct HeaderInfo {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) typ: Option<Arc<str>>,
}

/// Encoded headers of tokens that verified, decoded once. Tokens of one
/// issuer share a handful of headers (one per key), so this saves the header
/// decode on almost every request. Only headers of verified tokens enter;
/// the list is short, scanned by length then bytes, and starts over when full.
#[derive(Default)]
pub(crate) struct KnownHeaders(RwLock<Vec<(Box<str>, HeaderInfo)>>);

const KNOWN_HEADERS_MAX: usize = 16;

impl KnownHeaders {
    pub(crate) fn get(&self, encoded: &str) -> Option<HeaderInfo> {
        let list = self.0.read().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|(e, _)| e.len() == encoded.len() && **e == *encoded)
            .map(|(_, h)| h.clone())
    }

    pub(crate) fn insert(&self, encoded: &str, info: &HeaderInfo) {
        let mut list = self.0.write().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|(e, _)| **e == *encoded) {
            return;
        }
        if list.len() >= KNOWN_HEADERS_MAX {
            list.clear();
        }
        list.push((encoded.into(), info.clone()));
    }
}

impl HeaderInfo {
    /// Decodes and parses an encoded header (`alg` known, no `crit`).
    pub(crate) fn decode(encoded: &str) -> Result<HeaderInfo> {
        let bytes = decode_part(encoded, "header is not base64url")?;
        let (h, alg) = parse_header(&bytes)?;
        Ok(HeaderInfo {
            alg,
            kid: h.kid.as_deref().map(Arc::from),
            typ: h.typ.as_deref().map(Arc::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_wrong_shapes() {
        for bad in ["", "a", "a.b", "a.b.c.d", ".b.c"] {
            assert!(matches!(split(bad), Err(Error::MalformedToken(_))), "{bad}");
        }
        let c = split("aa.bb.cc").unwrap();
        assert_eq!(c.signing_input, b"aa.bb");
    }

    #[test]
    fn header_rules() {
        assert!(matches!(
            parse_header(br#"{"alg":"none"}"#),
            Err(Error::UnsupportedAlgorithm)
        ));
        assert!(matches!(
            parse_header(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#),
            Err(Error::UnsupportedCriticalHeader)
        ));
        assert!(matches!(
            parse_header(br#"{"alg":["HS256"]}"#),
            Err(Error::MalformedToken(_))
        ));
        assert!(matches!(
            parse_header(br#"{"alg":"HS256","alg":"RS256"}"#),
            Err(Error::MalformedToken(_))
        ));
        let (h, alg) =
            parse_header(br#"{"alg":"ES256","kid":"k\u0031","jku":"https://evil"}"#).unwrap();
        assert_eq!(alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("k1"));
    }
}
