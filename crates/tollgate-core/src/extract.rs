//! Finding the bearer token in a request (RFC 6750 §2).
//!
//! By default only `Authorization: Bearer <token>` is read: the scheme is
//! case-insensitive, the token must be token68 characters, exactly one
//! `Authorization` header may be present, and the token is bounded in size.
//! A cookie, a query parameter, the WebSocket handshake's
//! `Sec-WebSocket-Protocol` ([`BearerExtractor::websocket_protocol`]) or a
//! source of your own ([`BearerExtractor::custom`]) is read only when
//! configured; a token found in two places is refused.
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
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Uri};

use crate::error::{Error, Result};
use crate::gate::RequestView;

/// Default bound on a token's size: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The header a browser's WebSocket client can set: `new WebSocket(url,
/// ["bearer", token])` sends `Sec-WebSocket-Protocol: bearer, <token>`.
pub const WEBSOCKET_PROTOCOL: &str = "sec-websocket-protocol";

/// The subprotocol that announces a token in `Sec-WebSocket-Protocol`; the
/// server must answer the handshake with it (and never with the token).
pub const WEBSOCKET_BEARER_PROTOCOL: &str = "bearer";

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
    websocket: bool,
    custom: Option<CustomSource>,
}

impl Default for BearerExtractor {
    fn default() -> Self {
        BearerExtractor {
            max_len: DEFAULT_MAX_TOKEN_LEN,
            cookie: None,
            query: None,
            websocket: false,
            custom: None,
        }
    }
}

/// A token source of the application's: a function of the request.
type SourceFn = dyn Fn(&TokenRequest<'_>) -> Option<String> + Send + Sync;

#[derive(Clone)]
struct CustomSource(Arc<SourceFn>);

impl fmt::Debug for CustomSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomSource(..)")
    }
}

/// [`RequestView`] in a form a function can take whatever the framework:
/// not generic, so a source is one `Fn` for every adapter.
trait DynView {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    fn values<'a>(&'a self, name: &'static str) -> Box<dyn Iterator<Item = &'a [u8]> + 'a>;
    fn peer(&self) -> Option<IpAddr>;
}

impl<R: RequestView> DynView for R {
    fn method(&self) -> &str {
        RequestView::method(self)
    }
    fn path(&self) -> &str {
        RequestView::path(self)
    }
    fn query(&self) -> Option<&str> {
        RequestView::query(self)
    }
    fn values<'a>(&'a self, name: &'static str) -> Box<dyn Iterator<Item = &'a [u8]> + 'a> {
        Box::new(self.header_values(name))
    }
    fn peer(&self) -> Option<IpAddr> {
        RequestView::peer(self)
    }
}

/// The request as a [custom token source](BearerExtractor::custom) sees
/// it, the same in every framework. Header names are lowercase.
pub struct TokenRequest<'r> {
    view: &'r dyn DynView,
}

impl fmt::Debug for TokenRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("method", &self.method())
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl<'r> TokenRequest<'r> {
    /// The method, e.g. `GET` (empty under [`BearerExtractor::extract`],
    /// which sees only headers and URI).
    pub fn method(&self) -> &'r str {
        self.view.method()
    }

    /// The path, without the query.
    pub fn path(&self) -> &'r str {
        self.view.path()
    }

    /// The query, without `?`.
    pub fn query(&self) -> Option<&'r str> {
        self.view.query()
    }

    /// The value of the header `name` as text, when it is sent exactly once
    /// and is visible ASCII; `None` otherwise (absent, repeated, or not
    /// text), so a source never picks one of two values.
    pub fn header(&self, name: &'static str) -> Option<&'r str> {
        let mut values = self.view.values(name);
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        std::str::from_utf8(value).ok().filter(|v| {
            v.bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        })
    }

    /// Every value of the header `name`, in order, as bytes.
    pub fn header_values(&self, name: &'static str) -> impl Iterator<Item = &'r [u8]> + 'r {
        self.view.values(name)
    }

    /// The connection's peer address, if the server records it.
    pub fn peer(&self) -> Option<IpAddr> {
        self.view.peer()
    }
}

/// What [`BearerExtractor::extract`] sees: headers and URI only.
struct PartsView<'r> {
    headers: &'r HeaderMap,
    uri: &'r Uri,
}

impl RequestView for PartsView<'_> {
    fn method(&self) -> &str {
        ""
    }
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.headers
            .get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    }
    fn peer(&self) -> Option<IpAddr> {
        None
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

    /// Also reads the token from a WebSocket handshake's
    /// `Sec-WebSocket-Protocol`, where a browser can put it: `new
    /// WebSocket(url, ["bearer", token])` sends `Sec-WebSocket-Protocol:
    /// bearer, <token>`. The item after `bearer` is the token; `bearer`
    /// last is `invalid_request` (400), `bearer` twice `multiple_tokens`.
    ///
    /// The server must select the `bearer` subprotocol in its answer (a
    /// browser closes a connection whose answer selects none), never the
    /// token: in axum, `WebSocketUpgrade::protocols(["bearer"])`.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, Uri};
    /// use tollgate_core::BearerExtractor;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("sec-websocket-protocol", HeaderValue::from_static("bearer, abc.def.ghi"));
    /// let uri: Uri = "/ws".parse().unwrap();
    /// let extractor = BearerExtractor::new().websocket_protocol();
    /// assert_eq!(extractor.extract(&headers, &uri).unwrap(), "abc.def.ghi");
    /// ```
    pub fn websocket_protocol(mut self) -> Self {
        self.websocket = true;
        self
    }

    /// Also reads the token with `source`, a function of the request (a
    /// header of your own, a path segment, ...). `None` means "no token
    /// here". What it returns is held to the same rules as a header token
    /// (token68 characters, the size bound), and a token also found in
    /// another place is refused (`multiple_tokens`). One custom source per
    /// extractor; a second call replaces the first.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, Uri};
    /// use tollgate_core::BearerExtractor;
    ///
    /// let extractor = BearerExtractor::new()
    ///     .custom(|req| req.header("x-api-token").map(str::to_owned));
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-api-token", HeaderValue::from_static("abc.def.ghi"));
    /// let uri: Uri = "/items".parse().unwrap();
    /// assert_eq!(extractor.extract(&headers, &uri).unwrap(), "abc.def.ghi");
    /// ```
    pub fn custom<F>(mut self, source: F) -> Self
    where
        F: Fn(&TokenRequest<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.custom = Some(CustomSource(Arc::new(source)));
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
        let view: Option<&'r dyn DynView> = self.has_more_sources().then_some(req as _);
        self.extract_from(
            req.header_values("authorization"),
            cookies,
            req.query(),
            view,
            false,
        )
    }

    /// The token68 and size check that [`extract`](Self::extract) applies.
    pub(crate) fn check(&self, token: &str) -> Result<()> {
        check_token(token, self.max_len)
    }

    /// A WebSocket or custom source is configured.
    fn has_more_sources(&self) -> bool {
        self.websocket || self.custom.is_some()
    }

    fn extract_inner<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        check_chars: bool,
    ) -> Result<Cow<'r, str>> {
        if self.has_more_sources() {
            // The view lives only here: what it finds is copied out.
            let view = PartsView { headers, uri };
            let found = self.extract_from(
                view.header_values("authorization"),
                self.cookie
                    .as_ref()
                    .map(|_| view.header_values("cookie"))
                    .into_iter()
                    .flatten(),
                uri.query(),
                Some(&view),
                check_chars,
            )?;
            return Ok(Cow::Owned(found.into_owned()));
        }
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
            None,
            check_chars,
        )
    }

    /// The tokens of the WebSocket and custom sources, checked, into `found`.
    fn extract_more<'r>(
        &self,
        view: &'r dyn DynView,
        found: &mut Option<Cow<'r, str>>,
    ) -> Result<()> {
        if self.websocket
            && let Some(token) = websocket_token(view.values(WEBSOCKET_PROTOCOL))?
        {
            check_token(token, self.max_len)?;
            put(found, Cow::Borrowed(token))?;
        }
        if let Some(CustomSource(source)) = &self.custom
            && let Some(token) = source(&TokenRequest { view })
        {
            check_token(&token, self.max_len)?;
            put(found, Cow::Owned(token))?;
        }
        Ok(())
    }

    /// The extraction from raw parts: every `Authorization` value, every
    /// `Cookie` value, the query string, and the request for the WebSocket
    /// and custom sources (when configured). With `check_chars` false, a
    /// header token still needs [`check`](Self::check).
    fn extract_from<'r>(
        &self,
        authorization: impl IntoIterator<Item = &'r [u8]>,
        cookies: impl IntoIterator<Item = &'r [u8]>,
        query: Option<&'r str>,
        more: Option<&'r dyn DynView>,
        check_chars: bool,
    ) -> Result<Cow<'r, str>> {
        let mut found: Option<Cow<'r, str>> = None;
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
        if let Some(view) = more {
            self.extract_more(view, &mut found)?;
        }
        // The cookie last, and only when nothing else was sent: cookies are
        // ambient, the other sources explicit.
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

/// Records a token; a second one is [`Error::MultipleTokens`].
fn put<'r>(found: &mut Option<Cow<'r, str>>, token: Cow<'r, str>) -> Result<()> {
    if found.replace(token).is_some() {
        Err(Error::MultipleTokens)
    } else {
        Ok(())
    }
}

/// The token in `Sec-WebSocket-Protocol` values: the list item after
/// `bearer`. `None` when no item is `bearer`.
fn websocket_token<'v>(values: impl Iterator<Item = &'v [u8]>) -> Result<Option<&'v str>> {
    let mut items = values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty());
    let mut token = None;
    while let Some(item) = items.next() {
        if item.eq_ignore_ascii_case(WEBSOCKET_BEARER_PROTOCOL.as_bytes()) {
            let value = items.next().ok_or(Error::MalformedAuthorization)?;
            let value = std::str::from_utf8(value).map_err(|_| Error::MalformedAuthorization)?;
            if token.replace(value).is_some() {
                return Err(Error::MultipleTokens);
            }
        }
    }
    Ok(token)
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

    #[test]
    fn websocket_protocol_and_custom_sources() {
        let ws = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(WEBSOCKET_PROTOCOL, HeaderValue::from_static(v));
            }
            h
        };
        let e = BearerExtractor::new().websocket_protocol();
        assert_eq!(
            e.extract(&ws(&["bearer, a.b.c"]), &root()).unwrap(),
            "a.b.c"
        );
        assert_eq!(
            e.extract(&ws(&["chat", "Bearer ,a.b.c , v2"]), &root())
                .unwrap(),
            "a.b.c"
        );
        // Split over two header lines is one list.
        assert_eq!(
            e.extract(&ws(&["bearer", "a.b.c"]), &root()).unwrap(),
            "a.b.c"
        );
        assert_eq!(e.extract(&ws(&["chat"]), &root()), Err(Error::MissingToken));
        assert_eq!(
            e.extract(&ws(&["chat, bearer"]), &root()),
            Err(Error::MalformedAuthorization)
        );
        assert_eq!(
            e.extract(&ws(&["bearer, a.b.c, bearer, d.e.f"]), &root()),
            Err(Error::MultipleTokens)
        );
        assert_eq!(
            e.extract(&ws(&["bearer, a=b"]), &root()),
            Err(Error::MalformedAuthorization)
        );
        // Not read unless configured.
        assert_eq!(
            BearerExtractor::new().extract(&ws(&["bearer, a.b.c"]), &root()),
            Err(Error::MissingToken)
        );
        let mut both = ws(&["bearer, a.b.c"]);
        both.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        assert_eq!(e.extract(&both, &root()), Err(Error::MultipleTokens));

        let custom = BearerExtractor::new()
            .cookie("tg")
            .custom(|req| req.header("x-token").map(str::to_owned));
        let mut h = HeaderMap::new();
        h.insert("x-token", HeaderValue::from_static("c.d.e"));
        assert_eq!(custom.extract(&h, &root()).unwrap(), "c.d.e");
        // A cookie gives way to an explicit source.
        h.insert(COOKIE, HeaderValue::from_static("tg=f.g.h"));
        assert_eq!(custom.extract(&h, &root()).unwrap(), "c.d.e");
        h.append("x-token", HeaderValue::from_static("c.d.e"));
        assert_eq!(
            custom.extract(&h, &root()).unwrap(),
            "f.g.h",
            "repeated: no value"
        );
        let bad = BearerExtractor::new().custom(|_| Some("a b".into()));
        assert_eq!(
            bad.extract(&HeaderMap::new(), &root()),
            Err(Error::MalformedAuthorization)
        );
        let large = BearerExtractor::new()
            .max_len(4)
            .custom(|_| Some("a.b.c".into()));
        assert_eq!(
            large.extract(&HeaderMap::new(), &root()),
            Err(Error::TokenTooLarge { limit: 4 })
        );
        // The gate's path sees the method and the path.
        let path = BearerExtractor::new().custom(|req| {
            (req.method() == "GET")
                .then(|| req.path().strip_prefix("/t/").map(str::to_owned))
                .flatten()
        });
        let req = http::Request::get("/t/x.y.z").body(()).unwrap();
        let view = crate::gate::HttpRequest::new(&req, None);
        assert_eq!(path.extract_unchecked(&view).unwrap(), "x.y.z");
    }
}
