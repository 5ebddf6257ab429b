//! The claims of a verified token: registered claims read strictly, plus the
//! application's own claims type, from one parse of the payload.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Plan {
//!     tier: String,
//! }
//!
//! # fn handler(token: &tollgate_core::Verified<Plan>) {
//! if token.has_scope("reports:read") && token.claims().tier == "gold" {
//!     // ...
//! }
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::algorithm::Algorithm;
use crate::error::{Error, Result};

/// The claims type used when the application reads none of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct NoClaims {}

/// A token that passed every check: its registered claims and the
/// application's claims `C`.
#[derive(Clone)]
pub struct Verified<C = NoClaims> {
    pub(crate) issuer: Arc<str>,
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) reg: Registered,
    pub(crate) claims: C,
}

impl<C> fmt::Debug for Verified<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("iss", &self.issuer)
            .field("sub", &self.reg.sub)
            .field("client_id", &self.reg.client_id)
            .field("jti", &self.reg.jti)
            .field("exp", &self.reg.exp)
            .finish_non_exhaustive()
    }
}

impl<C> Verified<C> {
    /// `iss`: the issuer, exactly as configured.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `sub`, if present.
    pub fn subject(&self) -> Option<&str> {
        self.reg.sub.as_deref()
    }
    /// `aud`, as a list (a single string becomes one element).
    pub fn audiences(&self) -> &[String] {
        &self.reg.aud
    }
    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.reg.exp
    }
    /// `nbf`, if present.
    pub fn not_before(&self) -> Option<i64> {
        self.reg.nbf
    }
    /// `iat`, if present.
    pub fn issued_at(&self) -> Option<i64> {
        self.reg.iat
    }
    /// `jti`, if present.
    pub fn token_id(&self) -> Option<&str> {
        self.reg.jti.as_deref()
    }
    /// `client_id` (RFC 9068), if present.
    pub fn client_id(&self) -> Option<&str> {
        self.reg.client_id.as_deref()
    }
    /// Scopes from `scope` (space-delimited string or array) and `scp`.
    pub fn scopes(&self) -> &[String] {
        &self.reg.scopes
    }
    /// True when the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.reg.scopes.iter().any(|s| s == scope)
    }
    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    /// The `kid` header, if present.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// The application's claims.
    pub fn claims(&self) -> &C {
        &self.claims
    }
    /// Takes the application's claims out.
    pub fn into_claims(self) -> C {
        self.claims
    }
}

/// Registered claims, strictly typed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registered {
    /// `Some(Ok)` a string, `Some(Err)` present but not a string.
    pub(crate) iss: Option<std::result::Result<String, ()>>,
    pub(crate) sub: Option<String>,
    pub(crate) aud: Vec<String>,
    pub(crate) has_aud: bool,
    pub(crate) exp: i64,
    pub(crate) has_exp: bool,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) scopes: Vec<String>,
}

/// The payload read once: registered claims checked for type, every member
/// kept raw for the application's type and for required-claim checks.
pub(crate) struct Payload<'p> {
    pub(crate) reg: Registered,
    pub(crate) members: Vec<(Cow<'p, str>, &'p RawValue)>,
}

impl<'p> Payload<'p> {
    pub(crate) fn parse(bytes: &'p [u8]) -> Result<Payload<'p>> {
        let members = serde_json::from_slice::<Members<'p>>(bytes)
            .map_err(|_| Error::MalformedToken("payload is not a JSON object"))?
            .0;
        let mut reg = Registered::default();
        let mut seen = 0u16;
        for (name, raw) in &members {
            let bit = match name.as_ref() {
                "iss" => 1,
                "sub" => 2,
                "aud" => 4,
                "exp" => 8,
                "nbf" => 16,
                "iat" => 32,
                "jti" => 64,
                "client_id" => 128,
                "scope" => 256,
                "scp" => 512,
                _ => continue,
            };
            // Two parsers reading different values of a duplicated claim is a
            // classic confusion; a duplicated registered claim is refused.
            if seen & bit != 0 {
                return Err(Error::MalformedToken("duplicate registered claim"));
            }
            seen |= bit;
            let bad = || Error::InvalidClaim(name.to_string());
            match name.as_ref() {
                "iss" => reg.iss = Some(serde_json::from_str::<String>(raw.get()).map_err(|_| ())),
                "sub" => reg.sub = Some(serde_json::from_str(raw.get()).map_err(|_| bad())?),
                "aud" => {
                    reg.has_aud = true;
                    reg.aud = match serde_json::from_str::<StringOrList>(raw.get()) {
                        Ok(StringOrList::One(s)) => vec![s],
                        Ok(StringOrList::Many(v)) => v,
                        Err(_) => return Err(bad()),
                    };
                }
                "exp" => {
                    reg.exp = numeric_date(raw).ok_or_else(bad)?;
                    reg.has_exp = true;
                }
                "nbf" => reg.nbf = Some(numeric_date(raw).ok_or_else(bad)?),
                "iat" => reg.iat = Some(numeric_date(raw).ok_or_else(bad)?),
                "jti" => reg.jti = Some(serde_json::from_str(raw.get()).map_err(|_| bad())?),
                "client_id" => {
                    reg.client_id = Some(serde_json::from_str(raw.get()).map_err(|_| bad())?)
                }
                _ => {
                    let scopes = match serde_json::from_str::<StringOrList>(raw.get()) {
                        Ok(StringOrList::One(s)) => s
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        Ok(StringOrList::Many(v)) => v,
                        Err(_) => return Err(bad()),
                    };
                    for s in scopes {
                        if !reg.scopes.contains(&s) {
                            reg.scopes.push(s);
                        }
                    }
                }
            }
        }
        Ok(Payload { reg, members })
    }

    pub(crate) fn has(&self, claim: &str) -> bool {
        self.members.iter().any(|(n, _)| n == claim)
    }

    /// Deserializes the application's claims from the members already read.
    pub(crate) fn claims<C: DeserializeOwned>(&self) -> Result<C> {
        let iter = self.members.iter().map(|(n, v)| (CowKey(n.as_ref()), *v));
        let de = de::value::MapDeserializer::<_, serde_json::Error>::new(iter);
        C::deserialize(de).map_err(|e| Error::InvalidClaim(claim_name_of(&e)))
    }
}

/// The claim name a serde error points at, without echoing any value.
fn claim_name_of(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    for marker in ["missing field `", "duplicate field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return name.to_owned();
        }
    }
    "application claims".to_owned()
}

struct CowKey<'a>(&'a str);

impl<'de, 'a: 'de> IntoDeserializer<'de, serde_json::Error> for CowKey<'a> {
    type Deserializer = de::value::BorrowedStrDeserializer<'de, serde_json::Error>;
    fn into_deserializer(self) -> Self::Deserializer {
        de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// NumericDate (RFC 7519 §2): a JSON number, possibly fractional; the whole
/// seconds are kept. Strings, booleans, and out-of-range numbers are refused.
fn numeric_date(raw: &RawValue) -> Option<i64> {
    let n: serde_json::Number = serde_json::from_str(raw.get()).ok()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// A member name, borrowed from the payload unless it had escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

struct Members<'p>(Vec<(Cow<'p, str>, &'p RawValue)>);

impl<'de: 'p, 'p> Deserialize<'de> for Members<'p> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'p>(std::marker::PhantomData<&'p ()>);
        impl<'de: 'p, 'p> Visitor<'de> for V<'p> {
            type Value = Members<'p>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Name(k)) = map.next_key::<Name<'de>>()? {
                    let raw: &'de RawValue = map.next_value()?;
                    v.push((k, raw));
                }
                Ok(Members(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Reads an unsigned integer claim given as a JSON number or a numeric
/// string (`10` or `"10"`), for `#[serde(deserialize_with = ...)]`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Allowance {
///     #[serde(deserialize_with = "tollgate_core::claims::u64_or_string")]
///     credits: u64,
/// }
/// let a: Allowance = serde_json::from_str(r#"{"credits":"10"}"#).unwrap();
/// assert_eq!(a.credits, 10);
/// let a: Allowance = serde_json::from_str(r#"{"credits":10}"#).unwrap();
/// assert_eq!(a.credits, 10);
/// assert!(serde_json::from_str::<Allowance>(r#"{"credits":"ten"}"#).is_err());
/// ```
pub fn u64_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N<'a> {
        Num(u64),
        Str(Cow<'a, str>),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Str(s) => s
            .parse::<u64>()
            .map_err(|_| de::Error::custom("expected a non-negative integer or a numeric string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_types_are_strict() {
        let p = Payload::parse(
            br#"{"iss":"a","aud":["x","y"],"exp":10.5,"scope":"a b","scp":["b","c"]}"#,
        )
        .unwrap();
        assert_eq!(p.reg.iss, Some(Ok("a".into())));
        assert_eq!(p.reg.aud, ["x", "y"]);
        assert_eq!(p.reg.exp, 10);
        assert_eq!(p.reg.scopes, ["a", "b", "c"]);
        assert_eq!(
            Payload::parse(br#"{"iss":["a"]}"#).unwrap().reg.iss,
            Some(Err(()))
        );
        for bad in [
            r#"{"exp":"10"}"#,
            r#"{"aud":5}"#,
            r#"{"aud":["a",5]}"#,
            r#"{"nbf":true}"#,
            r#"{"sub":1}"#,
            r#"{"scope":{"a":1}}"#,
            r#"{"exp":1e300}"#,
        ] {
            assert!(
                matches!(Payload::parse(bad.as_bytes()), Err(Error::InvalidClaim(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Payload::parse(br#"{"exp":1,"exp":2}"#),
            Err(Error::MalformedToken(_))
        ));
        assert!(matches!(
            Payload::parse(b"[1]"),
            Err(Error::MalformedToken(_))
        ));
    }

    #[test]
    fn application_claims_from_the_same_parse() {
        #[derive(Deserialize)]
        struct App {
            sub: String,
            tier: String,
            #[serde(default)]
            n: Option<u32>,
        }
        let p = Payload::parse(br#"{"sub":"s","tier":"gold\u0021","exp":1}"#).unwrap();
        let app: App = p.claims().unwrap();
        assert_eq!(
            (app.sub.as_str(), app.tier.as_str(), app.n),
            ("s", "gold!", None)
        );
        let p = Payload::parse(br#"{"sub":"s"}"#).unwrap();
        assert_eq!(
            p.claims::<App>().err(),
            Some(Error::InvalidClaim("tier".into()))
        );
        let _: NoClaims = p.claims().unwrap();
    }
}
