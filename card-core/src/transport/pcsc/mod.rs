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
//! Modules: the transport (here), [`readers`] (reader selection, listing, waiting for a card) and [`watcher`]
//! (reader and card events from `SCardGetStatusChange`).

mod readers;
mod watcher;

use std::ffi::CString;
use std::fmt;
use std::time::{Duration, Instant};

use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

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
