//! [`DirectPcscTransport`]: the PC/SC calls on the caller's own thread.
//!
//! [`PcscTransport`](super::PcscTransport) hands every call to its owner thread so that it can give up on a mute
//! card after the card timeout; that costs two thread wake-ups per APDU. A caller that already runs its card work on
//! a thread it can abandon — the terminal agent's reader worker, watched by the request waiting for it — needs no
//! second thread: this transport makes the same calls, with the same recovery (reconnect after a reset or a pcscd
//! restart, `NoCard` after a removal, the empty-answer diagnosis, the wiped receive buffer), on the thread that
//! calls it, and has no timeout of its own. A call on a mute card returns only when the card is removed or pcscd
//! stops.

use std::fmt;

use super::pinpad::{feature_request_answer, feature_request_code};
use super::{establish, resolve, OwnedTx, Owner, ReaderSelector};
use crate::apdu::Sensitivity;
use crate::transport::{CardTransaction, Control, Transport, TransportError};

/// A card in a PC/SC reader, every PC/SC call made on the calling thread (no card timeout: see the
/// [module documentation](self)).
pub struct DirectPcscTransport {
    owner: Owner,
}

impl fmt::Debug for DirectPcscTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectPcscTransport")
            .field("reader", &self.owner.reader)
            .field("atr", &hex::encode_upper(&self.owner.atr))
            .finish()
    }
}

impl DirectPcscTransport {
    /// Connects (shared mode, T=0 or T=1) to the card in the selected reader, on a PC/SC context of its own.
    pub fn connect(selector: &ReaderSelector) -> Result<Self, TransportError> {
        let ctx = establish()?;
        let reader = resolve(&ctx, selector)?;
        let mut owner = Owner::new(Some(ctx), reader);
        owner.reconnect()?;
        Ok(DirectPcscTransport { owner })
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.owner.reader
    }

    /// Whether this connection still reaches the card it was made to: `SCardStatus` on the handle, no APDU (as
    /// [`PcscTransport::is_live`](super::PcscTransport::is_live)).
    pub fn is_live(&self) -> bool {
        self.owner.is_live()
    }
}

impl Transport for DirectPcscTransport {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        Ok(Box::new(self.owner.open()?))
    }

    fn atr(&self) -> &[u8] {
        &self.owner.atr
    }

    fn name(&self) -> &str {
        &self.owner.reader
    }
}

impl CardTransaction for OwnedTx<'_> {
    fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
        OwnedTx::transmit(self, command)
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        OwnedTx::reset(self)
    }

    fn atr(&self) -> &[u8] {
        self.atr
    }

    /// The reader's answer; a feature's call (a PIN typed on the pad) takes as long as the holder does.
    fn control(&mut self, control: Control<'_>) -> Result<Vec<u8>, TransportError> {
        match control {
            Control::GetFeatureRequest => feature_request_answer(OwnedTx::control(self, feature_request_code(), &[])),
            Control::Feature { code, input, .. } => OwnedTx::control(self, pcsc::ffi::DWORD::from(code), input),
        }
    }
}
