//! `keymgmt init`: the KBPK ceremony.

use std::io::IsTerminal;
use std::path::PathBuf;

use serde_json::json;

use super::{print_json, prompt_components, read_component_files, read_passphrase, Global};
use crate::error::{Error, Result};
use crate::secrets::KBPK_LEN;
use crate::store::KeyStore;

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A KBPK component file (64 hex digits = 32 bytes), one per custodian (2 or 3); without
    /// them the components are typed at the terminal without echo.
    #[arg(long = "component-file", value_name = "FILE")]
    component_files: Vec<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(g: &Global, a: Args) -> Result<()> {
    let path = g.store_path()?;
    let comps = if !a.component_files.is_empty() {
        read_component_files(&a.component_files, KBPK_LEN)?
    } else if std::io::stdin().is_terminal() {
        prompt_components("KBPK", KBPK_LEN)?
    } else {
        return Err(Error::InvalidInput("give --component-file for each custodian, or run at a terminal".into()));
    };
    let pass = g.passphrase_file.as_deref().map(read_passphrase).transpose()?;
    let (_store, report) = KeyStore::init_with(path, &comps, pass.as_ref().map(|p| p.as_bytes()), g.outside()?)?;
    if a.json {
        print_json("init", json!({ "store": path.display().to_string(), "report": report }));
    } else {
        for (i, k) in report.component_kcvs.iter().enumerate() {
            println!("component {} KCV {k} (AES-CMAC)", i + 1);
        }
        println!(
            "KBPK KCV {} (AES-CMAC); passphrase wrap: {}",
            report.kbpk_kcv,
            if report.passphrase { "yes" } else { "no" }
        );
        println!("store initialised: {}", path.display());
    }
    Ok(())
}
