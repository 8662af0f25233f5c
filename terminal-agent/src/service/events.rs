//! Reader and card events for `GET /v1/events`: a thin translation of card-core's PC/SC
//! [`ReaderWatcher`] (status change with the PnP notification, a blocking wait, no polling loop of
//! our own) into [`Event`]s on a `tokio::sync::broadcast` channel.
//!
//! [`EventHub::start`] spawns one watcher thread; dropping the hub cancels the watcher (`SCardCancel`) and the
//! thread ends, which closes every subscriber's receiver. pcscd restarting is survived by the watcher
//! (readers reported removed, then added again).
//!
//! What the watcher saw is also kept as a [`Presence`], from which the routes find their reader and the reader
//! pool knows whether its connection may still be used: a request costs pcscd no reader listing and no status
//! call, only its card's APDUs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use card_core::transport::{ReaderChange, ReaderStatus, ReaderWatcher};
use tokio::sync::broadcast;

/// How many events a slow subscriber may lag behind before it misses some (`RecvError::Lagged`).
pub const EVENT_BUFFER: usize = 256;

/// A reader or card event, as sent to the counter page (`{"type":"card_inserted","reader":…,"atr":…}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A reader appeared (also sent for every reader present when the hub starts, and after pcscd restarts).
    ReaderAdded {
        /// Reader name.
        reader: String,
    },
    /// A reader disappeared (unplugged, or pcscd stopped).
    ReaderRemoved {
        /// Reader name.
        reader: String,
    },
    /// A card was inserted (also sent for a card present when its reader is first seen).
    CardInserted {
        /// Reader name.
        reader: String,
        /// The card's ATR, uppercase hex.
        atr: String,
    },
    /// The card was removed (also sent before `reader_removed` for a reader that goes away with a card).
    CardRemoved {
        /// Reader name.
        reader: String,
    },
}

impl From<ReaderChange> for Event {
    fn from(c: ReaderChange) -> Self {
        match c {
            ReaderChange::ReaderAdded { reader } => Event::ReaderAdded { reader },
            ReaderChange::ReaderRemoved { reader } => Event::ReaderRemoved { reader },
            ReaderChange::CardInserted { reader, atr } => Event::CardInserted { reader, atr: hex::encode_upper(atr) },
            ReaderChange::CardRemoved { reader } => Event::CardRemoved { reader },
        }
    }
}

/// A reader and its card as the hub last saw them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReaderSnapshot {
    /// Reader name.
    pub reader: String,
    /// A card is present (and not mute).
    pub card_present: bool,
    /// The card's ATR, uppercase hex, when present.
    pub atr: Option<String>,
}

impl From<ReaderStatus> for ReaderSnapshot {
    fn from(s: ReaderStatus) -> Self {
        ReaderSnapshot {
            reader: s.name,
            card_present: s.card_present,
            atr: s.card_present.then(|| hex::encode_upper(&s.atr)),
        }
    }
}

/// Stops an [`EventSource`] from another thread: its `next_batch` returns `None` soon after.
pub type Canceller = Arc<dyn Fn() + Send + Sync>;

/// Where reader and card changes come from (a [`super::connector::CardConnector`] gives one): pcscd's
/// [`ReaderWatcher`], or the in-process readers of tests.
pub trait EventSource: Send {
    /// Blocks until the next batch of changes; `None` once cancelled. The first batch describes the present.
    fn next_batch(&mut self) -> Option<Vec<ReaderChange>>;
    /// The readers as of the last batch.
    fn readers(&self) -> Vec<ReaderStatus>;
    /// A handle that cancels the source.
    fn canceller(&self) -> Canceller;
}

impl EventSource for ReaderWatcher {
    fn next_batch(&mut self) -> Option<Vec<ReaderChange>> {
        self.next()
    }
    fn readers(&self) -> Vec<ReaderStatus> {
        ReaderWatcher::readers(self)
    }
    fn canceller(&self) -> Canceller {
        let c = ReaderWatcher::canceller(self);
        Arc::new(move || c.cancel())
    }
}

/// What the watcher last saw, shared with the reader lookup of the routes and the reader pool (clones share it), so
/// that a request needs no pcscd round trip to find its reader or to know that its card is still the one the pool
/// is connected to:
///
/// - the readers in pcscd's order (the index of `GET /v1/readers`), with their cards;
/// - for each reader, a count of the changes seen on it (reader added or removed, card inserted or removed). The
///   pool checks its connection (`SCardStatus`) only when the count moved since its last check.
///
/// Nothing is known ([`Presence::changes`] is `None`) before the watcher's first batch, nor of a reader it does not
/// report: the callers then ask pcscd as before. An event the watcher has not delivered yet (a card swapped a moment
/// ago) is caught by the pool as well: a connection that cannot begin the first transaction of a job because its
/// card is gone is made again once (see `readers::PooledLink`).
#[derive(Clone, Default)]
pub struct Presence {
    inner: Arc<Mutex<Seen>>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen = self.lock();
        f.debug_struct("Presence").field("ready", &seen.ready).field("readers", &seen.readers).finish()
    }
}

#[derive(Default)]
struct Seen {
    /// The watcher's first batch is in.
    ready: bool,
    /// The readers as of the last batch, in pcscd's order.
    readers: Vec<ReaderSnapshot>,
    /// Changes seen per reader name, since the hub started (entries are kept when a reader goes: the counts only
    /// grow).
    changes: HashMap<String, u64>,
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `f` of the readers as the watcher last saw them; `None` before its first batch.
    pub fn with_readers<R>(&self, f: impl FnOnce(&[ReaderSnapshot]) -> R) -> Option<R> {
        let seen = self.lock();
        seen.ready.then(|| f(&seen.readers))
    }

    /// How many changes the watcher has seen on `reader` (exact name) since it started; `None` before its first
    /// batch, and for a reader it does not report now (the caller cannot rely on it: it checks with pcscd).
    pub fn changes(&self, reader: &str) -> Option<u64> {
        let seen = self.lock();
        if !seen.ready || !seen.readers.iter().any(|r| r.reader == reader) {
            return None;
        }
        Some(seen.changes.get(reader).copied().unwrap_or(0))
    }

    /// Takes in a batch of the watcher: the readers after it, and its changes.
    fn update(&self, readers: Vec<ReaderSnapshot>, batch: &[ReaderChange]) {
        let mut seen = self.lock();
        seen.readers = readers;
        seen.ready = true;
        for change in batch {
            let (ReaderChange::ReaderAdded { reader }
            | ReaderChange::ReaderRemoved { reader }
            | ReaderChange::CardInserted { reader, .. }
            | ReaderChange::CardRemoved { reader }) = change;
            *seen.changes.entry(reader.clone()).or_default() += 1;
        }
    }
}

/// The source of [`Event`]s: one watcher thread, any number of subscribers.
///
/// The snapshot (the [`Presence`]) is updated before each batch of events is sent, so a subscriber that receives an
/// event and then asks for the snapshot sees at least that state.
pub struct EventHub {
    sender: broadcast::Sender<Event>,
    presence: Presence,
    /// True once the watcher's first batch (the present readers and cards) is in the snapshot.
    ready: tokio::sync::watch::Receiver<bool>,
    canceller: Canceller,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").field("subscribers", &self.sender.receiver_count()).finish()
    }
}

impl EventHub {
    /// Spawns the watcher thread and returns at once (the thread contacts pcscd; the first events describe
    /// the readers and cards present). Call from anywhere: it does not block.
    pub fn start() -> Self {
        EventHub::start_with(Box::new(ReaderWatcher::new()))
    }

    /// [`EventHub::start`] with another source of changes (a connector's).
    pub fn start_with(watcher: Box<dyn EventSource>) -> Self {
        let (sender, _) = broadcast::channel(EVENT_BUFFER);
        let presence = Presence::default();
        let canceller = watcher.canceller();
        let thread_sender = sender.clone();
        let thread_presence = presence.clone();
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let spawned = std::thread::Builder::new()
            .name("reader-events".into())
            .spawn(move || watch(watcher, thread_sender, thread_presence, ready_tx));
        if let Err(e) = spawned {
            // no thread: subscribers simply receive nothing; the agent keeps serving card requests
            tracing::error!(error = %e, "cannot start the reader event thread");
        }
        EventHub { sender, presence, ready, canceller }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// The readers and cards as of the last event batch, in pcscd's order (empty until the watcher's first batch).
    pub fn snapshot(&self) -> Vec<ReaderSnapshot> {
        self.presence.with_readers(<[ReaderSnapshot]>::to_vec).unwrap_or_default()
    }

    /// What the watcher last saw, for the reader lookup and the reader pool.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// [`EventHub::snapshot`], after the watcher's first batch — or after `max_wait` if pcscd does not answer
    /// by then: a client that connects right after the agent starts sees the readers that are there.
    pub async fn snapshot_when_ready(&self, max_wait: std::time::Duration) -> Vec<ReaderSnapshot> {
        let mut ready = self.ready.clone();
        let _ = tokio::time::timeout(max_wait, ready.wait_for(|r| *r)).await;
        self.snapshot()
    }
}

impl Drop for EventHub {
    /// Stops the watcher; the thread ends (closing the subscribers' receivers) without being joined.
    /// `SCardCancel` is called from a short-lived thread, so dropping the hub never blocks the async runtime.
    fn drop(&mut self) {
        let canceller = self.canceller.clone();
        let spawned = std::thread::Builder::new().name("reader-events-stop".into()).spawn(move || canceller());
        if spawned.is_err() {
            (self.canceller)();
        }
    }
}

/// The watcher thread: each batch updates the snapshot, then goes out as events.
fn watch(
    watcher: Box<dyn EventSource>,
    sender: broadcast::Sender<Event>,
    presence: Presence,
    ready: tokio::sync::watch::Sender<bool>,
) {
    let mut watcher = watcher;
    while let Some(batch) = watcher.next_batch() {
        let readers = watcher.readers().into_iter().map(ReaderSnapshot::from).collect();
        presence.update(readers, &batch);
        let _ = ready.send(true);
        for change in batch {
            let event = Event::from(change);
            tracing::debug!(?event, "reader event");
            // no subscriber is not an error
            let _ = sender.send(event);
        }
    }
    tracing::debug!("reader event thread stopped");
}
