//! Bearer extraction from `Authorization`, a cookie and a query string:
//! the input is split on `\n` into the three.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tollgate_core::BearerExtractor;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (auth, cookie, query) = (parts.next(), parts.next(), parts.next());
    let mut headers = HeaderMap::new();
    if let Some(v) = auth.and_then(|a| HeaderValue::from_bytes(a).ok()) {
        headers.insert("authorization", v);
    }
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_bytes(c).ok()) {
        headers.insert("cookie", v);
    }
    let uri: Uri = query
        .and_then(|q| std::str::from_utf8(q).ok())
        .and_then(|q| format!("/x?{q}").parse().ok())
        .unwrap_or_else(|| Uri::from_static("/x"));
    let extractor = BearerExtractor::new()
        .cookie("session")
        .query("access_token");
    if let Ok(token) = extractor.extract(&headers, &uri) {
        // What comes out is a token68 string within the bound.
        assert!(!token.is_empty() && token.len() <= tollgate_core::DEFAULT_MAX_TOKEN_LEN);
    }
});
