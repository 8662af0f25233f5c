//! `issuance unblock-pin` and `reload-pin`: PIN services for a holder at the desk. The new PIN is read
//! from a file (first line), never from the command line; the PUK (unblock) or RLK (reload) cryptograms come
//! from the key store's region keys for the card's algorithm.

use std::path::PathBuf;

use card_core::card::SocialSecurityCard;
use serde_json::json;

use super::{connect, print_json, usage, Failure, Global, JSON_FORMAT};
use crate::pin::Pin;
use crate::Error;

/// Arguments of `unblock-pin` and `reload-pin`.
#[derive(clap::Args)]
pub struct Args {
    /// The reader holding the holder's card (name, unique part of a name, or index).
    #[arg(long)]
    reader: String,
    /// The holder's card number (9 characters, as printed on the card): the card in the reader must be this one
    /// before anything is sent that changes it.
    #[arg(long)]
    card_number: String,
    /// File whose first line is the new PIN (digits).
    #[arg(long, value_name = "FILE")]
    new_pin_file: PathBuf,
    /// The region of the card's keys (6 digits).
    #[arg(long, default_value = "371700")]
    region: String,
}

/// Which PIN service.
#[derive(Clone, Copy)]
pub enum Service {
    /// PIN UNBLOCK (`84 24`, PUK): a blocked PIN gets a new value and its tries back.
    Unblock,
    /// RELOAD PIN (`80 5E 00 00`, RLK): the PIN is set to a new value.
    Reload,
}

pub fn run(g: &Global, a: Args, service: Service) -> Result<(), Failure> {
    let text = crate::files::read_secret_text(&a.new_pin_file).map_err(|e| usage(format!("--new-pin-file {e}")))?;
    let pin_text = text.lines().next().unwrap_or_default().trim();
    let pin = Pin::parse(pin_text, 4..=12).map_err(|_| usage("the new PIN must be 4 to 12 digits"))?;
    let keys = g.keys()?;
    let mut card = SocialSecurityCard::new(connect(&a.reader)?);
    let info = card.detect().map_err(Error::from)?;
    // the holder's card, not another one: its card number (EF05, free to read) before any PUK or RLK command
    let address: card_core::card::Address = "SSSEEF05|07|$".parse().map_err(Error::from)?;
    let found = match card.read_items(&card_core::security::NoKeys, &address, None) {
        Ok(values) => values.to_national().split('|').nth(1).unwrap_or_default().to_owned(),
        Err(card_core::Error::Transport(e)) => return Err(Error::from(card_core::Error::Transport(e)).into()),
        Err(e) => format!("unreadable ({e})"),
    };
    if !found.eq_ignore_ascii_case(&a.card_number) {
        return Err(Error::from(crate::InputError::OtherCard { found, expected: a.card_number }).into());
    }
    let module = keys.region_module(&a.region, info.algorithm)?;
    let what = match service {
        Service::Unblock => {
            card.unblock_pin(&module, pin.as_secret()).map_err(Error::from)?;
            "PIN unblocked"
        }
        Service::Reload => {
            card.reload_pin(&module, pin.as_secret()).map_err(Error::from)?;
            "PIN reloaded"
        }
    };
    if g.json {
        return print_json(&json!({ "format": JSON_FORMAT, "result": what, "reader": a.reader }));
    }
    println!("{what}");
    Ok(())
}
