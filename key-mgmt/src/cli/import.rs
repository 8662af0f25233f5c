//! `keymgmt import`: a key from XOR components.

use std::path::PathBuf;

use serde_json::json;

use super::{print_json, prompt_components, read_component_files, record_line, KeyRef};
use crate::error::Result;
use crate::inventory::parse_algorithm;
use crate::store::KeyStore;

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
    /// Algorithm: 3des, sm4 or aes.
    #[arg(long)]
    alg: String,
    /// A component file (32 hex digits), one per custodian (2 or 3); without them the
    /// components are typed at the terminal without echo.
    #[arg(long = "component-file", value_name = "FILE")]
    component_files: Vec<PathBuf>,
    /// Activate at once (otherwise the key is pre-active).
    #[arg(long)]
    activate: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let alg = parse_algorithm(&a.alg)?;
    let comps = if a.component_files.is_empty() {
        prompt_components(&a.key.name, 16)?
    } else {
        read_component_files(&a.component_files, 16)?
    };
    let c = store.import_components(&a.key.name, a.key.version, alg, &comps, a.activate)?;
    if a.json {
        print_json("import", json!({ "key": c.record, "component_kcvs": c.component_kcvs }));
    } else {
        for (i, k) in c.component_kcvs.iter().enumerate() {
            println!("component {} KCV {k} ({})", i + 1, c.record.kcv_method);
        }
        println!("{}", record_line(&c.record));
    }
    Ok(())
}
