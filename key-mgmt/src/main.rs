//! `keymgmt`: key store, ceremonies, rotation and audit; see `keymgmt --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // a closed pipe (`… | head`) ends the program quietly, as it does other Unix tools
    sigpipe::reset();
    key_mgmt::cli::Cli::parse().run()
}
