//! The seam between the agent and its card readers: everything the reader pool, the reader routes and the
//! events socket need from "the readers" goes through a [`CardConnector`].
//!
//! - [`PcscReaders`] (the default): pcscd, through card-core's `DirectPcscTransport`, `reader_states` and
//!   `ReaderWatcher`;
//! - [`InProcessReaders`]: readers and cards inside the process (card-sim's `SimTransport` in tests), so the
//!   router can be tested with `tower::ServiceExt::oneshot` without pcscd.
//!
//! A connection ([`CardLink`]) is a card-core [`Transport`] that can also tell, without an APDU, whether it still
//! reaches the card it was made to (the pool connects again when it does not).

use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use card_core::apdu::Sensitivity;
use card_core::transport::{
    list_readers, reader_name, reader_states, CardTransaction, DirectPcscTransport, ReaderChange, ReaderSelector,
    ReaderStatus, ReaderWatcher, Transport, TransportError,
};

use super::events::{Canceller, EventSource};

/// A connection to the card in one reader.
pub trait CardLink: Transport {
    /// Whether this connection still reaches the card it was made to, checked without an APDU: `false` once
    /// that card was removed (even if another one was inserted since) or the reader went away.
    fn is_live(&self) -> bool;
}

impl CardLink for DirectPcscTransport {
    fn is_live(&self) -> bool {
        DirectPcscTransport::is_live(self)
    }
}

/// Where the agent's readers and cards come from.
pub trait CardConnector: Send + Sync {
    /// Every reader with its card state, in a stable order (the index of `GET /v1/readers`), without card
    /// traffic.
    fn readers(&self) -> Result<Vec<ReaderStatus>, TransportError>;

    /// The readers' names, in the order of [`CardConnector::readers`].
    fn reader_names(&self) -> Result<Vec<String>, TransportError> {
        Ok(self.readers()?.into_iter().map(|r| r.name).collect())
    }

    /// The full name of the reader `selector` designates: an index, an exact name, or a part of exactly one name.
    fn resolve(&self, selector: &ReaderSelector) -> Result<String, TransportError> {
        selector.pick(&self.reader_names()?)
    }

    /// Connects to the card in the reader named `reader` (exact name): `NoCard` for an empty reader,
    /// `NoReader` for an unknown one.
    fn connect(&self, reader: &str) -> Result<Box<dyn CardLink>, TransportError>;

    /// A source of reader and card events for [`super::events::EventHub`]; its first batch describes the present.
    fn events(&self) -> Box<dyn EventSource>;
}

/// The readers pcscd knows (the default connector). Its connections are card-core's `DirectPcscTransport`: the
/// PC/SC calls are made on the thread that uses the connection (the pool's reader worker) with no timeout of their
/// own; the pool watches each call's deadline and abandons a worker stuck on a mute card.
#[derive(Clone, Copy, Debug, Default)]
pub struct PcscReaders;

impl CardConnector for PcscReaders {
    fn readers(&self) -> Result<Vec<ReaderStatus>, TransportError> {
        reader_states()
    }

    fn reader_names(&self) -> Result<Vec<String>, TransportError> {
        list_readers()
    }

    fn resolve(&self, selector: &ReaderSelector) -> Result<String, TransportError> {
        reader_name(selector)
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardLink>, TransportError> {
        Ok(Box::new(DirectPcscTransport::connect(&ReaderSelector::Name(reader.to_owned()))?))
    }

    fn events(&self) -> Box<dyn EventSource> {
        Box::new(ReaderWatcher::new())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Readers whose cards live in the process: any [`Transport`] (card-sim's `SimTransport` in tests) put into a
/// named reader with [`InProcessReaders::insert`]. Clones share the readers.
///
/// A card is in its reader from `insert` to `remove` (or the next `insert`); a connection made to it stops being
/// live when it leaves. A transport that reports itself absent (a torn card-sim card) makes the connection's
/// transactions fail with `NoCard`/`CardRemoved`, as a reader would.
pub struct InProcessReaders<T> {
    inner: Arc<Readers<T>>,
}

impl<T> Clone for InProcessReaders<T> {
    fn clone(&self) -> Self {
        InProcessReaders { inner: self.inner.clone() }
    }
}

impl<T> std::fmt::Debug for InProcessReaders<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = lock(&self.inner.slots).iter().map(|(n, _)| n.clone()).collect();
        f.debug_struct("InProcessReaders").field("readers", &names).finish()
    }
}

struct Readers<T> {
    /// The readers, in the order they were first used.
    slots: Mutex<Vec<(String, SharedSlot<T>)>>,
    /// Event subscribers; `None` tells one to stop.
    subscribers: Mutex<Vec<mpsc::Sender<Option<Vec<ReaderChange>>>>>,
}

/// A reader's slot, shared by the readers and the connections to its card.
type SharedSlot<T> = Arc<Mutex<Slot<T>>>;

struct Slot<T> {
    card: Option<T>,
    /// Counts insertions: a connection belongs to one.
    inserted: u64,
}

impl<T: Transport + 'static> Default for InProcessReaders<T> {
    fn default() -> Self {
        InProcessReaders::new()
    }
}

impl<T: Transport + 'static> InProcessReaders<T> {
    /// No readers yet.
    pub fn new() -> Self {
        InProcessReaders {
            inner: Arc::new(Readers { slots: Mutex::new(Vec::new()), subscribers: Mutex::new(Vec::new()) }),
        }
    }

    /// Adds an empty reader (no-op if it exists).
    pub fn add_reader(&self, reader: &str) {
        self.slot(reader);
    }

    /// The reader's slot, added if new (with its `reader_added` event).
    fn slot(&self, reader: &str) -> SharedSlot<T> {
        let mut slots = lock(&self.inner.slots);
        if let Some((_, slot)) = slots.iter().find(|(n, _)| n == reader) {
            return slot.clone();
        }
        let slot = Arc::new(Mutex::new(Slot { card: None, inserted: 0 }));
        slots.push((reader.to_owned(), slot.clone()));
        drop(slots);
        self.publish(vec![ReaderChange::ReaderAdded { reader: reader.to_owned() }]);
        slot
    }

    /// Puts `card` into `reader` (added if new), replacing the card there; returns the replaced card.
    pub fn insert(&self, reader: &str, card: T) -> Option<T> {
        let slot = self.slot(reader);
        let atr = card.atr().to_vec();
        let old = {
            let mut s = lock(&slot);
            s.inserted += 1;
            s.card.replace(card)
        };
        let mut changes = Vec::new();
        if old.is_some() {
            changes.push(ReaderChange::CardRemoved { reader: reader.to_owned() });
        }
        changes.push(ReaderChange::CardInserted { reader: reader.to_owned(), atr });
        self.publish(changes);
        old
    }

    /// Takes the card out of `reader`.
    pub fn remove(&self, reader: &str) -> Option<T> {
        let slot = lock(&self.inner.slots).iter().find(|(n, _)| n == reader).map(|(_, s)| s.clone())?;
        let card = lock(&slot).card.take();
        if card.is_some() {
            self.publish(vec![ReaderChange::CardRemoved { reader: reader.to_owned() }]);
        }
        card
    }

    /// Runs `f` on the card in `reader` (between the agent's transactions), e.g. to read a counter.
    pub fn with_card<R>(&self, reader: &str, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let slot = lock(&self.inner.slots).iter().find(|(n, _)| n == reader).map(|(_, s)| s.clone())?;
        let mut s = lock(&slot);
        s.card.as_mut().map(f)
    }

    fn publish(&self, changes: Vec<ReaderChange>) {
        lock(&self.inner.subscribers).retain(|s| s.send(Some(changes.clone())).is_ok());
    }

    fn states(&self) -> Vec<ReaderStatus> {
        let slots: Vec<_> = lock(&self.inner.slots).clone();
        slots
            .into_iter()
            .enumerate()
            .map(|(index, (name, slot))| {
                let mut s = lock(&slot);
                let atr = s.card.as_mut().and_then(|c| present(c).then(|| c.atr().to_vec()));
                ReaderStatus {
                    index,
                    name,
                    card_present: atr.is_some(),
                    exclusive: false,
                    atr: atr.unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// Whether the transport has a card to talk to (a transaction can be opened).
fn present<T: Transport>(t: &mut T) -> bool {
    t.transaction().is_ok()
}

impl<T: Transport + 'static> CardConnector for InProcessReaders<T> {
    fn readers(&self) -> Result<Vec<ReaderStatus>, TransportError> {
        Ok(self.states())
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardLink>, TransportError> {
        let slot = lock(&self.inner.slots)
            .iter()
            .find(|(n, _)| n == reader)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| TransportError::NoReader(reader.to_owned()))?;
        let (inserted, atr) = {
            let mut s = lock(&slot);
            let inserted = s.inserted;
            let card = s.card.as_mut().ok_or_else(|| TransportError::NoCard(reader.to_owned()))?;
            if !present(card) {
                return Err(TransportError::NoCard(reader.to_owned()));
            }
            (inserted, card.atr().to_vec())
        };
        Ok(Box::new(InProcessLink { slot, inserted, atr, name: reader.to_owned() }))
    }

    fn events(&self) -> Box<dyn EventSource> {
        let (tx, rx) = mpsc::channel();
        let readers = self.states();
        let mut first: Vec<ReaderChange> =
            readers.iter().map(|r| ReaderChange::ReaderAdded { reader: r.name.clone() }).collect();
        first.extend(
            readers
                .iter()
                .filter(|r| r.card_present)
                .map(|r| ReaderChange::CardInserted { reader: r.name.clone(), atr: r.atr.clone() }),
        );
        // the receiver is ours: this cannot fail
        let _ = tx.send(Some(first));
        lock(&self.inner.subscribers).push(tx.clone());
        let canceller: Canceller = Arc::new(move || {
            let _ = tx.send(None);
        });
        Box::new(InProcessEvents { readers: self.clone(), rx, canceller, known: readers })
    }
}

/// A connection to an in-process card.
struct InProcessLink<T> {
    slot: SharedSlot<T>,
    inserted: u64,
    atr: Vec<u8>,
    name: String,
}

impl<T: Transport + 'static> Transport for InProcessLink<T> {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        let InProcessLink { slot, inserted, atr, name } = self;
        let mut guard = lock(slot);
        if guard.inserted != *inserted {
            return Err(TransportError::CardRemoved);
        }
        let card = guard.card.as_mut().ok_or_else(|| TransportError::NoCard(name.clone()))?;
        if !present(card) {
            return Err(TransportError::NoCard(name.clone()));
        }
        card.atr().clone_into(atr);
        Ok(Box::new(InProcessTransaction { guard }))
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl<T: Transport + 'static> CardLink for InProcessLink<T> {
    fn is_live(&self) -> bool {
        let s = lock(&self.slot);
        s.inserted == self.inserted && s.card.is_some()
    }
}

/// A transaction on an in-process card: the slot stays locked until it ends, so nothing else reaches the card;
/// each APDU goes through a transaction of the card's own transport.
struct InProcessTransaction<'a, T> {
    guard: MutexGuard<'a, Slot<T>>,
}

impl<T: Transport> InProcessTransaction<'_, T> {
    fn card(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        let card = self.guard.card.as_mut().ok_or(TransportError::CardRemoved)?;
        card.transaction().map_err(|e| if e.is_card_gone() { TransportError::CardRemoved } else { e })
    }
}

impl<T: Transport> CardTransaction for InProcessTransaction<'_, T> {
    fn transmit(&mut self, command: &[u8], sensitivity: Sensitivity) -> Result<Vec<u8>, TransportError> {
        self.card()?.transmit(command, sensitivity)
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.card()?.reset()
    }

    fn atr(&self) -> &[u8] {
        self.guard.card.as_ref().map_or(&[], |c| c.atr())
    }
}

/// Events of [`InProcessReaders`]: what `insert` and `remove` did, in order.
struct InProcessEvents<T> {
    readers: InProcessReaders<T>,
    rx: mpsc::Receiver<Option<Vec<ReaderChange>>>,
    canceller: Canceller,
    /// The readers as of the last batch returned.
    known: Vec<ReaderStatus>,
}

impl<T: Transport + 'static> EventSource for InProcessEvents<T> {
    fn next_batch(&mut self) -> Option<Vec<ReaderChange>> {
        let batch = self.rx.recv().ok().flatten()?;
        self.known = self.readers.states();
        Some(batch)
    }

    fn readers(&self) -> Vec<ReaderStatus> {
        self.known.clone()
    }

    fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }
}
