//! The reader's PIN pad through pcscd (`SCardControl`, PC/SC part 10): see [`crate::transport::pinpad`].
//!
//! # What pcscd answers for a reader without features
//!
//! A driver that does not implement `CM_IOCTL_GET_FEATURE_REQUEST` makes pcscd fail `SCardControl`; a driver that
//! implements it for a reader without a pad answers an empty list. vsmartcard-vpcd (the test readers) is of the
//! first kind: pcscd 1.9.9 (Debian 12) with vsmartcard-vpcd 3.3 fails `SCardControl(CM_IOCTL_GET_FEATURE_REQUEST =
//! 0x42000D48)` with `SCARD_E_UNSUPPORTED_FEATURE` (`0x8010001F`, "Feature not supported") and 0 bytes, with a card in
//! the reader or on a direct connection without one (tested in `testkit/tests/pinpad.rs`). Both mean "no features",
//! never a failure of the operation: the caller falls back to asking for the PIN itself.

use zeroize::Zeroizing;

use super::{PcscTransport, Request};
use crate::apdu::StatusWord;
use crate::transport::pinpad::{self as part10, Control, PinModifyStructure, PinVerifyStructure, ReaderFeatures};
use crate::transport::{Transport, TransportError};
use crate::Error;

/// `CM_IOCTL_GET_FEATURE_REQUEST` = `SCARD_CTL_CODE(3400)` (PC/SC part 10 §2.2).
pub(crate) fn feature_request_code() -> pcsc::ffi::DWORD {
    pcsc::ctl_code(3400)
}

/// The answer to the feature request, a driver that does not do it at all (pcscd fails `SCardControl`) told as a
/// reader without features.
pub(super) fn feature_request_answer(answer: Result<Vec<u8>, TransportError>) -> Result<Vec<u8>, TransportError> {
    use pcsc::Error as E;
    match answer {
        Err(TransportError::Pcsc(E::UnsupportedFeature | E::UnsupportedCard | E::ReaderUnsupported)) => {
            Err(TransportError::Unsupported("the reader's driver has no PC/SC part 10 features"))
        }
        other => other,
    }
}

/// [`crate::transport::CardTransaction::control`] of a PC/SC transaction: the call goes to the owner thread, a
/// feature's call waits as long as its `wait` says (the holder typing).
pub(super) fn control(t: &mut PcscTransport, control: Control<'_>) -> Result<Vec<u8>, TransportError> {
    match control {
        Control::GetFeatureRequest => feature_request_answer(
            t.call(|reply| Request::Control(feature_request_code(), Zeroizing::new(Vec::new()), reply)),
        ),
        Control::Feature { code, input, wait } => {
            let input = Zeroizing::new(input.to_vec());
            let wait = wait.max(t.card_timeout);
            t.call_waiting(wait, |reply| Request::Control(pcsc::ffi::DWORD::from(code), input, reply))
        }
    }
}

impl PcscTransport {
    /// The reader's PC/SC part 10 features (`CM_IOCTL_GET_FEATURE_REQUEST`), in a transaction of its own. Empty for
    /// a reader whose driver has none (vsmartcard-vpcd); [`crate::transport::PinEntryError::Malformed`] for an
    /// answer that is not a feature list.
    pub fn pinpad_features(&mut self) -> Result<ReaderFeatures, Error> {
        let mut tx = self.transaction()?;
        part10::features(&mut *tx)
    }

    /// VERIFY with the PIN typed on the reader's pad (`FEATURE_VERIFY_PIN_DIRECT`), in a transaction of its own
    /// (select the application first in the same transaction for a card that needs it: see
    /// [`crate::card::SocialSecurityCard::verify_pin_on_pad`]). The card's status word;
    /// [`crate::transport::PinEntryError`] for the pad's own outcomes (timeout, cancel, …) and for a reader without
    /// a pad ([`crate::transport::PinEntryError::NoPinPad`]).
    pub fn verify_pin_direct(&mut self, structure: &PinVerifyStructure) -> Result<StatusWord, Error> {
        let mut tx = self.transaction()?;
        let features = part10::features(&mut *tx)?;
        part10::verify_pin_direct(&mut *tx, &features, structure)
    }

    /// CHANGE PIN with both PINs typed on the reader's pad (`FEATURE_MODIFY_PIN_DIRECT`), in a transaction of its
    /// own; as [`Self::verify_pin_direct`].
    pub fn modify_pin_direct(&mut self, structure: &PinModifyStructure) -> Result<StatusWord, Error> {
        let mut tx = self.transaction()?;
        let features = part10::features(&mut *tx)?;
        part10::modify_pin_direct(&mut *tx, &features, structure)
    }
}
