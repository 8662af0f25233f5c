//! The command line: one file per subcommand, `--json` output tagged `"format": "issuance/1"`, exit
//! codes by who is at fault. Secrets (the key store passphrase, PINs) are read from files, never from
//! the command line.

mod cancel;
mod journal;
mod personalize;
mod pin;
mod plan;
mod rekey;
mod replace;
mod report;
mod resume;
mod status;
mod validate;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use card_core::codec::Date;
use card_core::profile::{Generation, Profile};
use clap::{CommandFactory, Parser, Subcommand};
use key_mgmt::KeyStore;
use secrecy::SecretString;

use crate::holders::{self, Context, Parsed};
use crate::journal::{CardRow, Desk, Journal, Location, Wait};
use crate::prepare::{Settings, StoreKeySource};
use crate::{Error, Fault};

const EXIT_HELP: &str = "Exit codes:
  0  success
  1  other failure
  2  bad arguments or input (an invalid holders file is refused whole)
  3  no reader, no card, card removed, pcscd not running
  4  the card refused a command
  5  verification failed or the card answered nonsense: the card is rejected
  6  key store: locked, wrong passphrase, key missing
130  interrupted (Ctrl-C): the current card was finished; `personalize --continue BATCH` issues the rest";

/// The version tag of every `--json` output.
pub const JSON_FORMAT: &str = "issuance/1";

/// Personalize social security cards (社会保障卡) from a list of holders, at a desk reader.
#[derive(Parser)]
#[command(name = "issuance", version, after_help = EXIT_HELP)]
pub struct Cli {
    /// The journal: a SQLite file (created if missing), or a PostgreSQL database shared by several desks,
    /// `postgresql://user@host:port/db` (no password in it: see --journal-password-file); TLS with
    /// `?sslmode=verify-full&sslrootcert=CA.pem` (also disable, prefer, require, verify-ca).
    #[arg(long, global = true, env = "ISSUANCE_JOURNAL", default_value = "issuance.db")]
    journal: PathBuf,
    /// File holding the PostgreSQL journal's password (first line); else PGPASSWORD, if set.
    #[arg(long, global = true, env = "ISSUANCE_JOURNAL_PASSWORD_FILE")]
    journal_password_file: Option<PathBuf>,
    /// Seconds to wait for a PostgreSQL journal server that cannot be reached (at the start, or lost mid-way)
    /// before giving up; meanwhile the desk says so and starts no card.
    #[arg(long, global = true, env = "ISSUANCE_JOURNAL_WAIT", default_value_t = 120, value_name = "SECS")]
    journal_wait: u64,
    /// This desk's id, journalled on the batches, cards and steps it writes (default: the host name).
    #[arg(long, global = true, env = "ISSUANCE_DESK")]
    desk: Option<String>,
    /// Who works at the desk, journalled with the desk (default: the login name).
    #[arg(long, global = true, env = "ISSUANCE_OPERATOR")]
    operator: Option<String>,
    /// The key store (keymgmt).
    #[arg(long, global = true, env = "ISSUANCE_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// File holding the key store passphrase (first line).
    #[arg(long, global = true, env = "ISSUANCE_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// The encoding of holders files: utf-8, or gbk as Windows tools often export.
    #[arg(long, global = true, value_enum, default_value = "utf-8")]
    encoding: holders::Encoding,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a holders file (CSV or JSON lines) without touching a card.
    Validate(validate::Args),
    /// Show the personalization plan of one holder (no keys, no PIN).
    Plan(plan::Args),
    /// Issue a card to each holder of a file, one card after another (or one worker per reader).
    Personalize(personalize::Args),
    /// Continue the unfinished card in a reader (after a tear, a removal, a failure).
    Resume(resume::Args),
    /// Verify the card in a reader again against the journal (read back, keys, internal authentication).
    Verify(verify::Args),
    /// The journal: cards per state and each card.
    Status(status::Args),
    /// Per-card costs (APDUs, bytes, modeled time) and totals, as CSV or JSON.
    Report(report::Args),
    /// Withdraw a card (lost, reported): marked cancelled; the holder may be issued a new one.
    Cancel(cancel::Args),
    /// A new card (type replacement) for a holder with an issued card; the old card is blocked if presented.
    Replace(replace::Args),
    /// Update the issued card in a reader to the active key versions (secure WRITE KEY), journalled.
    Rekey(rekey::Args),
    /// At the desk: unblock a holder's blocked PIN with a new PIN (PUK from the key store).
    UnblockPin(pin::Args),
    /// At the desk: set a holder's PIN to a new value (RLK from the key store).
    ReloadPin(pin::Args),
    /// Move a desk's journal into this one (`import`), or write this one out (`export`).
    Journal(journal::Args),
    /// Print the shell completion script for bash, zsh or fish to standard output.
    Completions(cli_docs::CompletionsArgs),
    /// Write the manual pages (this program's and one per subcommand) into DIR: packaging.
    #[command(hide = true)]
    Manpages(cli_docs::ManpagesArgs),
}

/// Batch settings shared by `validate`, `plan` and `personalize`.
#[derive(clap::Args, Clone)]
struct BatchArgs {
    /// Card generation (1, 2 3DES; 3 SM4).
    #[arg(long, default_value_t = 3)]
    generation: u8,
    /// Validity in years.
    #[arg(long, default_value_t = 10)]
    validity_years: u16,
    /// Card type (EF05 tag 02): 1 standard, 2 replacement, 3 temporary.
    #[arg(long, default_value = "1")]
    card_type: String,
    /// Issue date YYYYMMDD (default today, China Standard Time).
    #[arg(long)]
    issue_date: Option<String>,
}

impl BatchArgs {
    fn settings(&self) -> Result<Settings, Failure> {
        let g = Generation::new(self.generation).ok_or_else(|| usage("--generation must be 1, 2 or 3"))?;
        let mut s = Settings::new(g);
        s.validity_years = self.validity_years;
        if !matches!(self.card_type.as_str(), "1" | "2" | "3") {
            return Err(usage("--card-type must be 1, 2 or 3"));
        }
        s.card_type.clone_from(&self.card_type);
        if let Some(d) = &self.issue_date {
            s.issue_date = Date::parse(d).map_err(|e| usage(format!("--issue-date: {e}")))?;
        }
        Ok(s)
    }
}

impl Cli {
    /// Runs the subcommand and turns its outcome into an exit code.
    pub fn run(self) -> ExitCode {
        let g = Global {
            journal: Location::new(self.journal),
            journal_password_file: self.journal_password_file,
            journal_wait: self.journal_wait,
            desk: self.desk,
            operator: self.operator,
            keystore: self.keystore,
            passphrase_file: self.passphrase_file,
            json: self.json,
            encoding: self.encoding,
        };
        let result = match self.command {
            Command::Validate(a) => validate::run(&g, a),
            Command::Plan(a) => plan::run(&g, a),
            Command::Personalize(a) => personalize::run(&g, a),
            Command::Resume(a) => resume::run(&g, a),
            Command::Verify(a) => verify::run(&g, a),
            Command::Status(a) => status::run(&g, a),
            Command::Report(a) => report::run(&g, a),
            Command::Cancel(a) => cancel::run(&g, a),
            Command::Rekey(a) => rekey::run(&g, a),
            Command::Replace(a) => replace::run(&g, a),
            Command::UnblockPin(a) => pin::run(&g, a, pin::Service::Unblock),
            Command::ReloadPin(a) => pin::run(&g, a, pin::Service::Reload),
            Command::Journal(a) => journal::run(&g, a),
            Command::Completions(a) => cli_docs::print_completions(&Cli::command(), &a).map_err(Failure::Io),
            Command::Manpages(a) => cli_docs::write_manpages(&Cli::command(), &a).map_err(Failure::Io),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let mut said = e.to_string();
                eprintln!("issuance: {said}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    // a message that already ends with its cause's words does not repeat them
                    let cause = s.to_string();
                    if !said.ends_with(&cause) {
                        eprintln!("  caused by: {cause}");
                    }
                    said = cause;
                    source = s.source();
                }
                ExitCode::from(e.exit_code())
            }
        }
    }
}

/// Global options.
struct Global {
    journal: Location,
    journal_password_file: Option<PathBuf>,
    journal_wait: u64,
    desk: Option<String>,
    operator: Option<String>,
    keystore: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    json: bool,
    encoding: holders::Encoding,
}

impl Global {
    fn journal(&self) -> Result<Journal, Failure> {
        let password = self.journal_password()?;
        let wait = self.journal_wait(std::sync::Arc::new(|m: &str| eprintln!("issuance: {m}")));
        Ok(Journal::open_waiting(&self.journal, password.as_ref(), wait)?.at_desk(self.desk()?))
    }

    /// How long to wait for the journal server (`--journal-wait`), telling `notify`.
    fn journal_wait(&self, notify: std::sync::Arc<dyn Fn(&str) + Send + Sync>) -> Wait {
        Wait { limit: std::time::Duration::from_secs(self.journal_wait), notify }
    }

    /// This desk and its operator: `--desk` / `--operator`, else the host and login names.
    fn desk(&self) -> Result<Desk, Failure> {
        let local = Desk::local();
        Ok(Desk::new(self.desk.as_deref().unwrap_or(&local.id), self.operator.as_deref().unwrap_or(&local.operator))?)
    }

    /// The PostgreSQL journal's password: the first line of --journal-password-file, else PGPASSWORD; none for
    /// a SQLite journal.
    fn journal_password(&self) -> Result<Option<SecretString>, Failure> {
        if matches!(self.journal, Location::Sqlite(_)) {
            return Ok(None);
        }
        if let Some(pf) = &self.journal_password_file {
            let text = crate::files::read_secret_text(pf).map_err(|e| usage(format!("--journal-password-file {e}")))?;
            return Ok(Some(SecretString::from(text.lines().next().unwrap_or_default())));
        }
        Ok(std::env::var("PGPASSWORD").ok().map(SecretString::from))
    }

    /// The key store, unlocked with the passphrase file.
    fn keys(&self) -> Result<StoreKeySource, Failure> {
        let path = self.keystore.as_ref().ok_or_else(|| usage("--keystore is required"))?;
        let pf = self.passphrase_file.as_ref().ok_or_else(|| usage("--passphrase-file is required"))?;
        let text = crate::files::read_secret_text(pf).map_err(|e| usage(format!("--passphrase-file {e}")))?;
        let pass = text.lines().next().unwrap_or_default();
        let mut store = KeyStore::open(path).map_err(Error::from)?;
        store.unlock_with_passphrase(pass.as_bytes()).map_err(Error::from)?;
        Ok(StoreKeySource::new(store))
    }
}

/// Reads and validates a holders file against the journal.
fn read_holders(global: &Global, path: &Path, g: Generation, journal: Option<&Journal>) -> Result<Parsed, Failure> {
    let issued = |ssn: &str| journal.is_some_and(|j| j.ssn_has_card(ssn).unwrap_or(false));
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let ctx = Context { generation: g, base, issued: &issued };
    holders::read_file(path, &ctx, global.encoding).map_err(|e| match e {
        holders::ReadError::File(f) => usage(f.to_string()),
        other => usage(format!("{}: {other}", path.display())),
    })
}

/// Connects to the card in `reader` (a name, a unique part of one, or an index).
fn connect(reader: &str) -> Result<card_core::transport::PcscTransport, Failure> {
    let selector: card_core::transport::ReaderSelector = match reader.parse() {
        Ok(s) => s,
        Err(never) => match never {},
    };
    Ok(card_core::transport::PcscTransport::connect(&selector)?)
}

/// The issuer for a card already in the journal (`verify`, `resume`, `rekey`): its generation and dates come
/// from the journal row, so the settings only fill the rest.
fn card_issuer<'a>(journal: &'a Journal, keys: &'a StoreKeySource) -> crate::run::Issuer<'a> {
    crate::run::Issuer::reference(keys, journal, Settings::new(Generation::THREE))
}

/// A card of the journal, named on the command line by its identifier or its number.
#[derive(clap::Args)]
struct CardRef {
    /// The card identifier (32 hex digits, as `status` shows it).
    #[arg(long, conflicts_with = "card_number", required_unless_present = "card_number")]
    card_id: Option<String>,
    /// The card number (9 characters).
    #[arg(long)]
    card_number: Option<String>,
}

impl CardRef {
    /// The journal's card with that identifier or number (exactly one must match).
    fn find(&self, j: &Journal) -> Result<CardRow, Failure> {
        let found: Vec<CardRow> = j
            .cards()?
            .into_iter()
            .filter(|c| {
                self.card_id.as_deref().is_some_and(|id| c.card_id.eq_ignore_ascii_case(id))
                    || self.card_number.as_deref().is_some_and(|n| c.card_number == n)
            })
            .collect();
        match <[CardRow; 1]>::try_from(found) {
            Ok([one]) => Ok(one),
            Err(v) if v.is_empty() => Err(usage("no such card in the journal")),
            Err(_) => Err(usage("that card number exists in several regions: give --card-id")),
        }
    }
}

/// The profile in use (built-in).
fn profile() -> &'static Profile {
    Profile::builtin()
}

/// A failed subcommand, classified by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The arguments or input are wrong.
    #[error("{0}")]
    Usage(String),
    /// Issuance failed.
    #[error(transparent)]
    Issuance(#[from] Error),
    /// Output could not be written.
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
    /// Ctrl-C: stopped after the card(s) under way; the journal is consistent.
    #[error("interrupted: {left} holders of batch {batch} not started")]
    Interrupted {
        /// The batch, for `personalize --continue`.
        batch: i64,
        /// Holders not started.
        left: usize,
    },
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

impl From<card_core::transport::TransportError> for Failure {
    fn from(e: card_core::transport::TransportError) -> Self {
        Failure::Issuance(e.into())
    }
}

impl Failure {
    /// The exit code ([`EXIT_HELP`]): an issuance error's from who is at fault ([`Error::fault`]).
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit_code(Fault::Input),
            Failure::Io(_) => 1,
            Failure::Interrupted { .. } => 130,
            Failure::Issuance(e) => exit_code(e.fault()),
        }
    }
}

/// The exit code of a fault ([`EXIT_HELP`]).
fn exit_code(fault: Fault) -> u8 {
    match fault {
        Fault::Input => 2,
        Fault::Reader => 3,
        Fault::CardRefused => 4,
        Fault::CardRejected => 5,
        Fault::KeyStore => 6,
        Fault::Other => 1,
    }
}

/// Prints a JSON value, pretty, with a trailing newline.
fn print_json(v: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InputError, KeyError, Mismatch};

    /// The exit codes of `EXIT_HELP`, from who is at fault.
    #[test]
    fn exit_codes_come_from_the_fault() {
        let code = |e: Error| Failure::Issuance(e).exit_code();
        assert_eq!(usage("x").exit_code(), 2);
        assert_eq!(code(InputError::UnknownCard.into()), 2);
        assert_eq!(code(card_core::transport::TransportError::CardRemoved.into()), 3);
        assert_eq!(code(card_core::Error::WrongPin { tries_left: 1 }.into()), 4);
        assert_eq!(code(Mismatch::Binary { ef: "EF08".into() }.into()), 5);
        assert_eq!(code(KeyError::NoVersions.into()), 6);
        assert_eq!(code(crate::Defect::KeyStoreLock.into()), 1);
        assert_eq!(Failure::Interrupted { batch: 1, left: 2 }.exit_code(), 130);
    }

    /// The manual pages and completion scripts the package installs come from this command.
    #[test]
    fn manual_pages_and_completions_cover_every_subcommand() {
        cli_docs::check(&Cli::command()).unwrap();
        let pages = cli_docs::page_names(&Cli::command());
        for page in ["issuance", "issuance-personalize", "issuance-journal", "issuance-completions"] {
            assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.contains("manpages")), "hidden: {pages:?}");
        assert!(Cli::try_parse_from(["issuance", "completions", "fish"]).is_ok());
        assert!(Cli::try_parse_from(["issuance", "manpages", "out"]).is_ok());
    }
}
