//! TR-31 / X9.143 key blocks, as an import or a tampered store gives them: parsed or refused, never a panic.
//!
//! The body of cargo fuzz target `tr31` (`fuzz/fuzz_targets/tr31.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/tr31/`.

use key_mgmt::tr31::Header;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Header::parse(text);
    }
}
