//! The JOSE header reader, on decoded header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_core::__fuzz::header(data);
});
