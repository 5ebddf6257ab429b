//! Finding the bearer token in a request (RFC 6750 §2).
//!
//! By default only `Authorization: Bearer <token>` is read: the scheme is
//! case-insensitive, the token must be token68 characters, exactly one
//! `Authorization` header may be present, and the token is bounded in size.
//! A cookie or a query parameter is read only when configured.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Uri};
//! use tollgate_core::{BearerExtractor, Error};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", HeaderValue::from_static("bearer abc.def.ghi"));
//! let uri: Uri = "/items".parse().unwrap();
//! let extractor = BearerExtractor::default();
//! assert_eq!(extractor.extract(&headers, &uri).unwrap(), "abc.def.ghi");
//! assert_eq!(extractor.extract(&HeaderMap::new(), &uri), Err(Error::MissingToken));
//! ```

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Uri};

use crate::error::{Error, Result};
use crate::gate::RequestView;

/// Default bound on a token's size: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Where tokens are read from, and how large they may be.
///
/// # Examples
///
/// ```
/// use tollgate_core::{BearerExtractor, Error};
///
/// let extractor = BearerExtractor::new().cookie("session");
///
/// let req = http::Request::get("/reports")
///     .header("authorization", "Bearer aaa.bbb.ccc")
///     .body(())?;
/// assert_eq!(extractor.extract(req.headers(), req.uri())?, "aaa.bbb.ccc");
///
/// let req = http::Request::get("/reports").header("cookie", "session=aaa.bbb.ccc").body(())?;
/// assert!(extractor.extract(req.headers(), req.uri()).is_ok());
///
/// let req = http::Request::get("/reports").header("authorization", "Basic dXNlcjpwdw==").body(())?;
/// assert_eq!(extractor.extract(req.headers(), req.uri()).unwrap_err(), Error::MissingToken);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BearerExtractor {
    max_len: usize,
    cookie: Option<String>,
    query: Option<String>,
}

impl Default for BearerExtractor {
    fn default() -> Self {
        BearerExtractor {
            max_len: DEFAULT_MAX_TOKEN_LEN,
            cookie: None,
            query: None,
        }
    }
}

/// token68 characters other than the trailing `=` (RFC 7235 §2.1).
static TOKEN68: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    t
};

/// token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
fn check_token_bytes(bytes: &[u8], max_len: usize) -> Result<()> {
    if bytes.len() > max_len {
        return Err(Error::TokenTooLarge { limit: max_len });
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &bytes[..bytes.len() - pad];
    // A table look-up per byte, no early exit: the scan is branch-free.
    if body.is_empty() || !body.iter().fold(true, |ok, &b| ok & TOKEN68[b as usize]) {
        return Err(Error::MalformedAuthorization);
    }
    Ok(())
}

fn check_token(token: &str, max_len: usize) -> Result<()> {
    check_token_bytes(token.as_bytes(), max_len)
}

impl BearerExtractor {
    /// Header only, 8 KiB bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bound on the token's length in bytes. Default 8 KiB.
    pub fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// Also reads the token from this cookie (when no header is sent).
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Also reads the token from this query parameter (RFC 6750 §2.3, e.g.
    /// `access_token`). Query strings end up in logs; prefer the header.
    pub fn query(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// The token of a request. Sending it in more than one place is an error.
    ///
    /// # Errors
    ///
    /// [`Error::MissingToken`] when there is none (or another scheme, such as
    /// `Basic`, is used), [`Error::MalformedAuthorization`] for a broken
    /// `Bearer` value, [`Error::MultipleTokens`], [`Error::TokenTooLarge`].
    ///
    /// ```
    /// use tollgate_core::{BearerExtractor, Error};
    ///
    /// let extractor = BearerExtractor::new().query("access_token");
    /// let req = http::Request::get("/r?access_token=a.b.c")
    ///     .header("authorization", "Bearer a.b.c")
    ///     .body(())?;
    /// assert_eq!(extractor.extract(req.headers(), req.uri()).unwrap_err(), Error::MultipleTokens);
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn extract<'r>(&self, headers: &'r HeaderMap, uri: &'r Uri) -> Result<Cow<'r, str>> {
        self.extract_inner(headers, uri, true)
    }

    /// The token of a request the gate sees, not yet checked for token68
    /// characters when it came from the `Authorization` header: the gate
    /// looks it up in the verified-token cache first (a cached token passed
    /// the check before) and calls [`check`](Self::check) only on a miss.
    pub(crate) fn extract_unchecked<'r, R: RequestView>(&self, req: &'r R) -> Result<Cow<'r, str>> {
        let cookies = self
            .cookie
            .as_ref()
            .map(|_| req.header_values("cookie"))
            .into_iter()
            .flatten();
        self.extract_from(
            req.header_values("authorization"),
            cookies,
            req.query(),
            false,
        )
    }

    /// The token68 and size check that [`extract`](Self::extract) applies.
    pub(crate) fn check(&self, token: &str) -> Result<()> {
        check_token(token, self.max_len)
    }

    fn extract_inner<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        check_chars: bool,
    ) -> Result<Cow<'r, str>> {
        // The cookie header is looked up only when a cookie source is set.
        let cookies = self
            .cookie
            .as_ref()
            .map(|_| headers.get_all(COOKIE).iter().map(|v| v.as_bytes()))
            .into_iter()
            .flatten();
        self.extract_from(
            headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()),
            cookies,
            uri.query(),
            check_chars,
        )
    }

    /// The extraction from raw parts: every `Authorization` value, every
    /// `Cookie` value, and the query string. With `check_chars` false, a
    /// header token still needs [`check`](Self::check).
    fn extract_from<'r>(
        &self,
        authorization: impl IntoIterator<Item = &'r [u8]>,
        cookies: impl IntoIterator<Item = &'r [u8]>,
        query: Option<&'r str>,
        check_chars: bool,
    ) -> Result<Cow<'r, str>> {
        let mut found: Option<Cow<'r, str>> = None;
        fn put<'r>(found: &mut Option<Cow<'r, str>>, t: Cow<'r, str>) -> Result<()> {
            if found.replace(t).is_some() {
                Err(Error::MultipleTokens)
            } else {
                Ok(())
            }
        }
        let mut auth = authorization.into_iter();
        if let Some(value) = auth.next() {
            if auth.next().is_some() {
                return Err(Error::MultipleTokens);
            }
            if let Some(token) = self.parse_authorization(value, check_chars)? {
                put(&mut found, Cow::Borrowed(token))?;
            }
        }
        if let Some(name) = &self.query
            && let Some(q) = query
        {
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k == name {
                    let v = percent_decode(v).ok_or(Error::MalformedAuthorization)?;
                    check_token(&v, self.max_len)?;
                    put(&mut found, v)?;
                }
            }
        }
        if found.is_none()
            && let Some(name) = &self.cookie
        {
            for value in cookies {
                let Ok(value) = std::str::from_utf8(value) else {
                    continue;
                };
                for c in value.split(';') {
                    if let Some((k, v)) = c.trim().split_once('=')
                        && k == name
                    {
                        let v = v.trim_matches('"');
                        check_token(v, self.max_len)?;
                        put(&mut found, Cow::Borrowed(v))?;
                    }
                }
            }
        }
        found.ok_or(Error::MissingToken)
    }

    /// The token of an `Authorization` value; `None` for another scheme
    /// (RFC 6750 §3.1: a client using another method gets a bare challenge).
    fn parse_authorization<'v>(
        &self,
        value: &'v [u8],
        check_chars: bool,
    ) -> Result<Option<&'v str>> {
        let is_bearer = value.len() >= 6
            && value[..6].eq_ignore_ascii_case(b"bearer")
            && (value.len() == 6 || value[6] == b' ');
        if !is_bearer {
            return Ok(None);
        }
        let rest = &value[6..];
        let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        let end = rest
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(start, |i| i + 1);
        let token = &rest[start..end.max(start)];
        if token.len() > self.max_len {
            return Err(Error::TokenTooLarge {
                limit: self.max_len,
            });
        }
        if check_chars {
            check_token_bytes(token, self.max_len)?;
        } else if token.is_empty() {
            return Err(Error::MalformedAuthorization);
        }
        std::str::from_utf8(token)
            .map(Some)
            .map_err(|_| Error::MalformedAuthorization)
    }
}

fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            // In a form-encoded query `+` is a space, which no token contains.
            b'+' => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hdrs(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    fn root() -> Uri {
        Uri::from_static("/")
    }

    #[test]
    fn authorization_header_rules() {
        let e = BearerExtractor::default();
        let uri = root();
        assert_eq!(e.extract(&hdrs(&["Bearer a.b.c"]), &uri).unwrap(), "a.b.c");
        assert_eq!(e.extract(&hdrs(&["BEARER a.b.c"]), &uri).unwrap(), "a.b.c");
        assert_eq!(
            e.extract(&hdrs(&["bEaReR   a.b.c=="]), &uri).unwrap(),
            "a.b.c=="
        );
        assert_eq!(e.extract(&hdrs(&[]), &uri), Err(Error::MissingToken));
        // Another scheme is no bearer token at all: a bare challenge follows.
        for other in [
            "Basic dXNlcjpwYXNz",
            "Bearerx a.b.c",
            "DPoP a.b.c",
            "Negotiate",
        ] {
            assert_eq!(
                e.extract(&hdrs(&[other]), &uri),
                Err(Error::MissingToken),
                "{other}"
            );
        }
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer =a",
            "Bearer a=b",
        ] {
            assert_eq!(
                e.extract(&hdrs(&[bad]), &uri),
                Err(Error::MalformedAuthorization),
                "{bad}"
            );
        }
        assert_eq!(
            e.extract(&hdrs(&["Bearer a.b.c", "Bearer d.e.f"]), &uri),
            Err(Error::MultipleTokens)
        );
        // The unchecked form defers the character check, nothing else.
        let unchecked = |h: &HeaderMap| {
            let mut req = http::Request::new(());
            *req.headers_mut() = h.clone();
            let view = crate::gate::HttpRequest::new(&req, None);
            e.extract_unchecked(&view).map(|t| t.into_owned())
        };
        let t = unchecked(&hdrs(&["Bearer a b"])).unwrap();
        assert_eq!(e.check(&t), Err(Error::MalformedAuthorization));
        assert_eq!(
            unchecked(&hdrs(&["Bearer "])),
            Err(Error::MalformedAuthorization)
        );
        let small = BearerExtractor::new().max_len(4);
        assert_eq!(
            small.extract(&hdrs(&["Bearer a.b.c"]), &uri),
            Err(Error::TokenTooLarge { limit: 4 })
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xffab").unwrap(),
        );
        assert_eq!(e.extract(&h, &uri), Err(Error::MalformedAuthorization));
    }

    #[test]
    fn cookie_and_query_only_when_configured() {
        let uri: Uri = "/x?access_token=q.r.s&a=1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("theme=dark; tg=c.d.e"));
        assert_eq!(
            BearerExtractor::default().extract(&h, &uri),
            Err(Error::MissingToken)
        );
        let e = BearerExtractor::new().cookie("tg");
        assert_eq!(e.extract(&h, &root()).unwrap(), "c.d.e");
        let e = BearerExtractor::new().query("access_token");
        assert_eq!(e.extract(&HeaderMap::new(), &uri).unwrap(), "q.r.s");
        let enc: Uri = "/x?access_token=a%2Fb.c".parse().unwrap();
        assert_eq!(e.extract(&HeaderMap::new(), &enc).unwrap(), "a/b.c");
        assert_eq!(
            e.extract(&hdrs(&["Bearer a.b.c"]), &uri),
            Err(Error::MultipleTokens)
        );
        let e = BearerExtractor::new().cookie("tg");
        let mut both = hdrs(&["Bearer a.b.c"]);
        both.insert(COOKIE, HeaderValue::from_static("tg=c.d.e"));
        // The header wins over the cookie: cookies are ambient, headers explicit.
        assert_eq!(e.extract(&both, &root()).unwrap(), "a.b.c");
    }
}
