//! A deployment's profile file: any TOML is refused with an error or loaded, never a panic.
#![no_main]

#[path = "../targets/profile.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
