//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `demo`: the main job on the virtual card — prepares the machine (packages, pcscd), issues a demo card in
//!   `Virtual PCD 00 00` with `issuance`, and reads it as a counter does (`terminal-agent`, CLI and service).
//! - `test`: prepares the machine the same way, starts a throwaway PostgreSQL cluster for the run
//!   (`SSCARD_TEST_PG_URL`, unless already set; stopped afterwards), then runs every test of the workspace and clippy;
//!   on CI (`CI` set) or with `--packages`, then builds the Debian packages of the dev-profile programs, installs them
//!   with `dpkg -i` and checks them (`package --check`).
//! - `package [--release] [--check]`: the Debian packages (cargo-deb) into `target/debian/`; `--check` installs and
//!   checks them (root).
//! - `setup` (or `prepare`): only prepares the machine.
//! - `pg start|stop|url`: a throwaway PostgreSQL cluster under `target/xtask-pg/` for demos and benchmarks.
//! - `fixtures`: regenerates the card images under `fixtures/cards/`.
//! - `bench`: every benchmark side by side on the same paced virtual card, written to `bench/results.md` and
//!   `bench/results.svg` (`xtask/src/bench.rs`).
//! - `bench-issuance`: prepares the machine, then measures cards per hour of `issuance` through pcscd on one
//!   and on two virtual readers (`issuance-cli/benches/pcscd.rs`, release build).
//! - `fuzz`: cargo fuzz targets of every parser (`fuzz/`), N minutes each; `test` replays their corpora
//!   (`fuzz/replay`).
//! - `fuzz-api`: runs schemathesis (property-based HTTP tests from `terminal-agent/openapi.yaml`) against
//!   `terminal-agent serve` with the gen 2 test card in `Virtual PCD 00 00`.
//!
//! Uses the standard library only, so it builds before `libpcsclite-dev` is installed.

mod bench;
mod env;
mod package;
mod pg;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask <demo|test|setup|prepare|package|pg|fixtures|bench|bench-issuance|fuzz-api|fuzz>

  demo [--pace]
            issue a demo card on the virtual card and read it as a counter does (no hardware); --pace: the
            card takes a real card's time (card-sim --pace, 9600 bit/s)
  test [--packages|--no-packages]
            install what is missing, start pcscd and a throwaway PostgreSQL cluster (SSCARD_TEST_PG_URL,
            unless set), run all tests and clippy; with --packages (the default when CI is set) also build
            the Debian packages of the dev-profile programs, install them (dpkg -i, root) and check them
  package [--release] [--check]
            the Debian packages libsscard, sscard-agent, sscard-issuance, sscard-keymgmt (cargo-deb, installed
            into target/tools/ if missing) into target/debian/; dev-profile programs unless --release;
            --check installs them with dpkg -i and checks them (root)
  setup, prepare
            install what is missing and start pcscd
  pg start|stop|url
            a throwaway PostgreSQL cluster under target/xtask-pg/ (127.0.0.1, user postgres, no password);
            start and url print its postgresql:// URL
  fixtures  regenerate fixtures/cards/ from the documented test keys
  bench     the clerk's wait, the agent's overhead, the desk's cards per hour and key sets per second, side
            by side on the same paced virtual card: bench/results.md and bench/results.svg (with machine, date
            and commit; BENCH_QUICK=1 for a quick run of the whole chain)
  bench-issuance  cards per hour through pcscd on one and two virtual readers
            (ISSUANCE_BENCH_CARDS per reader, default 4; ISSUANCE_BENCH_GENERATION, default 3)
  fuzz-api  schemathesis against terminal-agent serve and its openapi.yaml (pip installs schemathesis)
  fuzz [--minutes N] [TARGET...]
            cargo fuzz (stable, no sanitizer) on every parser of card, file and request input, N minutes
            each (default 1); targets: apdu tlv codec national two_step profile holders token tr31 agent_body;
            `test` replays every input of their corpora (fuzz/replay)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => env::prepare().and_then(|()| env::demo(&args[1..])),
        Some("test") => env::prepare().and_then(|()| env::test(&args[1..])),
        Some("setup" | "prepare") => env::prepare(),
        Some("package") => package::command(&args[1..]),
        Some("pg") => pg::command(&args[1..]),
        Some("fixtures") => env::fixtures(),
        Some("bench") => env::prepare().and_then(|()| bench::command(&args[1..])),
        Some("bench-issuance") => env::prepare().and_then(|()| env::bench_issuance(&args[1..])),
        Some("fuzz-api") => env::prepare().and_then(|()| env::fuzz_api(&args[1..])),
        Some("fuzz") => env::fuzz(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
