//! [`ReaderWatcher`]: reader and card events from `SCardGetStatusChange` with the PnP notification, no polling,
//! surviving pcscd restarts.

use std::fmt;
use std::time::{Duration, Instant};

use pcsc::{Context, ReaderState, Scope, State};

use super::ReaderStatus;

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
