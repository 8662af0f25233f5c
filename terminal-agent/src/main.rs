//! `terminal-agent`: the counter's card service (`serve`) and its diagnostic subcommands (see `--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    terminal_agent::cli::Cli::parse().run()
}
