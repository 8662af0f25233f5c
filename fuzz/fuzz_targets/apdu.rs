//! Command and response APDUs as bytes from a card or a caller: parsing never panics, and what parses encodes back.
#![no_main]

#[path = "../targets/apdu.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
