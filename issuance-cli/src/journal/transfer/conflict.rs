//! What an import checks: each card of a dump against the journal imported into and the dump's earlier cards.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::CardRecord;
use crate::journal::state;

/// What identifies a card: the columns an import checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardKey {
    /// Row id (in the journal it is in).
    pub id: i64,
    /// Card identifier.
    pub card_id: String,
    /// Card number.
    pub card_number: String,
    /// Region.
    pub region: String,
    /// Sequence number in the region.
    pub seq: i64,
    /// SSN.
    pub ssn: String,
    /// Chip serial.
    pub chip: String,
    /// State.
    pub state: String,
}

impl CardKey {
    /// In circulation or under way: the SSN has no other such card.
    fn live(&self) -> bool {
        !matches!(self.state.as_str(), state::REJECTED | state::REPLACED | state::CANCELLED)
    }

    /// Not finished: the chip has no other such card.
    fn open(&self) -> bool {
        matches!(
            self.state.as_str(),
            state::PENDING | state::PERSONALIZING | state::WRITTEN | state::VERIFIED | state::FAILED
        )
    }
}

impl fmt::Display for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "card {} (id {}, number {} of region {}, seq {}, SSN {}, chip {}, {})",
            self.id, self.card_id, self.card_number, self.region, self.seq, self.ssn, self.chip, self.state
        )
    }
}

/// What a card of the dump collides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clash {
    /// Its card identifier is used.
    CardId,
    /// Its card number is used in its region.
    CardNumber,
    /// Its sequence number is used in its region.
    Seq,
    /// Its SSN has a live card (in circulation or under way).
    LiveSsn,
    /// Its chip has an unfinished card.
    OpenChip,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clash::CardId => "card id already used",
            Clash::CardNumber => "card number already used in the region",
            Clash::Seq => "sequence number already used in the region",
            Clash::LiveSsn => "the SSN already has a live card",
            Clash::OpenChip => "the chip already has an unfinished card",
        })
    }
}

/// Where the row a card collides with is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// In the journal imported into.
    Central,
    /// Earlier in the dump itself.
    Dump,
}

/// A card of the dump that cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The card of the dump (its source row id).
    pub card: CardKey,
    /// What collides.
    pub clash: Clash,
    /// Where the other card is.
    pub side: Side,
    /// The other card (its row id where it is).
    pub other: CardKey,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Central => "in this journal",
            Side::Dump => "in the dump",
        };
        write!(f, "source {}: {} {side}, by {}", self.card, self.clash, self.other)
    }
}

/// What an import did, or — when [`ImportReport::conflicts`] is not empty — why it did nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[must_use = "an import with conflicts imported nothing"]
pub struct ImportReport {
    /// Where the rows came from (as the caller named it).
    pub source: String,
    /// Batches imported.
    pub batches: u64,
    /// Holders imported.
    pub holders: u64,
    /// Cards imported.
    pub cards: u64,
    /// Steps imported.
    pub steps: u64,
    /// Replacements imported.
    pub replacements: u64,
    /// The dump's cards that collide, each with what it collides with: if any, nothing was imported.
    pub conflicts: Vec<Conflict>,
}

impl ImportReport {
    /// Whether the rows were imported (no conflict).
    pub fn imported(&self) -> bool {
        self.conflicts.is_empty()
    }
}

impl CardRecord {
    /// Its identifying columns.
    pub fn key(&self) -> CardKey {
        CardKey {
            id: self.id,
            card_id: self.card_id.clone(),
            card_number: self.card_number.clone(),
            region: self.region.clone(),
            seq: self.seq,
            ssn: self.ssn.clone(),
            chip: self.chip.clone(),
            state: self.state.clone(),
        }
    }
}

/// The collisions of `cards` with `central` and with each other, in `cards`' order ([`super::Dump::conflicts`]).
pub(super) fn find(cards: &[CardRecord], central: &[CardKey]) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut index = [Keys::default(), Keys::default()];
    for c in central {
        index[0].add(c);
    }
    for c in cards {
        let card = c.key();
        for (keys, side) in index.iter().zip([Side::Central, Side::Dump]) {
            for (clash, other) in keys.clashes(&card) {
                out.push(Conflict { card: card.clone(), clash, side, other: other.clone() });
            }
        }
        index[1].add(&card);
    }
    out
}

/// Cards by each column an import checks.
#[derive(Default)]
struct Keys {
    card_id: HashMap<String, CardKey>,
    number: HashMap<(String, String), CardKey>,
    seq: HashMap<(String, i64), CardKey>,
    live_ssn: HashMap<String, CardKey>,
    open_chip: HashMap<String, CardKey>,
}

impl Keys {
    fn add(&mut self, c: &CardKey) {
        self.card_id.entry(c.card_id.clone()).or_insert_with(|| c.clone());
        self.number.entry((c.region.clone(), c.card_number.clone())).or_insert_with(|| c.clone());
        self.seq.entry((c.region.clone(), c.seq)).or_insert_with(|| c.clone());
        if c.live() {
            self.live_ssn.entry(c.ssn.clone()).or_insert_with(|| c.clone());
        }
        if c.open() {
            self.open_chip.entry(c.chip.clone()).or_insert_with(|| c.clone());
        }
    }

    fn clashes(&self, c: &CardKey) -> Vec<(Clash, &CardKey)> {
        let mut out = Vec::new();
        if let Some(o) = self.card_id.get(&c.card_id) {
            out.push((Clash::CardId, o));
        }
        if let Some(o) = self.number.get(&(c.region.clone(), c.card_number.clone())) {
            out.push((Clash::CardNumber, o));
        }
        if let Some(o) = self.seq.get(&(c.region.clone(), c.seq)) {
            out.push((Clash::Seq, o));
        }
        if let Some(o) = self.live_ssn.get(&c.ssn).filter(|_| c.live()) {
            out.push((Clash::LiveSsn, o));
        }
        if let Some(o) = self.open_chip.get(&c.chip).filter(|_| c.open()) {
            out.push((Clash::OpenChip, o));
        }
        out
    }
}
