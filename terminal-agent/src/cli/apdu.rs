//! `terminal-agent apdu [--reader R] HEX…`: raw APDUs through the APDU engine, in one transaction.

use card_core::apdu::Command;
use card_core::transport::{CardTransactionExt, RecordingTransport, Transport};
use serde_json::json;

use super::{open_reader, print_json, Failure, JSON_FORMAT};

/// Arguments of `apdu`.
#[derive(clap::Args)]
pub struct Args {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Command APDUs in hex (spaces and colons allowed inside quotes), sent in order.
    #[arg(required = true, value_name = "HEX")]
    apdus: Vec<String>,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let commands = a
        .apdus
        .iter()
        .map(|h| {
            let clean: String = h.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
            let bytes = hex::decode(&clean).map_err(|e| Failure::Usage(format!("{h}: not hex ({e})")))?;
            Command::parse(&bytes).map_err(|e| Failure::Usage(format!("{h}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut card = RecordingTransport::new(open_reader(&a.reader)?);
    let mut answers = Vec::new();
    {
        let mut tx = card.transaction()?;
        for cmd in &commands {
            // the engine resolves 61xx/6Cxx; the status word is shown, not judged
            let r = tx.exchange(cmd)?;
            answers.push((cmd.to_bytes(), r));
        }
    }
    if a.json {
        let list: Vec<_> = answers
            .iter()
            .map(|(c, r)| {
                json!({
                    "command": hex::encode_upper(c),
                    "data": hex::encode_upper(r.data()),
                    "sw": format!("{:04X}", r.sw().0),
                    "meaning": r.sw().meaning(),
                })
            })
            .collect();
        let wire: Vec<String> = card.exchanges().iter().map(|e| e.to_lines()).collect();
        return print_json(&json!({
            "format": JSON_FORMAT,
            "reader": card.name(),
            "atr": hex::encode_upper(card.atr()),
            "responses": list,
            "wire": wire.concat(),
            "apdus": card.counters().apdus,
        }));
    }
    for (c, r) in &answers {
        println!("> {}", hex::encode_upper(c));
        if !r.data().is_empty() {
            println!("< {}", hex::encode_upper(r.data()));
        }
        println!("  {}", r.sw());
    }
    Ok(())
}
