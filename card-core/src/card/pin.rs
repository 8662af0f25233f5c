//! PIN commands (CARD-PROFILE §4) and application block/unblock, with the errors a counter needs:
//! [`Error::WrongPin`] with the tries left (`63Cx`), [`Error::PinBlocked`] (`6983`).

use secrecy::SecretString;

use super::session::{Session, SSSE};
use crate::apdu::{Response, StatusWord};
use crate::command;
use crate::security::key_name;
use crate::Error;

/// A PIN command's status word as an error.
fn pin_status(sw: StatusWord) -> Result<(), Error> {
    match (sw, sw.tries_left()) {
        (StatusWord::OK, _) => Ok(()),
        (_, Some(tries_left)) => Err(Error::WrongPin { tries_left }),
        (StatusWord::BLOCKED, _) => Err(Error::PinBlocked),
        (sw, None) => Err(Error::from_status(sw)),
    }
}

/// VERIFY (`00 20 00 00 Lc PIN`) in the current DF (a DF without a PIN of its own uses SSSE's).
pub(crate) fn verify_in_session(s: &mut Session<'_>, pin: &SecretString) -> Result<(), Error> {
    let bytes = s.pin_bytes(pin)?;
    pin_status(s.send_raw(&command::verify_pin(&bytes)?)?.sw())?;
    s.pin_verified = true;
    Ok(())
}

pub(crate) fn verify(s: &mut Session<'_>, pin: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    verify_in_session(s, pin)
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
    let mac = s.sm.line_mac_zero_iv(&s.ctx, &key_name(SSSE, "RLK"), &pin)?;
    pin_status(s.send_raw(&command::reload_pin(&pin, &mac)?)?.sw())
}

/// A line-protected command (CARD-PROFILE §6.4) under the current DF's `key`, MAC from the security module.
fn protected(s: &mut Session<'_>, key: &str, header: [u8; 4], data: &[u8], sensitive: bool) -> Result<Response, Error> {
    let inventory = key_name(&s.df, key);
    if !s.sm.has_key(&s.ctx, &inventory) {
        return Err(Error::MissingKey { key: inventory });
    }
    let (sm, ctx) = (s.sm, &s.ctx);
    command::line_protected(s.tx, ctx.algorithm, header, data, sensitive, |challenge, input| {
        sm.line_mac(ctx, &inventory, challenge, input)
    })
}

/// PIN UNBLOCK `84 24 00 00 Lc ENC_PUK(Ld ‖ PIN ‖ pad) ‖ MAC4`: the new PIN, tries back to the maximum.
pub(crate) fn unblock(s: &mut Session<'_>, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let pin = s.pin_bytes(new)?;
    let puk = key_name(SSSE, "PUK");
    if !s.sm.has_key(&s.ctx, &puk) {
        return Err(Error::MissingKey { key: puk });
    }
    let enc = s.sm.secure_data(&s.ctx, &puk, &pin)?;
    pin_status(protected(s, "PUK", command::PIN_UNBLOCK, &enc, true)?.sw())
}

/// APPLICATION BLOCK (`84 1E`) or UNBLOCK (`84 18`) of `df` with its STK. SELECT of a blocked application
/// answers `6A81` but makes it current, which is what UNBLOCK needs.
pub(crate) fn application(s: &mut Session<'_>, df: &str, block: bool) -> Result<(), Error> {
    let spec = s.df_spec(df)?;
    if block {
        s.select_df(&spec.name)?;
    } else {
        let aid = spec.aid.clone().ok_or_else(|| Error::BadParameter(format!("{df} has no AID")))?;
        let sw = s.send_raw(&command::select_by_name(&aid)?)?.sw();
        if sw != StatusWord::OK && sw != StatusWord::FUNCTION_NOT_SUPPORTED {
            return Err(Error::from_status(sw));
        }
        s.df = spec.name.clone();
        s.keys.clear();
        s.pin_verified = false;
    }
    let header = if block { command::APPLICATION_BLOCK } else { command::APPLICATION_UNBLOCK };
    protected(s, "STK", header, &[], false)?.ok()?;
    Ok(())
}
