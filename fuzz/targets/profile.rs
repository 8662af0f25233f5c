//! A deployment's profile file: any TOML is refused with an error or loaded, never a panic.
//!
//! The body of cargo fuzz target `profile` (`fuzz/fuzz_targets/profile.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/profile/`.

use card_core::profile::Profile;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::from_toml(text);
    }
}
