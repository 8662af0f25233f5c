//! The value formats (cn, an/GBK, GB 18030, b, dec) of card data, and the encoders fed with any text.
#![no_main]

#[path = "../targets/codec.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
