//! `keymgmt derive-kcv`: the KCV of a card key, never the key.

use serde_json::json;

use super::{method, print_json};
use crate::error::{Error, Result};
use crate::store::KeyStore;

/// Arguments of `derive-kcv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key name.
    #[arg(long)]
    name: String,
    /// Key version.
    #[arg(long = "version")]
    key_version: u8,
    /// Region code, 6 digits.
    #[arg(long)]
    region: String,
    /// Card factor in hex: 8 bytes, or the ATR historical bytes (the last 8 are used).
    #[arg(long)]
    card_factor: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let f = hex::decode(a.card_factor.trim()).map_err(|_| Error::InvalidInput("--card-factor is not hex".into()))?;
    let kcv = store.derive_kcv(&a.name, a.key_version, &a.region, &f)?;
    if a.json {
        print_json(
            "derive-kcv",
            json!({ "name": a.name, "version": a.key_version, "region": a.region, "kcv": kcv.to_string(), "kcv_method": method(kcv.method) }),
        );
    } else {
        println!("{} v{} region {}: card key KCV {} ({})", a.name, a.key_version, a.region, kcv, method(kcv.method));
    }
    Ok(())
}
