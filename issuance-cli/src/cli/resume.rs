//! `issuance resume --reader R [--holders F]`: continue the unfinished card in the reader (found by its
//! chip serial in the journal) under the resume policy of [`crate::run`]. A holder with an own initial
//! PIN needs the holders file again (PINs are never journalled).

use std::path::PathBuf;

use card_core::profile::Generation;
use serde_json::json;

use crate::pin::Pin;

use super::{card_issuer, connect, print_json, read_holders, usage, Failure, Global, JSON_FORMAT};

/// Arguments of `resume`.
#[derive(clap::Args)]
pub struct Args {
    /// Reader name (or a unique part of it) or index.
    #[arg(long)]
    reader: String,
    /// The batch's holders file, for holders with an own initial PIN.
    #[arg(long)]
    holders: Option<PathBuf>,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let journal = g.journal()?;
    let keys = g.keys()?;
    let mut pins: Vec<(String, Pin)> = Vec::new();
    if let Some(path) = &a.holders {
        for gen in [Generation::THREE, Generation::TWO] {
            for h in read_holders(g, path, gen, None)?.valid {
                if let Some(p) = h.pin {
                    pins.push((h.ssn, p));
                }
            }
        }
    }
    let mut t = connect(&a.reader)?;
    let issuer = card_issuer(&journal, &keys);
    let pin_of = |ssn: &str| pins.iter().find(|(s, _)| s == ssn).map(|(_, p)| p);
    match issuer.resume(&mut t, &pin_of)? {
        None => Err(usage("the card in the reader is not an unfinished card of this journal")),
        Some((id, costs)) => {
            let row = journal.card(id)?;
            if g.json {
                print_json(&json!({"format": JSON_FORMAT, "card": id, "card_number": row.card_number,
                                   "state": row.state, "apdus": costs.apdus, "bytes": costs.bytes}))
            } else {
                println!("card #{id} number {} {} ({} APDUs)", row.card_number, row.state, costs.apdus);
                Ok(())
            }
        }
    }
}
