//! `keymgmt show NAME`.

use serde_json::json;

use super::print_json;
use crate::error::{Error, Result};
use crate::store::KeyStore;

/// Arguments of `show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key name.
    name: String,
    /// Only this version.
    #[arg(long = "version")]
    key_version: Option<u8>,
    /// Region code for a region-level key (default: the issuer key).
    #[arg(long, default_value = "")]
    region: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let recs = match a.key_version {
        Some(v) => vec![store.record(&a.name, v, &a.region)?],
        None => store.versions(&a.name, &a.region)?,
    };
    if recs.is_empty() {
        return Err(Error::KeyNotFound { name: a.name, version: 0, region: a.region });
    }
    if a.json {
        print_json("show", json!({ "keys": recs }));
        return Ok(());
    }
    for r in &recs {
        println!("{} version {}", r.name, r.version);
        println!(
            "  level      {}{}",
            r.level.as_str(),
            if r.region.is_empty() { String::new() } else { format!(" {}", r.region) }
        );
        println!("  algorithm  {}", r.algorithm);
        println!("  state      {}", r.state);
        println!("  KCV        {} ({})", r.kcv, r.kcv_method);
        println!("  created    {}", r.created);
        println!("  updated    {}", r.updated);
        println!("  parent     {}", r.parent.as_deref().unwrap_or("-"));
        println!("  ceremony   {}", r.ceremony.as_deref().unwrap_or("-"));
    }
    Ok(())
}
