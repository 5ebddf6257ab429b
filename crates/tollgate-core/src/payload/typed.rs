//! The application's claims type `C`, deserialized from the payload's
//! members kept raw.
//!
//! Errors are located by the deserializer, not by reading serde's message:
//! the map level reports a missing, duplicate or unknown field through
//! [`de::Error::missing_field`] and friends, which [`ClaimError`] records by
//! name, and every member's value is read by a deserializer that knows the
//! member's name. No message ever holds a claim's value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::value::RawValue;

use super::Payload;
use crate::error::{Error, Result};

impl Payload<'_> {
    /// Deserializes the application's claims from the members kept raw
    /// (parse with `keep_raw`).
    pub(crate) fn claims<C: DeserializeOwned>(&self) -> Result<C> {
        let members = self.members.iter().filter_map(|(name, raw)| {
            let raw = (*raw)?;
            Some((Key(name), Member { name, raw }))
        });
        let de = de::value::MapDeserializer::<_, ClaimError>::new(members);
        C::deserialize(de).map_err(|e| Error::InvalidClaim(e.claim()))
    }
}

/// Why `C` could not be read, and which claim it was about.
#[derive(Debug)]
pub(crate) enum ClaimError {
    /// A claim `C` requires, or one it refuses (`deny_unknown_fields`).
    Field(&'static str),
    /// A member whose value does not fit.
    Member(String),
    /// Anything else about the payload as a whole.
    Payload,
}

impl ClaimError {
    fn claim(self) -> String {
        match self {
            ClaimError::Field(name) => name.to_owned(),
            ClaimError::Member(name) => name,
            ClaimError::Payload => "application claims".to_owned(),
        }
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Field(name) => write!(f, "claim `{name}`"),
            ClaimError::Member(name) => write!(f, "claim `{name}`"),
            ClaimError::Payload => f.write_str("application claims"),
        }
    }
}

impl std::error::Error for ClaimError {}

impl de::Error for ClaimError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ClaimError::Payload
    }
    fn missing_field(field: &'static str) -> Self {
        ClaimError::Field(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        ClaimError::Field(field)
    }
}

/// A member name, handed to `C`'s field visitor.
struct Key<'a>(&'a Cow<'a, str>);

impl<'de, 'a: 'de> IntoDeserializer<'de, ClaimError> for Key<'a> {
    type Deserializer = de::value::BorrowedStrDeserializer<'de, ClaimError>;
    fn into_deserializer(self) -> Self::Deserializer {
        de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// A member's raw value, read by serde_json; a failure names the member.
struct Member<'a> {
    name: &'a str,
    raw: &'a RawValue,
}

impl<'de, 'a: 'de> IntoDeserializer<'de, ClaimError> for Member<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Forwards each `deserialize_*` to a serde_json deserializer over the raw
/// value, so numbers, options, enums and nested structs are read exactly as
/// `serde_json::from_str` reads them.
macro_rules! forward {
    ($($method:ident ( $($arg:ident : $ty:ty),* ))*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, ClaimError> {
            let mut de = serde_json::Deserializer::from_str(self.raw.get());
            de::Deserializer::$method(&mut de, $($arg,)* visitor)
                .map_err(|_| ClaimError::Member(self.name.to_owned()))
        }
    )*};
}

impl<'de, 'a: 'de> de::Deserializer<'de> for Member<'a> {
    type Error = ClaimError;

    forward! {
        deserialize_any() deserialize_bool() deserialize_i8() deserialize_i16()
        deserialize_i32() deserialize_i64() deserialize_i128() deserialize_u8()
        deserialize_u16() deserialize_u32() deserialize_u64() deserialize_u128()
        deserialize_f32() deserialize_f64() deserialize_char() deserialize_str()
        deserialize_string() deserialize_bytes() deserialize_byte_buf()
        deserialize_option() deserialize_unit() deserialize_seq() deserialize_map()
        deserialize_identifier() deserialize_ignored_any()
        deserialize_unit_struct(name: &'static str)
        deserialize_newtype_struct(name: &'static str)
        deserialize_tuple(len: usize)
        deserialize_tuple_struct(name: &'static str, len: usize)
        deserialize_struct(name: &'static str, fields: &'static [&'static str])
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    enum Tier {
        #[serde(rename = "gold")]
        Gold,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Plan {
        tier: Tier,
        seats: Option<u32>,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn read<C: DeserializeOwned>(json: &str) -> Result<C> {
        Payload::parse_serde(json.as_bytes(), true, true)?.claims::<C>()
    }

    #[test]
    fn a_fitting_payload_is_read_as_serde_json_reads_it() {
        let plan: Plan = read(r#"{"iss":"i","tier":"gold","seats":null,"tags":["a"]}"#).unwrap();
        assert_eq!(
            plan,
            Plan {
                tier: Tier::Gold,
                seats: None,
                tags: vec!["a".into()]
            }
        );
    }

    #[test]
    fn a_missing_field_names_the_claim() {
        let err = read::<Plan>(r#"{"iss":"i"}"#).unwrap_err();
        assert_eq!(err, Error::InvalidClaim("tier".into()));
    }

    #[test]
    fn a_wrong_type_names_the_claim_and_never_its_value() {
        let err = read::<Plan>(r#"{"tier":"gold","seats":"s3cr3t"}"#).unwrap_err();
        assert_eq!(err, Error::InvalidClaim("seats".into()));
        assert!(!err.to_string().contains("s3cr3t"));
        let err = read::<Plan>(r#"{"tier":"platinum"}"#).unwrap_err();
        assert_eq!(err, Error::InvalidClaim("tier".into()));
    }
}
