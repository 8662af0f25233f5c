//! The one APDU engine: encodes a [`Command`], sends it, and resolves the T=0
//! status words `61xx` (GET RESPONSE loop) and `6Cxx` (resend with the corrected Le),
//! with guards against cards that never stop.

use tracing::trace;

use super::{CardTransaction, Hex, TransportError};
use crate::apdu::{ApduError, Command, Ins, ProtocolError, Response, StatusWord};
use crate::Error;

/// What can go wrong in one exchange, by who is at fault: the link to the card, the card's bytes, or the command
/// the caller built. The card's status word is not an error here: [`Response::ok`] and
/// [`CardTransactionExt::exchange_ok`] judge it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The link to the card failed (no card, removed, reset, pcscd gone …).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card's answer breaks the protocol (no status word, endless `61xx`, `6Cxx` twice, too large).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The command cannot be encoded (for the `6Cxx` resend: an Le the command cannot carry).
    #[error(transparent)]
    Apdu(#[from] ApduError),
}

impl From<ExchangeError> for Error {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::Transport(e) => Error::Transport(e),
            ExchangeError::Protocol(e) => Error::Protocol(e),
            ExchangeError::Apdu(e) => Error::Apdu(e),
        }
    }
}

/// Most GET RESPONSE rounds accepted for one command: a 64 KiB response in 256-byte parts, with slack.
pub const MAX_GET_RESPONSE_ROUNDS: usize = 300;
/// Largest chained response accepted (extended Le plus slack).
pub const MAX_RESPONSE_LEN: usize = 65_536 + 256;

fn send<T: CardTransaction + ?Sized>(tx: &mut T, cmd: &Command) -> Result<Response, ExchangeError> {
    let bytes = zeroize::Zeroizing::new(cmd.to_bytes());
    trace!(target: "apdu", "> {cmd}");
    let raw = tx.transmit(&bytes, cmd.sensitivity())?;
    let resp = Response::from_bytes(&raw)?;
    trace!(target: "apdu", "< {} {:04X}", Hex(resp.data()), resp.sw().0);
    // a card never sends more than the Le asked for (at most 256 bytes to a short command)
    let limit = cmd.le().map_or(MAX_RESPONSE_LEN, |le| usize::try_from(le).unwrap_or(MAX_RESPONSE_LEN));
    if resp.data().len() > limit {
        return Err(ProtocolError::ResponseTooLarge { limit }.into());
    }
    Ok(resp)
}

/// Sends `cmd` and returns the complete response.
///
/// - `6Cxx`: the command is sent once more with Le = `xx`; a second `6Cxx` is [`ProtocolError::Repeated6C`].
/// - `61xx`: GET RESPONSE with Le = `xx` until another status word, concatenating the data; more than
///   [`MAX_GET_RESPONSE_ROUNDS`] rounds or more than [`MAX_RESPONSE_LEN`] bytes is an error. A command
///   [discarding its answer](Command::discarding_answer) gets `9000` and no data instead, with no GET RESPONSE.
/// - An answer with more data than the command's Le asked for (a 300-byte answer to a short command) is
///   [`ProtocolError::ResponseTooLarge`].
///
/// The status word is returned as is; use [`Response::ok`] or [`CardTransactionExt::exchange_ok`] to turn
/// a non-`9000` answer into an error.
pub fn exchange<T: CardTransaction + ?Sized>(tx: &mut T, cmd: &Command) -> Result<Response, ExchangeError> {
    let mut resp = send(tx, cmd)?;
    if resp.sw().sw1() == 0x6C {
        let le = le_of(resp.sw());
        let again = cmd.clone().with_le(le)?;
        resp = send(tx, &again)?;
        if resp.sw().sw1() == 0x6C {
            return Err(ProtocolError::Repeated6C.into());
        }
    }
    if resp.sw().sw1() != 0x61 {
        return Ok(resp);
    }
    if cmd.discards_answer() {
        // processed normally (ISO/IEC 7816-4: 61xx), and the data waiting is nobody's: not fetched
        return Ok(Response::new(Vec::new(), StatusWord::OK));
    }
    let mut data = resp.data().to_vec();
    let mut sw = resp.sw();
    let mut rounds = 0;
    let mut resent_6c = false;
    while sw.sw1() == 0x61 {
        rounds += 1;
        if rounds > MAX_GET_RESPONSE_ROUNDS {
            return Err(ProtocolError::EndlessGetResponse(MAX_GET_RESPONSE_ROUNDS).into());
        }
        let mut get = get_response(le_of(sw))?;
        let mut part = send(tx, &get)?;
        if part.sw().sw1() == 0x6C && !resent_6c {
            resent_6c = true;
            get = get_response(le_of(part.sw()))?;
            part = send(tx, &get)?;
        }
        if part.sw().sw1() == 0x6C {
            return Err(ProtocolError::Repeated6C.into());
        }
        if data.len() + part.data().len() > MAX_RESPONSE_LEN {
            return Err(ProtocolError::ResponseTooLarge { limit: MAX_RESPONSE_LEN }.into());
        }
        data.extend_from_slice(part.data());
        sw = part.sw();
    }
    Ok(Response::new(data, sw))
}

fn le_of(sw: StatusWord) -> u32 {
    match sw.sw2() {
        0 => 256,
        n => u32::from(n),
    }
}

/// CARD-PROFILE §4 GET RESPONSE: `00 C0 00 00 Le`.
fn get_response(le: u32) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::GET_RESPONSE, 0, 0).with_le(le)
}

/// The engine as methods of any transaction.
pub trait CardTransactionExt {
    /// [`exchange`]: the complete response, whatever its status word.
    fn exchange(&mut self, cmd: &Command) -> Result<Response, Error>;
    /// [`exchange`], then the data if the status word is `9000`, else the matching error.
    fn exchange_ok(&mut self, cmd: &Command) -> Result<Vec<u8>, Error>;
}

impl<T: CardTransaction + ?Sized> CardTransactionExt for T {
    fn exchange(&mut self, cmd: &Command) -> Result<Response, Error> {
        Ok(exchange(self, cmd)?)
    }
    fn exchange_ok(&mut self, cmd: &Command) -> Result<Vec<u8>, Error> {
        exchange(self, cmd)?.ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::apdu::Sensitivity;
    use crate::transport::TransportError;
    use std::collections::VecDeque;

    /// A scripted card: answers in order, records what it received.
    struct Script {
        answers: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Script {
        fn new(answers: &[&str]) -> Self {
            Script { answers: answers.iter().map(|a| hex::decode(a).unwrap()).collect(), sent: Vec::new() }
        }
        fn sent_hex(&self) -> Vec<String> {
            self.sent.iter().map(hex::encode_upper).collect()
        }
    }

    impl CardTransaction for Script {
        fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
            self.sent.push(command.to_vec());
            self.answers.pop_front().ok_or(TransportError::CardRemoved)
        }
        fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
            Ok(vec![0x3B, 0x00])
        }
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
    }

    fn select() -> Command {
        Command::new(0, Ins::SELECT, 4, 0).with_data(hex::decode("7378312E73682EC9E7BBE1B1A3D5CF").unwrap()).unwrap()
    }

    #[test]
    fn get_response_loop_concatenates() {
        let mut card = Script::new(&["6104", "010203046102", "05069000"]);
        let resp = card.exchange(&select()).unwrap();
        assert_eq!(resp.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(resp.is_ok());
        assert_eq!(card.sent_hex()[1..], ["00C0000004".to_owned(), "00C0000002".to_owned()]);
    }

    #[test]
    fn a_command_discarding_its_answer_leaves_61xx_unfetched() {
        // a T=0 card's FCI waiting after a SELECT whose caller reads none: success, no GET RESPONSE
        let mut card = Script::new(&["611C", "9000"]);
        let resp = card.exchange(&select().discarding_answer()).unwrap();
        assert!(resp.is_ok() && resp.data().is_empty());
        assert_eq!(card.sent.len(), 1);
        // the card's next answer is the next command's
        let next = Command::new(0, Ins::READ_RECORD, 1, 0x2C).with_le(256).unwrap();
        assert!(card.exchange(&next).unwrap().is_ok());
        assert_eq!(card.sent_hex()[1], "00B2012C00");
        // an error is the card's as is, and data sent at once (T=1) is returned as it came
        let mut card = Script::new(&["6A82", "6F009000"]);
        assert_eq!(card.exchange(&select().discarding_answer()).unwrap().sw(), StatusWord(0x6A82));
        assert_eq!(card.exchange(&select().discarding_answer()).unwrap().data(), &[0x6F, 0x00]);
        assert_eq!(card.sent.len(), 2);
        // and without the mark, the same 61xx is fetched
        let mut card = Script::new(&["611C", "9000"]);
        card.exchange(&select()).unwrap();
        assert_eq!(card.sent_hex()[1], "00C000001C");
    }

    #[test]
    fn wrong_le_resends_once() {
        let mut card = Script::new(&["6C10", "00112233445566778899AABBCCDDEEFF9000"]);
        let cmd = Command::new(0, Ins::READ_RECORD, 1, 0x2C).with_le(256).unwrap();
        let resp = card.exchange(&cmd).unwrap();
        assert_eq!(resp.data().len(), 16);
        assert_eq!(card.sent_hex(), ["00B2012C00", "00B2012C10"]);
    }

    #[test]
    fn repeated_6c_is_an_error() {
        let mut card = Script::new(&["6C10", "6C08"]);
        let cmd = Command::new(0, Ins::READ_RECORD, 1, 0x2C).with_le(256).unwrap();
        assert!(matches!(card.exchange(&cmd), Err(Error::Protocol(ProtocolError::Repeated6C))));
    }

    #[test]
    fn endless_6100_is_bounded() {
        let answers: Vec<&str> = std::iter::repeat_n("6100", MAX_GET_RESPONSE_ROUNDS + 5).collect();
        let mut card = Script::new(&answers);
        assert!(matches!(
            card.exchange(&select()),
            Err(Error::Protocol(ProtocolError::EndlessGetResponse(MAX_GET_RESPONSE_ROUNDS)))
        ));
        assert_eq!(card.sent.len(), MAX_GET_RESPONSE_ROUNDS + 1);
    }

    #[test]
    fn oversized_chain_is_bounded() {
        let chunk = format!("{}6100", "AB".repeat(256));
        let answers: Vec<&str> = std::iter::repeat_n(chunk.as_str(), 290).collect();
        let mut card = Script::new(&answers);
        assert!(matches!(card.exchange(&select()), Err(Error::Protocol(ProtocolError::ResponseTooLarge { .. }))));
    }

    #[test]
    fn more_than_le_is_an_error() {
        let oversized = format!("{}9000", "FF".repeat(298));
        let mut card = Script::new(&[oversized.as_str()]);
        let cmd = Command::new(0, Ins::READ_RECORD, 1, 0x2C).with_le(256).unwrap();
        assert!(matches!(card.exchange(&cmd), Err(Error::Protocol(ProtocolError::ResponseTooLarge { limit: 256 }))));
        let mut card = Script::new(&["0102039000"]);
        let cmd = Command::new(0, Ins::READ_RECORD, 1, 0x2C).with_le(2).unwrap();
        assert!(matches!(card.exchange(&cmd), Err(Error::Protocol(ProtocolError::ResponseTooLarge { limit: 2 }))));
    }

    #[test]
    fn short_answer_and_removal() {
        let mut card = Script::new(&["90"]);
        assert!(matches!(card.exchange(&select()), Err(Error::Protocol(ProtocolError::ResponseTooShort(1)))));
        let mut card = Script::new(&[]);
        assert!(matches!(card.exchange(&select()), Err(Error::Transport(TransportError::CardRemoved))));
    }

    #[test]
    fn the_engine_says_who_is_at_fault() {
        let mut card = Script::new(&["90"]);
        assert!(matches!(
            exchange(&mut card, &select()),
            Err(ExchangeError::Protocol(ProtocolError::ResponseTooShort(1)))
        ));
        let mut card = Script::new(&[]);
        assert!(matches!(exchange(&mut card, &select()), Err(ExchangeError::Transport(TransportError::CardRemoved))));
        let mut card = Script::new(&["6C05", "6C05"]);
        assert!(matches!(exchange(&mut card, &select()), Err(ExchangeError::Protocol(ProtocolError::Repeated6C))));
    }

    #[test]
    fn exchange_ok_maps_status() {
        let mut card = Script::new(&["6A82"]);
        assert!(matches!(card.exchange_ok(&select()), Err(Error::Card(StatusWord::FILE_NOT_FOUND))));
        let mut card = Script::new(&["63C1"]);
        assert!(matches!(card.exchange_ok(&select()), Err(Error::WrongPin { tries_left: 1 })));
    }
}
