//! `issuance cancel`: a card is withdrawn (lost, reported, refused by the holder). The journal marks it
//! `cancelled` with the reason; its card id and number stay used, and the holder may be issued a new card.

use serde_json::json;

use super::{print_json, usage, CardRef, Failure, Global, JSON_FORMAT};
use crate::journal::state;

/// Arguments of `cancel`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    card: CardRef,
    /// Why (kept in the journal).
    #[arg(long, default_value = "cancelled at the desk")]
    reason: String,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let j = g.journal()?;
    let card = a.card.find(&j)?;
    if matches!(card.state.as_str(), state::REJECTED | state::REPLACED | state::CANCELLED) {
        return Err(usage(format!("card {} is already {}", card.card_number, card.state)));
    }
    j.set_state(card.id, state::CANCELLED, Some(&a.reason))?;
    if g.json {
        return print_json(&json!({
            "format": JSON_FORMAT, "card_id": card.card_id, "card_number": card.card_number,
            "previous_state": card.state, "state": state::CANCELLED,
        }));
    }
    println!("card {} ({}) cancelled; it was {}", card.card_number, card.card_id, card.state);
    Ok(())
}
