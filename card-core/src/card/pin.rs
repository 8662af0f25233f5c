//! PIN commands (CARD-PROFILE §4) and application block/unblock, with the errors a counter needs:
//! [`Error::WrongPin`] with the tries left (`63Cx`), [`Error::PinBlocked`] (`6983`).

use secrecy::SecretString;

use super::session::{Session, SSSE};
use crate::apdu::StatusWord;
use crate::codec::hex_upper;
use crate::command;
use crate::profile::PinSpec;
use crate::security::key_name;
use crate::security::key_service::{Backend, Operation, Query};
use crate::transport::pinpad::{self, PadTimeouts, PinModifyStructure, PinVerifyStructure, ReaderFeatures};
use crate::transport::CardTransaction;
use crate::Error;
use zeroize::Zeroizing;

/// A PIN command's status word as an error.
pub(crate) fn pin_status(sw: StatusWord) -> Result<(), Error> {
    match (sw, sw.tries_left()) {
        (StatusWord::OK, _) => Ok(()),
        (_, Some(tries_left)) => Err(Error::WrongPin { tries_left }),
        (StatusWord::BLOCKED, _) => Err(Error::PinBlocked),
        (sw, None) => Err(Error::from_status(sw)),
    }
}

/// VERIFY (`00 20 00 00 Lc PIN`) in SSSE.
pub(crate) fn verify(s: &mut Session<'_>, pin: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    s.verify(pin)
}

/// CHANGE PIN `80 5E 01 00 Lc OLD ‖ FF ‖ NEW`.
pub(crate) fn change(s: &mut Session<'_>, old: &SecretString, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let cmd = command::change_pin(&s.pin_bytes(old)?, &s.pin_bytes(new)?)?;
    pin_status(s.send_raw(&cmd)?.sw())
}

/// VERIFY in SSSE (selected by the caller) with the PIN typed on the reader's pad (PC/SC part 10).
pub(crate) fn verify_on_pad(
    tx: &mut dyn CardTransaction,
    features: &ReaderFeatures,
    spec: &PinSpec,
    timeouts: PadTimeouts,
) -> Result<(), Error> {
    let structure = PinVerifyStructure::for_card(spec, timeouts)?;
    pin_status(pinpad::verify_pin_direct(tx, features, &structure)?)
}

/// CHANGE PIN in SSSE (selected by the caller) with both PINs typed on the reader's pad.
pub(crate) fn change_on_pad(
    tx: &mut dyn CardTransaction,
    features: &ReaderFeatures,
    spec: &PinSpec,
    timeouts: PadTimeouts,
) -> Result<(), Error> {
    let structure = PinModifyStructure::for_card(spec, timeouts)?;
    pin_status(pinpad::modify_pin_direct(tx, features, &structure)?)
}

/// RELOAD PIN `80 5E 00 00 Lc NEW ‖ MAC4`, MAC = §6.4 with RLK and a zero IV over the new PIN.
pub(crate) fn reload(s: &mut Session<'_>, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let pin = s.pin_bytes(new)?;
    let mac = s.line_mac_zero_iv("RLK", &pin)?;
    pin_status(s.send_raw(&command::reload_pin(&pin, &mac)?)?.sw())
}

/// PIN UNBLOCK `84 24 00 00 Lc ENC_PUK(Ld ‖ PIN ‖ pad) ‖ MAC4`: the new PIN, tries back to the maximum.
pub(crate) fn unblock(s: &mut Session<'_>, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let pin = s.pin_bytes(new)?;
    if !s.holds("PUK") {
        return Err(Error::MissingKey { key: key_name(SSSE, "PUK") });
    }
    let enc = s.secure_data("PUK", &pin)?;
    pin_status(s.line_protected("PUK", command::PIN_UNBLOCK, &enc, true)?.sw())
}

/// The hex fields of a back end's PIN answer.
fn answer_bytes(answer: &str) -> Result<Vec<u8>, Error> {
    let text = answer.trim_end_matches(['\r', '\n', '\0']).strip_suffix('|').unwrap_or(answer);
    if text.contains('|') {
        return Err(Error::BadParameter("key service: a PIN answer is one field".into()));
    }
    crate::codec::parse_hex(text).map_err(|_| Error::BadParameter("key service: a PIN answer is hex".into()))
}

/// RELOAD PIN with the MAC of a back end (key service, [`Operation::PinReload`]): Step1 names the card,
/// Step2 is `<new PIN BCD hex>|`, the answer `<MAC 8 hex>|`.
pub(crate) fn reload_via(s: &mut Session<'_>, backend: &dyn Backend, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let step1 = super::two_step::step1_in(s)?.to_string();
    let pin = s.pin_bytes(new)?;
    let step2 = reload_step2(&pin);
    let answer = backend.answer(&Query { step2: Some(&step2), ..Query::new(Operation::PinReload, &step1) })?;
    send_reload(s, &pin, &answer.answer)
}

/// The back end's Step2 of a RELOAD PIN: `<new PIN BCD hex>|`.
pub(crate) fn reload_step2(pin: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(format!("{}|", hex_upper(pin)))
}

/// RELOAD PIN with the back end's answer `<MAC 8 hex>|`.
pub(crate) fn send_reload(s: &mut Session<'_>, pin: &[u8], answer: &str) -> Result<(), Error> {
    let mac: [u8; 4] = answer_bytes(answer)?
        .try_into()
        .map_err(|_| Error::BadParameter("key service: a RELOAD PIN MAC is 8 hex digits".into()))?;
    pin_status(s.send_raw(&command::reload_pin(pin, &mac)?)?.sw())
}

/// PIN UNBLOCK with the secure data and MAC of a back end ([`Operation::PinUnblock`]): Step2 is
/// `<card challenge>|<CLA INS P1 P2>|<new PIN BCD>|` (hex), the answer `<ENC_PUK(Ld ‖ PIN ‖ pad)><MAC>|`.
pub(crate) fn unblock_via(s: &mut Session<'_>, backend: &dyn Backend, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let step1 = super::two_step::step1_in(s)?.to_string();
    let pin = s.pin_bytes(new)?;
    let step2 = unblock_step2(s, &pin)?;
    let answer = backend.answer(&Query { step2: Some(&step2), ..Query::new(Operation::PinUnblock, &step1) })?;
    send_unblock(s, &answer.answer)
}

/// The back end's Step2 of a PIN UNBLOCK, with the card's fresh challenge (GET CHALLENGE, SSSE current):
/// `<card challenge>|<CLA INS P1 P2>|<new PIN BCD>|`.
pub(crate) fn unblock_step2(s: &mut Session<'_>, pin: &[u8]) -> Result<Zeroizing<String>, Error> {
    let challenge = s.challenge(command::mac_challenge_len(s.ctx().algorithm))?;
    let header = command::PIN_UNBLOCK;
    Ok(Zeroizing::new(format!("{}|{}|{}|", hex_upper(&challenge), hex_upper(&header), hex_upper(pin))))
}

/// PIN UNBLOCK with the back end's answer `<secure data><MAC>|`, for the challenge of [`unblock_step2`].
pub(crate) fn send_unblock(s: &mut Session<'_>, answer: &str) -> Result<(), Error> {
    let body = answer_bytes(answer)?;
    // secure data of whole cipher blocks, then the 4-byte MAC
    if body.len() < 12 || (body.len() - 4) % 8 != 0 {
        return Err(Error::BadParameter("key service: a PIN UNBLOCK answer is secure data and a MAC".into()));
    }
    let [cla, ins, p1, p2] = command::PIN_UNBLOCK;
    let cmd = crate::apdu::Command::new(cla, crate::apdu::Ins(ins), p1, p2).with_data(body)?.sensitive();
    pin_status(s.send_raw(&cmd)?.sw())
}

/// APPLICATION BLOCK (`84 1E`) or UNBLOCK (`84 18`) of `df` with its STK. SELECT of a blocked application
/// answers `6A81` but makes it current, which is what UNBLOCK needs.
pub(crate) fn application(s: &mut Session<'_>, df: &str, block: bool) -> Result<(), Error> {
    if block {
        s.select_df(df)?;
    } else {
        s.select_df_even_blocked(df)?;
    }
    let header = if block { command::APPLICATION_BLOCK } else { command::APPLICATION_UNBLOCK };
    s.line_protected("STK", header, &[], false)?.ok()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::super::SocialSecurityCard;
    use crate::apdu::Sensitivity;
    use crate::transport::pinpad::{Control, PadTimeouts, PinModifyStructure, PinVerifyStructure};
    use crate::transport::{CardTransaction, PinEntryError, Transport, TransportError};
    use crate::Error;

    /// A real generation 3 card's answer to SELECT SSSE (CARD-PROFILE §4.2) and its ATR.
    const FCI: &str = "6F1C840F7378312E73682EC9E7BBE1B1A3D5CFA50988011E9F0C038601039000";
    const ATR: &str = "3B6D000000814A444686605199000001AC";

    /// What the fake reader saw: APDUs and controls, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Apdu(String),
        Features,
        Control(u32, String),
    }

    /// A reader with (or without) a pad, and a card that answers SELECT; the pad answers `pad_answer`.
    struct PadReader {
        features: Option<&'static str>,
        pad_answer: &'static str,
        seen: Arc<Mutex<Vec<Seen>>>,
        atr: Vec<u8>,
    }

    struct PadTx<'a>(&'a mut PadReader);

    impl Transport for PadReader {
        fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
            Ok(Box::new(PadTx(self)))
        }
        fn atr(&self) -> &[u8] {
            &self.atr
        }
        fn name(&self) -> &str {
            "pad"
        }
    }

    impl CardTransaction for PadTx<'_> {
        fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
            self.0.seen.lock().unwrap().push(Seen::Apdu(hex::encode_upper(command)));
            Ok(if command.starts_with(&[0x00, 0xA4, 0x04]) { hex::decode(FCI).unwrap() } else { vec![0x6D, 0x00] })
        }
        fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.atr.clone())
        }
        fn atr(&self) -> &[u8] {
            &self.0.atr
        }
        fn control(&mut self, control: Control<'_>) -> Result<Vec<u8>, TransportError> {
            match control {
                Control::GetFeatureRequest => {
                    self.0.seen.lock().unwrap().push(Seen::Features);
                    match self.0.features {
                        Some(f) => Ok(hex::decode(f).unwrap()),
                        None => Err(TransportError::Unsupported("no part 10")),
                    }
                }
                Control::Feature { code, input, .. } => {
                    self.0.seen.lock().unwrap().push(Seen::Control(code, hex::encode_upper(input)));
                    Ok(hex::decode(self.0.pad_answer).unwrap())
                }
            }
        }
    }

    /// A pad reader: VERIFY_PIN_DIRECT 0x42330006, MODIFY_PIN_DIRECT 0x42330007.
    const PAD: &str = "060442330006070442330007";

    fn pad_card(
        features: Option<&'static str>,
        pad_answer: &'static str,
    ) -> (SocialSecurityCard<PadReader>, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = PadReader { features, pad_answer, seen: seen.clone(), atr: hex::decode(ATR).unwrap() };
        (SocialSecurityCard::new(reader), seen)
    }

    fn spec() -> crate::profile::PinSpec {
        crate::profile::Profile::builtin().pin.clone()
    }

    #[test]
    fn verify_on_pad_selects_ssse_then_hands_the_structure_to_the_pad() {
        let (mut card, seen) = pad_card(Some(PAD), "9000");
        let t = PadTimeouts::default();
        card.verify_pin_on_pad(t).unwrap();
        assert!(card.has_pin_pad().unwrap());
        let seen = seen.lock().unwrap();
        let expected = PinVerifyStructure::for_card(&spec(), t).unwrap().to_bytes().unwrap();
        assert_eq!(seen[0], Seen::Features, "{seen:?}");
        assert!(matches!(&seen[1], Seen::Apdu(a) if a.starts_with("00A40400")), "SELECT SSSE: {seen:?}");
        assert_eq!(seen[2], Seen::Control(0x4233_0006, hex::encode_upper(expected)));
        assert_eq!(seen[3], Seen::Features, "has_pin_pad: {seen:?}");
        assert_eq!(seen.len(), 4, "no VERIFY APDU through the host: {seen:?}");
    }

    #[test]
    fn change_on_pad_uses_the_modify_feature() {
        let (mut card, seen) = pad_card(Some(PAD), "9000");
        let t = PadTimeouts { first: 20, between: 5 };
        card.change_pin_on_pad(t).unwrap();
        let expected = PinModifyStructure::for_card(&spec(), t).unwrap().to_bytes().unwrap();
        assert_eq!(seen.lock().unwrap().last(), Some(&Seen::Control(0x4233_0007, hex::encode_upper(expected))));
    }

    #[test]
    fn the_cards_answer_through_the_pad_is_a_pin_error() {
        let (mut card, _) = pad_card(Some(PAD), "63C2");
        assert!(matches!(card.verify_pin_on_pad(PadTimeouts::default()), Err(Error::WrongPin { tries_left: 2 })));
        let (mut card, _) = pad_card(Some(PAD), "6983");
        assert!(matches!(card.verify_pin_on_pad(PadTimeouts::default()), Err(Error::PinBlocked)));
    }

    #[test]
    fn the_pads_outcomes_are_pin_entry_errors() {
        for (answer, expected) in [
            ("6400", PinEntryError::Timeout),
            ("6401", PinEntryError::Cancelled),
            ("6402", PinEntryError::Mismatch),
            ("6403", PinEntryError::BadLength),
            ("6B80", PinEntryError::Refused),
        ] {
            let (mut card, _) = pad_card(Some(PAD), answer);
            match card.change_pin_on_pad(PadTimeouts::default()) {
                Err(Error::PinEntry(e)) => assert_eq!(e, expected, "{answer}"),
                other => panic!("{answer}: {other:?}"),
            }
        }
        let (mut card, _) = pad_card(Some(PAD), "");
        assert!(matches!(
            card.verify_pin_on_pad(PadTimeouts::default()),
            Err(Error::PinEntry(PinEntryError::Malformed(_)))
        ));
    }

    #[test]
    fn no_pad_is_an_error_before_any_apdu() {
        // a driver without part 10 (vpcd), an empty feature list, a reader that can verify but not modify
        for features in [None, Some(""), Some("120442330012")] {
            let (mut card, seen) = pad_card(features, "9000");
            assert!(!card.has_pin_pad().unwrap());
            let err = card.verify_pin_on_pad(PadTimeouts::default()).unwrap_err();
            assert!(matches!(err, Error::PinEntry(PinEntryError::NoPinPad)), "{features:?}: {err:?}");
            assert_eq!(crate::national::code(&err), crate::national::PIN_ENTRY_UNAVAILABLE);
            let seen = seen.lock().unwrap();
            assert!(seen.iter().all(|s| *s == Seen::Features), "no APDU: {seen:?}");
        }
        let (mut card, seen) = pad_card(Some("060442330006"), "9000");
        assert!(matches!(
            card.change_pin_on_pad(PadTimeouts::default()),
            Err(Error::PinEntry(PinEntryError::NoPinPad))
        ));
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Features]);
        // a malformed feature list is an error, not "no pad"
        let (mut card, _) = pad_card(Some("0604"), "9000");
        assert!(matches!(
            card.verify_pin_on_pad(PadTimeouts::default()),
            Err(Error::PinEntry(PinEntryError::Malformed(_)))
        ));
    }
}
