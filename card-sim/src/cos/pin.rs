//! CARD-PROFILE §4 VERIFY PIN, CHANGE PIN, RELOAD PIN, PIN UNBLOCK.
//!
//! The PIN used is the one of the current DF or, if it has none, of its nearest ancestor; RELOAD PIN and
//! PIN UNBLOCK use the RLK and PUK of the DF that holds that PIN.
//!
//! - VERIFY `00 20 00 00 Lc PIN`: `9000` (PIN verified for the current DF), `63Cx` wrong, `6983` blocked;
//!   without data it answers `63Cx` with the tries left (`9000` if already verified).
//! - CHANGE `80 5E 01 00 Lc OLD ‖ FF ‖ NEW`: no prior VERIFY needed; wrong OLD counts as a wrong PIN.
//! - RELOAD `80 5E 00 00 Lc NEW ‖ MAC4`: MAC = `line_mac_zero_iv(RLK, NEW)` (§6.4, IV zero, over the
//!   new PIN only); sets the PIN and its tries to the maximum (also unblocks).
//! - UNBLOCK `84 24 00 00 Lc ENC_PUK(Ld ‖ PIN ‖ pad) ‖ MAC4`: MAC under the PUK with the challenge (§6.4),
//!   secure data (§6.5); the decrypted PIN becomes the PIN (send the current one to keep it) and the
//!   tries return to the maximum.

use card_core::apdu::StatusWord;
use zeroize::Zeroizing;

use super::{auth, ok, tries_sw, Exec, Reply, Res};
use crate::hexfmt::SecretHex;
use crate::keys::{KeyType, MAX_PIN_LEN};
use card_core::crypto::{ct_eq, line_mac_zero_iv, secure_data_decrypt};

/// Path of the DF whose PIN applies in the current DF.
fn pin_path(x: &Exec<'_>) -> Result<Vec<usize>, StatusWord> {
    let path = &x.vol.path;
    (0..=path.len())
        .rev()
        .filter_map(|n| path.get(..n))
        .find(|p| x.st.mf.at(p).is_some_and(|d| d.pin.is_some()))
        .map(<[usize]>::to_vec)
        .ok_or(StatusWord::DATA_NOT_FOUND)
}

fn valid_pin(pin: &[u8]) -> bool {
    !pin.is_empty() && pin.len() <= MAX_PIN_LEN
}

/// Compares `candidate` with the PIN at `path`, counting a failure. Ok(()) on a match.
fn check_pin(x: &mut Exec<'_>, path: &[usize], candidate: &[u8]) -> Result<(), StatusWord> {
    let pin = x.df_at_mut(path)?.pin.as_mut().ok_or(StatusWord::DATA_NOT_FOUND)?;
    if pin.is_blocked() {
        return Err(StatusWord::BLOCKED);
    }
    if ct_eq(&pin.value.0, candidate) {
        let reset = pin.tries_left != pin.max_tries;
        pin.tries_left = pin.max_tries;
        if reset {
            x.wrote(1);
        }
        Ok(())
    } else {
        pin.tries_left = pin.tries_left.saturating_sub(1);
        let left = pin.tries_left;
        x.wrote(1);
        x.keep_on_error = true;
        Err(tries_sw(left))
    }
}

fn set_pin(x: &mut Exec<'_>, path: &[usize], new: &[u8]) -> Result<(), StatusWord> {
    let pin = x.df_at_mut(path)?.pin.as_mut().ok_or(StatusWord::DATA_NOT_FOUND)?;
    pin.value = SecretHex(Zeroizing::new(new.to_vec()));
    pin.tries_left = pin.max_tries;
    x.wrote(new.len() + 1);
    Ok(())
}

pub(crate) fn verify(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let path = pin_path(x)?;
    let data = Zeroizing::new(x.data().to_vec());
    if data.is_empty() {
        let pin = x.st.mf.at(&path).and_then(|d| d.pin.as_ref()).ok_or(StatusWord::DATA_NOT_FOUND)?;
        let sw = match (pin.is_blocked(), x.vol.security.pin_verified) {
            (true, _) => return Err(StatusWord::BLOCKED),
            (false, true) => StatusWord::OK,
            (false, false) => tries_sw(pin.tries_left),
        };
        return Ok(Reply { data: Vec::new(), sw });
    }
    if data.len() > MAX_PIN_LEN {
        return Err(StatusWord::WRONG_LENGTH);
    }
    check_pin(x, &path, &data)?;
    x.vol.security.pin_verified = true;
    ok(Vec::new())
}

pub(crate) fn change_or_reload(x: &mut Exec<'_>) -> Res {
    if x.cmd.p2 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    match x.cmd.p1 {
        0x01 => change(x),
        0x00 => reload(x),
        _ => Err(StatusWord::WRONG_P1P2),
    }
}

fn change(x: &mut Exec<'_>) -> Res {
    let data = Zeroizing::new(x.data().to_vec());
    if data.len() < 3 || data.len() > 2 * MAX_PIN_LEN + 1 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let sep = data.iter().position(|b| *b == 0xFF).ok_or(StatusWord::WRONG_DATA)?;
    let (old, new) = (data.get(..sep).unwrap_or_default(), data.get(sep + 1..).unwrap_or_default());
    if !valid_pin(old) || !valid_pin(new) || new.contains(&0xFF) {
        return Err(StatusWord::WRONG_DATA);
    }
    let path = pin_path(x)?;
    check_pin(x, &path, old)?;
    set_pin(x, &path, new)?;
    ok(Vec::new())
}

fn reload(x: &mut Exec<'_>) -> Res {
    let data = Zeroizing::new(x.data().to_vec());
    let Some(split) = data.len().checked_sub(4).filter(|n| (1..=MAX_PIN_LEN).contains(n)) else {
        return Err(StatusWord::WRONG_LENGTH);
    };
    let (new, mac) = data.split_at(split);
    let path = pin_path(x)?;
    let df = x.st.mf.at(&path).ok_or(StatusWord::UNKNOWN_ERROR)?;
    let rlk = df.key_of_type(KeyType::PinReload).ok_or(StatusWord::KEY_NOT_FOUND)?;
    if rlk.is_blocked() {
        return Err(StatusWord::BLOCKED);
    }
    let (kid, bs) = (rlk.kid, rlk.algorithm.block_len());
    let ck = rlk.card_key().ok_or(StatusWord::UNKNOWN_ERROR)?;
    let expected = line_mac_zero_iv(&ck, new);
    x.blocks((new.len() + 1).div_ceil(bs));
    let rlk = x.df_at_mut(&path)?.key_mut(kid).ok_or(StatusWord::UNKNOWN_ERROR)?;
    if !ct_eq(&expected, mac) {
        rlk.tries_left = rlk.tries_left.saturating_sub(1);
        x.wrote(1);
        x.keep_on_error = true;
        return Err(StatusWord::MAC_WRONG);
    }
    rlk.tries_left = rlk.max_tries;
    set_pin(x, &path, new)?;
    ok(Vec::new())
}

pub(crate) fn unblock(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if x.data().len() < 4 + 8 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let path = pin_path(x)?;
    let enc = auth::verify_mac(x, &path, KeyType::PinUnblock)?;
    let df = x.st.mf.at(&path).ok_or(StatusWord::UNKNOWN_ERROR)?;
    let puk = df.key_of_type(KeyType::PinUnblock).ok_or(StatusWord::KEY_NOT_FOUND)?;
    let ck = puk.card_key().ok_or(StatusWord::UNKNOWN_ERROR)?;
    x.blocks(enc.len().div_ceil(puk.algorithm.block_len()));
    let pin = secure_data_decrypt(&ck, &enc).map_err(|_| StatusWord::SM_DATA_WRONG)?;
    if !valid_pin(&pin) {
        return Err(StatusWord::WRONG_DATA);
    }
    set_pin(x, &path, &pin)?;
    ok(Vec::new())
}
