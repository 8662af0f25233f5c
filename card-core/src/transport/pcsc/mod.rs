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
//!
//! # The card timeout
//!
//! pcscd waits on the reader for as long as the card takes: a mute card (or one that answers with 0 bytes through
//! vsmartcard-vpcd) blocks `SCardTransmit` until it is removed, and pcsc-lite holds the context's lock meanwhile,
//! so not even `SCardDisconnect` gets through. Every PC/SC call on the card is therefore made by the transport's
//! own thread (the *owner*, which holds the context, the card handle and the transaction), and the transport waits
//! for its answer at most [`PcscTransport::card_timeout`] ([`DEFAULT_CARD_TIMEOUT`] unless set). When that passes,
//! the call fails with [`TransportError::NoAnswer`] and the owner is abandoned: when its stuck call finally returns
//! (the card removed, pcscd restarted), it ends its transaction resetting the card and disconnects. The next
//! transaction starts a new owner with a new context and connection.
//!
//! Modules: the transport (here), [`readers`] (reader selection, listing, waiting for a card) and [`watcher`]
//! (reader and card events from `SCardGetStatusChange`).

mod direct;
mod pinpad;
mod readers;
mod watcher;

use std::ffi::CString;
use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

pub use direct::DirectPcscTransport;
pub use readers::{
    list_readers, reader_name, reader_states, wait_for_card, wait_for_removal, ReaderSelector, ReaderStatus,
};
pub use watcher::{ReaderChange, ReaderWatcher, WatchCanceller};

use super::{CardTransaction, Transport, TransportError};
use crate::apdu::Sensitivity;
use readers::resolve;

/// Maps a PC/SC error to what it means for the caller.
/// What pcsc-lite answers on a handle or context whose pcscd went away (stopped or restarted): besides
/// `NoService` and `InvalidHandle`, a client whose socket to the old pcscd is gone has been seen to get
/// `SecurityViolation` (and the communication errors are of the same kind). The cure is the same: a new context.
pub(crate) fn service_lost(e: pcsc::Error) -> bool {
    use pcsc::Error as E;
    matches!(
        e,
        E::InvalidHandle | E::NoService | E::ServiceStopped | E::SecurityViolation | E::CommError | E::InternalError
    )
}

pub(crate) fn map_err(e: pcsc::Error, reader: &str) -> TransportError {
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

pub(crate) fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(|e| map_err(e, ""))
}

pub(crate) fn readers_of(ctx: &Context) -> Result<Vec<String>, TransportError> {
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names.into_iter().map(|n| n.to_string_lossy().into_owned()).collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_err(e, "")),
    }
}

pub(crate) fn cstring(name: &str) -> Result<CString, TransportError> {
    CString::new(name).map_err(|_| TransportError::NoReader(name.to_owned()))
}

/// How long a freshly inserted card may stay unpowered or mute before a connect gives up.
const POWER_UP_GRACE: Duration = Duration::from_millis(1000);

/// The card timeout unless set otherwise: the longest wait for one PC/SC call on the card (connecting, beginning a
/// transaction, one APDU). The slowest command of the modeled card takes well under a second.
pub const DEFAULT_CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`PcscTransport::is_live`] waits for the owner's answer at most.
const LIVENESS_WAIT: Duration = Duration::from_secs(2);

/// A card in a PC/SC reader.
pub struct PcscTransport {
    reader: String,
    atr: Vec<u8>,
    card_timeout: Duration,
    /// The thread that makes the PC/SC calls; `None` after it was abandoned (a new one starts at the next
    /// transaction).
    owner: Option<OwnerLink>,
}

/// The way to an owner thread, and the sign that it has let the card go.
struct OwnerLink {
    requests: mpsc::Sender<Request>,
    /// Closed when the owner thread has ended (card disconnected, context released).
    ended: mpsc::Receiver<()>,
}

impl Drop for PcscTransport {
    /// Lets the owner disconnect from the card and waits for it (at most the card timeout), so that the card is
    /// released when the transport is gone, as with a direct `SCardDisconnect`: vpcd has been seen to miss the next
    /// insertion when a card is removed while a handle to it is being closed. An abandoned owner is not waited for.
    fn drop(&mut self) {
        if let Some(OwnerLink { requests, ended }) = self.owner.take() {
            drop(requests);
            let _ = ended.recv_timeout(self.card_timeout);
        }
    }
}

impl fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .field("atr", &hex::encode_upper(&self.atr))
            .field("card_timeout", &self.card_timeout)
            .finish()
    }
}

/// Where the owner sends the outcome of a call.
type Reply<T> = mpsc::SyncSender<Result<T, TransportError>>;

/// A call for the owner thread.
enum Request {
    /// Connect if needed; the ATR.
    Connect(Reply<Vec<u8>>),
    /// Whether the handle still reaches the card it was made to.
    Live(mpsc::SyncSender<bool>),
    /// Connect if needed and begin a transaction; the ATR. The owner then serves `Transmit`, `Reset` and `End`.
    Begin(Reply<Vec<u8>>),
    /// One APDU within the transaction.
    Transmit(Zeroizing<Vec<u8>>, Reply<Vec<u8>>),
    /// A warm reset within the transaction; the new ATR.
    Reset(Reply<Vec<u8>>),
    /// `SCardControl` within the transaction: the control code and its input (a PIN structure: no PIN in it, but
    /// zeroized all the same).
    Control(pcsc::ffi::DWORD, Zeroizing<Vec<u8>>, Reply<Vec<u8>>),
    /// Ends the transaction, leaving the card as it is.
    End,
}

impl PcscTransport {
    /// Connects (shared mode, T=0 or T=1) to the card in the selected reader, with the [`DEFAULT_CARD_TIMEOUT`].
    pub fn connect(selector: &ReaderSelector) -> Result<Self, TransportError> {
        PcscTransport::connect_with_timeout(selector, DEFAULT_CARD_TIMEOUT)
    }

    /// Connects to the card in the selected reader; every PC/SC call on the card may take at most `card_timeout`
    /// (see [the module documentation](self)).
    pub fn connect_with_timeout(selector: &ReaderSelector, card_timeout: Duration) -> Result<Self, TransportError> {
        let ctx = establish()?;
        let reader = resolve(&ctx, selector)?;
        let mut t = PcscTransport { reader, atr: Vec::new(), card_timeout, owner: None };
        t.start(Some(ctx))?;
        t.atr = t.call(Request::Connect)?;
        Ok(t)
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The longest wait for one PC/SC call on the card.
    pub fn card_timeout(&self) -> Duration {
        self.card_timeout
    }

    /// Whether this connection still reaches the card it was made to: `SCardStatus` on the handle, no APDU.
    ///
    /// `false` once that card was removed (even if another card was inserted since), the reader vanished or
    /// pcscd restarted, or a call on the card timed out: connect again then. A reset by another application still
    /// counts as live (the next transaction reconnects by itself).
    pub fn is_live(&self) -> bool {
        let Some(owner) = &self.owner else { return false };
        let (reply, answer) = mpsc::sync_channel(1);
        if owner.requests.send(Request::Live(reply)).is_err() {
            return false;
        }
        answer.recv_timeout(LIVENESS_WAIT.min(self.card_timeout)).unwrap_or(false)
    }

    /// Starts an owner thread over `ctx` (a new context if `None`).
    fn start(&mut self, ctx: Option<Context>) -> Result<(), TransportError> {
        let (requests, calls) = mpsc::channel();
        let (done, ended) = mpsc::sync_channel::<()>(0);
        let owner = Owner::new(ctx, self.reader.clone());
        std::thread::Builder::new()
            .name(format!("pcsc {}", self.reader))
            .spawn(move || {
                owner.serve(&calls);
                drop(done);
            })
            .map_err(TransportError::Io)?;
        self.owner = Some(OwnerLink { requests, ended });
        Ok(())
    }

    /// Gives `request` to the owner and waits for its outcome at most the card timeout; abandons the owner if it
    /// does not answer in time.
    fn call<T>(&mut self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, TransportError> {
        self.call_waiting(self.card_timeout, request)
    }

    /// [`Self::call`] waiting at most `waited` (a PIN typed on the reader's pad takes longer than an APDU).
    fn call_waiting<T>(
        &mut self,
        waited: Duration,
        request: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, TransportError> {
        let Some(owner) = &self.owner else { return Err(TransportError::NoAnswer { waited }) };
        let (reply, outcome) = mpsc::sync_channel(1);
        if owner.requests.send(request(reply)).is_err() {
            self.owner = None;
            return Err(owner_gone());
        }
        match outcome.recv_timeout(waited) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(reader = %self.reader, ?waited, "no answer from the card in time; connection abandoned");
                self.owner = None;
                Err(TransportError::NoAnswer { waited })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.owner = None;
                Err(owner_gone())
            }
        }
    }
}

fn owner_gone() -> TransportError {
    TransportError::Io(std::io::Error::other("the PC/SC thread of the connection ended"))
}

impl Transport for PcscTransport {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        if self.owner.is_none() {
            self.start(None)?;
        }
        self.atr = self.call(Request::Begin)?;
        Ok(Box::new(PcscTx { t: self }))
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn name(&self) -> &str {
        &self.reader
    }
}

/// A transaction as the caller holds it: every call goes to the owner, which holds the PC/SC transaction.
struct PcscTx<'a> {
    t: &'a mut PcscTransport,
}

impl CardTransaction for PcscTx<'_> {
    fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
        let command = Zeroizing::new(command.to_vec());
        self.t.call(|reply| Request::Transmit(command, reply))
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        let atr = self.t.call(Request::Reset)?;
        self.t.atr.clone_from(&atr);
        Ok(atr)
    }

    fn atr(&self) -> &[u8] {
        &self.t.atr
    }

    fn control(&mut self, control: crate::transport::Control<'_>) -> Result<Vec<u8>, TransportError> {
        pinpad::control(self.t, control)
    }
}

impl Drop for PcscTx<'_> {
    fn drop(&mut self) {
        if let Some(owner) = &self.t.owner {
            // the owner is gone if this fails: nothing to end
            let _ = owner.requests.send(Request::End);
        }
    }
}

/// The owner thread's state: the context, the card handle, and whether it must be re-established.
struct Owner {
    ctx: Option<Context>,
    reader: String,
    card: Option<Card>,
    atr: Vec<u8>,
    /// The card handle must be re-established before the next transaction.
    stale: bool,
    /// Where answers are received: allocated once per connection (an extended APDU's 64 KiB), the part an answer
    /// used wiped right after it is copied out, all of it when the connection ends.
    buf: Zeroizing<Vec<u8>>,
}

impl Owner {
    /// An owner of no card yet, over `ctx` (a new context at the first connection if `None`).
    fn new(ctx: Option<Context>, reader: String) -> Self {
        Owner {
            ctx,
            reader,
            card: None,
            atr: Vec::new(),
            stale: true,
            buf: Zeroizing::new(vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED]),
        }
    }

    /// Serves calls until the transport is dropped or abandons this owner; then lets the card go (reset).
    fn serve(mut self, calls: &mpsc::Receiver<Request>) {
        while let Ok(request) = calls.recv() {
            match request {
                Request::Connect(reply) => {
                    let _ = reply.send(self.reconnect().map(|()| self.atr.clone()));
                }
                Request::Live(reply) => {
                    let _ = reply.send(self.is_live());
                }
                Request::Begin(reply) => self.transaction(reply, calls),
                Request::Transmit(_, reply) | Request::Reset(reply) | Request::Control(_, _, reply) => {
                    let _ = reply.send(Err(TransportError::Unsupported("a card command outside a transaction")));
                }
                Request::End => {}
            }
        }
        // `Card`'s drop disconnects resetting the card, then the context is released
        self.card = None;
    }

    fn is_live(&self) -> bool {
        match &self.card {
            Some(card) => matches!(card.status2_owned(), Ok(_) | Err(pcsc::Error::ResetCard)),
            None => false,
        }
    }

    /// Re-establishes what is needed: the context if pcscd restarted, then the card handle (reconnected where it
    /// is, or made anew). A handle that could not be re-established is dropped: the next attempt connects anew.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        if self.ctx.as_ref().is_none_or(|ctx| ctx.is_valid().is_err()) {
            self.card = None;
            self.ctx = Some(establish()?);
        }
        let Owner { ctx, card, reader, .. } = self;
        let atr = match card.as_mut() {
            Some(card) => reconnect_in_place(ctx, card, reader),
            None => connect_anew(ctx, reader).and_then(|new| card_atr(card.insert(new), reader)),
        };
        match atr {
            Ok(atr) => {
                self.atr = atr;
                self.stale = false;
                Ok(())
            }
            Err(e) => {
                self.card = None;
                Err(e)
            }
        }
    }

    /// Begins a transaction (reconnecting first if needed), answers `begun`, and serves the transaction's calls
    /// until it ends; a transaction abandoned by the transport ends resetting the card.
    fn transaction(&mut self, begun: Reply<Vec<u8>>, calls: &mpsc::Receiver<Request>) {
        let mut tx = match self.open() {
            Ok(tx) => tx,
            Err(e) => {
                let _ = begun.send(Err(e));
                return;
            }
        };
        let _ = begun.send(Ok(tx.atr.clone()));
        loop {
            match calls.recv() {
                Ok(Request::Transmit(command, reply)) => {
                    let _ = reply.send(tx.transmit(&command));
                }
                Ok(Request::Reset(reply)) => {
                    let _ = reply.send(tx.reset());
                }
                Ok(Request::Control(code, input, reply)) => {
                    let _ = reply.send(tx.control(code, &input));
                }
                Ok(Request::End) => return,
                Ok(Request::Connect(reply) | Request::Begin(reply)) => {
                    let _ = reply.send(Err(TransportError::Unsupported("a transaction is open")));
                }
                Ok(Request::Live(reply)) => {
                    let _ = reply.send(true);
                }
                Err(_) => {
                    // abandoned after a timeout: what the card did with the last command is unknown
                    let _ = tx.tx.end(Disposition::ResetCard);
                    return;
                }
            }
        }
    }

    /// Begins a transaction on this thread (reconnecting first if needed). A reset or a pcscd restart since the
    /// last operation shows up as the transaction begins and is answered by a reconnect and a second attempt:
    /// nothing of the new operation has been sent yet.
    fn open(&mut self) -> Result<OwnedTx<'_>, TransportError> {
        if self.stale || self.card.is_none() {
            self.reconnect()?;
        }
        let Owner { ctx, card, atr, stale, reader, buf } = self;
        let Some(card) = card.as_mut() else {
            return Err(TransportError::NoCard(reader.clone()));
        };
        // `transaction2` gives the card back on an error: it can be reconnected in place and tried again
        let card = match card.transaction2() {
            Ok(tx) => return Ok(OwnedTx { tx, atr, stale, reader, buf }),
            Err((card, e)) if e == pcsc::Error::ResetCard || service_lost(e) => {
                match reconnect_in_place(ctx, card, reader) {
                    Ok(new_atr) => {
                        *atr = new_atr;
                        card
                    }
                    Err(e) => {
                        *stale = true;
                        return Err(e);
                    }
                }
            }
            Err((_, pcsc::Error::RemovedCard)) => {
                *stale = true;
                return Err(TransportError::NoCard(reader.clone()));
            }
            Err((_, e)) => return Err(map_err(e, reader)),
        };
        match card.transaction() {
            Ok(tx) => Ok(OwnedTx { tx, atr, stale, reader, buf }),
            Err(e) => {
                *stale = true;
                Err(map_err(e, reader))
            }
        }
    }
}

/// Connects to the card in the reader `name`; a card that has just been inserted may still be powering up: it is
/// given a moment.
fn connect_fresh(ctx: &Context, name: &std::ffi::CStr) -> Result<Card, pcsc::Error> {
    let deadline = Instant::now() + POWER_UP_GRACE;
    loop {
        match ctx.connect(name, ShareMode::Shared, Protocols::ANY) {
            Err(pcsc::Error::UnpoweredCard | pcsc::Error::UnresponsiveCard) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Reconnects `card` where it is, after a reset (`SCardReconnect`) or a pcscd restart (a new context in `ctx` and
/// a new connection); the card's ATR.
fn reconnect_in_place(ctx: &mut Option<Context>, card: &mut Card, reader: &str) -> Result<Vec<u8>, TransportError> {
    match card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard) {
        Ok(()) => {}
        Err(e) if service_lost(e) => *card = reestablish(ctx, reader)?,
        Err(e) => return Err(map_err(e, reader)),
    }
    card_atr(card, reader)
}

/// A new connection to the card in `reader` on `ctx`, or on a new context if pcscd restarted.
fn connect_anew(ctx: &mut Option<Context>, reader: &str) -> Result<Card, TransportError> {
    let name = cstring(reader)?;
    match ctx.as_ref().map(|ctx| connect_fresh(ctx, &name)) {
        Some(Ok(card)) => Ok(card),
        Some(Err(e)) if !service_lost(e) => Err(map_err(e, reader)),
        _ => reestablish(ctx, reader),
    }
}

/// A new context in `ctx` (pcscd restarted) and a new connection on it.
fn reestablish(ctx: &mut Option<Context>, reader: &str) -> Result<Card, TransportError> {
    let ctx = ctx.insert(establish()?);
    connect_fresh(ctx, &cstring(reader)?).map_err(|e| map_err(e, reader))
}

/// The ATR of the card `card` is connected to.
fn card_atr(card: &Card, reader: &str) -> Result<Vec<u8>, TransportError> {
    Ok(card.status2_owned().map_err(|e| map_err(e, reader))?.atr().to_vec())
}

/// The PC/SC transaction, on the thread that makes the calls (the owner, or a [`DirectPcscTransport`]'s caller).
struct OwnedTx<'a> {
    tx: pcsc::Transaction<'a>,
    atr: &'a mut Vec<u8>,
    stale: &'a mut bool,
    reader: &'a str,
    buf: &'a mut [u8],
}

impl OwnedTx<'_> {
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

    /// The answer copied out of the receive buffer, and the buffer wiped: the part the answer used (only that was
    /// written; an answer may carry key-derived data), all of it after an error.
    fn received(&mut self, answer: Result<Vec<u8>, pcsc::Error>) -> Result<Vec<u8>, TransportError> {
        match answer {
            Ok(answer) => {
                self.buf[..answer.len()].zeroize();
                Ok(answer)
            }
            Err(e) => {
                self.buf.zeroize();
                Err(self.fail(e))
            }
        }
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = self.tx.transmit(command, self.buf).map(<[u8]>::to_vec);
        let resp = self.received(answer)?;
        // an empty answer may be a vanished card; a 1-byte one is the card's own (malformed) answer, for the engine
        if resp.is_empty() {
            return Err(self.diagnose_empty_response());
        }
        Ok(resp)
    }

    /// `SCardControl` on the card's handle within the transaction.
    fn control(&mut self, code: pcsc::ffi::DWORD, input: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = self.tx.control(code, input, self.buf).map(<[u8]>::to_vec);
        self.received(answer)
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
}

/// How long to watch the reader after an empty response before calling the card mute.
const REMOVAL_GRACE: Duration = Duration::from_millis(1500);
