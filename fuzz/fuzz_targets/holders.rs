//! Holders files, CSV and JSON lines: every row is valid or refused naming its line, never a panic.
#![no_main]

#[path = "../targets/holders.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
