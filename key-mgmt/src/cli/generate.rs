//! `keymgmt generate`: a random key, optionally as components for custodians.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{print_json, record_line, KeyRef};
use crate::components::Secret;
use crate::error::{Error, Result};
use crate::inventory::parse_algorithm;
use crate::store::KeyStore;

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: KeyRef,
    /// Algorithm: 3des, sm4 or aes.
    #[arg(long)]
    alg: String,
    /// Also split the key into 2 or 3 components for custodians.
    #[arg(long)]
    components: Option<usize>,
    /// Write the components to files in this directory (one per custodian, mode 0600) instead
    /// of showing them one at a time at the terminal.
    #[arg(long, value_name = "DIR", requires = "components")]
    component_out: Option<PathBuf>,
    /// Activate at once (otherwise the key is pre-active).
    #[arg(long)]
    activate: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(store: &mut KeyStore, a: Args) -> Result<()> {
    let alg = parse_algorithm(&a.alg)?;
    if a.components.is_some() && a.component_out.is_none() && !std::io::stdout().is_terminal() {
        return Err(Error::InvalidInput("components are shown only at a terminal: give --component-out DIR".into()));
    }
    if let Some(dir) = &a.component_out {
        if !dir.is_dir() {
            return Err(Error::InvalidInput(format!("{}: not a directory", dir.display())));
        }
    }
    let c = store.generate(&a.key.name, a.key.version, alg, a.components, a.activate)?;
    let mut files = Vec::new();
    if !c.components.is_empty() {
        match &a.component_out {
            Some(dir) => files = write_components(dir, &a.key.name, a.key.version, &c.components)?,
            None => show_components(&c.components, &c.component_kcvs)?,
        }
    }
    if a.json {
        print_json(
            "generate",
            json!({ "key": c.record, "component_kcvs": c.component_kcvs, "component_files": files }),
        );
    } else {
        for (i, k) in c.component_kcvs.iter().enumerate() {
            println!(
                "component {} KCV {k} ({}){}",
                i + 1,
                c.record.kcv_method,
                files.get(i).map(|f| format!(" → {f}")).unwrap_or_default()
            );
        }
        println!("{}", record_line(&c.record));
    }
    Ok(())
}

fn write_components(dir: &Path, name: &str, version: u8, comps: &[Secret]) -> Result<Vec<String>> {
    let n = comps.len();
    let mut out = Vec::with_capacity(n);
    for (i, c) in comps.iter().enumerate() {
        let path = dir.join(format!("{name}-v{version}-component-{}-of-{n}.hex", i + 1));
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(io)?;
        let text = zeroize::Zeroizing::new(hex::encode_upper(&c[..]));
        writeln!(f, "{}", text.as_str()).map_err(io)?;
        out.push(path.display().to_string());
    }
    Ok(out)
}

/// Shows each component alone on the terminal, clearing the screen between custodians.
fn show_components(comps: &[Secret], kcvs: &[String]) -> Result<()> {
    let io = |source| Error::Io { path: "terminal".into(), source };
    let n = comps.len();
    for (i, c) in comps.iter().enumerate() {
        eprint!("Custodian {} of {n}: press Enter when alone at the screen.", i + 1);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(io)?;
        let text = zeroize::Zeroizing::new(hex::encode_upper(&c[..]));
        print!(
            "component {} of {n}: {}  KCV {}\npress Enter when written down.",
            i + 1,
            text.as_str(),
            kcvs.get(i).map(String::as_str).unwrap_or("")
        );
        std::io::stdout().flush().map_err(io)?;
        std::io::stdin().lock().read_line(&mut line).map_err(io)?;
        print!("\x1b[2J\x1b[3J\x1b[H");
        std::io::stdout().flush().map_err(io)?;
    }
    Ok(())
}
