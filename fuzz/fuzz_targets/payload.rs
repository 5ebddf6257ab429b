//! The fast payload reader against the serde reader: when the fast one
//! answers, both must agree (the differential test, on any input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_core::__fuzz::payload(data);
});
