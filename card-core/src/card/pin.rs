//! PIN commands (CARD-PROFILE §4) and application block/unblock, with the errors a counter needs:
//! [`Error::WrongPin`] with the tries left (`63Cx`), [`Error::PinBlocked`] (`6983`).

use secrecy::SecretString;

use super::session::{Session, SSSE};
use crate::apdu::StatusWord;
use crate::codec::hex_upper;
use crate::command;
use crate::security::key_name;
use crate::security::key_service::{Backend, Operation, Query};
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
