//! `keymgmt import-block`: a TR-31 key block under a transport KEK.

use std::path::PathBuf;

use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::store::KeyStore;

/// Arguments of `import-block`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name to store the key under (the block's usage must fit it).
    #[arg(long)]
    name: String,
    /// File holding the key block (ASCII).
    #[arg(long, value_name = "FILE")]
    block_file: PathBuf,
    /// The KEK's name (`KEK`).
    #[arg(long)]
    kek: String,
    /// The KEK's version (default: its highest active one).
    #[arg(long)]
    kek_version: Option<u8>,
    /// Activate at once (otherwise the key is pre-active).
    #[arg(long)]
    activate: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let text = super::read_input_file(&a.block_file, super::MAX_KEY_BLOCK_FILE)?;
    let r = store.import_block(&a.name, text.trim(), &a.kek, a.kek_version, a.activate)?;
    if a.json {
        print_json("import-block", json!({ "key": r }));
    } else {
        println!("{}", record_line(&r));
    }
    Ok(())
}
