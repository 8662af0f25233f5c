//! Operation tokens as a web page sends them: refused or accepted, never a panic.
#![no_main]

#[path = "../targets/token.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
