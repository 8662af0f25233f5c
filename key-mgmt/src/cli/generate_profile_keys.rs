//! `keymgmt generate-profile-keys`: every issuer key of the profile not yet held in the algorithm asked for.

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::inventory::parse_algorithm;
use crate::store::KeyStore;

/// Arguments of `generate-profile-keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Algorithm: 3des (generation 1–2 cards), sm4 (generation 3) or aes.
    #[arg(long)]
    alg: String,
    /// Version of the new keys (1–255).
    #[arg(long = "version")]
    key_version: u8,
    /// Activate them at once (otherwise they are pre-active).
    #[arg(long)]
    activate: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let done = store.generate_profile_keys_explained(parse_algorithm(&a.alg)?, a.key_version, a.activate)?;
    if a.json {
        print_json("generate-profile-keys", json!({ "generated": done.generated, "skipped": done.skipped }));
    } else {
        for r in &done.generated {
            println!("{}", record_line(r));
        }
        for s in &done.skipped {
            let held: Vec<String> =
                s.held.iter().map(|r| format!("{} v{} ({})", r.algorithm, r.version, r.state)).collect();
            println!("{:<10} not generated: {} [holds {}]", s.name, s.reason, held.join(", "));
        }
        println!("{} key(s) generated", done.generated.len());
    }
    Ok(())
}
