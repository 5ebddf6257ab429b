//! `application/x-www-form-urlencoded` bodies: read once, a repeated
//! parameter refused (RFC 6749 §3.2), then deserialized into the
//! endpoint's parameter struct.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde::de::value::{Error as ValueError, MapDeserializer};
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::client_auth::CredentialBody;
use crate::error::{OAuthError, printable};

/// A parsed form body, every parameter present once.
/// More parameters than any endpoint takes: refused before any is kept.
pub(crate) const MAX_PARAMS: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// Parses `body`; the content type must be a form, and no parameter may
    /// be repeated (an empty value counts).
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut map = HashMap::new();
        for (i, (k, v)) in form_urlencoded::parse(body).enumerate() {
            if i >= MAX_PARAMS {
                return Err(OAuthError::invalid_request(format!(
                    "more than {MAX_PARAMS} parameters"
                )));
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` repeated",
                    printable(&k)
                )));
            }
        }
        Ok(Form(map))
    }

    /// A parameter's value; a parameter sent without a value is omitted
    /// (RFC 6749 §3.1).
    /// The parameter names, in no order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The parameters as `P`, those sent without a value omitted
    /// (RFC 6749 §3.1). Unknown parameters are ignored.
    pub(crate) fn params<P: DeserializeOwned>(&self) -> Result<P, OAuthError> {
        Self::deserialize(self.0.iter().filter(|(_, v)| !v.is_empty()))
    }

    /// The parameters as `P`, empty values included (for `P` that refuses
    /// an empty value rather than taking it as omitted).
    pub(crate) fn params_as_sent<P: DeserializeOwned>(&self) -> Result<P, OAuthError> {
        Self::deserialize(self.0.iter())
    }

    fn deserialize<'a, P: DeserializeOwned>(
        pairs: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Result<P, OAuthError> {
        let pairs = pairs.map(|(k, v)| (k.as_str(), FormValue(v)));
        P::deserialize(MapDeserializer::<_, ValueError>::new(pairs))
            .map_err(|_| OAuthError::invalid_request("the parameters cannot be read"))
    }
}

/// One parameter's value for serde: a string, present (`Some`) when the
/// field is an `Option`.
struct FormValue<'a>(&'a str);

impl<'de> Deserializer<'de> for FormValue<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map struct enum identifier ignored_any
    }
}

impl<'de, 'a> IntoDeserializer<'de, ValueError> for FormValue<'a> {
    type Deserializer = FormValue<'a>;

    fn into_deserializer(self) -> FormValue<'a> {
        self
    }
}

impl CredentialBody for Form {
    fn read(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        Form::parse(headers, body)
    }

    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        (self.get("client_id"), self.get("client_secret"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[derive(Deserialize)]
    struct Params {
        a: Option<String>,
        b: Option<String>,
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let e = Form::parse(&form_headers(), b"a=1&b=2&a=").unwrap_err();
        assert_eq!(e.description, "parameter `a` repeated");
        let e = Form::parse(&HeaderMap::new(), b"a=1").unwrap_err();
        assert_eq!(
            e.description,
            "the body must be application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn empty_values_are_omitted_unless_asked_for() {
        let form = Form::parse(&form_headers(), b"a=&b=x+y&c=1").unwrap();
        let p: Params = form.params().unwrap();
        assert_eq!((p.a, p.b.as_deref()), (None, Some("x y")));
        let p: Params = form.params_as_sent().unwrap();
        assert_eq!(p.a.as_deref(), Some(""));
    }
}
