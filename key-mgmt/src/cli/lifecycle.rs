//! `keymgmt activate`, `retire`, `destroy`: lifecycle transitions.

use serde_json::json;

use super::{print_json, record_line, KeyRef};
use crate::error::Result;
use crate::inventory::KeyState;
use crate::store::KeyStore;

/// Arguments of `activate`, `retire` and `destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
    /// Region code for a region-level key (default: the issuer key).
    #[arg(long, default_value = "")]
    region: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args, to: KeyState) -> Result<()> {
    let r = store.set_state(&a.key.name, a.key.version, &a.region, to)?;
    if a.json {
        print_json("state", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
    }
    Ok(())
}
