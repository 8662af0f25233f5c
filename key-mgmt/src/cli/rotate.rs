//! `keymgmt rotate`.

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::store::KeyStore;

/// Arguments of `rotate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key name.
    #[arg(long)]
    name: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let r = store.rotate(&a.name)?;
    if a.json {
        print_json("rotate", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
        println!("older versions stay active until `keymgmt retire`");
    }
    Ok(())
}
