//! `issuance verify --reader R`: verify the card in the reader again against the journal — every
//! record read back, every key's version, external authentication with each MK and authentication
//! key, internal authentication with IRK. The initial PIN is not tried (the holder may have changed it).

use serde_json::json;

use super::{card_issuer, connect, print_json, Failure, Global, JSON_FORMAT};

/// Arguments of `verify`.
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
    let (row, costs) = issuer.verify_card(&mut t)?;
    if g.json {
        print_json(&json!({"format": JSON_FORMAT, "verified": true, "card": row.id, "card_id": row.card_id,
                           "card_number": row.card_number, "ssn": row.ssn, "state": row.state, "apdus": costs.apdus}))
    } else {
        println!(
            "card #{} number {} id {} of {}: verified ({} APDUs); journal state {}",
            row.id, row.card_number, row.card_id, row.ssn, costs.apdus, row.state
        );
        Ok(())
    }
}
