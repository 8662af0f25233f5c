//! A deployment's profile file: any TOML is refused with an error or loaded, never a panic.
#![no_main]
use card_core::profile::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::from_toml(text);
    }
});
