//! `sscard-bench`: the measuring half of `cargo xtask bench` (which runs it after the other benches).
//!
//! - `reads`: the basic information read three ways (the project, the vendors' record-by-record pattern, the
//!   project's APDUs as bare PC/SC transmits) on the paced fixture cards of generations 2 and 3 at 9600 and 115200
//!   bit/s through pcscd, plus the deterministic costs of each; JSON out.
//! - `report`: the results of every bench of the run (JSON files in one directory) as `results.md` and
//!   `results.svg`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sscard_bench::measure::{self, quantile_ms, ReadRow};
use sscard_bench::reads::{test_keys, Pattern};

#[derive(Parser)]
#[command(name = "sscard-bench", version, about = "The measuring half of `cargo xtask bench`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read the basic information three ways on paced cards through pcscd (needs pcscd with vsmartcard-vpcd).
    Reads {
        /// Reads timed per pattern, generation and bit rate.
        #[arg(long, default_value_t = 15)]
        samples: usize,
        /// Where to write the rows (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write results.md and results.svg from the run's JSON files.
    Report {
        /// The directory of the run's JSON files (reads.json, agent.json, issuance.json, keysets.json,
        /// python-keysets.json).
        #[arg(long)]
        results: PathBuf,
        /// Where to write results.md and results.svg.
        #[arg(long)]
        out: PathBuf,
        /// A README whose `<!-- bench-results:start -->` … `<!-- bench-results:end -->` section gets the tables.
        #[arg(long)]
        readme: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reads { samples, out } => reads(samples.max(1), &out),
        Command::Report { results, out, readme } => sscard_bench::report::write(&results, &out, readme.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sscard-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reads(samples: usize, out: &std::path::Path) -> Result<()> {
    let keys = test_keys()?;
    let _lock = testkit::vpcd_lock();
    let mut rows = Vec::new();
    for bit_rate in [9600u32, 115_200] {
        for generation in [2u8, 3] {
            let costs = measure::modeled(generation, bit_rate, &keys)?;
            let walls = measure::wall(generation, bit_rate, samples, &keys)
                .with_context(|| format!("generation {generation} at {bit_rate} bit/s"))?;
            for ((pattern, costs), wall) in Pattern::ALL.into_iter().zip(costs).zip(walls) {
                let row = ReadRow {
                    generation,
                    bit_rate,
                    pattern,
                    costs,
                    wall_p50_ms: quantile_ms(&wall, 0.5),
                    wall_p99_ms: quantile_ms(&wall, 0.99),
                    samples,
                };
                eprintln!(
                    "gen {generation} {bit_rate:>6} bit/s {:<34} {:>3} APDUs {:>4} bytes  modeled {:>7.2} ms  wall p50 \
                     {:>7.2} ms",
                    pattern.label(),
                    row.costs.apdus,
                    row.costs.bytes,
                    row.costs.modeled_us as f64 / 1000.0,
                    row.wall_p50_ms
                );
                rows.push(row);
            }
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)?).with_context(|| out.display().to_string())?;
    Ok(())
}
