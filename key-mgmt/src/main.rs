//! `keymgmt`: key store, ceremonies, rotation and audit; see `keymgmt --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    key_mgmt::cli::Cli::parse().run()
}
