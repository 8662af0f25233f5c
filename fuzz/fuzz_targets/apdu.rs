//! Command and response APDUs as bytes from a card or a caller: parsing never panics, and what parses encodes back.
#![no_main]
use card_core::apdu::{Command, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Response::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
    }
    if let Ok(c) = Command::parse(data) {
        let _ = c.to_bytes();
    }
});
