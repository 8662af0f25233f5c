//! `terminal-agent read ADDRESS` and `write ADDRESS VALUES`: items by the national address syntax.

use card_core::card::{Address, SocialSecurityCard};
use card_core::transport::RecordingTransport;
use serde_json::json;

use super::keys::KeyArgs;
use super::pin::PinSource;
use super::{open_reader, print_json, Failure, JSON_FORMAT};

/// Arguments of `read`.
#[derive(clap::Args)]
pub struct ReadArgs {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    #[command(flatten)]
    keys: KeyArgs,
    /// Files protected by `pin|key` are read after PIN verification when no key is held: ask for the PIN.
    #[arg(long)]
    with_pin: bool,
    #[command(flatten)]
    pin: PinSource,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// National file address, e.g. 'SSSEEF05|05|06|07|$SSSEEF06|08|09|$DF01EF06|23|28|$'.
    address: String,
}

/// Arguments of `write`.
#[derive(clap::Args)]
pub struct WriteArgs {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    #[command(flatten)]
    keys: KeyArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// National file address, e.g. 'DF01EF06|23|$'.
    address: String,
    /// Values mirroring the address, e.g. 'DF01EF06|济南市|$'.
    values: String,
}

fn parse_address(text: &str) -> Result<Address, Failure> {
    text.parse().map_err(|e: card_core::Error| Failure::Usage(format!("address: {e}")))
}

pub fn read(a: ReadArgs) -> Result<(), Failure> {
    let address = parse_address(&a.address)?;
    let sm = a.keys.module()?;
    let pin = if a.with_pin { Some(a.pin.read("PIN")?) } else { None };
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(open_reader(&a.reader)?));
    let values = card.read_items(sm.as_ref(), &address, pin.as_ref())?;
    let out = values.to_national();
    if a.json {
        return print_json(&json!({
            "format": JSON_FORMAT, "address": a.address, "values": out, "apdus": card.transport().counters().apdus,
        }));
    }
    println!("{out}");
    Ok(())
}

pub fn write(a: WriteArgs) -> Result<(), Failure> {
    let address = parse_address(&a.address)?;
    let sm = a.keys.module()?;
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(open_reader(&a.reader)?));
    card.write_items(sm.as_ref(), &address, &a.values)?;
    let apdus = card.transport().counters().apdus;
    if a.json {
        return print_json(&json!({ "format": JSON_FORMAT, "address": a.address, "written": true, "apdus": apdus }));
    }
    println!("written ({apdus} APDUs)");
    Ok(())
}
