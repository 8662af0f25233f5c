//! `keymgmt audit [verify]`.

use serde_json::json;

use super::print_json;
use crate::error::Result;
use crate::store::KeyStore;

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// JSON output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Verify the hash chain, every entry's MAC, the sealed head, the audit sink and the
    /// witness (exit code 4 on a changed, removed, reordered, forged or cut entry, an entry of
    /// the sink missing from the store, or a store older than its witness). With the global
    /// `--witness FILE`, that witness must exist.
    Verify,
    /// Verify a key service replica's audit log (`keymgmt serve`): the hash chain of its lines and its head
    /// (`FILE.head`, or --head). Exit code 4 on an edited, removed, inserted, reordered or cut line, or a missing
    /// head. Needs no store and no passphrase.
    VerifyLog {
        /// The log (JSON lines).
        file: std::path::PathBuf,
        /// Its head file [default: FILE.head].
        #[arg(long, value_name = "FILE")]
        head: Option<std::path::PathBuf>,
    },
}

impl Args {
    /// Whether this is `audit verify-log`, which needs no store.
    pub(super) fn is_verify_log(&self) -> bool {
        matches!(self.action, Some(Action::VerifyLog { .. }))
    }
}

/// `keymgmt audit verify-log FILE`.
pub(super) fn verify_log(a: Args) -> Result<()> {
    let Some(Action::VerifyLog { file, head }) = a.action else { return Ok(()) };
    let v = crate::service::audit_log::verify(&file, head.as_deref())?;
    if a.json {
        print_json("audit-verify-log", json!({ "ok": true, "verification": v }));
    } else {
        println!("audit log OK: {} lines, head {}", v.lines, v.head);
    }
    Ok(())
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    match a.action {
        Some(Action::Verify) => {
            let v = store.audit_verify()?;
            if a.json {
                print_json("audit-verify", json!({ "ok": true, "verification": v }));
            } else {
                println!("audit log OK: {} entries, sealed through {}, head {}", v.entries, v.sealed, v.head);
                let witness = match v.witness {
                    Some(seq) => format!("the witness has seen entry {seq}"),
                    None => "no witness".to_string(),
                };
                println!("audit sink: {} entries, all in the store; {witness}", v.sink_entries);
            }
        }
        Some(Action::VerifyLog { .. }) => return verify_log(a),
        None => {
            let entries = store.audit_entries()?;
            if a.json {
                print_json("audit", json!({ "entries": entries }));
            } else {
                for e in &entries {
                    println!("{:>5} {} {:<22} {:<4} {}", e.seq, e.time, e.event, e.outcome, e.detail);
                }
            }
        }
    }
    Ok(())
}
