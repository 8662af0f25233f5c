//! `keymgmt rotate`.

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::inventory::parse_algorithm;
use crate::store::KeyStore;

/// Arguments of `rotate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key name.
    #[arg(long)]
    name: String,
    /// Algorithm of the versions to rotate (3des, sm4, aes), for a name that holds several (default: the
    /// algorithm of its highest version).
    #[arg(long)]
    alg: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let alg = a.alg.as_deref().map(parse_algorithm).transpose()?;
    let r = store.rotate_alg(&a.name, alg)?;
    if a.json {
        print_json("rotate", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
        println!("older versions stay active until `keymgmt retire`");
    }
    Ok(())
}
