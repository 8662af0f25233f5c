//! The national interface's file addresses and the values that mirror them (iReadCard/iWriteCard strings).
#![no_main]
use card_core::card::{Address, ItemValues};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (address, values) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(a) = address.parse::<Address>() {
        if let Ok(v) = ItemValues::parse(&a, values) {
            let _ = v.to_national();
        }
    }
});
