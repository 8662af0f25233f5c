//! Holders files, CSV and JSON lines: every row is valid or refused naming its line, never a panic.
//!
//! The body of cargo fuzz target `holders` (`fuzz/fuzz_targets/holders.rs`); the corpus replay test
//! (`fuzz/replay`) runs it on every input of `fuzz/corpus/holders/`.

use card_core::profile::Generation;
use issuance::holders::{parse_csv, parse_jsonl, Context};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let issued = |_: &str| false;
    for g in [Generation::ONE, Generation::THREE] {
        let ctx = Context { generation: g, base: std::env::temp_dir(), issued: &issued };
        for parsed in [parse_csv(text, &ctx), parse_jsonl(text, &ctx)] {
            for r in &parsed.rejected {
                assert!(!r.errors.is_empty());
            }
        }
    }
}
