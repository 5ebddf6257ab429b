//! JWKS and JWK parsing, as fetched (remote rules) and as configured.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::{JwkTrust, KeySet, parse_jwks};

fuzz_target!(|data: &[u8]| {
    let _ = parse_jwks(data, JwkTrust::Remote);
    let _ = KeySet::from_jwks(data);
});
