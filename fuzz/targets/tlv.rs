//! BER-TLV, FCIs and the card's record TLVs, as a card sends them: bounded, never a panic.
//!
//! The body of cargo fuzz target `tlv` (`fuzz/fuzz_targets/tlv.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/tlv/`.

use card_core::tlv::{parse_ber, parse_fci, Limits, RecordTlv};

/// One input.
pub fn run(data: &[u8]) {
    let _ = parse_ber(data, Limits::default());
    let _ = parse_fci(data);
    if let Ok(r) = RecordTlv::parse(data) {
        if let Ok(again) = r.encode() {
            assert_eq!(RecordTlv::parse(&again).ok(), Some(r));
        }
    }
    let _ = RecordTlv::parse_all(data);
}
