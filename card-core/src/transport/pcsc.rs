//! `PcscTransport`: a card in a PC/SC reader, through pcscd and the `pcsc` crate.
//!
//! Recovery is done here and nowhere else (after `card-backend-pcsc`):
//! - a reset by another application, seen when a transaction begins, is answered by a reconnect
//!   (nothing of the new operation has been sent yet); seen during a transaction it is
//!   [`TransportError::CardReset`] and the next transaction reconnects;
//! - pcscd restarting (`NoService`, `ServiceStopped`, `InvalidHandle`) re-establishes the context
//!   and reconnects at the next transaction;
//! - a removed card is [`TransportError::CardRemoved`] during a transaction and
//!   [`TransportError::NoCard`] when the next one begins.
//!
//! Upper layers must not carry card security state across transactions: each logical
//! operation selects and authenticates within its own transaction.

use std::ffi::CString;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use super::{CardTransaction, Transport, TransportError};
use crate::apdu::Sensitivity;

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

/// Maps a PC/SC error to what it means for the caller.
/// What pcsc-lite answers on a handle or context whose pcscd went away (stopped or restarted): besides
/// `NoService` and `InvalidHandle`, a client whose socket to the old pcscd is gone has been seen to get
/// `SecurityViolation` (and the communication errors are of the same kind). The cure is the same: a new context.
fn service_lost(e: pcsc::Error) -> bool {
    use pcsc::Error as E;
    matches!(
        e,
        E::InvalidHandle | E::NoService | E::ServiceStopped | E::SecurityViolation | E::CommError | E::InternalError
    )
}

fn map_err(e: pcsc::Error, reader: &str) -> TransportError {
    use pcsc::Error as E;
    match e {
        E::NoService | E::ServiceStopped => TransportError::NoService,
        E::NoReadersAvailable => TransportError::NoReaders,
        E::UnknownReader | E::ReaderUnavailable => TransportError::NoReader(reader.to_owned()),
        E::NoSmartcard => TransportError::NoCard(reader.to_owned()),
        E::RemovedCard => TransportError::CardRemoved,
        E::ResetCard => TransportError::CardReset,
        E::SharingViolation => TransportError::ReaderBusy,
        E::UnresponsiveCard | E::UnpoweredCard => TransportError::CardUnresponsive,
        E::Timeout => TransportError::Timeout,
        other => TransportError::Pcsc(other),
    }
}

fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(|e| map_err(e, ""))
}

fn readers_of(ctx: &Context) -> Result<Vec<String>, TransportError> {
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names.into_iter().map(|n| n.to_string_lossy().into_owned()).collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_err(e, "")),
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

fn resolve(ctx: &Context, selector: &ReaderSelector) -> Result<String, TransportError> {
    let readers = readers_of(ctx)?;
    if readers.is_empty() {
        return Err(TransportError::NoReaders);
    }
    match selector {
        ReaderSelector::Index(i) => readers.get(*i).cloned().ok_or_else(|| TransportError::NoReader(format!("#{i}"))),
        ReaderSelector::Name(n) => {
            if let Some(exact) = readers.iter().find(|r| *r == n) {
                return Ok(exact.clone());
            }
            let mut hits = readers.iter().filter(|r| r.contains(n.as_str()));
            match (hits.next(), hits.next()) {
                (Some(one), None) => Ok(one.clone()),
                _ => Err(TransportError::NoReader(n.clone())),
            }
        }
    }
}

fn cstring(name: &str) -> Result<CString, TransportError> {
    CString::new(name).map_err(|_| TransportError::NoReader(name.to_owned()))
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

/// How long a freshly inserted card may stay unpowered or mute before a connect gives up.
const POWER_UP_GRACE: Duration = Duration::from_millis(1000);

/// A card in a PC/SC reader.
pub struct PcscTransport {
    ctx: Context,
    reader: String,
    card: Option<Card>,
    atr: Vec<u8>,
    /// The card handle must be re-established before the next transaction.
    stale: bool,
}

impl fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .field("atr", &hex::encode_upper(&self.atr))
            .finish()
    }
}

impl PcscTransport {
    /// Connects (shared mode, T=0 or T=1) to the card in the selected reader.
    pub fn connect(selector: &ReaderSelector) -> Result<Self, TransportError> {
        let ctx = establish()?;
        let reader = resolve(&ctx, selector)?;
        let mut t = PcscTransport { ctx, reader, card: None, atr: Vec::new(), stale: true };
        t.reconnect()?;
        Ok(t)
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Whether this connection still reaches the card it was made to: `SCardStatus` on the handle, no APDU.
    ///
    /// `false` once that card was removed (even if another card was inserted since), the reader vanished or
    /// pcscd restarted: connect again then. A reset by another application still counts as live (the next
    /// transaction reconnects by itself).
    pub fn is_live(&self) -> bool {
        match &self.card {
            Some(card) => matches!(card.status2_owned(), Ok(_) | Err(pcsc::Error::ResetCard)),
            None => false,
        }
    }

    /// Re-establishes what is needed: the context if pcscd restarted, then the card handle.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        if self.ctx.is_valid().is_err() {
            self.card = None;
            self.ctx = establish()?;
        }
        let name = cstring(&self.reader)?;
        // A card that has just been inserted may still be powering up: give it a moment.
        let fresh = |ctx: &Context| {
            let deadline = Instant::now() + POWER_UP_GRACE;
            loop {
                match ctx.connect(&name, ShareMode::Shared, Protocols::ANY) {
                    Err(pcsc::Error::UnpoweredCard | pcsc::Error::UnresponsiveCard) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    other => return other,
                }
            }
        };
        let card = match self.card.take() {
            Some(mut card) => match card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard) {
                Ok(()) => card,
                Err(e) if service_lost(e) => {
                    self.ctx = establish()?;
                    fresh(&self.ctx).map_err(|e| map_err(e, &self.reader))?
                }
                Err(e) => return Err(map_err(e, &self.reader)),
            },
            None => match fresh(&self.ctx) {
                Ok(c) => c,
                Err(e) if service_lost(e) => {
                    self.ctx = establish()?;
                    fresh(&self.ctx).map_err(|e| map_err(e, &self.reader))?
                }
                Err(e) => return Err(map_err(e, &self.reader)),
            },
        };
        self.atr = card.status2_owned().map_err(|e| map_err(e, &self.reader))?.atr().to_vec();
        self.card = Some(card);
        self.stale = false;
        Ok(())
    }
}

impl Transport for PcscTransport {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        if self.stale || self.card.is_none() {
            self.reconnect()?;
        }
        // A reset or pcscd restart since the last operation shows up when the transaction begins.
        let begin = match self.card.as_mut() {
            Some(card) => card.transaction().map(|_| ()),
            None => Err(pcsc::Error::InvalidHandle),
        };
        match begin {
            Ok(()) => {}
            Err(e) if e == pcsc::Error::ResetCard || service_lost(e) => self.reconnect()?,
            Err(pcsc::Error::RemovedCard) => {
                self.stale = true;
                return Err(TransportError::NoCard(self.reader.clone()));
            }
            Err(e) => return Err(map_err(e, &self.reader)),
        }
        let PcscTransport { card, atr, stale, reader, .. } = self;
        let card = card.as_mut().ok_or_else(|| TransportError::NoCard(reader.clone()))?;
        let tx = card.transaction().map_err(|e| {
            *stale = true;
            map_err(e, reader)
        })?;
        Ok(Box::new(PcscTx { tx, atr, stale, reader }))
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn name(&self) -> &str {
        &self.reader
    }
}

struct PcscTx<'a> {
    tx: pcsc::Transaction<'a>,
    atr: &'a mut Vec<u8>,
    stale: &'a mut bool,
    reader: &'a str,
}

impl PcscTx<'_> {
    fn fail(&mut self, e: pcsc::Error) -> TransportError {
        let err = map_err(e, self.reader);
        if matches!(
            err,
            TransportError::CardRemoved
                | TransportError::CardReset
                | TransportError::NoCard(_)
                | TransportError::NoService
                | TransportError::CardUnresponsive
        ) || service_lost(e)
        {
            *self.stale = true;
        }
        err
    }
}

/// How long to watch the reader after an empty response before calling the card mute.
const REMOVAL_GRACE: Duration = Duration::from_millis(1500);

impl PcscTx<'_> {
    /// Some reader drivers (vpcd among them) answer a command whose card vanished with an empty response
    /// instead of an error, before the reader itself has noticed the removal (pcscd polls presence about
    /// every 400 ms). Watch the card's status for a short while: gone → [`TransportError::CardRemoved`],
    /// still there → [`TransportError::CardUnresponsive`]. Either way the handle is re-established next time.
    fn diagnose_empty_response(&mut self) -> TransportError {
        *self.stale = true;
        let deadline = Instant::now() + REMOVAL_GRACE;
        loop {
            match self.tx.status2_owned() {
                Err(pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard) => return TransportError::CardRemoved,
                Err(e) => return self.fail(e),
                Ok(s) if !s.status().contains(pcsc::Status::PRESENT) => return TransportError::CardRemoved,
                Ok(_) if Instant::now() >= deadline => return TransportError::CardUnresponsive,
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl CardTransaction for PcscTx<'_> {
    fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
        let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let resp = match self.tx.transmit(command, &mut buf) {
            Ok(resp) => resp.to_vec(),
            Err(e) => return Err(self.fail(e)),
        };
        if resp.len() < 2 {
            return Err(self.diagnose_empty_response());
        }
        Ok(resp)
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        if let Err(e) = self.tx.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::ResetCard) {
            return Err(self.fail(e));
        }
        match self.tx.status2_owned() {
            Ok(status) => {
                *self.atr = status.atr().to_vec();
                Ok(self.atr.clone())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn atr(&self) -> &[u8] {
        self.atr
    }
}

/// A change of the readers, or of the card in one, as a [`ReaderWatcher`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReaderChange {
    /// A reader appeared (plugged in, pcscd (re)started, or first seen by the watcher).
    ReaderAdded {
        /// Reader name.
        reader: String,
    },
    /// A reader disappeared (unplugged, or pcscd stopped).
    ReaderRemoved {
        /// Reader name.
        reader: String,
    },
    /// A card was inserted (or was present when the reader was first seen).
    CardInserted {
        /// Reader name.
        reader: String,
        /// The card's ATR.
        atr: Vec<u8>,
    },
    /// The card was removed (or its reader went away).
    CardRemoved {
        /// Reader name.
        reader: String,
    },
}

/// What a watcher last knew of a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    name: String,
    /// The ATR of the card present, `None` when empty (or the card is mute).
    atr: Option<Vec<u8>>,
    exclusive: bool,
    /// pcscd's insertion/removal counter, to see a card swapped between two wake-ups.
    events: u32,
}

/// The first back-off after pcscd was lost; it doubles up to [`WATCH_BACKOFF_MAX`].
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest back-off between attempts to reach pcscd again.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

struct WaitState {
    /// The context the watcher uses, for `SCardCancel`.
    ctx: Option<Context>,
    /// The watcher is inside (or about to enter) `SCardGetStatusChange`.
    blocking: bool,
}

struct WatchShared {
    cancelled: std::sync::atomic::AtomicBool,
    wait: std::sync::Mutex<WaitState>,
    /// Signalled when the watcher leaves a wait, and to end a back-off early.
    changed: std::sync::Condvar,
}

impl WatchShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitState> {
        self.wait.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Stops a [`ReaderWatcher`] from another thread: its blocked [`ReaderWatcher::next`] returns `None`.
#[derive(Clone)]
pub struct WatchCanceller {
    shared: std::sync::Arc<WatchShared>,
}

impl fmt::Debug for WatchCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchCanceller").field("cancelled", &self.shared.cancelled()).finish()
    }
}

/// How many times [`WatchCanceller::cancel`] repeats `SCardCancel` (20 ms apart) for a watcher about to block.
const CANCEL_ROUNDS: usize = 50;

impl WatchCanceller {
    /// Stops the watcher: wakes it from `SCardGetStatusChange` (`SCardCancel`) or from a back-off. Returns once
    /// the watcher has left its wait (normally at once; at most about a second).
    ///
    /// `SCardCancel` only interrupts a wait already in progress, so it is repeated while the watcher is
    /// between deciding to wait and waiting.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.changed.notify_all();
        let mut state = self.shared.lock();
        for _ in 0..CANCEL_ROUNDS {
            if !state.blocking {
                break;
            }
            if let Some(ctx) = &state.ctx {
                // an error here means there is nothing to cancel (context gone with pcscd): the wait ends anyway
                let _ = ctx.cancel();
            }
            state = match self.shared.changed.wait_timeout(state, Duration::from_millis(20)) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Whether [`WatchCanceller::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled()
    }
}

/// Watches every reader and the PnP pseudo-reader `\\?PnP?\Notification` with `SCardGetStatusChange`:
/// each [`ReaderWatcher::next`] blocks (no timeout, no polling) until pcscd reports a change, and returns
/// the batch of [`ReaderChange`]s since the previous one.
///
/// - The first batch describes the present: every reader as [`ReaderChange::ReaderAdded`], then
///   [`ReaderChange::CardInserted`] for the cards already in them.
/// - A reader plugged in or out is learnt from the PnP notification (and from a reader reported
///   `UNKNOWN`), after which the reader list is read again.
/// - pcscd stopping is reported as the removal of every card and reader; the watcher then re-establishes
///   its context with a back-off (250 ms doubling to 5 s) and reports what it finds as additions.
/// - [`WatchCanceller::cancel`] (from another thread) ends it: `next` returns `None`, as an iterator's end.
///
/// A card that is present but mute counts as absent, as in [`reader_states`].
pub struct ReaderWatcher {
    shared: std::sync::Arc<WatchShared>,
    ctx: Option<Context>,
    /// The PnP pseudo-reader first, then the readers in pcscd's order.
    states: Vec<ReaderState>,
    /// What was last reported, in pcscd's order.
    known: Vec<Seen>,
    /// The reader list must be read again before the next wait.
    relist: bool,
    /// Consecutive failures to reach pcscd (for the back-off).
    failures: u32,
}

impl fmt::Debug for ReaderWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderWatcher").field("known", &self.known).finish()
    }
}

impl Default for ReaderWatcher {
    fn default() -> Self {
        ReaderWatcher::new()
    }
}

impl ReaderWatcher {
    /// A watcher that knows nothing yet; it contacts pcscd at the first [`ReaderWatcher::next`].
    pub fn new() -> Self {
        ReaderWatcher {
            shared: std::sync::Arc::new(WatchShared {
                cancelled: std::sync::atomic::AtomicBool::new(false),
                wait: std::sync::Mutex::new(WaitState { ctx: None, blocking: false }),
                changed: std::sync::Condvar::new(),
            }),
            ctx: None,
            states: Vec::new(),
            known: Vec::new(),
            relist: true,
            failures: 0,
        }
    }

    /// A handle that stops this watcher from another thread.
    pub fn canceller(&self) -> WatchCanceller {
        WatchCanceller { shared: self.shared.clone() }
    }

    /// The readers as last reported by [`ReaderWatcher::next`], in pcscd's order.
    pub fn readers(&self) -> Vec<ReaderStatus> {
        self.known
            .iter()
            .enumerate()
            .map(|(index, s)| ReaderStatus {
                index,
                name: s.name.clone(),
                card_present: s.atr.is_some(),
                exclusive: s.exclusive,
                atr: s.atr.clone().unwrap_or_default(),
            })
            .collect()
    }

    fn set_ctx(&mut self, ctx: Option<Context>) {
        self.shared.lock().ctx = ctx.clone();
        self.ctx = ctx;
    }

    /// Waits before the next attempt to reach pcscd; `false` if cancelled meanwhile.
    fn back_off(&mut self) -> bool {
        let exp = self.failures.saturating_sub(1).min(8);
        let delay = WATCH_BACKOFF_MIN.saturating_mul(1 << exp).min(WATCH_BACKOFF_MAX);
        let deadline = Instant::now() + delay;
        let mut state = self.shared.lock();
        while !self.shared.cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        !self.shared.cancelled()
    }

    /// pcscd is gone (or answers nonsense): forget the context and every reader.
    fn lost(&mut self, e: pcsc::Error) -> Vec<ReaderChange> {
        tracing::warn!(error = %e, "PC/SC reader watcher lost pcscd; reconnecting with back-off");
        self.failures = self.failures.saturating_add(1);
        self.set_ctx(None);
        self.states.clear();
        self.relist = true;
        self.diff()
    }

    /// Reads the reader list again: keeps the state of readers still there, adds new ones as `UNAWARE`.
    fn relist(&mut self, ctx: &Context) -> Result<(), pcsc::Error> {
        let names = match ctx.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut old: Vec<ReaderState> = std::mem::take(&mut self.states);
        let pnp = match old.iter().position(|s| s.name() == pcsc::PNP_NOTIFICATION()) {
            Some(i) => old.swap_remove(i),
            None => ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE),
        };
        let mut states = vec![pnp];
        for name in names {
            match old.iter().position(|s| s.name() == name.as_c_str()) {
                Some(i) => states.push(old.swap_remove(i)),
                None => states.push(ReaderState::new(name, State::UNAWARE)),
            }
        }
        self.states = states;
        self.relist = false;
        Ok(())
    }

    /// The readers as the states say now: queried at least once, not reported unknown.
    fn current(&self) -> Vec<Seen> {
        self.states
            .iter()
            .skip(1)
            .filter(|s| {
                let cur = s.current_state();
                cur != State::UNAWARE && !cur.intersects(State::UNKNOWN | State::IGNORE | State::UNAVAILABLE)
            })
            .map(|s| {
                let st = s.current_state();
                let present = st.contains(State::PRESENT) && !st.contains(State::MUTE);
                Seen {
                    name: s.name().to_string_lossy().into_owned(),
                    atr: present.then(|| s.atr().to_vec()),
                    exclusive: st.contains(State::EXCLUSIVE),
                    events: s.event_count(),
                }
            })
            .collect()
    }

    /// The changes from what was reported to what the states say; remembers the latter.
    fn diff(&mut self) -> Vec<ReaderChange> {
        let now = self.current();
        let mut out = Vec::new();
        for old in &self.known {
            if !now.iter().any(|n| n.name == old.name) {
                if old.atr.is_some() {
                    out.push(ReaderChange::CardRemoved { reader: old.name.clone() });
                }
                out.push(ReaderChange::ReaderRemoved { reader: old.name.clone() });
            }
        }
        for new in &now {
            let reader = || new.name.clone();
            let old = self.known.iter().find(|o| o.name == new.name);
            let was = match old {
                None => {
                    out.push(ReaderChange::ReaderAdded { reader: reader() });
                    None
                }
                Some(o) => o.atr.as_ref(),
            };
            match (was, &new.atr) {
                (None, Some(atr)) => out.push(ReaderChange::CardInserted { reader: reader(), atr: atr.clone() }),
                (Some(_), None) => out.push(ReaderChange::CardRemoved { reader: reader() }),
                (Some(before), Some(atr)) => {
                    // another card, or the same put back, between two wake-ups: removal and insertion
                    let swapped = old.is_some_and(|o| new.events.wrapping_sub(o.events) >= 2);
                    if before != atr || swapped {
                        out.push(ReaderChange::CardRemoved { reader: reader() });
                        out.push(ReaderChange::CardInserted { reader: reader(), atr: atr.clone() });
                    }
                }
                (None, None) => {}
            }
        }
        self.known = now;
        out
    }

    /// Marks the watcher as about to wait; `false` if it was cancelled.
    fn enter_wait(&self) -> bool {
        let mut state = self.shared.lock();
        if self.shared.cancelled() {
            return false;
        }
        state.blocking = true;
        true
    }

    fn leave_wait(&self) {
        self.shared.lock().blocking = false;
        self.shared.changed.notify_all();
    }

    /// Blocks until something changes and returns the changes; `None` once cancelled.
    fn next_batch(&mut self) -> Option<Vec<ReaderChange>> {
        loop {
            if self.shared.cancelled() {
                return None;
            }
            if self.failures > 0 && self.ctx.is_none() && !self.back_off() {
                return None;
            }
            let ctx = match &self.ctx {
                Some(ctx) => ctx.clone(),
                None => match Context::establish(Scope::User) {
                    Ok(ctx) => {
                        self.set_ctx(Some(ctx.clone()));
                        self.relist = true;
                        ctx
                    }
                    Err(e) => {
                        let changes = self.lost(e);
                        if !changes.is_empty() {
                            return Some(changes);
                        }
                        continue;
                    }
                },
            };
            if self.relist {
                let changes = match self.relist(&ctx) {
                    Ok(()) => self.diff(),
                    Err(e) => self.lost(e),
                };
                if !changes.is_empty() {
                    return Some(changes);
                }
                continue;
            }
            if !self.enter_wait() {
                return None;
            }
            let waited = ctx.get_status_change(None, &mut self.states);
            self.leave_wait();
            match waited {
                Ok(()) => {}
                // cancelled: the loop's check ends it; a stray cancel just waits again
                Err(pcsc::Error::Cancelled | pcsc::Error::Timeout) => continue,
                // a reader vanished between listing and waiting
                Err(pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable) => {
                    self.relist = true;
                    continue;
                }
                Err(e) => {
                    let changes = self.lost(e);
                    if !changes.is_empty() {
                        return Some(changes);
                    }
                    continue;
                }
            }
            self.failures = 0;
            for (i, s) in self.states.iter_mut().enumerate() {
                let ev = s.event_state();
                let pnp_changed = i == 0 && ev.contains(State::CHANGED);
                if pnp_changed || (i > 0 && ev.intersects(State::UNKNOWN | State::IGNORE | State::UNAVAILABLE)) {
                    self.relist = true;
                }
                s.sync_current_state();
            }
            let changes = self.diff();
            if !changes.is_empty() {
                return Some(changes);
            }
        }
    }
}

impl Iterator for ReaderWatcher {
    type Item = Vec<ReaderChange>;

    /// Blocks until pcscd reports a change and returns the batch; `None` once cancelled.
    fn next(&mut self) -> Option<Vec<ReaderChange>> {
        self.next_batch()
    }
}
