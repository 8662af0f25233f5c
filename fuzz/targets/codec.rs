//! The value formats (cn, an/GBK, GB 18030, b, dec) of card data, and the encoders fed with any text.
//!
//! The body of cargo fuzz target `codec` (`fuzz/fuzz_targets/codec.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/codec/`.

use card_core::codec::{self, Format};

/// One input.
pub fn run(data: &[u8]) {
    for f in [Format::Cn, Format::An, Format::Gb18030, Format::B, Format::Dec, Format::Hex] {
        if let Ok(text) = codec::decode(f, data) {
            // what a card holds decodes to text that encodes back to a value of the same length
            if let Ok(again) = codec::encode(f, &text, data.len()) {
                assert_eq!(again.len(), data.len());
            }
        }
    }
    let _ = codec::gbk_decode(data);
    let _ = codec::gb18030_decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        for f in [Format::Cn, Format::An, Format::Gb18030, Format::Dec, Format::Hex] {
            let _ = codec::encode(f, text, 32);
        }
        let _ = codec::CitizenId::parse(text);
        let _ = codec::CardNumber::parse(text);
        let _ = codec::RegionCode::parse(text);
        let _ = codec::Date::parse(text);
    }
}
