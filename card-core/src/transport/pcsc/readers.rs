//! Which reader: selection by index or name, the reader list, reader states, waiting for a card.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use pcsc::{Context, ReaderState, State};

use super::{cstring, establish, map_err, readers_of};
use crate::transport::TransportError;

/// Which reader to use: by position in the reader list or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReaderSelector {
    /// Position in [`list_readers`] (0-based), as `opensc-tool -r N`.
    Index(usize),
    /// Exact reader name, or a text that only one reader name contains.
    Name(String),
}

impl FromStr for ReaderSelector {
    type Err = std::convert::Infallible;
    /// Digits select by index; anything else by name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(i) => ReaderSelector::Index(i),
            Err(_) => ReaderSelector::Name(s.to_owned()),
        })
    }
}

impl fmt::Display for ReaderSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderSelector::Index(i) => write!(f, "#{i}"),
            ReaderSelector::Name(n) => write!(f, "{n}"),
        }
    }
}

/// The names of the readers pcscd knows, in its order.
pub fn list_readers() -> Result<Vec<String>, TransportError> {
    readers_of(&establish()?)
}

/// The full name of the reader `selector` designates now (an index, an exact name, or a part of one name only).
pub fn reader_name(selector: &ReaderSelector) -> Result<String, TransportError> {
    resolve(&establish()?, selector)
}

/// A reader and what is in it, as pcscd reports it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderStatus {
    /// Position in the reader list (`--reader N`).
    pub index: usize,
    /// Reader name.
    pub name: String,
    /// A card is present (and not mute).
    pub card_present: bool,
    /// Another application holds the card exclusively.
    pub exclusive: bool,
    /// The card's ATR, when present.
    pub atr: Vec<u8>,
}

/// Every reader with its card state, without connecting to any card.
pub fn reader_states() -> Result<Vec<ReaderStatus>, TransportError> {
    let ctx = establish()?;
    let names = readers_of(&ctx)?;
    let mut states = names
        .iter()
        .map(|n| Ok(ReaderState::new(cstring(n)?, State::UNAWARE)))
        .collect::<Result<Vec<_>, TransportError>>()?;
    if states.is_empty() {
        return Ok(Vec::new());
    }
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) | Err(pcsc::Error::Timeout) => {}
        Err(e) => return Err(map_err(e, "")),
    }
    Ok(names
        .into_iter()
        .zip(states.iter())
        .enumerate()
        .map(|(index, (name, s))| {
            let ev = s.event_state();
            let card_present = ev.contains(State::PRESENT) && !ev.contains(State::MUTE);
            ReaderStatus {
                index,
                name,
                card_present,
                exclusive: ev.contains(State::EXCLUSIVE),
                atr: if card_present { s.atr().to_vec() } else { Vec::new() },
            }
        })
        .collect())
}

pub(super) fn resolve(ctx: &Context, selector: &ReaderSelector) -> Result<String, TransportError> {
    selector.pick(&readers_of(ctx)?)
}

impl ReaderSelector {
    /// The full name, among `names` (pcscd's order), of the reader this designates: by index, by exact name, or by
    /// a part of exactly one name.
    pub fn pick(&self, names: &[String]) -> Result<String, TransportError> {
        if names.is_empty() {
            return Err(TransportError::NoReaders);
        }
        match self {
            ReaderSelector::Index(i) => names.get(*i).cloned().ok_or_else(|| TransportError::NoReader(format!("#{i}"))),
            ReaderSelector::Name(n) => {
                if let Some(exact) = names.iter().find(|r| *r == n) {
                    return Ok(exact.clone());
                }
                let mut hits = names.iter().filter(|r| r.contains(n.as_str()));
                match (hits.next(), hits.next()) {
                    (Some(one), None) => Ok(one.clone()),
                    _ => Err(TransportError::NoReader(n.clone())),
                }
            }
        }
    }
}

/// Waits until a card is present in the reader (PC/SC status change, no polling), at most `timeout`.
/// Returns the reader's name.
pub fn wait_for_card(selector: &ReaderSelector, timeout: Duration) -> Result<String, TransportError> {
    wait_for_state(selector, true, timeout)
}

/// Waits until the reader is empty (the card was removed), at most `timeout`.
pub fn wait_for_removal(selector: &ReaderSelector, timeout: Duration) -> Result<String, TransportError> {
    wait_for_state(selector, false, timeout)
}

fn wait_for_state(selector: &ReaderSelector, present: bool, timeout: Duration) -> Result<String, TransportError> {
    let ctx = establish()?;
    let name = resolve(&ctx, selector)?;
    let mut states = vec![ReaderState::new(cstring(&name)?, State::UNAWARE)];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Err(TransportError::Timeout),
            Err(e) => return Err(map_err(e, &name)),
        }
        let s = &mut states[0];
        let ev = s.event_state();
        if ev.intersects(State::UNKNOWN | State::IGNORE) {
            return Err(TransportError::NoReader(name));
        }
        let has_card = ev.contains(State::PRESENT) && !ev.contains(State::MUTE);
        if has_card == present && (present || ev.contains(State::EMPTY)) {
            return Ok(name);
        }
        s.sync_current_state();
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
    }
}
