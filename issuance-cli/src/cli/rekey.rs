//! `issuance rekey --reader R`: update the keys of the issued card in the reader to the key store's active
//! versions (secure WRITE KEY under each DF's current MK), check the key info, journal the new versions.

use serde_json::json;

use super::{card_issuer, connect, print_json, Failure, Global, JSON_FORMAT};

/// Arguments of `rekey`.
#[derive(clap::Args)]
pub struct Args {
    /// Reader name (or a unique part of it) or index.
    #[arg(long)]
    reader: String,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let journal = g.journal()?;
    let keys = g.keys()?;
    let mut t = connect(&a.reader)?;
    let issuer = card_issuer(&journal, &keys);
    let (row, done) = issuer.rekey_card(&mut t)?;
    if g.json {
        return print_json(&json!({"format": JSON_FORMAT, "card": row.id, "card_number": row.card_number,
                                  "rekeyed": done, "key_versions": row.key_versions}));
    }
    if done.is_empty() {
        println!("card #{} number {}: keys already at the active versions", row.id, row.card_number);
    }
    for r in &done {
        println!("card #{} {} {}: version {} → {}", row.id, r.df, r.name, r.from, r.to);
    }
    Ok(())
}
