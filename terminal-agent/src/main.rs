//! `terminal-agent`: the counter's card service; for now its diagnostic subcommands (see `--help`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::Cli::parse().run()
}
