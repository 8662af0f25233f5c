//! The crate's error, grouped by who is at fault.
//!
//! - the link to the card failed: [`Error::Transport`];
//! - the card refused the command: [`Error::Card`], [`Error::WrongPin`], [`Error::Blocked`];
//! - the card sent bytes that do not make sense: [`Error::Protocol`], [`Error::Tlv`] (when decoding card data);
//! - the caller asked for something impossible: [`Error::Apdu`], [`Error::Codec`];
//! - cryptography: [`Error::Crypto`].
//!
//! No variant carries key material or a PIN.

use crate::apdu::{ApduError, ProtocolError, StatusWord};
use crate::codec::CodecError;
use crate::crypto::CryptoError;
use crate::tlv::TlvError;
use crate::transport::TransportError;

/// Everything that can go wrong in `card-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The link to the card failed (no reader, no card, card removed, reset, pcscd gone, …).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered with a status word other than success.
    #[error("card refused: {0}")]
    Card(StatusWord),
    /// PIN or key verification failed; the card reports how many tries remain.
    #[error("verification failed, {tries_left} tries left")]
    WrongPin {
        /// Tries left as reported in `63Cx`.
        tries_left: u8,
    },
    /// The PIN, key or application is blocked (`6983`, `9303`).
    #[error("blocked: {0}")]
    Blocked(StatusWord),
    /// The card broke the protocol (endless `61xx`, repeated `6Cxx`, short response, …).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// An APDU the caller asked for cannot be encoded.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// A value cannot be encoded or decoded in its card format.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// TLV data is malformed or exceeds its bounds.
    #[error(transparent)]
    Tlv(#[from] TlvError),
    /// A cryptographic operation was given unusable input.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl Error {
    /// Maps a non-success status word to the most precise error.
    pub fn from_status(sw: StatusWord) -> Self {
        match sw.tries_left() {
            Some(tries_left) => Error::WrongPin { tries_left },
            None if sw == StatusWord::BLOCKED || sw == StatusWord::APPLICATION_LOCKED => Error::Blocked(sw),
            None => Error::Card(sw),
        }
    }
}
