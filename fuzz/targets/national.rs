//! The national interface's file addresses and the values that mirror them (iReadCard/iWriteCard strings).
//!
//! The body of cargo fuzz target `national` (`fuzz/fuzz_targets/national.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/national/`.

use card_core::card::{Address, ItemValues};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (address, values) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(a) = address.parse::<Address>() {
        if let Ok(v) = ItemValues::parse(&a, values) {
            let _ = v.to_national();
        }
    }
}
