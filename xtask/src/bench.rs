//! `cargo xtask bench`: every benchmark of issue 15 in one invocation, on the same paced virtual card, then the
//! table and the plot (`bench/results.md`, `bench/results.svg`).
//!
//! 1. `sscard-bench reads`: reading the basic information — the project, the vendors' record-by-record pattern,
//!    the project's APDUs as bare PC/SC — on paced generation 2 and 3 cards at 9600 and 115200 bit/s;
//! 2. `cargo bench -p terminal-agent --bench agent`: the agent over HTTP against a direct read and raw transmits,
//!    p50/p99 with 1/4/16 clients, unpaced and paced;
//! 3. `cargo bench -p issuance-cli --bench pcscd`: personalization with verification on paced blank cards, one
//!    and two readers, beside the plan's floor;
//! 4. `cargo bench -p key-mgmt --bench derive` and `bench/python_keysets.py`: card key sets per second, key-mgmt
//!    against Python `cryptography`;
//! 5. `sscard-bench report`: the results as Markdown and SVG, with machine, date and commit; the same tables in
//!    the README between `<!-- bench-results:start -->` and `<!-- bench-results:end -->`.
//!
//! The JSON files of the run stay in `target/bench/`. `BENCH_QUICK=1` takes fewer samples (a check that the
//! whole chain runs, not a measurement).

use std::process::Command;

use crate::env::{cargo, root, run, Result};

/// Runs the benches and writes the report.
pub fn command(_extra: &[String]) -> Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for stale in ["reads.json", "agent.json", "issuance.json", "keysets.json", "python-keysets.json"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let started = std::time::Instant::now();
    eprintln!("xtask bench: 1/5 reading the basic information three ways on paced cards");
    run(cargo().args(["build", "--release", "--quiet", "-p", "sscard-bench"]))?;
    let bench_bin = root().join("target/release/sscard-bench");
    run(Command::new(&bench_bin)
        .current_dir(root())
        .args(["reads", "--samples", if quick { "3" } else { "15" }, "--out"])
        .arg(dir.join("reads.json")))?;

    eprintln!("xtask bench: 2/5 the agent against a direct read");
    run(cargo()
        .args(["bench", "-p", "terminal-agent", "--bench", "agent"])
        .env("AGENT_BENCH_N", if quick { "20" } else { "1000" })
        .env("AGENT_BENCH_PACED_N", if quick { "3" } else { "40" })
        .env("AGENT_BENCH_JSON", dir.join("agent.json")))?;

    eprintln!("xtask bench: 3/5 personalization with verification on paced blank cards");
    run(cargo()
        .args(["bench", "-p", "issuance-cli", "--bench", "pcscd"])
        .env("ISSUANCE_BENCH_PACE", "9600")
        .env("ISSUANCE_BENCH_CARDS", if quick { "1" } else { "2" })
        .env("ISSUANCE_BENCH_JSON", dir.join("issuance.json")))?;

    eprintln!("xtask bench: 4/5 card key sets per second, key-mgmt and Python cryptography");
    run(cargo()
        .args(["bench", "-p", "key-mgmt", "--bench", "derive"])
        .env("BENCH_KEYSETS_JSON", dir.join("keysets.json")))?;
    run(Command::new("python3")
        .arg(root().join("bench/python_keysets.py"))
        .arg(root())
        .arg(dir.join("python-keysets.json"))
        .arg(if quick { "0.5" } else { "3" }))?;

    eprintln!("xtask bench: 5/5 the report");
    run(Command::new(&bench_bin)
        .current_dir(root())
        .args(["report", "--results"])
        .arg(&dir)
        .arg("--out")
        .arg(root().join("bench"))
        .arg("--readme")
        .arg(root().join("README.md")))?;
    eprintln!(
        "xtask bench: bench/results.md and bench/results.svg written ({} s; the run's JSON in target/bench/)",
        started.elapsed().as_secs()
    );
    Ok(())
}
