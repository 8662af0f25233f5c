//! PIN commands (CARD-PROFILE §4) and application block/unblock, with the errors a counter needs:
//! [`Error::WrongPin`] with the tries left (`63Cx`), [`Error::PinBlocked`] (`6983`).

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::session::{Session, SSSE};
use crate::apdu::{Command, Ins, StatusWord};
use crate::crypto::Algorithm;
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
    let cmd = Command::new(0x00, Ins::VERIFY, 0, 0).with_data(bytes.to_vec())?.sensitive();
    pin_status(s.send_raw(&cmd)?.sw())?;
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
    let mut data = Zeroizing::new(s.pin_bytes(old)?.to_vec());
    data.push(0xFF);
    data.extend_from_slice(&s.pin_bytes(new)?);
    let cmd = Command::new(0x80, Ins::CHANGE_RELOAD_PIN, 0x01, 0x00).with_data(data.to_vec())?.sensitive();
    pin_status(s.send_raw(&cmd)?.sw())
}

/// RELOAD PIN `80 5E 00 00 Lc NEW ‖ MAC4`, MAC = §6.4 with RLK and a zero IV over the new PIN.
pub(crate) fn reload(s: &mut Session<'_>, new: &SecretString) -> Result<(), Error> {
    s.select_df(SSSE)?;
    let pin = s.pin_bytes(new)?;
    let mac = s.sm.line_mac_zero_iv(&s.ctx, &key_name(SSSE, "RLK"), &pin)?;
    let mut data = Zeroizing::new(pin.to_vec());
    data.extend_from_slice(&mac);
    let cmd = Command::new(0x80, Ins::CHANGE_RELOAD_PIN, 0x00, 0x00).with_data(data.to_vec())?.sensitive();
    pin_status(s.send_raw(&cmd)?.sw())
}

/// The challenge length of a line-protection MAC (CARD-PROFILE §6.4): 4 for 3DES, 8 for SM4/AES.
fn mac_challenge_len(alg: Algorithm) -> u32 {
    if alg == Algorithm::Tdes {
        4
    } else {
        8
    }
}

/// A line-protected command `CLA INS P1 P2 Lc' data MAC4` (CARD-PROFILE §6.4) with a fresh challenge.
fn protected(s: &mut Session<'_>, key: &str, header: [u8; 4], data: &[u8]) -> Result<Command, Error> {
    let inventory = key_name(&s.df, key);
    if !s.sm.has_key(&s.ctx, &inventory) {
        return Err(Error::MissingKey { key: inventory });
    }
    let challenge = s.challenge(mac_challenge_len(s.ctx.algorithm))?;
    let lc = u8::try_from(data.len() + 4).map_err(|_| Error::BadParameter("line-protected data too long".into()))?;
    let mut input = header.to_vec();
    input.push(lc);
    input.extend_from_slice(data);
    let mac = s.sm.line_mac(&s.ctx, &inventory, &challenge, &input)?;
    let [cla, ins, p1, p2] = header;
    Ok(Command::new(cla, crate::apdu::Ins(ins), p1, p2).with_data([data, &mac].concat())?)
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
    let cmd = protected(s, "PUK", [0x84, Ins::PIN_UNBLOCK.0, 0, 0], &enc)?.sensitive();
    pin_status(s.send_raw(&cmd)?.sw())
}

/// APPLICATION BLOCK (`84 1E`) or UNBLOCK (`84 18`) of `df` with its STK. SELECT of a blocked application
/// answers `6A81` but makes it current, which is what UNBLOCK needs.
pub(crate) fn application(s: &mut Session<'_>, df: &str, block: bool) -> Result<(), Error> {
    let spec = s.df_spec(df)?;
    if block {
        s.select_df(&spec.name)?;
    } else {
        let aid = spec.aid.clone().ok_or_else(|| Error::BadParameter(format!("{df} has no AID")))?;
        let sw = s.send_raw(&Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid)?.with_le(256)?)?.sw();
        if sw != StatusWord::OK && sw != StatusWord::FUNCTION_NOT_SUPPORTED {
            return Err(Error::from_status(sw));
        }
        s.df = spec.name.clone();
        s.keys.clear();
        s.pin_verified = false;
    }
    let ins = if block { Ins::APPLICATION_BLOCK } else { Ins::APPLICATION_UNBLOCK };
    let cmd = protected(s, "STK", [0x84, ins.0, 0, 0], &[])?;
    s.send(&cmd)?;
    Ok(())
}
