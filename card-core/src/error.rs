//! The crate's error, grouped by who is at fault.
//!
//! - the link to the card failed: [`Error::Transport`];
//! - the card refused the command: [`Error::Card`], [`Error::WrongPin`], [`Error::PinBlocked`],
//!   [`Error::AuthFailed`], [`Error::Blocked`];
//! - the card is not what it should be: [`Error::UnknownCard`], [`Error::InternalAuthFailed`],
//!   [`Error::CardMismatch`];
//! - the card sent bytes that do not make sense: [`Error::Protocol`], [`Error::Tlv`] (when decoding card data),
//!   [`Error::CardData`] (an item's value that does not decode in its format, e.g. a name whose bytes are not GBK);
//! - the caller asked for something impossible: [`Error::Apdu`], [`Error::Codec`], [`Error::BadParameter`],
//!   [`Error::Unsupported`];
//! - the PIN could not be entered (reader's pad or PIN dialog: cancelled, timed out, no pad): [`Error::PinEntry`];
//! - the security module cannot help: [`Error::MissingKey`];
//! - cryptography: [`Error::Crypto`];
//! - a code of the national interface with no closer meaning: [`Error::National`].
//!
//! The national error codes (CARD-PROFILE §7) are mapped both ways in one place, [`crate::national`].
//!
//! No variant carries key material or a PIN.

use crate::apdu::{ApduError, ProtocolError, StatusWord};
use crate::codec::CodecError;
use crate::crypto::CryptoError;
use crate::tlv::TlvError;
use crate::transport::{PinEntryError, TransportError};

/// Everything that can go wrong in `card-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The link to the card failed (no reader, no card, card removed, reset, pcscd gone, …).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The PIN could not be entered: cancelled, timed out, the new PIN's entries differ, no PIN pad, … (national
    /// −31…−36).
    #[error(transparent)]
    PinEntry(#[from] PinEntryError),
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
    /// The PIN is blocked (`6983` to a PIN command): reload or unblock it.
    #[error("PIN blocked")]
    PinBlocked,
    /// EXTERNAL AUTHENTICATE was refused (`63Cx`): the key does not match the card's.
    #[error("external authentication with {key} failed, {tries_left} tries left")]
    AuthFailed {
        /// The key's inventory name (`RKSSSE`, `UK_DF01`, …).
        key: String,
        /// Tries left as reported in `63Cx`.
        tries_left: u8,
    },
    /// Not a social security card, or one this profile does not know (SSSE missing, unknown spec version).
    #[error("not a supported social security card: {0}")]
    UnknownCard(String),
    /// INTERNAL AUTHENTICATE answered a cryptogram other than the expected: the card is not genuine
    /// (or belongs to another key hierarchy).
    #[error("internal authentication failed: the card is not genuine")]
    InternalAuthFailed,
    /// The card in the reader is not the card the caller named (card identifier or card number).
    #[error("the card in the reader is not the expected card")]
    CardMismatch,
    /// The security module holds no such key (or none for this card's region or algorithm).
    #[error("no key {key} in the security module")]
    MissingKey {
        /// The key's inventory name (`RKSSSE`, `UKMF`, `UK_DF01`, …).
        key: String,
    },
    /// A parameter is malformed (file address, PIN format, two-step string, …).
    #[error("bad parameter: {0}")]
    BadParameter(String),
    /// The operation is not supported (item kind, algorithm, …).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A national interface error code (CARD-PROFILE §7) with no closer variant, e.g. from a back end.
    #[error("national interface error {0}")]
    National(i32),
    /// The key service (the back end of the two-step exchanges, `keymgmt serve`) refused the request or could
    /// not be reached; `code` is the national code it gave (or −11 when no replica answered).
    #[error("key service: {message} (code {code})")]
    KeyService {
        /// The national code.
        code: i32,
        /// What the service said, or why it could not be reached (never a key, a random or a PIN).
        message: String,
        /// False when no replica could be reached at all (a network fault, not a refusal).
        reached: bool,
    },
    /// The card broke the protocol (endless `61xx`, repeated `6Cxx`, short response, …).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// An APDU the caller asked for cannot be encoded.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// A value the caller gave cannot be encoded (or decoded) in its card format.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A value the card returned does not decode in its item's format (a name whose bytes are not GBK, a date
    /// that is not one, …): the card's data is at fault, not the caller.
    #[error("the card's data does not decode in its format")]
    CardData(#[source] CodecError),
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

    /// Whether the connection to the card must be made again after this error: any failure of the link except
    /// another application's exclusive use of the card (the card's own answers leave the connection usable).
    /// Shared by the terminal agent's reader pool and the C library, which keep a card connected between
    /// operations.
    pub fn is_link_lost(&self) -> bool {
        matches!(self, Error::Transport(t) if !matches!(t, crate::transport::TransportError::ReaderBusy))
    }
}

/// `e` and its sources, `: `-separated, on one line (for a message that names the file or value at fault, which a
/// source often does).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportError;

    #[test]
    fn which_errors_lose_the_link() {
        assert!(Error::Transport(TransportError::CardRemoved).is_link_lost());
        assert!(Error::Transport(TransportError::NoService).is_link_lost());
        assert!(!Error::Transport(TransportError::ReaderBusy).is_link_lost(), "another application's use");
        assert!(!Error::Card(StatusWord::SECURITY_NOT_SATISFIED).is_link_lost(), "the card answered");
        assert!(!Error::MissingKey { key: "RKSSSE".into() }.is_link_lost());
    }
}
