//! Reading a token's payload: the registered claims into strict types, in
//! one pass, by a small fast reader for the usual shape ([`fast`]) or by the
//! serde reader that decides every error; the application's claims types
//! from the members kept raw ([`typed`]).
//!
//! Private: what users see of a payload is [`Verified`](crate::Verified).

pub(crate) mod fast;
mod typed;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Registered claims, strictly typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Registered {
    pub(crate) sub: Option<String>,
    /// `None` when absent.
    pub(crate) aud: Option<StringOrList>,
    pub(crate) exp: i64,
    pub(crate) has_exp: bool,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<String>,
    pub(crate) client_id: Option<String>,
    /// Space-delimited, as in `scope` (RFC 6749 §3.3).
    pub(crate) scopes: String,
    /// `sid`: the grant (a refresh-token family) the token belongs to.
    pub(crate) sid: Option<String>,
    /// `sid_exp`: when that grant ends.
    pub(crate) sid_exp: Option<i64>,
}

impl Registered {
    pub(crate) fn audiences(&self) -> &[String] {
        match &self.aud {
            None => &[],
            Some(StringOrList::One(s)) => std::slice::from_ref(s),
            Some(StringOrList::Many(v)) => v,
        }
    }
}

/// The payload read once: registered claims checked for type, every member
/// kept raw for the application's type and for required-claim checks.
pub(crate) struct Payload<'p> {
    /// `Some(Ok)` a string, `Some(Err)` present but not a string.
    pub(crate) iss: Option<std::result::Result<Cow<'p, str>, ()>>,
    pub(crate) reg: Registered,
    /// Every member's name, and its raw value when kept.
    pub(crate) members: Vec<(Cow<'p, str>, Option<&'p RawValue>)>,
}

impl<'p> Payload<'p> {
    /// Reads the payload in one pass. With `keep_raw`, every member's raw
    /// JSON is kept for the application's claims type; without, registered
    /// claims are read straight into their types and other values skipped.
    pub(crate) fn parse(bytes: &'p [u8], keep_raw: bool, keep_names: bool) -> Result<Payload<'p>> {
        if !keep_raw && let Some(p) = fast::read(bytes, keep_names) {
            return Ok(p);
        }
        Self::parse_serde(bytes, keep_raw, keep_names)
    }

    /// The reference reader: serde_json, every error decided here.
    pub(crate) fn parse_serde(
        bytes: &'p [u8],
        keep_raw: bool,
        keep_names: bool,
    ) -> Result<Payload<'p>> {
        let mut bad_claim = None;
        let mut duplicate = false;
        let visitor = PayloadVisitor {
            keep_raw,
            keep_names: keep_names || keep_raw,
            bad_claim: &mut bad_claim,
            duplicate: &mut duplicate,
            _p: std::marker::PhantomData,
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = de
            .deserialize_map(visitor)
            .and_then(|p| de.end().map(|()| p));
        match (parsed, bad_claim) {
            (Ok(p), _) => Ok(p),
            (Err(_), Some(name)) => Err(Error::InvalidClaim(name.to_owned())),
            (Err(_), None) if duplicate => Err(Error::MalformedToken(DUPLICATE)),
            (Err(_), None) => Err(Error::MalformedToken("payload is not a JSON object")),
        }
    }

    /// The raw JSON of a member (kept only when parsed with `keep_raw`).
    pub(crate) fn raw(&self, claim: &str) -> Option<&'p RawValue> {
        self.members
            .iter()
            .find(|(n, _)| n == claim)
            .and_then(|(_, v)| *v)
    }

    pub(crate) fn has(&self, claim: &str) -> bool {
        self.members.iter().any(|(n, _)| n == claim)
    }
}

/// Adds `scope` or `scp` to the scopes: a string as is (space-delimited), an
/// array joined with spaces. An array element that is empty or holds a space
/// is no scope token (RFC 6749 §3.3).
pub(crate) fn add_scopes(
    reg: &mut Registered,
    scopes: StringOrList,
) -> std::result::Result<(), ()> {
    match scopes {
        StringOrList::One(s) if reg.scopes.is_empty() => reg.scopes = s,
        StringOrList::One(s) => {
            reg.scopes.push(' ');
            reg.scopes.push_str(&s);
        }
        StringOrList::Many(v) => {
            for s in v {
                if s.is_empty() || s.contains(' ') {
                    return Err(());
                }
                if !reg.scopes.is_empty() {
                    reg.scopes.push(' ');
                }
                reg.scopes.push_str(&s);
            }
        }
    }
    Ok(())
}

/// A string or an array of strings, read without serde's untagged buffering.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<StringOrList, E> {
                Ok(StringOrList::One(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<StringOrList, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StringOrList::Many(v))
            }
        }
        d.deserialize_any(V)
    }
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

const DUPLICATE: &str = "duplicate registered claim";

/// The registered claims Tollgate reads, as bits for duplicate detection.
#[derive(Clone, Copy)]
pub(crate) enum Reg {
    Iss = 1,
    Sub = 2,
    Aud = 4,
    Exp = 8,
    Nbf = 16,
    Iat = 32,
    Jti = 64,
    ClientId = 128,
    Scope = 256,
    Scp = 512,
    Sid = 1024,
    SidExp = 2048,
}

impl Reg {
    pub(crate) fn of(name: &str) -> Option<Reg> {
        Some(match name {
            "iss" => Reg::Iss,
            "sub" => Reg::Sub,
            "aud" => Reg::Aud,
            "exp" => Reg::Exp,
            "nbf" => Reg::Nbf,
            "iat" => Reg::Iat,
            "jti" => Reg::Jti,
            "client_id" => Reg::ClientId,
            "scope" => Reg::Scope,
            "scp" => Reg::Scp,
            "sid" => Reg::Sid,
            "sid_exp" => Reg::SidExp,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Reg::Iss => "iss",
            Reg::Sub => "sub",
            Reg::Aud => "aud",
            Reg::Exp => "exp",
            Reg::Nbf => "nbf",
            Reg::Iat => "iat",
            Reg::Jti => "jti",
            Reg::ClientId => "client_id",
            Reg::Scope => "scope",
            Reg::Scp => "scp",
            Reg::Sid => "sid",
            Reg::SidExp => "sid_exp",
        }
    }
}

struct PayloadVisitor<'b, 'p> {
    keep_raw: bool,
    keep_names: bool,
    bad_claim: &'b mut Option<&'static str>,
    /// Set when a registered claim appears twice.
    duplicate: &'b mut bool,
    _p: std::marker::PhantomData<&'p ()>,
}

impl<'de: 'p, 'p> Visitor<'de> for PayloadVisitor<'_, 'p> {
    type Value = Payload<'p>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Payload<'p>, A::Error> {
        let mut reg = Registered::default();
        let mut iss = None;
        let mut members = Vec::with_capacity(if self.keep_names { 12 } else { 0 });
        let mut seen = 0u16;
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let which = Reg::of(&name);
            if let Some(r) = which {
                // Two parsers reading different values of a duplicated claim
                // is a classic confusion; a duplicated registered claim is refused.
                if seen & r as u16 != 0 {
                    *self.duplicate = true;
                    return Err(de::Error::custom(DUPLICATE));
                }
                seen |= r as u16;
            }
            let raw = match (which, self.keep_raw) {
                (Some(r), false) => {
                    map.next_value_seed(ClaimSeed {
                        reg: &mut reg,
                        iss: &mut iss,
                        which: r,
                        bad: &mut *self.bad_claim,
                    })?;
                    None
                }
                (Some(r), true) => {
                    let raw: &'de RawValue = map.next_value()?;
                    ClaimSeed {
                        reg: &mut reg,
                        iss: &mut iss,
                        which: r,
                        bad: &mut *self.bad_claim,
                    }
                    .deserialize(raw)
                    .map_err(de::Error::custom)?;
                    Some(raw)
                }
                (None, false) => {
                    map.next_value::<de::IgnoredAny>()?;
                    None
                }
                (None, true) => Some(map.next_value::<&'de RawValue>()?),
            };
            if self.keep_names {
                members.push((name, raw));
            }
        }
        Ok(Payload { iss, reg, members })
    }
}

/// Reads one registered claim into its strict type.
struct ClaimSeed<'r, 'de> {
    reg: &'r mut Registered,
    iss: &'r mut Option<std::result::Result<Cow<'de, str>, ()>>,
    which: Reg,
    bad: &'r mut Option<&'static str>,
}

impl<'de> de::DeserializeSeed<'de> for ClaimSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        let ClaimSeed {
            reg,
            iss,
            which,
            bad,
        } = self;
        *bad = Some(which.name());
        match which {
            Reg::Iss => *iss = Some(d.deserialize_any(IssVisitor)?),
            Reg::Sub => reg.sub = Some(String::deserialize(d)?),
            Reg::Jti => reg.jti = Some(String::deserialize(d)?),
            Reg::ClientId => reg.client_id = Some(String::deserialize(d)?),
            Reg::Sid => reg.sid = Some(String::deserialize(d)?),
            Reg::Aud => {
                reg.aud = Some(StringOrList::deserialize(d)?);
            }
            Reg::Exp | Reg::Nbf | Reg::Iat | Reg::SidExp => {
                let t = d.deserialize_any(NumericDateVisitor)?;
                match which {
                    Reg::Exp => {
                        reg.exp = t;
                        reg.has_exp = true;
                    }
                    Reg::Nbf => reg.nbf = Some(t),
                    Reg::SidExp => reg.sid_exp = Some(t),
                    _ => reg.iat = Some(t),
                }
            }
            Reg::Scope | Reg::Scp => {
                add_scopes(reg, StringOrList::deserialize(d)?)
                    .map_err(|()| de::Error::custom("bad scope token"))?;
            }
        }
        *bad = None;
        Ok(())
    }
}

/// NumericDate (RFC 7519 §2): a JSON number, possibly fractional; the whole
/// seconds are kept. Strings, booleans, and out-of-range numbers are refused.
struct NumericDateVisitor;

impl Visitor<'_> for NumericDateVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NumericDate")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("NumericDate out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<i64, E> {
        if v.is_finite() && v.abs() < 1e15 {
            Ok(v.floor() as i64)
        } else {
            Err(E::custom("NumericDate out of range"))
        }
    }
}

/// `iss` of any JSON type: `Ok` for a string, `Err` for anything else (the
/// authenticator rejects it as an invalid issuer, never skips the check).
struct IssVisitor;

impl<'de> Visitor<'de> for IssVisitor {
    type Value = std::result::Result<Cow<'de, str>, ()>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Ok(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Ok(Cow::Owned(v.to_owned())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Err(()))
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Err(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_types_are_strict() {
        for raw in [false, true] {
            registered_types_are_strict_in(raw);
        }
    }

    fn registered_types_are_strict_in(raw: bool) {
        let p = Payload::parse(
            br#"{"iss":"a","aud":["x","y"],"exp":10.5,"scope":"a b","scp":["b","c"]}"#,
            raw,
            false,
        )
        .unwrap();
        assert_eq!(p.iss, Some(Ok("a".into())));
        assert_eq!(p.reg.audiences(), ["x", "y"]);
        assert_eq!(p.reg.exp, 10);
        assert_eq!(p.reg.scopes, "a b b c");
        assert_eq!(
            Payload::parse(br#"{"iss":["a"]}"#, raw, true).unwrap().iss,
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
                matches!(
                    Payload::parse(bad.as_bytes(), raw, true),
                    Err(Error::InvalidClaim(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Payload::parse(br#"{"exp":1,"exp":2}"#, raw, true),
            Err(Error::MalformedToken(_))
        ));
        assert!(matches!(
            Payload::parse(b"[1]", raw, true),
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
        let p = Payload::parse(br#"{"sub":"s","tier":"gold\u0021","exp":1}"#, true, true).unwrap();
        let app: App = p.claims().unwrap();
        assert_eq!(
            (app.sub.as_str(), app.tier.as_str(), app.n),
            ("s", "gold!", None)
        );
        let p = Payload::parse(br#"{"sub":"s"}"#, true, true).unwrap();
        assert_eq!(
            p.claims::<App>().err(),
            Some(Error::InvalidClaim("tier".into()))
        );
        let _: crate::NoClaims = p.claims().unwrap();
    }
}
