//! `keymgmt export`: a TR-31 key block under a transport KEK.

use std::path::PathBuf;

use serde_json::json;

use super::print_json;
use super::KeyRef;
use crate::error::{Error, Result};
use crate::store::KeyStore;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
    /// Region code for a region-level key (default: the issuer key).
    #[arg(long, default_value = "")]
    region: String,
    /// The KEK's name (an AES key; `KEK`).
    #[arg(long)]
    kek: String,
    /// The KEK's version (default: its highest active one).
    #[arg(long)]
    kek_version: Option<u8>,
    /// Write the block to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let block = store.export(&a.key.name, a.key.version, &a.region, &a.kek, a.kek_version)?;
    if let Some(p) = &a.out {
        std::fs::write(p, format!("{block}\n"))
            .map_err(|source| Error::Io { path: p.display().to_string(), source })?;
    }
    if a.json {
        print_json("export", json!({ "name": a.key.name, "version": a.key.version, "kek": a.kek, "block": block }));
    } else if a.out.is_none() {
        println!("{block}");
    }
    Ok(())
}
