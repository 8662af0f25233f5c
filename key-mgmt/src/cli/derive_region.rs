//! `keymgmt derive-region`.

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::store::KeyStore;

/// Arguments of `derive-region`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Issuer key name.
    #[arg(long)]
    name: String,
    /// Issuer key version.
    #[arg(long = "version")]
    key_version: u8,
    /// Region code, 6 digits (`PP0000` = a province).
    #[arg(long)]
    region: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let r = store.derive_region(&a.name, a.key_version, &a.region)?;
    if a.json {
        print_json("derive-region", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
    }
    Ok(())
}
