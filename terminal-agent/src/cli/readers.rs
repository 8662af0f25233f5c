//! `terminal-agent readers [--json]`.

use card_core::transport::reader_states;
use serde_json::json;

use super::{print_json, Failure, JSON_FORMAT};

/// Arguments of `readers`.
#[derive(clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let readers = reader_states()?;
    if a.json {
        let list: Vec<_> = readers
            .iter()
            .map(|r| {
                json!({
                    "index": r.index,
                    "name": r.name,
                    "card": r.card_present,
                    "exclusive": r.exclusive,
                    "atr": if r.card_present { Some(hex::encode_upper(&r.atr)) } else { None },
                })
            })
            .collect();
        return print_json(&json!({ "format": JSON_FORMAT, "readers": list }));
    }
    if readers.is_empty() {
        println!("No smart card readers found.");
    }
    println!("#  Card  Name");
    for r in &readers {
        let card = if r.card_present { "yes" } else { "no" };
        println!("{:<2} {:<5} {}", r.index, card, r.name);
        if r.card_present {
            println!("         ATR {}", hex::encode_upper(&r.atr));
        }
    }
    Ok(())
}
