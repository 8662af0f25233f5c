//! TR-31 / X9.143 key blocks, as an import or a tampered store gives them: parsed or refused, never a panic.
#![no_main]

#[path = "../targets/tr31.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
