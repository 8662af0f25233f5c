//! BER-TLV, FCIs and the card's record TLVs, as a card sends them: bounded, never a panic.
#![no_main]

#[path = "../targets/tlv.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
