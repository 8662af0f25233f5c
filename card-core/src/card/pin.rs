//! PIN commands (CARD-PROFILE §4) and application block/unblock, with the errors a counter needs:
//! [`Error::WrongPin`] with the tries left (`63Cx`), [`Error::PinBlocked`] (`6983`).

use secrecy::SecretString;

use super::session::{Session, SSSE};
use crate::apdu::StatusWord;
use crate::command;
use crate::security::key_name;
use crate::Error;

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
