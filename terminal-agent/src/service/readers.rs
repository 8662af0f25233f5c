//! The reader pool: one card, one operation at a time (issue 7 §3).
//!
//! - One worker thread per reader name, created at the first request for a reader the connector knows. It keeps a
//!   [`SocialSecurityCard`] connected across jobs, with the deployment's profile and terminal identifiers, and
//!   connects again when the card it knew is gone (removed, even if re-inserted since), the reader vanished or
//!   pcscd restarted. The agent never needs a restart for any of these. What tells the worker:
//!   - the reader watcher ([`Presence`], from the events hub): while it has seen no change on the reader since the
//!     worker's last check, the connection is used as it is — no pcscd round trip before the job; after a change,
//!     [`CardLink::is_live`] (`SCardStatus`, no APDU) decides, as it does for a pool without a watcher;
//!   - the first transaction of a job: a connection whose card is gone (`NoCard`, `CardRemoved`: the watcher had
//!     not told yet) is made again once, before anything is sent ([`PooledLink`]);
//!   - a job that failed on the link: its connection is dropped, the next job connects again.
//! - Jobs of one reader run one at a time, in arrival order, on its worker: APDUs of two requests never
//!   interleave. A job that cannot start within [`PoolConfig::queue_wait`] fails with [`PoolError::Busy`]
//!   without touching the card (so does a job whose caller went away before it started).
//! - A two-step exchange (CARD-PROFILE §7) holds the card between its steps: Step 1 runs on the worker, sends
//!   the [`Ticket`] back and waits, still on the worker and inside the card's PC/SC transaction, up to
//!   [`PoolConfig::two_step_timeout`] for Step 2 with the ticket's session id. Other jobs wait in the queue
//!   meanwhile (and may end as `Busy`). An unknown id is [`PoolError::NoSession`]; one that came too late is
//!   [`PoolError::SessionExpired`], the card having been released at the timeout. A caller that goes away
//!   between the steps gives the session up ([`ReaderPool::abandon`]): the card is released at once.
//! - The worker makes the PC/SC calls itself (pcscd's connector gives card-core's `DirectPcscTransport`): one
//!   hand-off per job, to the worker and back, instead of two thread wake-ups per APDU to a connection's own PC/SC
//!   thread — most of the agent's own time on a fast card (issue 15 §3).
//! - A card that does not answer: the worker stamps every call on the card (connect, begin, APDU, liveness, reader
//!   control) with its deadline, the card timeout (`card_timeout_ms`; a PIN typed on the pad may take the feature's
//!   own wait). The requests waiting on the worker watch that stamp: when a call is past its deadline the worker is
//!   abandoned — its requests fail with `TransportError::NoAnswer` (504 `card_timeout`), queued ones without
//!   touching the card — and the next request starts a new worker with a new PC/SC context and connection. The
//!   abandoned thread, once its stuck call returns (the card removed, pcscd stopped), releases its card and ends.
//! - The async side never blocks: jobs go to the worker over a channel and come back over a `tokio::sync::oneshot`;
//!   the bounded waits are tokio timers.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use card_core::apdu::Sensitivity;
use card_core::card::{
    Address, BasicInfo, ItemValues, SocialSecurityCard, TerminalIds, TwoStepRead, TwoStepReadItems, TwoStepWrite,
};
use card_core::national;
use card_core::profile::Profile;
use card_core::security::SecurityModule;
use card_core::transport::{CardTransaction, Control, Transport, TransportError};
use tokio::sync::{oneshot, watch};

use super::connector::{CardConnector, CardLink, PcscReaders};
use super::events::Presence;

/// The card of a reader, as the pool's jobs see it: over the connector's link (pcscd by default).
pub type PooledCard = SocialSecurityCard<PooledLink>;

/// The pool's connection to the card in a reader: the connector's link, made again once when the first
/// transaction of a job cannot begin because the card it was made to is gone (`NoCard`, `CardRemoved`) — the card
/// was swapped or pulled and the reader watcher has not told the pool yet. Nothing of the job has reached a card
/// then, so the job runs on the new connection (or fails with the new connection's error: no card, no reader).
/// Later transactions of the job are never retried: a job sees one card.
pub struct PooledLink {
    link: Box<dyn CardLink>,
    /// Where each call on the card is stamped with its deadline, for the requests waiting on the worker.
    clock: Arc<Lane>,
    /// The connection made in place of `link` by the first transaction of a job; `link` from the next call on.
    fresh: Option<Box<dyn CardLink>>,
    /// The next transaction is the first of a job.
    first: bool,
    connector: Arc<dyn CardConnector>,
    reader: String,
}

impl std::fmt::Debug for PooledLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledLink").field("reader", &self.reader).finish_non_exhaustive()
    }
}

impl PooledLink {
    /// Connects to the card in `reader` through `connector`.
    fn connect(connector: &Arc<dyn CardConnector>, reader: &str, clock: &Arc<Lane>) -> Result<Self, TransportError> {
        let link = clock.call(None, || connector.connect(reader))?;
        Ok(PooledLink {
            link,
            clock: clock.clone(),
            fresh: None,
            first: false,
            connector: connector.clone(),
            reader: reader.to_owned(),
        })
    }

    /// The connection in use.
    fn current(&self) -> &dyn CardLink {
        self.fresh.as_deref().unwrap_or(&*self.link)
    }

    /// A job starts: its first transaction may connect again.
    fn job_starts(&mut self) {
        self.first = true;
    }
}

impl Transport for PooledLink {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        if let Some(fresh) = self.fresh.take() {
            self.link = fresh;
        }
        let clock = &*self.clock;
        if !std::mem::take(&mut self.first) {
            let tx = clock.call(None, || self.link.transaction())?;
            return Ok(Box::new(Clocked { tx, clock }));
        }
        let e = match clock.call(None, || self.link.transaction()) {
            Ok(tx) => return Ok(Box::new(Clocked { tx, clock })),
            Err(e) if e.is_card_gone() => e,
            Err(e) => return Err(e),
        };
        tracing::debug!(reader = %self.reader, error = %e, "the connection's card is gone; connecting again");
        let fresh = clock.call(None, || self.connector.connect(&self.reader))?;
        let tx = clock.call(None, || self.fresh.insert(fresh).transaction())?;
        Ok(Box::new(Clocked { tx, clock }))
    }

    fn atr(&self) -> &[u8] {
        self.current().atr()
    }

    fn name(&self) -> &str {
        self.current().name()
    }
}

impl CardLink for PooledLink {
    fn is_live(&self) -> bool {
        self.clock.call(None, || self.current().is_live())
    }
}

/// A transaction of a pooled connection: each call on the card stamped on the reader's [`Lane`].
struct Clocked<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    clock: &'a Lane,
}

impl CardTransaction for Clocked<'_> {
    fn transmit(&mut self, command: &[u8], sensitivity: Sensitivity) -> Result<Vec<u8>, TransportError> {
        self.clock.call(None, || self.tx.transmit(command, sensitivity))
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.clock.call(None, || self.tx.reset())
    }

    fn atr(&self) -> &[u8] {
        self.tx.atr()
    }

    fn control(&mut self, control: Control<'_>) -> Result<Vec<u8>, TransportError> {
        let wait = match control {
            Control::Feature { wait, .. } => Some(wait),
            _ => None,
        };
        self.clock.call(wait, || self.tx.control(control))
    }
}

/// How the pool treats its readers.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// How long a request may wait for its reader before it fails with [`PoolError::Busy`].
    pub queue_wait: Duration,
    /// The longest wait for one call on a card (connecting, beginning a transaction, one APDU): a call past it
    /// makes its worker abandoned and its requests fail with `TransportError::NoAnswer`.
    pub card_timeout: Duration,
    /// How long Step 1 of a two-step exchange holds the card waiting for Step 2.
    pub two_step_timeout: Duration,
    /// The terminal identifiers printed in the national strings (终端机编号, 终端设备号).
    pub terminal: TerminalIds,
    /// The card profile of the deployment.
    pub profile: Arc<Profile>,
}

/// What Step 1 of a two-step exchange gives the caller, to forward to the back end.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ticket {
    /// The session id to give back with Step 2: 128 random bits, lowercase hex.
    pub session: String,
    /// The `…_HSM_Step1` string: `region|hist|algorithm|card id|R1|R2|R3|R4|`.
    pub step1: String,
    /// The key (inventory name) whose cryptogram the back end must compute: `RKSSSE` for a read, the files'
    /// update key (`UKMF`, `UK_DF01`, …) for a write.
    pub key: String,
}

/// What can go wrong with a pooled card operation, grouped by who is at fault.
///
/// - the reader is in use by other requests: [`PoolError::Busy`];
/// - the card, the link to it or the operation failed: [`PoolError::Card`] (card-core's error, with its own
///   grouping);
/// - the caller's two-step session is not usable: [`PoolError::NoSession`], [`PoolError::SessionExpired`];
/// - the agent itself failed: [`PoolError::Internal`].
///
/// [`PoolError::national_code`] gives the national interface's code (CARD-PROFILE §7). No variant carries a
/// session id, key material or a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The reader was in use for the whole bounded wait: the request did not start and the card was not
    /// touched.
    #[error("reader {reader:?} is busy: the request could not start within {waited:?}")]
    Busy {
        /// Reader name.
        reader: String,
        /// How long the request waited.
        waited: Duration,
    },
    /// The operation failed on the card or its link (no card, card removed, card refused, …).
    #[error(transparent)]
    Card(#[from] card_core::Error),
    /// No two-step session of this kind with this id is waiting on this reader (never was, already answered,
    /// or another reader's or operation's).
    #[error("no two-step {kind} session with this id is waiting on reader {reader:?}")]
    NoSession {
        /// Reader name.
        reader: String,
        /// `read` or `write`.
        kind: &'static str,
    },
    /// Step 2 came after the session's timeout: the card was released and its challenge is gone; start again
    /// with Step 1.
    #[error("the two-step session expired: Step 2 did not come within {timeout:?}; start again with Step 1")]
    SessionExpired {
        /// The two-step timeout.
        timeout: Duration,
    },
    /// The pool was shut down ([`ReaderPool::shutdown`]): the agent is stopping.
    #[error("the reader pool is shut down")]
    Closed,
    /// The agent failed: the reader's worker could not be started or the request's job panicked.
    #[error("internal error of the worker of reader {reader:?}: {what}")]
    Internal {
        /// Reader name.
        reader: String,
        /// What failed.
        what: &'static str,
    },
}

impl PoolError {
    /// The national interface's error code (CARD-PROFILE §7): [`national::code`] for card errors;
    /// −11 (reader connection) for a busy reader, a closed pool and an internal failure; −14 (bad parameter) for an unknown
    /// session; −4 (no answer) for an expired one, as card-core codes a timeout.
    pub fn national_code(&self) -> i32 {
        match self {
            PoolError::Card(e) => national::code(e),
            PoolError::Busy { .. } | PoolError::Closed | PoolError::Internal { .. } => national::READER_CONNECTION,
            PoolError::NoSession { .. } => national::BAD_PARAMETER,
            PoolError::SessionExpired { .. } => national::NO_ANSWER,
        }
    }
}

/// The readers' workers, shared by every clone of the pool.
///
/// Cloning is cheap (an `Arc`); the worker threads end when the last clone is dropped (each after its
/// current job).
#[derive(Clone)]
pub struct ReaderPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let readers: Vec<String> =
            lock(&self.inner.workers).as_ref().map(|w| w.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("ReaderPool").field("config", &self.inner.shared.config).field("readers", &readers).finish()
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// Each reader's worker; `None` once shut down.
    workers: Mutex<Option<HashMap<String, Handle>>>,
    /// Each reader's last abandoned worker, while it may still be stuck in its call on the card.
    muted: Mutex<HashMap<String, Muted>>,
}

/// A worker given up on because its card did not answer in time ([`ReaderPool::abandon_worker`]).
#[derive(Clone)]
struct Muted {
    lane: Arc<Lane>,
    /// The watcher's count of changes on the reader then (`None`: no watcher, or a reader it does not report).
    changes: Option<u64>,
}

/// What a reader's worker thread and the requests waiting on it share: the deadline of the call on the card in
/// flight, and whether the worker was abandoned.
struct Lane {
    /// When this lane began: the deadlines count from it.
    epoch: Instant,
    /// The deadline of the call on the card in flight, in nanoseconds from `epoch` (at least 1); 0 between calls.
    deadline: AtomicU64,
    /// The longest wait for one call (a PIN typed on the pad may take longer).
    card_timeout: Duration,
    /// Set once a call was past its deadline: the worker no longer serves requests.
    abandoned: watch::Sender<bool>,
    /// Set when the worker thread has ended, its card released (by [`Ended`], on return and on unwinding).
    ended: watch::Sender<bool>,
}

impl Lane {
    fn new(card_timeout: Duration) -> Self {
        Lane {
            epoch: Instant::now(),
            deadline: AtomicU64::new(0),
            card_timeout,
            abandoned: watch::Sender::new(false),
            ended: watch::Sender::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `call` (one call on the card) stamped with its deadline: the card timeout, or `wait` if longer.
    fn call<T>(&self, wait: Option<Duration>, call: impl FnOnce() -> T) -> T {
        /// Clears the stamp when the call returns, or unwinds.
        struct Stamp<'a>(&'a AtomicU64);
        impl Drop for Stamp<'_> {
            fn drop(&mut self) {
                self.0.store(0, Ordering::Release);
            }
        }
        let limit = wait.map_or(self.card_timeout, |w| w.max(self.card_timeout));
        let limit = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        self.deadline.store(self.now().saturating_add(limit).max(1), Ordering::Release);
        let _stamp = Stamp(&self.deadline);
        call()
    }

    /// How long the call in flight has left before its deadline (zero when past it); `None` between calls.
    fn left(&self) -> Option<Duration> {
        match self.deadline.load(Ordering::Acquire) {
            0 => None,
            deadline => Some(Duration::from_nanos(deadline.saturating_sub(self.now()))),
        }
    }

    fn is_abandoned(&self) -> bool {
        *self.abandoned.borrow()
    }
}

/// What the workers share.
struct Shared {
    config: PoolConfig,
    keys: Arc<dyn SecurityModule + Send + Sync>,
    connector: Arc<dyn CardConnector>,
    /// What the reader watcher saw, when the pool has one.
    presence: Option<Presence>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// The kinds of two-step exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The basic information (`iReadCardBas_HSM_*`).
    Read,
    /// Items, the data given at Step 1 (the HTTP API's write steps).
    Write,
    /// Items of one DF under its read key (`iReadCard_HSM_*`).
    ReadItems,
    /// Items of one DF, the data given at Step 2 with the external cryptogram alone (`iWriteCard_HSM_*`).
    WriteItems,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::ReadItems => "read-items",
            Kind::WriteItems => "write-items",
        }
    }
}

/// What Step 2 produced.
enum Finished {
    Read(Box<BasicInfo>),
    Write,
    Items(ItemValues),
}

/// Step 2, sent to the worker holding the session (with the data of a [`Kind::WriteItems`]).
struct Answer {
    answer: String,
    data: Option<String>,
    reply: oneshot::Sender<Result<Finished, PoolError>>,
}

/// A two-step session, by id.
enum Session {
    /// Step 1 done; the worker waits for the answer on `answer`.
    Waiting { reader: String, kind: Kind, answer: mpsc::SyncSender<Answer> },
    /// The worker gave up waiting at this time (kept a while, to tell a late Step 2 from an unknown one).
    Expired { at: Instant },
}

/// How long an expired session id is remembered, as a multiple of the two-step timeout (at least a minute).
const EXPIRED_MEMORY_FACTOR: u32 = 10;

/// A job's state: a job starts only if its caller is still waiting for it.
struct Claim(AtomicU8);

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    /// The worker takes the job; `false` if the caller gave up first.
    fn start(&self) -> bool {
        self.0.compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    /// The caller gives up; `false` if the job has started already.
    fn abandon(&self) -> bool {
        self.0.compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Abandons a job that has not started when its caller's future is dropped (e.g. the HTTP client left).
struct AbandonOnDrop(Arc<Claim>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

type Work = Box<dyn FnOnce(&mut Worker) + Send>;

struct Job {
    claim: Arc<Claim>,
    work: Work,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks its lane's worker thread as ended when dropped, on return and on unwinding alike.
struct Ended(Arc<Lane>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.send_replace(true);
    }
}

/// What a request needs of a reader's worker: its queue and its state.
#[derive(Clone)]
struct Handle {
    queue: mpsc::Sender<Job>,
    lane: Arc<Lane>,
}

impl ReaderPool {
    /// A pool with no workers yet; `keys` computes the cryptograms of [`ReaderPool::run`] jobs (a `LocalKeys`,
    /// or `NoKeys` for an agent that leaves the cryptography to the back end through the two-step exchange).
    pub fn new(config: PoolConfig, keys: Arc<dyn SecurityModule + Send + Sync>) -> Self {
        ReaderPool::with_connector(config, keys, Arc::new(PcscReaders))
    }

    /// [`ReaderPool::new`] over another connector (in-process cards in tests). Each job checks its connection
    /// with pcscd first ([`CardLink::is_live`]).
    pub fn with_connector(
        config: PoolConfig,
        keys: Arc<dyn SecurityModule + Send + Sync>,
        connector: Arc<dyn CardConnector>,
    ) -> Self {
        ReaderPool::build(config, keys, connector, None)
    }

    /// [`ReaderPool::with_connector`] told of reader and card changes by the watcher behind `presence` (the events
    /// hub over the same connector's events): a job checks its connection with pcscd only after a change on its
    /// reader.
    pub fn watched(
        config: PoolConfig,
        keys: Arc<dyn SecurityModule + Send + Sync>,
        connector: Arc<dyn CardConnector>,
        presence: Presence,
    ) -> Self {
        ReaderPool::build(config, keys, connector, Some(presence))
    }

    fn build(
        config: PoolConfig,
        keys: Arc<dyn SecurityModule + Send + Sync>,
        connector: Arc<dyn CardConnector>,
        presence: Option<Presence>,
    ) -> Self {
        ReaderPool {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared { config, keys, connector, presence, sessions: Mutex::new(HashMap::new()) }),
                workers: Mutex::new(Some(HashMap::new())),
                muted: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.shared.config
    }

    /// Runs `job` on the card in the reader named `reader` (exact name), with exclusive use of it: jobs of one
    /// reader run one at a time in arrival order on that reader's worker thread (APDUs of two requests never
    /// interleave); a job that cannot start within [`PoolConfig::queue_wait`] fails with [`PoolError::Busy`]
    /// without touching the card.
    ///
    /// The card is connected before the job runs: no card is `Card(Transport(NoCard))` (national −2), an
    /// unknown reader `Card(Transport(NoReader))`. A card pulled during the job gives the job's card error
    /// (`card removed`); the next job connects to whatever card is in the reader then.
    pub async fn run<R, F>(&self, reader: &str, job: F) -> Result<R, PoolError>
    where
        F: FnOnce(&mut PooledCard, &dyn SecurityModule) -> Result<R, card_core::Error> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(reader, move |w: &mut Worker, reply: oneshot::Sender<Result<R, PoolError>>| {
            let _ = reply.send(w.run(job));
        })
        .await
    }

    /// Step 1 of the two-step read of the basic information (`iReadCardBas_HSM_Step1`): the card stays held
    /// until [`ReaderPool::read_step2`] with the ticket's session, or [`PoolConfig::two_step_timeout`].
    pub async fn read_step1(&self, reader: &str) -> Result<Ticket, PoolError> {
        self.submit(reader, |w: &mut Worker, reply| {
            w.two_step(Kind::Read, reply, |card| {
                let session = card.begin_two_step()?;
                Ok(Box::new(session) as Box<dyn TwoStep + '_>)
            });
        })
        .await
    }

    /// Step 2 of the two-step read: the back end's answer (`internal|external|`) for the ticket's Step 1; the
    /// basic information when the card accepts it (the card is checked with the answer's internal part).
    pub async fn read_step2(&self, reader: &str, session: &str, answer: String) -> Result<BasicInfo, PoolError> {
        match self.step2(reader, Kind::Read, session, answer, None).await? {
            Finished::Read(info) => Ok(*info),
            _ => Err(PoolError::Internal { reader: reader.to_owned(), what: "step 2 of another kind" }),
        }
    }

    /// Step 1 of a two-step write of items (one DF, one update key): `data` mirrors `address`
    /// (`SSSEEF06|张三|$` for `SSSEEF06|09|$`); the values are checked before the card's challenge is taken.
    pub async fn write_step1(&self, reader: &str, address: Address, data: String) -> Result<Ticket, PoolError> {
        self.submit(reader, move |w: &mut Worker, reply| {
            w.two_step(Kind::Write, reply, move |card| {
                let session = card.begin_two_step_write(&address, &data)?;
                Ok(Box::new(session) as Box<dyn TwoStep + '_>)
            });
        })
        .await
    }

    /// Step 2 of a two-step write: the back end's answer; the items are written when the card accepts it.
    pub async fn write_step2(&self, reader: &str, session: &str, answer: String) -> Result<(), PoolError> {
        match self.step2(reader, Kind::Write, session, answer, None).await? {
            Finished::Write => Ok(()),
            _ => Err(PoolError::Internal { reader: reader.to_owned(), what: "step 2 of another kind" }),
        }
    }

    /// Step 1 of a two-step read of items (`iReadCard_HSM_Step1`: one DF, one read key) after checking
    /// `card_info` (`卡识别码|卡号|`) against the card; items every card gives freely: national −2204.
    pub async fn read_items_step1(
        &self,
        reader: &str,
        card_info: String,
        address: Address,
    ) -> Result<Ticket, PoolError> {
        self.submit(reader, move |w: &mut Worker, reply| {
            w.two_step(Kind::ReadItems, reply, move |card| {
                card.read_basic(&card_core::security::NoKeys)?.check_card_info(&card_info)?;
                let session = card.begin_two_step_read_items(&address)?;
                Ok(Box::new(session) as Box<dyn TwoStep + '_>)
            });
        })
        .await
    }

    /// Step 2 of a two-step read of items: the external cryptogram (`C` or `C‖R4`); the values.
    pub async fn read_items_step2(&self, reader: &str, session: &str, answer: String) -> Result<ItemValues, PoolError> {
        match self.step2(reader, Kind::ReadItems, session, answer, None).await? {
            Finished::Items(values) => Ok(values),
            _ => Err(PoolError::Internal { reader: reader.to_owned(), what: "step 2 of another kind" }),
        }
    }

    /// Step 1 of a two-step write whose data comes with Step 2 (`iWriteCard_HSM_Step1`), after checking
    /// `card_info` against the card.
    pub async fn write_items_step1(
        &self,
        reader: &str,
        card_info: String,
        address: Address,
    ) -> Result<Ticket, PoolError> {
        self.submit(reader, move |w: &mut Worker, reply| {
            w.two_step(Kind::WriteItems, reply, move |card| {
                card.read_basic(&card_core::security::NoKeys)?.check_card_info(&card_info)?;
                let session = card.begin_two_step_write_of(&address, None)?;
                Ok(Box::new(session) as Box<dyn TwoStep + '_>)
            });
        })
        .await
    }

    /// Step 2 of `iWriteCard_HSM`: the data (mirroring Step 1's address, checked before the cryptogram is sent)
    /// and the external cryptogram.
    pub async fn write_items_step2(
        &self,
        reader: &str,
        session: &str,
        answer: String,
        data: String,
    ) -> Result<(), PoolError> {
        match self.step2(reader, Kind::WriteItems, session, answer, Some(data)).await? {
            Finished::Write => Ok(()),
            _ => Err(PoolError::Internal { reader: reader.to_owned(), what: "step 2 of another kind" }),
        }
    }

    /// Gives up a two-step session waiting for its Step 2 (the caller went away): the worker holding its card
    /// stops waiting at once and releases the card. A session answered, expired or unknown is left as it is.
    pub fn abandon(&self, session: &str) {
        let mut sessions = lock(&self.inner.shared.sessions);
        if let Some(Session::Waiting { .. }) = sessions.get(session) {
            // dropping the session's sender wakes the worker: its wait ends with the channel disconnected
            sessions.remove(session);
        }
    }

    /// Queues `work` on the reader's worker and waits for its reply: at most `queue_wait` for it to start, and
    /// while a call on the card is within its deadline.
    async fn submit<R, W>(&self, reader: &str, work: W) -> Result<R, PoolError>
    where
        W: FnOnce(&mut Worker, oneshot::Sender<Result<R, PoolError>>) + Send + 'static,
        R: Send + 'static,
    {
        let Handle { queue, lane } = self.worker(reader).await?;
        let (reply, mut result) = oneshot::channel();
        let claim = Arc::new(Claim(AtomicU8::new(PENDING)));
        let _abandon = AbandonOnDrop(claim.clone());
        let job = Job { claim: claim.clone(), work: Box::new(move |w: &mut Worker| work(w, reply)) };
        if queue.send(job).is_err() {
            return Err(PoolError::Internal { reader: reader.to_owned(), what: "the worker stopped" });
        }
        let waited = self.inner.shared.config.queue_wait;
        let busy = tokio::time::sleep(waited);
        tokio::pin!(busy);
        let mut waiting = true;
        loop {
            tokio::select! {
                outcome = &mut result => return self.answered(outcome, &lane, reader),
                () = &mut busy, if waiting => {
                    if claim.abandon() {
                        return Err(PoolError::Busy { reader: reader.to_owned(), waited });
                    }
                    // it started just now: wait for it to finish
                    waiting = false;
                }
                () = self.stuck(&lane, reader) => {
                    // a job still queued never starts; the one running is stuck on the card
                    claim.abandon();
                    return Err(no_answer(&lane));
                }
            }
        }
    }

    /// What the worker answered (its reply dropped: the job panicked, or the worker was abandoned).
    fn answered<R>(
        &self,
        outcome: Result<Result<R, PoolError>, oneshot::error::RecvError>,
        lane: &Lane,
        reader: &str,
    ) -> Result<R, PoolError> {
        match outcome {
            Ok(result) => result,
            Err(_) if lane.is_abandoned() => Err(no_answer(lane)),
            Err(_) => Err(PoolError::Internal { reader: reader.to_owned(), what: "the request's job failed" }),
        }
    }

    /// Completes when `lane`'s worker is abandoned: by this call, when a call on the card is past its deadline, or
    /// by another request's.
    async fn stuck(&self, lane: &Arc<Lane>, reader: &str) {
        let mut abandoned = lane.abandoned.subscribe();
        loop {
            if *abandoned.borrow_and_update() {
                return;
            }
            // between calls, look again after a card timeout: a call begun meanwhile has at most that long
            let wait = lane.left().unwrap_or(lane.card_timeout);
            tokio::select! {
                // the sender lives as long as the lane
                _ = abandoned.changed() => {}
                () = tokio::time::sleep(wait) => {
                    if lane.left() == Some(Duration::ZERO) {
                        self.abandon_worker(lane, reader);
                        return;
                    }
                }
            }
        }
    }

    /// Gives up `lane`'s worker, whose call on the card is past its deadline: its requests fail. The next request
    /// for the reader starts a new worker (a new PC/SC context and connection) once the stuck call has returned or
    /// the watcher has seen the card change ([`ReaderPool::after_mute`]).
    fn abandon_worker(&self, lane: &Arc<Lane>, reader: &str) {
        if lane.abandoned.send_replace(true) {
            return;
        }
        tracing::warn!(reader, waited = ?lane.card_timeout, "no answer from the card in time; its worker is abandoned");
        let changes = self.inner.shared.presence.as_ref().and_then(|p| p.changes(reader));
        lock(&self.inner.muted).insert(reader.to_owned(), Muted { lane: lane.clone(), changes });
        if let Some(workers) = lock(&self.inner.workers).as_mut() {
            if workers.get(reader).is_some_and(|w| Arc::ptr_eq(&w.lane, lane)) {
                workers.remove(reader);
            }
        }
    }

    /// Before a new worker is started for `reader`: if the last one was abandoned on a card that did not answer and
    /// may still be stuck in that call, waits for the call to return — as long as a call of the new worker would be
    /// waited for — unless the watcher saw the card change since. Still stuck: the same `NoAnswer`, and no second
    /// thread is left stuck on the same card. However many requests come while a mute card stays in the reader, at
    /// most one thread (one PC/SC context of pcscd's limited number) is held by it.
    async fn after_mute(&self, reader: &str) -> Result<(), PoolError> {
        let Some(muted) = lock(&self.inner.muted).get(reader).cloned() else { return Ok(()) };
        let now = self.inner.shared.presence.as_ref().and_then(|p| p.changes(reader));
        let changed = muted.changes.is_some() && now.is_some() && now != muted.changes;
        if !changed {
            let mut ended = muted.lane.ended.subscribe();
            // the sender lives as long as the lane
            if tokio::time::timeout(muted.lane.card_timeout, ended.wait_for(|e| *e)).await.is_err() {
                return Err(no_answer(&muted.lane));
            }
        }
        let mut all = lock(&self.inner.muted);
        if all.get(reader).is_some_and(|m| Arc::ptr_eq(&m.lane, &muted.lane)) {
            all.remove(reader);
        }
        Ok(())
    }

    /// Stops every worker after the jobs already queued and waits until each has released its card
    /// (`SCardDisconnect`). Later requests fail with [`PoolError::Closed`]. For a graceful shutdown of the agent,
    /// and for tests that remove the card afterwards: vpcd may miss the next insertion when a card is removed
    /// while a handle to it is being closed.
    pub async fn shutdown(&self) {
        let workers = lock(&self.inner.workers).take().unwrap_or_default();
        for (_, handle) in workers {
            let mut ended = handle.lane.ended.subscribe();
            drop(handle);
            // an error means the lane, and so the thread, is gone as well
            let _ = ended.wait_for(|e| *e).await;
        }
    }

    /// The job queue and state of `reader`'s worker, starting the worker if the reader is new (and known to the
    /// connector).
    async fn worker(&self, reader: &str) -> Result<Handle, PoolError> {
        match lock(&self.inner.workers).as_ref() {
            None => return Err(PoolError::Closed),
            Some(workers) => {
                if let Some(handle) = workers.get(reader) {
                    return Ok(handle.clone());
                }
            }
        }
        // a thread per name only for readers that exist (the watcher's, or pcscd's): a request cannot make the agent
        // spawn threads at will
        let watched = self.inner.shared.presence.as_ref().and_then(|p| p.changes(reader)).is_some();
        if !watched {
            let connector = self.inner.shared.connector.clone();
            let readers = tokio::task::spawn_blocking(move || connector.reader_names())
                .await
                .map_err(|_| PoolError::Internal { reader: reader.to_owned(), what: "listing the readers failed" })?
                .map_err(card_core::Error::from)?;
            if !readers.iter().any(|r| r == reader) {
                return Err(card_core::Error::from(TransportError::NoReader(reader.to_owned())).into());
            }
        }
        self.after_mute(reader).await?;
        let mut guard = lock(&self.inner.workers);
        let workers = guard.as_mut().ok_or(PoolError::Closed)?;
        if let Some(handle) = workers.get(reader) {
            return Ok(handle.clone());
        }
        let (queue, jobs) = mpsc::channel();
        let lane = Arc::new(Lane::new(self.inner.shared.config.card_timeout));
        let worker = Worker {
            reader: reader.to_owned(),
            shared: self.inner.shared.clone(),
            lane: lane.clone(),
            card: None,
            checked: None,
        };
        let ended = Ended(lane.clone());
        std::thread::Builder::new()
            .name(format!("reader {reader}"))
            .spawn(move || {
                // dropped after `serve` has dropped the worker and its card
                let _ended = ended;
                serve(worker, jobs);
            })
            .map_err(|_| PoolError::Internal { reader: reader.to_owned(), what: "cannot start the worker thread" })?;
        let handle = Handle { queue, lane };
        workers.insert(reader.to_owned(), handle.clone());
        Ok(handle)
    }

    /// Hands Step 2 to the worker holding the session and waits for the outcome.
    async fn step2(
        &self,
        reader: &str,
        kind: Kind,
        session: &str,
        answer: String,
        data: Option<String>,
    ) -> Result<Finished, PoolError> {
        let shared = &self.inner.shared;
        let lane = lock(&self.inner.workers).as_ref().and_then(|w| w.get(reader)).map(|w| w.lane.clone());
        let no_session = || PoolError::NoSession { reader: reader.to_owned(), kind: kind.name() };
        let expired = PoolError::SessionExpired { timeout: shared.config.two_step_timeout };
        let (reply, mut outcome) = oneshot::channel();
        {
            let mut sessions = lock(&shared.sessions);
            match sessions.get(session) {
                Some(Session::Waiting { reader: r, kind: k, .. }) if r == reader && *k == kind => {}
                Some(Session::Expired { .. }) => return Err(expired),
                _ => return Err(no_session()),
            }
            // claimed under the lock: the worker, timing out meanwhile, finds the answer in its channel
            let Some(Session::Waiting { answer: to_worker, .. }) = sessions.remove(session) else {
                return Err(no_session());
            };
            if to_worker.try_send(Answer { answer, data, reply }).is_err() {
                return Err(expired);
            }
        }
        // the worker holding the session is the reader's current one, unless it was abandoned meanwhile
        let Some(lane) = lane else {
            return outcome
                .await
                .map_err(|_| PoolError::Internal { reader: reader.to_owned(), what: "step 2 failed" })?;
        };
        tokio::select! {
            outcome = &mut outcome => self.answered(outcome, &lane, reader),
            () = self.stuck(&lane, reader) => Err(no_answer(&lane)),
        }
    }
}

/// A two-step exchange in progress on the card, whatever its kind.
trait TwoStep {
    fn step1(&self) -> String;
    fn key(&self) -> String;
    fn finish(self: Box<Self>, answer: &str, data: Option<&str>) -> Result<Finished, card_core::Error>;
}

impl TwoStep for TwoStepRead<'_> {
    fn step1(&self) -> String {
        TwoStepRead::step1(self)
    }
    fn key(&self) -> String {
        "RKSSSE".to_owned()
    }
    fn finish(self: Box<Self>, answer: &str, _: Option<&str>) -> Result<Finished, card_core::Error> {
        TwoStepRead::finish(*self, answer).map(|info| Finished::Read(Box::new(info)))
    }
}

impl TwoStep for TwoStepWrite<'_> {
    fn step1(&self) -> String {
        TwoStepWrite::step1(self)
    }
    fn key(&self) -> String {
        TwoStepWrite::key(self)
    }
    fn finish(self: Box<Self>, answer: &str, data: Option<&str>) -> Result<Finished, card_core::Error> {
        match data {
            Some(data) => TwoStepWrite::finish_external(*self, data, answer),
            None => TwoStepWrite::finish(*self, answer),
        }
        .map(|()| Finished::Write)
    }
}

impl TwoStep for TwoStepReadItems<'_> {
    fn step1(&self) -> String {
        TwoStepReadItems::step1(self)
    }
    fn key(&self) -> String {
        TwoStepReadItems::key(self)
    }
    fn finish(self: Box<Self>, answer: &str, _: Option<&str>) -> Result<Finished, card_core::Error> {
        TwoStepReadItems::finish(*self, answer).map(Finished::Items)
    }
}

/// Whether an error means the connection to the card must be made again ([`card_core::Error::is_link_lost`]).
fn link_lost(e: &card_core::Error) -> bool {
    e.is_link_lost()
}

/// A reader's worker thread: runs the queue's jobs until the pool is dropped or shut down, or the worker is
/// abandoned; the card is released before it returns.
fn serve(mut worker: Worker, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if worker.lane.is_abandoned() {
            break;
        }
        // a caller that gave up (busy, or gone) leaves the card untouched
        if !job.claim.start() {
            continue;
        }
        // a job that panicked has dropped its reply: its caller learns it from that
        let work = job.work;
        if catch_unwind(AssertUnwindSafe(|| work(&mut worker))).is_err() {
            tracing::error!(reader = %worker.reader, "a card job panicked; its connection is dropped");
            worker.card = None;
        }
    }
    if worker.lane.is_abandoned() {
        tracing::info!(reader = %worker.reader, "the abandoned worker's call on the card returned; card released");
    }
    worker.card = None;
    tracing::debug!(reader = %worker.reader, "reader worker stopped");
}

/// A reader's worker: its card and what is known of it.
struct Worker {
    reader: String,
    shared: Arc<Shared>,
    lane: Arc<Lane>,
    card: Option<PooledCard>,
    /// The watcher's count of changes on the reader when the connection was last checked or made.
    checked: Option<u64>,
}

impl Worker {
    /// The card, connected again if the one known is gone (or none was): checked with pcscd only when the watcher
    /// saw a change on the reader since the last check (or there is no watcher).
    fn card(&mut self) -> Result<&mut PooledCard, card_core::Error> {
        // read before the check: a change seen after it makes the next job check again
        let changes = self.shared.presence.as_ref().and_then(|p| p.changes(&self.reader));
        let quiet = changes.is_some() && changes == self.checked;
        let card = match self.card.take() {
            Some(card) if quiet || card.transport().is_live() => card,
            _ => {
                let transport = PooledLink::connect(&self.shared.connector, &self.reader, &self.lane)?;
                let config = &self.shared.config;
                SocialSecurityCard::with_profile(transport, config.profile.clone())
                    .with_terminal(config.terminal.clone())
            }
        };
        self.checked = changes;
        let card = self.card.insert(card);
        card.transport_mut().job_starts();
        Ok(card)
    }

    /// Forgets the connection after an error that lost it.
    fn after(&mut self, e: &card_core::Error) {
        if link_lost(e) {
            self.card = None;
        }
    }

    fn run<R>(
        &mut self,
        job: impl FnOnce(&mut PooledCard, &dyn SecurityModule) -> Result<R, card_core::Error>,
    ) -> Result<R, PoolError> {
        let keys = self.shared.keys.clone();
        let result = self.card().and_then(|card| job(card, &*keys));
        if let Err(e) = &result {
            self.after(e);
        }
        Ok(result?)
    }

    /// Step 1 on the card, the ticket to the caller, then the wait for Step 2 (holding the card).
    fn two_step<B>(&mut self, kind: Kind, reply: oneshot::Sender<Result<Ticket, PoolError>>, begin: B)
    where
        B: for<'c> FnOnce(&'c mut PooledCard) -> Result<Box<dyn TwoStep + 'c>, card_core::Error>,
    {
        let shared = self.shared.clone();
        let reader = self.reader.clone();
        let lost = match self.card() {
            Ok(card) => hold(card, &shared, &reader, kind, reply, begin),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                true
            }
        };
        if lost {
            self.card = None;
        }
    }
}

/// The error of a request whose worker was abandoned: its card did not answer within the card timeout.
fn no_answer(lane: &Lane) -> PoolError {
    PoolError::Card(TransportError::NoAnswer { waited: lane.card_timeout }.into())
}

/// A fresh session id: 128 random bits, hex.
fn new_session_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Runs a two-step exchange on `card`; whether the connection was lost.
fn hold<B>(
    card: &mut PooledCard,
    shared: &Shared,
    reader: &str,
    kind: Kind,
    reply: oneshot::Sender<Result<Ticket, PoolError>>,
    begin: B,
) -> bool
where
    B: for<'c> FnOnce(&'c mut PooledCard) -> Result<Box<dyn TwoStep + 'c>, card_core::Error>,
{
    let exchange = match begin(card) {
        Ok(exchange) => exchange,
        Err(e) => {
            let lost = link_lost(&e);
            let _ = reply.send(Err(e.into()));
            return lost;
        }
    };
    let timeout = shared.config.two_step_timeout;
    let id = new_session_id();
    let (to_worker, answers) = mpsc::sync_channel(1);
    {
        let mut sessions = lock(&shared.sessions);
        let memory = timeout.saturating_mul(EXPIRED_MEMORY_FACTOR).max(Duration::from_secs(60));
        sessions.retain(|_, s| !matches!(s, Session::Expired { at } if at.elapsed() > memory));
        sessions.insert(id.clone(), Session::Waiting { reader: reader.to_owned(), kind, answer: to_worker });
    }
    let ticket = Ticket { session: id.clone(), step1: exchange.step1(), key: exchange.key() };
    if reply.send(Ok(ticket)).is_err() {
        // the caller left before the ticket came: nobody can answer it
        lock(&shared.sessions).remove(&id);
        return false;
    }
    let answer = match answers.recv_timeout(timeout) {
        Ok(answer) => answer,
        Err(_) => {
            let mut sessions = lock(&shared.sessions);
            if let Some(Session::Waiting { .. }) = sessions.get(&id) {
                sessions.insert(id, Session::Expired { at: Instant::now() });
                tracing::info!(reader, kind = kind.name(), "two-step session expired; card released");
                return false;
            }
            drop(sessions);
            // Step 2 claimed the session under the lock just before: its answer is in the channel
            match answers.try_recv() {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::info!(reader, kind = kind.name(), "two-step session abandoned; card released");
                    return false;
                }
            }
        }
    };
    let result = exchange.finish(&answer.answer, answer.data.as_deref());
    let lost = matches!(&result, Err(e) if link_lost(e));
    let _ = answer.reply.send(result.map_err(PoolError::from));
    lost
}
