//! TR-31 / X9.143 key blocks, as an import or a tampered store gives them: parsed or refused, never a panic.
#![no_main]
use key_mgmt::tr31::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Header::parse(text);
    }
});
