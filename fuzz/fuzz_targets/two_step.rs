//! The two-step exchange's strings as a terminal or a back end sends them (Step 1, the HSM's answer, the PIN
//! operations' Step 2 strings a key service answers) and the key service's request body.
#![no_main]

#[path = "../targets/two_step.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
