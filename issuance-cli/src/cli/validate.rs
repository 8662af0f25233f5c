//! `issuance validate --holders F`: every refusal with its line and field, nothing touched.

use std::path::PathBuf;

use serde_json::json;

use super::{print_json, read_holders, usage, BatchArgs, Failure, Global, JSON_FORMAT};
use crate::holders;

/// Arguments of `validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Holders file: CSV (header `ssn,name,name_ext,…`) or JSON lines.
    #[arg(long)]
    holders: PathBuf,
    /// Write the rejected rows (with the reasons) to this CSV file instead of refusing the batch.
    #[arg(long, value_name = "FILE")]
    skip_invalid: Option<PathBuf>,
    #[command(flatten)]
    batch: BatchArgs,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let s = a.batch.settings()?;
    let journal = if g.journal.exists() { Some(g.journal()?) } else { None };
    let parsed = read_holders(g, &a.holders, s.generation, journal.as_ref())?;
    check(g, &parsed, a.skip_invalid.as_deref())?;
    if g.json {
        print_json(&json!({"format": JSON_FORMAT, "valid": parsed.valid.len(), "rejected": parsed.rejected.len()}))?;
    } else {
        println!("{} holders valid, {} rejected", parsed.valid.len(), parsed.rejected.len());
    }
    Ok(())
}

/// Prints the refusals; refuses the batch unless `skip_invalid` is given (the rows are written there).
pub(super) fn check(
    g: &Global,
    parsed: &holders::Parsed,
    skip_invalid: Option<&std::path::Path>,
) -> Result<(), Failure> {
    if parsed.rejected.is_empty() {
        return Ok(());
    }
    let errors: Vec<&holders::HolderError> = parsed.rejected.iter().flat_map(|r| &r.errors).collect();
    if g.json && skip_invalid.is_none() {
        print_json(&json!({"format": JSON_FORMAT, "refused": true, "errors": errors}))?;
    } else {
        for e in &errors {
            eprintln!("{e}");
        }
    }
    match skip_invalid {
        Some(path) => {
            holders::write_rejected(path, &parsed.rejected)?;
            eprintln!("{} rows rejected, written to {}", parsed.rejected.len(), path.display());
            Ok(())
        }
        None => Err(usage(format!(
            "the holders file is refused: {} invalid rows (give --skip-invalid FILE to issue the others)",
            parsed.rejected.len()
        ))),
    }
}
