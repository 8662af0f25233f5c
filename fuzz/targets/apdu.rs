//! Command and response APDUs as bytes from a card or a caller: parsing never panics, and what parses encodes back.
//!
//! The body of cargo fuzz target `apdu` (`fuzz/fuzz_targets/apdu.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/apdu/`.

use card_core::apdu::{Command, Response};

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(r) = Response::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
    }
    if let Ok(c) = Command::parse(data) {
        let _ = c.to_bytes();
    }
}
