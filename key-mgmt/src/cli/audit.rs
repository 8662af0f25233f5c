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
