//! `POST /connect/jwt`: a restricted token for an end user (credits, client
//! addresses, lifetime), from a form or a JSON body.

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;

use crate::client_auth::{Authenticated, CredentialBody};
use crate::error::{OAuthError, no_store};
use crate::form::Form;
use crate::mint::MintRequest;
use crate::server::TokenServer;

/// The body: a form, or JSON when the content type says so. With JSON the
/// client authenticates by Basic only.
#[derive(Debug)]
pub(crate) enum RestrictedBody {
    Form(Form),
    Json(serde_json::Value),
}

impl CredentialBody for RestrictedBody {
    fn read(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if is_json {
            serde_json::from_slice(body)
                .map(RestrictedBody::Json)
                .map_err(|_| OAuthError::invalid_request("the body is not JSON"))
        } else {
            Form::parse(headers, body).map(RestrictedBody::Form)
        }
    }

    fn credentials(&self) -> (Option<&str>, Option<&str>) {
        match self {
            RestrictedBody::Form(form) => form.credentials(),
            RestrictedBody::Json(_) => (None, None),
        }
    }
}

/// The parameters. Each is absent (`None`: omitted, or JSON `null`), valid,
/// or invalid; invalid ones are reported in a fixed order, whatever their
/// order in the body. A form value that is empty is invalid, not omitted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RestrictedParams {
    /// A space- or comma-separated string, or a list.
    ip: Option<Param<Addresses>>,
    /// A space-separated string, or a list.
    scope: Option<Param<Scopes>>,
    audience: Option<Param<NonEmpty>>,
    /// A number, or a string of digits.
    lifetime: Option<Param<u64>>,
    sub: Option<Param<NonEmpty>>,
    /// A number, or a string of digits.
    credits: Option<Param<u64>>,
    /// `true`: a refresh token comes with the token.
    refresh: Option<Param<Flag>>,
}

/// What `/connect/jwt` takes; anything else is refused, so a misspelt
/// `subject` cannot silently mint a token for the client itself.
pub(crate) const PARAMS: [&str; 7] = [
    "ip", "scope", "audience", "lifetime", "sub", "credits", "refresh",
];

/// Client credentials, accepted in a form body.
const CREDENTIALS: [&str; 2] = ["client_id", "client_secret"];

fn refuse_unknown<'a>(
    names: impl Iterator<Item = &'a str>,
    extra: &[&str],
) -> Result<(), OAuthError> {
    let mut unknown: Vec<&str> = names
        .filter(|n| !PARAMS.contains(n) && !extra.contains(n))
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        Some(name) => Err(OAuthError::invalid_request(format!(
            "unknown parameter `{}` (known: {})",
            crate::error::printable(name),
            PARAMS.join(", ")
        ))),
        None => Ok(()),
    }
}

impl RestrictedParams {
    fn from_body(body: RestrictedBody) -> Result<Self, OAuthError> {
        match &body {
            RestrictedBody::Form(form) => refuse_unknown(form.names(), &CREDENTIALS)?,
            RestrictedBody::Json(serde_json::Value::Object(map)) => {
                refuse_unknown(map.keys().map(String::as_str), &[])?;
            }
            RestrictedBody::Json(_) => {}
        }
        match body {
            RestrictedBody::Form(form) => form.params_as_sent(),
            // Any other JSON value names no parameter; a key given twice
            // counts once, the last.
            RestrictedBody::Json(object @ serde_json::Value::Object(_)) => {
                RestrictedParams::deserialize(object)
                    .map_err(|_| OAuthError::invalid_request("the body is not a JSON object"))
            }
            RestrictedBody::Json(_) => Ok(RestrictedParams::default()),
        }
    }

    #[cfg(test)]
    fn into_request(self) -> Result<MintRequest, OAuthError> {
        Ok(self.into_parts()?.0)
    }

    /// The mint request, and whether a refresh token is asked for.
    fn into_parts(self) -> Result<(MintRequest, bool), OAuthError> {
        let ip = Param::value(self.ip, "ip")?;
        let scopes = Param::value(self.scope, "scope")?;
        let req = MintRequest {
            scopes: scopes.map(|s| s.0),
            audience: Param::value(self.audience, "audience")?.map(|a| a.0),
            lifetime: Param::value(self.lifetime, "lifetime")?,
            subject: Param::value(self.sub, "sub")?.map(|s| s.0),
            credits: Param::value(self.credits, "credits")?,
            ip: ip.map(|a| a.0),
            restricted: true,
            grant: None,
        };
        let refresh = Param::value(self.refresh, "refresh")?.is_some_and(|f| f.0);
        Ok((req, refresh))
    }
}

/// Client authentication, then the parameters, then the token.
pub(crate) async fn restricted(
    State(server): State<Arc<TokenServer>>,
    Authenticated { client, body }: Authenticated<RestrictedBody>,
) -> Result<impl IntoResponse, OAuthError> {
    let (req, refresh) = RestrictedParams::from_body(body)?.into_parts()?;
    if !refresh {
        let m = server.mint(&client, &req)?;
        return Ok((no_store(), axum::Json(answer(&m))));
    }
    let r = server.mint_refreshable(&client, &req).await?;
    let mut body = answer(&r.minted);
    body["refresh_token"] = json!(r.refresh_token);
    body["refresh_expires_at"] = json!(r.family_expires_at);
    Ok((no_store(), axum::Json(body)))
}

fn answer(m: &crate::mint::Minted) -> serde_json::Value {
    json!({
        "token": m.token,
        "token_type": "Bearer",
        "credits_remaining": m.credits,
        "expires_at": m.expires_at,
        "expires_in": m.expires_in,
        "scope": m.scope,
    })
}

/// A parameter as sent: its meaning, or `Invalid` when it has the wrong
/// type or form. Deserializing one never fails.
#[derive(Debug)]
enum Param<T> {
    Valid(T),
    Invalid,
}

impl<T> Param<T> {
    /// The value, `invalid_request` naming `name` when it is invalid.
    fn value(param: Option<Param<T>>, name: &str) -> Result<Option<T>, OAuthError> {
        match param {
            None => Ok(None),
            Some(Param::Valid(v)) => Ok(Some(v)),
            Some(Param::Invalid) => {
                Err(OAuthError::invalid_request(format!("`{name}` is invalid")))
            }
        }
    }
}

impl<'de, T: FromRaw> Deserialize<'de> for Param<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(T::from_raw(Raw::deserialize(d)?).map_or(Param::Invalid, Param::Valid))
    }
}

/// What a parameter's meaning is read from.
trait FromRaw: Sized {
    fn from_raw(raw: Raw) -> Option<Self>;
}

impl FromRaw for u64 {
    fn from_raw(raw: Raw) -> Option<u64> {
        match raw {
            Raw::Str(s) => s.parse().ok(),
            Raw::Count(n) => Some(n),
            Raw::Strings(_) | Raw::Bool(_) | Raw::Other => None,
        }
    }
}

/// A string that is not empty.
#[derive(Debug)]
struct NonEmpty(String);

impl FromRaw for NonEmpty {
    fn from_raw(raw: Raw) -> Option<NonEmpty> {
        match raw {
            Raw::Str(s) if !s.is_empty() => Some(NonEmpty(s)),
            _ => None,
        }
    }
}

/// Scopes: a space-separated string, or a list of strings.
#[derive(Debug)]
struct Scopes(Vec<String>);

impl FromRaw for Scopes {
    fn from_raw(raw: Raw) -> Option<Scopes> {
        match raw {
            Raw::Str(s) => Some(Scopes(split(&s, &[' ']))),
            Raw::Strings(list) => Some(Scopes(list)),
            Raw::Count(_) | Raw::Bool(_) | Raw::Other => None,
        }
    }
}

/// Client addresses or CIDR ranges: a space- or comma-separated string, or
/// a list of strings (checked when minting).
#[derive(Debug)]
struct Addresses(Vec<String>);

impl FromRaw for Addresses {
    fn from_raw(raw: Raw) -> Option<Addresses> {
        match raw {
            Raw::Str(s) => Some(Addresses(split(&s, &[' ', ',']))),
            Raw::Strings(list) => Some(Addresses(list)),
            Raw::Count(_) | Raw::Bool(_) | Raw::Other => None,
        }
    }
}

/// A yes or no: JSON `true`/`false`, or the form values `true`/`false`.
#[derive(Debug)]
struct Flag(bool);

impl FromRaw for Flag {
    fn from_raw(raw: Raw) -> Option<Flag> {
        match raw {
            Raw::Bool(b) => Some(Flag(b)),
            Raw::Str(s) if s == "true" => Some(Flag(true)),
            Raw::Str(s) if s == "false" => Some(Flag(false)),
            _ => None,
        }
    }
}

fn split(s: &str, separators: &[char]) -> Vec<String> {
    s.split(separators)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The shape of a value as sent, whatever it is.
#[derive(Debug, PartialEq)]
enum Raw {
    Str(String),
    /// A non-negative integer.
    Count(u64),
    /// A list of strings only.
    Strings(Vec<String>),
    /// A JSON boolean.
    Bool(bool),
    /// Anything else: negative or fractional numbers, `null` in a list,
    /// objects, lists holding anything but strings.
    Other,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Raw, E> {
        Ok(Raw::Count(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Raw, E> {
        Ok(u64::try_from(n).map_or(Raw::Other, Raw::Count))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Other)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        // Read every element, even past one that is not a string.
        let mut strings = Some(Vec::new());
        while let Some(item) = seq.next_element::<Raw>()? {
            match (item, &mut strings) {
                (Raw::Str(s), Some(list)) => list.push(s),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Raw::Other, Raw::Strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Other)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn json(body: &str) -> Result<MintRequest, OAuthError> {
        let body = RestrictedBody::Json(serde_json::from_str(body).unwrap());
        RestrictedParams::from_body(body)?.into_request()
    }

    fn description(body: &str) -> String {
        json(body).unwrap_err().description
    }

    #[test]
    fn json_values_of_every_shape() {
        let r = json(r#"{"lifetime":"600","credits":3,"ip":"1.2.3.4, 10.0.0.0/8","scope":["a b"],"sub":"u"}"#)
            .unwrap();
        assert_eq!((r.lifetime, r.credits), (Some(600), Some(3)));
        assert_eq!(r.ip.unwrap(), ["1.2.3.4", "10.0.0.0/8"]);
        assert_eq!(r.scopes.unwrap(), ["a b"]);
        assert_eq!(r.subject.as_deref(), Some("u"));
        for bad in [
            r#"{"lifetime":-1}"#,
            r#"{"lifetime":1.0}"#,
            r#"{"lifetime":[1]}"#,
            r#"{"lifetime":""}"#,
        ] {
            assert_eq!(description(bad), "`lifetime` is invalid", "{bad}");
        }
        assert_eq!(description(r#"{"ip":["1.2.3.4",5]}"#), "`ip` is invalid");
        assert_eq!(description(r#"{"sub":""}"#), "`sub` is invalid");
        // Nulls and non-objects name nothing; the last of a repeated key counts.
        let r = json(r#"{"lifetime":null,"ip":null}"#).unwrap();
        assert_eq!((r.lifetime, r.ip), (None, None));
        assert!(json("[600]").unwrap().lifetime.is_none());
        assert_eq!(
            json(r#"{"credits":"x","credits":2}"#).unwrap().credits,
            Some(2)
        );
    }

    #[test]
    fn invalid_parameters_are_reported_in_a_fixed_order() {
        let all = r#"{"credits":"x","sub":5,"lifetime":"x","audience":5,"scope":5,"ip":5}"#;
        assert_eq!(description(all), "`ip` is invalid");
        let no_ip = r#"{"credits":"x","sub":5,"lifetime":"x","audience":5,"scope":5}"#;
        assert_eq!(description(no_ip), "`scope` is invalid");
        assert_eq!(
            description(r#"{"credits":"x","sub":5,"lifetime":"x"}"#),
            "`lifetime` is invalid"
        );
    }
}
