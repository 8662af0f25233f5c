//! The transport seam: everything that talks to a card goes through [`Transport`].
//!
//! Shape (after `card-backend`): a [`Transport`] is a connected card; each logical
//! operation opens one exclusive [`CardTransaction`] with [`Transport::transaction`],
//! which borrows the transport mutably, so two operations can never interleave their
//! APDUs. Implementations:
//!
//! - `PcscTransport` (feature `pcsc`): a reader through pcscd;
//! - the in-process card of `card-sim`;
//! - [`RecordingTransport`]: wraps any transport, counts APDUs and bytes and keeps a transcript;
//! - [`ReplayTransport`]: plays a recorded transcript and fails on the first deviation.
//!
//! The reader's PIN pad (PC/SC part 10) is reached through [`CardTransaction::control`]: see [`pinpad`].
//!
//! T=0 details (`61xx` GET RESPONSE, `6Cxx` resend) are handled once, by [`exchange`],
//! below secure messaging and above the raw transmit.

mod engine;
#[cfg(feature = "pcsc")]
mod pcsc;
pub mod pinpad;
mod recording;
mod replay;

use std::fmt;

pub use engine::{exchange, CardTransactionExt, ExchangeError, MAX_GET_RESPONSE_ROUNDS, MAX_RESPONSE_LEN};
#[cfg(feature = "pcsc")]
pub use pcsc::{
    list_readers, reader_name, reader_states, wait_for_card, wait_for_removal, DirectPcscTransport, PcscTransport,
    ReaderChange, ReaderSelector, ReaderStatus, ReaderWatcher, WatchCanceller, DEFAULT_CARD_TIMEOUT,
};
pub use pinpad::{Control, Feature, PinEntryError, ReaderFeatures};
pub use recording::{Counters, Exchange, RecordingTransport};
pub use replay::ReplayTransport;

use crate::apdu::Sensitivity;

/// A connected card (reader + card, or a virtual card).
pub trait Transport: Send {
    /// Opens an exclusive transaction for one logical operation.
    ///
    /// While the returned guard lives, no other application can send APDUs to the card.
    /// Dropping it ends the transaction and leaves the card powered.
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError>;

    /// The card's answer to reset, as last seen (at connect or after a reset).
    fn atr(&self) -> &[u8];

    /// A name for logs and errors, e.g. the reader name.
    fn name(&self) -> &str;
}

/// An open exclusive transaction on a card.
pub trait CardTransaction {
    /// Sends raw command bytes and returns the raw response (data ‖ SW1 SW2).
    ///
    /// `sensitivity` tells decorators whether the bytes may be logged or recorded.
    fn transmit(&mut self, command: &[u8], sensitivity: Sensitivity) -> Result<Vec<u8>, TransportError>;

    /// Warm-resets the card within the transaction and returns the new ATR.
    /// The card's security state (verified PIN, authenticated keys, selected DF) is lost.
    fn reset(&mut self) -> Result<Vec<u8>, TransportError>;

    /// The card's current ATR.
    fn atr(&self) -> &[u8];

    /// A reader control (`SCardControl`, PC/SC part 10) within the transaction: the reader's answer.
    ///
    /// [`TransportError::Unsupported`] unless the transport has a reader to control (the default: card-sim, replays);
    /// [`pinpad::features`] takes that as a reader without features. Decorators pass it on.
    fn control(&mut self, control: Control<'_>) -> Result<Vec<u8>, TransportError> {
        let _ = control;
        Err(TransportError::Unsupported("reader controls (PC/SC part 10)"))
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        (**self).transaction()
    }
    fn atr(&self) -> &[u8] {
        (**self).atr()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Historical bytes of an ATR (ISO/IEC 7816-3 §8.2), the source of the card factor (CARD-PROFILE §5.2).
///
/// Returns `None` if the ATR is truncated before or within its historical bytes.
pub fn historical_bytes(atr: &[u8]) -> Option<&[u8]> {
    let t0 = *atr.get(1)?;
    let k = usize::from(t0 & 0x0F);
    let mut pos = 2;
    let mut y = t0 >> 4;
    loop {
        for bit in 0..4 {
            if y & (1 << bit) != 0 {
                pos += 1;
            }
        }
        if y & 0x8 == 0 {
            break;
        }
        // TDi is the last interface byte counted; its high nibble announces the next group.
        y = *atr.get(pos - 1)? >> 4;
    }
    // A TCK may follow the historical bytes; it is not part of them.
    atr.get(pos..pos + k)
}

/// A failure of the link to the card, not of the card's logic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The PC/SC service (pcscd) is not running or stopped.
    #[error("PC/SC service not available (is pcscd running?)")]
    NoService,
    /// No reader is connected at all.
    #[error("no smart card reader found")]
    NoReaders,
    /// The requested reader does not exist.
    #[error("reader {0:?} not found")]
    NoReader(String),
    /// The reader holds no card.
    #[error("no card in reader {0:?}")]
    NoCard(String),
    /// The card was removed during the operation.
    #[error("card removed")]
    CardRemoved,
    /// The card was reset by another application; its security state is gone.
    #[error("card was reset; select and authenticate again")]
    CardReset,
    /// Another application holds the card exclusively.
    #[error("reader busy: the card is in exclusive use by another application")]
    ReaderBusy,
    /// The card does not answer (mute, unpowered).
    #[error("card does not respond")]
    CardUnresponsive,
    /// Waiting for a card or an answer timed out.
    #[error("timed out")]
    Timeout,
    /// The card (or the reader holding it) gave no answer within the card timeout: the call was abandoned, and the
    /// connection is made anew at the next transaction.
    #[error("card does not respond: no answer within {waited:?}")]
    NoAnswer {
        /// The card timeout that passed.
        waited: std::time::Duration,
    },
    /// Any other PC/SC error, kept typed.
    #[cfg(feature = "pcsc")]
    #[error("PC/SC error")]
    Pcsc(#[source] ::pcsc::Error),
    /// I/O error of a socket or file based transport.
    #[error("I/O error")]
    Io(#[source] std::io::Error),
    /// A replayed transcript and the host disagree.
    #[error("transcript line {line}: expected {expected}, host sent {got}")]
    ReplayMismatch {
        /// 1-based line of the transcript.
        line: usize,
        /// What the transcript holds.
        expected: String,
        /// What the host sent.
        got: String,
    },
    /// The host sent more commands than the transcript holds.
    #[error("transcript ended at line {line}, host sent {got}")]
    ReplayExhausted {
        /// Line after the last one.
        line: usize,
        /// What the host sent.
        got: String,
    },
    /// A transcript file is not well formed.
    #[error("transcript line {line}: {reason}")]
    BadTranscript {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The operation is not possible with this transport.
    #[error("not supported by this transport: {0}")]
    Unsupported(&'static str),
}

impl TransportError {
    /// Whether the card has gone (removed, or no card): the operation must be aborted.
    pub fn is_card_gone(&self) -> bool {
        matches!(self, TransportError::CardRemoved | TransportError::NoCard(_))
    }
}

/// Uppercase hex, for transcripts and messages.
pub(crate) struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::historical_bytes;

    #[test]
    fn historical_bytes_of_common_atrs() {
        // T=0 only, TA1 present: 3B 9F 95 ... (15 historical bytes)
        // TA1, TD1 -> TD2 -> TA3, 15 historical bytes, then TCK
        let atr = hex::decode("3B9F95801FC38031E073FE211B63080000000000000042").unwrap();
        assert_eq!(historical_bytes(&atr).unwrap(), &hex::decode("8031E073FE211B6308000000000000").unwrap()[..]);
        // 3B 6D 00 00 + 13 historical bytes (TB1, TC1 present)
        let atr = hex::decode("3B6D000000814E43238697159900BF7C7A").unwrap();
        assert_eq!(historical_bytes(&atr).unwrap(), &hex::decode("00814E43238697159900BF7C7A").unwrap()[..]);
        // truncated
        assert_eq!(historical_bytes(&[0x3B, 0x6D, 0x00]), None);
        assert_eq!(historical_bytes(&[]), None);
    }
}
