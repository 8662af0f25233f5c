//! `issuance`: personalize social security cards (社会保障卡) from a list of holders (see `--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    // a closed pipe (`… | head`) ends the program quietly, as it does other Unix tools
    sigpipe::reset();
    issuance::cli::Cli::parse().run()
}
