//! `keymgmt derive-region`.

use serde_json::json;

use super::{print_json, record_line, KeyRef};
use crate::error::Result;
use crate::store::KeyStore;

/// Arguments of `derive-region`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
    /// Region code, 6 digits (`PP0000` = a province).
    #[arg(long)]
    region: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let r = store.derive_region(&a.key.name, a.key.version, &a.region)?;
    if a.json {
        print_json("derive-region", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
    }
    Ok(())
}
