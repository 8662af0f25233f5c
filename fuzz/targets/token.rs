//! Operation tokens as a web page sends them: refused or accepted, never a panic.
//!
//! The body of cargo fuzz target `token` (`fuzz/fuzz_targets/token.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/token/`.

use std::time::Duration;

use terminal_agent::service::token::{Scope, TokenVerifier};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let v = TokenVerifier::new(Some(zeroize::Zeroizing::new(vec![0x42; 32])), "T1", Duration::from_secs(300));
    let _ = v.check(Some(text), Scope::Pin);
    let _ = v.check(Some(text), Scope::Write);
}
