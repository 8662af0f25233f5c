//! Operation tokens as a web page sends them: refused or accepted, never a panic.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use terminal_agent::service::token::{Scope, TokenVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let v = TokenVerifier::new(Some(zeroize::Zeroizing::new(vec![0x42; 32])), "T1", Duration::from_secs(300));
    let _ = v.check(Some(text), Scope::Pin);
    let _ = v.check(Some(text), Scope::Write);
});
