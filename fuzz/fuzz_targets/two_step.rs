//! The two-step exchange's strings as a terminal or a back end sends them (Step 1, the HSM's answer).
#![no_main]
use card_core::security::two_step::{Step1, Step2Answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = text.parse::<Step1>() {
        let _ = s.to_string();
    }
    let _ = text.parse::<Step2Answer>();
});
