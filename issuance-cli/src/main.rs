//! `issuance`: personalize social security cards (社会保障卡) from a list of holders (see `--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    issuance::cli::Cli::parse().run()
}
