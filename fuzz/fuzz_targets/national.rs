//! The national interface's file addresses and the values that mirror them (iReadCard/iWriteCard strings).
#![no_main]

#[path = "../targets/national.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
