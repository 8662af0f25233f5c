//! The `keymgmt` command line: one file per subcommand. Secrets never come from the command
//! line: components and passphrases are read from files or typed without echo.

mod audit;
mod derive_kcv;
mod derive_region;
mod export;
mod generate;
mod generate_profile_keys;
mod import;
mod import_block;
mod init;
mod lifecycle;
mod list;
mod rotate;
mod serve;
mod show;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::components::{self, Secret};
use crate::error::{Error, Result};
use crate::inventory::{kcv_method_name, KeyRecord};
use crate::outside::Outside;
use crate::secrets::KBPK_LEN;
use crate::store::KeyStore;

const AFTER_HELP: &str = "Exit codes: 0 success; 1 other failure; 2 bad input (usage, no such store, unknown key \
name, refused component, illegal state transition, key block that does not authenticate under the KEK, …); 3 store locked, wrong passphrase or wrong components; 4 integrity \
failure (changed row, key block or audit log; an audit entry without a valid MAC; an entry of the audit sink missing from the store; a store older than its witness: rollback).

Secrets are never taken from the command line: the passphrase comes from --passphrase-file, components from \
--component-file / --unlock-component-file (hex text) or are typed at the terminal without echo.";

/// `keymgmt`: key store, ceremonies, rotation and audit for the social security card.
#[derive(Debug, Parser)]
#[command(name = "keymgmt", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The key store file (SQLite).
    #[arg(long, global = true, env = "KEYMGMT_STORE", value_name = "PATH")]
    store: Option<PathBuf>,
    /// Unlock with the passphrase in this file (first line); with `init`, also wrap the KBPK under it.
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Unlock with the KBPK components in these files (hex), one per custodian.
    #[arg(long = "unlock-component-file", global = true, value_name = "FILE")]
    unlock_component_files: Vec<PathBuf>,
    /// The audit sink: failed unlocks are appended here (JSON lines) as well as to the store
    /// [default: <store>.audit.jsonl].
    #[arg(long, global = true, env = "KEYMGMT_AUDIT_SINK", value_name = "FILE")]
    audit_sink: Option<PathBuf>,
    /// The witness of the audit head, against rollback of the store [default: <store>.witness].
    /// Given explicitly, it must exist (except at `init`).
    #[arg(long, global = true, env = "KEYMGMT_WITNESS", value_name = "FILE")]
    witness: Option<PathBuf>,
    /// Do not also send failed unlocks to the system log (/dev/log).
    #[arg(long, global = true)]
    no_syslog: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Key ceremony: create the store; its KBPK is the XOR of 2 or 3 custodian components.
    Init(init::Args),
    /// Import a key from 2 or 3 XOR components (each component's KCV is shown).
    Import(import::Args),
    /// Generate a random key, optionally split into components for custodians.
    Generate(generate::Args),
    /// Generate every issuer key of the card profile that the store does not hold yet.
    GenerateProfileKeys(generate_profile_keys::Args),
    /// List the stored keys (metadata and KCV, never a key); `--names`: the profile's key names (no store needed).
    List(list::Args),
    /// Show one key's versions (metadata and KCV, never a key).
    Show(show::Args),
    /// Store the region-level key Div(issuer key, region factor) (CARD-PROFILE §5.2).
    DeriveRegion(derive_region::Args),
    /// KCV of a card key Div(Div(K, region), card factor); never the key.
    DeriveKcv(derive_kcv::Args),
    /// Create and activate the next version of a key; older versions stay active until retired.
    Rotate(rotate::Args),
    /// pre-active → active.
    Activate(lifecycle::Args),
    /// active → retired.
    Retire(lifecycle::Args),
    /// retired (or pre-active) → destroyed: the key block is overwritten, the metadata kept.
    Destroy(lifecycle::Args),
    /// Export a key as a TR-31 version D key block under an AES transport KEK.
    Export(export::Args),
    /// Import a TR-31 version D key block under an AES transport KEK.
    ImportBlock(import_block::Args),
    /// Show the audit log, or verify its hash chain (`audit verify`); `audit verify-log FILE`: a key service
    /// replica's log (no store needed).
    Audit(audit::Args),
    /// The key service: answers the national two-step strings of counters over mutual TLS.
    Serve(serve::Args),
    /// Print the shell completion script for bash, zsh or fish to standard output.
    Completions(cli_docs::CompletionsArgs),
    /// Write the manual pages (this program's and one per subcommand) into DIR: packaging.
    #[command(hide = true)]
    Manpages(cli_docs::ManpagesArgs),
}

impl Cli {
    /// Runs the command; prints the error and returns the exit code of its kind.
    pub fn run(self) -> ExitCode {
        match self.dispatch() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keymgmt: error: {e}");
                ExitCode::from(e.kind().exit_code())
            }
        }
    }

    fn dispatch(self) -> Result<()> {
        let g = Global {
            store: self.store,
            passphrase_file: self.passphrase_file,
            unlock_files: self.unlock_component_files,
            audit_sink: self.audit_sink,
            witness: self.witness,
            syslog: !self.no_syslog,
        };
        match self.command {
            Command::Init(a) => init::run(&g, a),
            Command::Import(a) => g.with_store("import", |s| import::run(s, a)),
            Command::Generate(a) => g.with_store("generate", |s| generate::run(s, a)),
            Command::GenerateProfileKeys(a) => {
                g.with_store("generate-profile-keys", |s| generate_profile_keys::run(s, a))
            }
            Command::List(a) if a.names_only() => {
                list::names(&a);
                Ok(())
            }
            Command::List(a) => g.with_store("list", |s| list::run(s, a)),
            Command::Show(a) => g.with_store("show", |s| show::run(s, a)),
            Command::DeriveRegion(a) => g.with_store("derive-region", |s| derive_region::run(s, a)),
            Command::DeriveKcv(a) => g.with_store("derive-kcv", |s| derive_kcv::run(s, a)),
            Command::Rotate(a) => g.with_store("rotate", |s| rotate::run(s, a)),
            Command::Activate(a) => {
                g.with_store("activate", |s| lifecycle::run(s, a, crate::inventory::KeyState::Active))
            }
            Command::Retire(a) => g.with_store("retire", |s| lifecycle::run(s, a, crate::inventory::KeyState::Retired)),
            Command::Destroy(a) => {
                g.with_store("destroy", |s| lifecycle::run(s, a, crate::inventory::KeyState::Destroyed))
            }
            Command::Export(a) => g.with_store("export", |s| export::run(s, a)),
            Command::ImportBlock(a) => g.with_store("import-block", |s| import_block::run(s, a)),
            Command::Audit(a) if a.is_verify_log() => audit::verify_log(a),
            Command::Audit(a) => g.with_store("audit", |s| audit::run(s, a)),
            Command::Serve(a) => serve::run(&g, a),
            Command::Completions(a) => cli_docs::print_completions(&Cli::command(), &a)
                .map_err(|source| Error::Io { path: "standard output".into(), source }),
            Command::Manpages(a) => cli_docs::write_manpages(&Cli::command(), &a)
                .map_err(|source| Error::Io { path: a.dir.display().to_string(), source }),
        }
    }
}

/// Options shared by all subcommands.
struct Global {
    store: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    unlock_files: Vec<PathBuf>,
    audit_sink: Option<PathBuf>,
    witness: Option<PathBuf>,
    syslog: bool,
}

impl Global {
    fn store_path(&self) -> Result<&Path> {
        self.store
            .as_deref()
            .ok_or_else(|| Error::InvalidInput("no store: give --store PATH (or KEYMGMT_STORE)".into()))
    }

    /// Where the audit sink and the witness are: as given, else beside the store.
    fn outside(&self) -> Result<Outside> {
        let mut o = Outside::beside(self.store_path()?);
        if let Some(s) = &self.audit_sink {
            o.sink = s.clone();
        }
        if let Some(w) = &self.witness {
            o.witness = w.clone();
        }
        o.syslog = self.syslog;
        Ok(o)
    }

    /// Opens and unlocks the store, runs `f`, and audits a failure of `f`. The unlock's warnings
    /// (entries missing from the store, a witness created, an upgrade) go to stderr.
    fn with_store(&self, event: &str, f: impl FnOnce(&mut KeyStore) -> Result<()>) -> Result<()> {
        if let Some(w) = self.witness.as_deref().filter(|w| !w.exists()) {
            return Err(Error::Integrity(format!(
                "the witness {} does not exist: the store cannot be checked against rollback",
                w.display()
            )));
        }
        let mut store = KeyStore::open_with(self.store_path()?, self.outside()?)?;
        let unlocked = self.unlock(&mut store);
        for w in store.warnings() {
            eprintln!("keymgmt: warning: {w}");
        }
        unlocked?;
        let result = f(&mut store);
        if let Err(e) = &result {
            // Best effort: the operation's own error is what the user needs to see.
            let _ = store.audit_failure(event, &e.to_string());
        }
        result
    }

    fn unlock(&self, store: &mut KeyStore) -> Result<()> {
        if let Some(p) = &self.passphrase_file {
            let pass = read_passphrase(p)?;
            return store.unlock_with_passphrase(pass.as_bytes());
        }
        let comps = if !self.unlock_files.is_empty() {
            read_component_files(&self.unlock_files, KBPK_LEN)?
        } else if std::io::stdin().is_terminal() {
            prompt_components("KBPK", KBPK_LEN)?
        } else {
            return Err(Error::Locked);
        };
        store.unlock_with_components(&comps)
    }
}

/// Reads a file's text as a secret.
/// A key of the store by name and version, as most subcommands name it.
#[derive(Debug, clap::Args)]
struct KeyRef {
    /// Key name (`UKMF`, `MK_DF01`, `KEK`, …).
    #[arg(long)]
    name: String,
    /// Key version (1–255).
    #[arg(long = "version")]
    version: u8,
}

/// Largest passphrase file read (its first line is the passphrase).
pub(crate) const MAX_PASSPHRASE_FILE: u64 = 4096;
/// Largest component file read (hex text of at most 32 bytes, with some room for whitespace and comments).
pub(crate) const MAX_COMPONENT_FILE: u64 = 4096;
/// Largest key block file read (a TR-31 block is a few hundred characters).
pub(crate) const MAX_KEY_BLOCK_FILE: u64 = 16 * 1024;

/// Reads a file the user gave, at most `max` bytes ([`card_core::read_limited_string`]): not a regular file
/// (`/dev/zero`, a FIFO), larger than `max` or not text is bad input (exit 2); other I/O failures are I/O errors.
pub(crate) fn read_input_file(path: &Path, max: u64) -> Result<String> {
    card_core::read_limited_string(path, max).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::FileTooLarge | std::io::ErrorKind::InvalidData => {
            Error::InvalidInput(source.to_string())
        }
        _ => Error::Io { path: path.display().to_string(), source },
    })
}

fn read_secret(path: &Path, max: u64) -> Result<Zeroizing<String>> {
    read_input_file(path, max).map(Zeroizing::new)
}

/// The passphrase: the file's first line.
pub(crate) fn read_passphrase(path: &Path) -> Result<Zeroizing<String>> {
    let text = read_secret(path, MAX_PASSPHRASE_FILE)?;
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    if line.is_empty() {
        return Err(Error::InvalidInput(format!("{}: empty passphrase", path.display())));
    }
    Ok(line)
}

/// Components from files of hex text, each `len` bytes.
fn read_component_files(files: &[PathBuf], len: usize) -> Result<Vec<Secret>> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| components::parse_hex(&read_secret(f, MAX_COMPONENT_FILE)?, i + 1, len))
        .collect()
}

/// Asks for the number of components and each component, without echo.
fn prompt_components(what: &str, len: usize) -> Result<Vec<Secret>> {
    let io = |source| Error::Io { path: "terminal".into(), source };
    eprint!("{what}: number of components (2 or 3): ");
    std::io::stderr().flush().map_err(io)?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(io)?;
    let n: usize = line.trim().parse().map_err(|_| Error::InvalidInput("not a number".into()))?;
    if !(2..=3).contains(&n) {
        return Err(Error::ComponentCount { got: n, allowed: "2 or 3 are required" });
    }
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let text = Zeroizing::new(
            rpassword::prompt_password(format!("{what} component {i} of {n} ({len} bytes hex, not echoed): "))
                .map_err(io)?,
        );
        out.push(components::parse_hex(&text, i, len)?);
    }
    Ok(out)
}

/// Prints `value` as versioned JSON (`"format": "keymgmt/1"`).
fn print_json(kind: &str, mut value: serde_json::Value) {
    if let Some(o) = value.as_object_mut() {
        o.insert("format".into(), "keymgmt/1".into());
        o.insert("kind".into(), kind.into());
    }
    println!("{value}");
}

/// One line of human output for a key record.
fn record_line(r: &KeyRecord) -> String {
    format!(
        "{:<10} v{:<3} {:<8} {:<6} {:<7} {:<10} KCV {} ({}){}",
        r.name,
        r.version,
        r.level.as_str(),
        if r.region.is_empty() { "-" } else { &r.region },
        r.algorithm,
        r.state.as_str(),
        r.kcv,
        r.kcv_method,
        r.parent.as_deref().map(|p| format!(" from {p}")).unwrap_or_default()
    )
}

/// Name of a KCV method for output.
fn method(m: card_core::crypto::KcvMethod) -> &'static str {
    kcv_method_name(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The manual pages and completion scripts the package installs come from this command.
    #[test]
    fn manual_pages_and_completions_cover_every_subcommand() {
        cli_docs::check(&Cli::command()).unwrap();
        let pages = cli_docs::page_names(&Cli::command());
        for page in ["keymgmt", "keymgmt-init", "keymgmt-serve", "keymgmt-audit", "keymgmt-completions"] {
            assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.contains("manpages")), "hidden: {pages:?}");
        assert!(Cli::try_parse_from(["keymgmt", "completions", "bash"]).is_ok());
        assert!(Cli::try_parse_from(["keymgmt", "manpages", "out"]).is_ok());
    }
}
