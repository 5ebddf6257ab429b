//! The address claim, and the client address behind trusted proxies from
//! `Forwarded` and `X-Forwarded-For`: the input's first line is the claim,
//! the second the `Forwarded` value, the third the `X-Forwarded-For` one.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate_core::policy::{IpBinding, MemoryStore, Policies};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (claim, forwarded, xff) = (parts.next(), parts.next(), parts.next());
    if let Some(raw) = claim.and_then(|c| std::str::from_utf8(c).ok()) {
        tollgate_core::__fuzz::ip_claim(raw);
        let _ = raw.parse::<tollgate_core::policy::IpNet>();
    }
    let mut headers = HeaderMap::new();
    if let Some(v) = forwarded.and_then(|f| HeaderValue::from_bytes(f).ok()) {
        headers.insert("forwarded", v);
    }
    if let Some(v) = xff.and_then(|x| HeaderValue::from_bytes(x).ok()) {
        headers.insert("x-forwarded-for", v);
    }
    let binding = IpBinding::new()
        .trusted_proxies(["10.0.0.0/8", "::1/128"])
        .expect("valid ranges");
    let policies = Policies::new(Arc::new(MemoryStore::new())).ip_binding(binding);
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let _ = policies.client_address(peer, &headers);
});
