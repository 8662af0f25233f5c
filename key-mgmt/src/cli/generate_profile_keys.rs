//! `keymgmt generate-profile-keys`: every issuer key of the profile not yet held.

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::inventory::parse_algorithm;
use crate::store::KeyStore;

/// Arguments of `generate-profile-keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Algorithm: 3des, sm4 or aes.
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
    let recs = store.generate_profile_keys(parse_algorithm(&a.alg)?, a.key_version, a.activate)?;
    if a.json {
        print_json("generate-profile-keys", json!({ "generated": recs }));
    } else {
        for r in &recs {
            println!("{}", record_line(r));
        }
        println!("{} key(s) generated", recs.len());
    }
    Ok(())
}
