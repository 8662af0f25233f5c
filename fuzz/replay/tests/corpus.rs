//! Every input of every cargo fuzz corpus (`fuzz/corpus/<target>/`, what `cargo xtask fuzz` found and kept),
//! replayed through the target's body (`fuzz/targets/<target>.rs`, the code the fuzzer runs): none panics.
//!
//! This is the fuzzing that `cargo xtask test` (and CI) runs: the inputs the fuzzer kept, each once, on every
//! run, in the project's own build. The fuzzing itself, which finds new inputs, is `cargo xtask fuzz` (cargo fuzz,
//! libFuzzer with coverage instrumentation, its own build).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

#[path = "../../targets/agent_body.rs"]
mod agent_body;
#[path = "../../targets/apdu.rs"]
mod apdu;
#[path = "../../targets/codec.rs"]
mod codec;
#[path = "../../targets/holders.rs"]
mod holders;
#[path = "../../targets/national.rs"]
mod national;
#[path = "../../targets/profile.rs"]
mod profile;
#[path = "../../targets/tlv.rs"]
mod tlv;
#[path = "../../targets/token.rs"]
mod token;
#[path = "../../targets/tr31.rs"]
mod tr31;
#[path = "../../targets/two_step.rs"]
mod two_step;

macro_rules! replayed {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let n = replay(stringify!($name), $name::run);
                println!("{}: {n} inputs", stringify!($name));
            }
        )*

        /// The targets replayed above.
        const TARGETS: &[&str] = &[$(stringify!($name)),*];
    };
}

replayed!(agent_body, apdu, codec, holders, national, profile, tlv, token, tr31, two_step);

/// Runs `run` on every file of `fuzz/corpus/<target>/` and of `fuzz/artifacts/<target>/` (crashes found and fixed
/// are kept there); returns how many. A panic names the input's file.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            assert_ne!(dir, "corpus", "{target}: no corpus");
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", file.display());
            n += 1;
        }
    }
    assert!(n > 0, "{target}: an empty corpus");
    n
}

#[test]
fn every_cargo_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml")).unwrap();
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "sscard-fuzz")
        .collect();
    let mut want: Vec<&str> = bins.clone();
    want.sort_unstable();
    let mut have = TARGETS.to_vec();
    have.sort_unstable();
    assert_eq!(have, want, "fuzz/Cargo.toml's targets and the replayed ones");
}
