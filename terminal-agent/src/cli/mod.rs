//! The command line, in the manner of `opensc-tool`: subcommands, `--reader NAME|INDEX`, `--json` for
//! scripts, human output by default, exit codes that say who is at fault.

mod apdu;
mod items;
mod keys;
mod pin;
mod read_basic;
mod readers;
mod serve;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use card_core::transport::{PcscTransport, ReaderSelector, TransportError, DEFAULT_CARD_TIMEOUT};
use clap::{CommandFactory, Parser, Subcommand};

const EXIT_HELP: &str = "Exit codes:
  0  success
  1  other failure
  2  bad arguments or input
  3  no reader, no card, card removed, the card does not respond (--card-timeout), pcscd not running
  4  the card refused (status word, wrong PIN, blocked)
  5  the card or its data is not what it should be (malformed answer, failed internal authentication)
  6  keys: a key the operation needs is not held, the key store cannot be opened or unlocked, or the key
     service refused (not allowed, rate limited, no keys for the card)
  7  the key service cannot be reached (no replica answered)

PINs are asked at the terminal without echo, or read from --pin-fd N; never from the command line.";

/// The counter's card service for the social security card (社会保障卡), and its diagnostics.
#[derive(Parser)]
#[command(name = "terminal-agent", version, after_help = EXIT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The longest wait for one card call (connecting, one APDU), in seconds; a card that takes longer is given
    /// up on (exit 3, "card does not respond"). `serve` takes `card_timeout_ms` from its configuration instead.
    #[arg(long, global = true, env = "SSCARD_CARD_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds)]
    card_timeout: Option<Duration>,
}

/// The card timeout of the diagnostic subcommands (`--card-timeout`), set once by [`Cli::run`].
static CARD_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// `--card-timeout`: seconds (a decimal fraction allowed), at least 0.1.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        _ => Err(format!("{s}: give at least 0.1 seconds")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// List the PC/SC readers and what is in them.
    Readers(readers::Args),
    /// Read the card and holder data: the national iReadCardBas string and the typed fields.
    ReadBasic(read_basic::Args),
    /// Read items by national address, e.g. 'SSSEEF05|05|06|07|$DF01EF06|23|$'.
    Read(items::ReadArgs),
    /// Write items by national address; the values mirror the address.
    Write(items::WriteArgs),
    /// Verify the cardholder PIN.
    VerifyPin(pin::VerifyArgs),
    /// Change the cardholder PIN (current PIN, new PIN twice).
    ChangePin(pin::ChangeArgs),
    /// Send raw APDUs (hex) to the card and show the answers, as `opensc-tool -s`.
    Apdu(apdu::Args),
    /// Run the counter's card service on 127.0.0.1 and ::1 (HTTP + WebSocket, for the counter web application).
    Serve(serve::ServeArgs),
    /// Sign an operation token (scope pin or write) with the configured key, as the counter back end does.
    Token(serve::TokenArgs),
    /// Make a new random token key file (the `token_key_file` of the configuration, shared with the back end).
    TokenKey(serve::TokenKeyArgs),
    /// Print the shell completion script for bash, zsh or fish to standard output.
    Completions(cli_docs::CompletionsArgs),
    /// Write the manual pages (this program's and one per subcommand) into DIR: packaging.
    #[command(hide = true)]
    Manpages(cli_docs::ManpagesArgs),
}

impl Cli {
    /// Runs the subcommand and turns its outcome into an exit code.
    pub fn run(self) -> ExitCode {
        if !matches!(self.command, Command::Serve(_)) {
            // a closed pipe (`… | head`) ends a diagnostic quietly, as it does other Unix tools (not the service:
            // its sockets never raise SIGPIPE, and nothing it prints should stop it)
            sigpipe::reset();
        }
        let _ = CARD_TIMEOUT.set(self.card_timeout.unwrap_or(DEFAULT_CARD_TIMEOUT));
        let result = match self.command {
            Command::Readers(a) => readers::run(a),
            Command::ReadBasic(a) => read_basic::run(a),
            Command::Read(a) => items::read(a),
            Command::Write(a) => items::write(a),
            Command::VerifyPin(a) => pin::verify(a),
            Command::ChangePin(a) => pin::change(a),
            Command::Apdu(a) => apdu::run(a),
            Command::Serve(a) => serve::serve(a),
            Command::Token(a) => serve::token(a),
            Command::TokenKey(a) => serve::token_key(a),
            Command::Completions(a) => cli_docs::print_completions(&Cli::command(), &a).map_err(Failure::Io),
            Command::Manpages(a) => cli_docs::write_manpages(&Cli::command(), &a).map_err(Failure::Io),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                match &e {
                    Failure::Card(err) => {
                        let code = card_core::national::code(err);
                        eprintln!("terminal-agent: {e} (national code {code})");
                    }
                    _ => eprintln!("terminal-agent: {e}"),
                }
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
                ExitCode::from(e.exit_code())
            }
        }
    }
}

/// A failed subcommand, classified by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The arguments or input are wrong.
    #[error("{0}")]
    Usage(String),
    /// Something in card-core failed.
    #[error(transparent)]
    Card(#[from] card_core::Error),
    /// Output could not be written.
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
    /// The key store could not give the keys.
    #[error("key store: {0}")]
    Keys(String),
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Self {
        Failure::Card(e.into())
    }
}

impl Failure {
    fn exit_code(&self) -> u8 {
        use card_core::Error as E;
        match self {
            Failure::Usage(_) => 2,
            Failure::Io(_) => 1,
            Failure::Keys(_) => 6,
            Failure::Card(E::Transport(_)) => 3,
            Failure::Card(
                E::Card(_) | E::WrongPin { .. } | E::Blocked(_) | E::PinBlocked | E::AuthFailed { .. } | E::National(_),
            ) => 4,
            Failure::Card(
                E::Protocol(_)
                | E::Tlv(_)
                | E::CardData(_)
                | E::InternalAuthFailed
                | E::UnknownCard(_)
                | E::CardMismatch,
            ) => 5,
            Failure::Card(E::MissingKey { .. } | E::KeyService { reached: true, .. }) => 6,
            Failure::Card(E::KeyService { reached: false, .. }) => 7,
            Failure::Card(E::Apdu(_) | E::Codec(_) | E::BadParameter(_)) => 2,
            Failure::Card(_) => 1,
        }
    }
}

/// `--reader`: a name, a unique part of a name, or an index (default 0).
fn open_reader(reader: &Option<String>) -> Result<PcscTransport, Failure> {
    let selector: ReaderSelector = match reader {
        Some(r) => r.parse().map_err(|_| Failure::Usage(format!("bad --reader {r}")))?,
        None => ReaderSelector::Index(0),
    };
    let card_timeout = CARD_TIMEOUT.get().copied().unwrap_or(DEFAULT_CARD_TIMEOUT);
    Ok(PcscTransport::connect_with_timeout(&selector, card_timeout)?)
}

/// Prints a JSON value, pretty, with a trailing newline.
fn print_json(v: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// The version tag of every `--json` output.
const JSON_FORMAT: &str = "terminal-agent/1";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The manual pages and completion scripts the package installs come from this command.
    #[test]
    fn manual_pages_and_completions_cover_every_subcommand() {
        cli_docs::check(&Cli::command()).unwrap();
        let pages = cli_docs::page_names(&Cli::command());
        for page in
            ["terminal-agent", "terminal-agent-serve", "terminal-agent-read-basic", "terminal-agent-completions"]
        {
            assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.contains("manpages")), "hidden: {pages:?}");
        assert!(Cli::try_parse_from(["terminal-agent", "completions", "zsh"]).is_ok());
        assert!(Cli::try_parse_from(["terminal-agent", "completions", "tcsh"]).is_err());
        assert!(Cli::try_parse_from(["terminal-agent", "manpages", "out"]).is_ok());
    }

    /// The package's /etc/sscard/agent.toml: valid, the documented port, no origin, no token key, no keys, and
    /// files only where the unit lets the service write (its state and log folders).
    #[test]
    fn the_packaged_configuration_is_safe_by_default() {
        use crate::service::config::{Config, KeyMode, DEFAULT_PORT};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/sscard-agent/agent.toml");
        let config = Config::load(&path).unwrap();
        config.validate().unwrap();
        assert_eq!(config.port, DEFAULT_PORT);
        assert!(config.allowed_origins.is_empty());
        assert!(config.token_key.is_none());
        assert_eq!(config.keys, KeyMode::TwoStep);
        assert_eq!(config.audit_log.as_deref(), Some(std::path::Path::new("/var/log/sscard-agent/audit.jsonl")));
        assert_eq!(config.spent_tokens.as_deref(), Some(std::path::Path::new("/var/lib/sscard-agent/spent-tokens")));
        let unit = std::fs::read_to_string(path.with_file_name("sscard-agent.service")).unwrap();
        for line in ["StateDirectory=sscard-agent", "LogsDirectory=sscard-agent", "ProtectSystem=strict"] {
            assert!(unit.lines().any(|l| l == line), "{line}");
        }
        assert!(unit.contains("ExecStart=/usr/bin/terminal-agent serve --config /etc/sscard/agent.toml\n"));
    }
}
