//! `keymgmt list`.

use card_core::profile::Profile;
use serde_json::json;

use super::{print_json, record_line};
use crate::error::Result;
use crate::inventory::key_defs;
use crate::store::KeyStore;

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the key names the profile defines instead of the stored keys.
    #[arg(long)]
    names: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl Args {
    /// Whether only the profile's key names are asked for: no store is opened for them.
    pub(super) fn names_only(&self) -> bool {
        self.names
    }
}

/// `list --names`: the key names of the card profile; they need no store and no passphrase.
pub(super) fn names(a: &Args) {
    let names: Vec<String> = key_defs(Profile::builtin()).into_iter().map(|d| d.name).collect();
    if a.json {
        print_json("names", json!({ "names": names }));
    } else {
        println!("{}", names.join(" "));
    }
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    if a.names {
        names(&a);
        return Ok(());
    }
    let recs = store.list()?;
    if a.json {
        print_json("list", json!({ "keys": recs }));
    } else {
        for r in &recs {
            println!("{}", record_line(r));
        }
    }
    Ok(())
}
