//! `keymgmt derive-kcv`: the KCV of a card key, never the key.

use serde_json::json;

use super::{method, print_json, KeyRef};
use crate::error::{Error, Result};
use crate::store::KeyStore;

/// Arguments of `derive-kcv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
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
    let kcv = store.derive_kcv(&a.key.name, a.key.version, &a.region, &f)?;
    if a.json {
        print_json(
            "derive-kcv",
            json!({ "name": a.key.name, "version": a.key.version, "region": a.region, "kcv": kcv.to_string(), "kcv_method": method(kcv.method) }),
        );
    } else {
        println!(
            "{} v{} region {}: card key KCV {} ({})",
            a.key.name,
            a.key.version,
            a.region,
            kcv,
            method(kcv.method)
        );
    }
    Ok(())
}
