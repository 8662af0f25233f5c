//! CARD-PROFILE §4 GET CHALLENGE, EXTERNAL AUTHENTICATE (§6.2), INTERNAL AUTHENTICATE (§6.3), and the
//! line-protection MAC check (§6.4) shared by every `04`/`84` command.
//!
//! Status words: no or used challenge `6984`; key not in the current DF `6A88` (authentication) or
//! `9403` (MAC commands); a challenge of the wrong length for the key (3DES needs 4 bytes, SM4/AES 8)
//! `6984`; key blocked `6983`; wrong cryptogram `63Cx` (x tries left); wrong MAC `9302`
//! (the key's tries decrease; at 0 the key answers `6983`).

use crate::access::Check as _;
use card_core::apdu::StatusWord;
use rand::RngCore;
use zeroize::Zeroizing;

use super::{ok, tries_sw, Exec, Res};
use crate::keys::{KeyAlgorithm, KeyType};
use card_core::crypto::{ct_eq, line_mac, process_key};

pub(crate) fn get_challenge(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let len = match (x.data().is_empty(), x.cmd.le()) {
        (true, Some(4)) => 4,
        (true, Some(8)) => 8,
        _ => return Err(StatusWord::WRONG_LENGTH),
    };
    let mut r = vec![0u8; len];
    rand::rng().fill_bytes(&mut r);
    x.vol.challenge = Some(Zeroizing::new(r.clone()));
    ok(r)
}

/// The 8-byte challenge for authentication, consumed.
fn challenge8(x: &mut Exec<'_>) -> Result<[u8; 8], StatusWord> {
    x.challenge.take().and_then(|c| <[u8; 8]>::try_from(c.as_slice()).ok()).ok_or(StatusWord::NO_CHALLENGE)
}

pub(crate) fn external_authenticate(x: &mut Exec<'_>) -> Res {
    if x.cmd.p1 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let (Ok(c), Ok(data)) = (
        <[u8; 8]>::try_from(x.data().get(..8).unwrap_or_default()),
        <[u8; 8]>::try_from(x.data().get(8..).unwrap_or_default()),
    ) else {
        return Err(StatusWord::WRONG_LENGTH);
    };
    let kid = x.cmd.p2;
    let key = x.df()?.key(kid).filter(|k| k.key_type.can_authenticate()).ok_or(StatusWord::DATA_NOT_FOUND)?;
    if key.is_blocked() {
        return Err(StatusWord::BLOCKED);
    }
    let r = challenge8(x)?;
    let ck = x.df()?.key(kid).and_then(|k| k.card_key()).ok_or(StatusWord::UNKNOWN_ERROR)?;
    let expected = process_key(&ck, &r).cryptogram(&data);
    x.blocks(2);
    let key = x.df_mut()?.key_mut(kid).ok_or(StatusWord::UNKNOWN_ERROR)?;
    if ct_eq(&expected, &c) {
        let reset = key.tries_left != key.max_tries;
        key.tries_left = key.max_tries;
        if reset {
            x.wrote(1);
        }
        x.vol.security.authenticate(kid);
        ok(Vec::new())
    } else {
        key.tries_left = key.tries_left.saturating_sub(1);
        let left = key.tries_left;
        x.wrote(1);
        x.keep_on_error = true;
        Err(tries_sw(left))
    }
}

pub(crate) fn internal_authenticate(x: &mut Exec<'_>) -> Res {
    if x.cmd.p1 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let (Ok(r1), Ok(r2)) = (
        <[u8; 8]>::try_from(x.data().get(..8).unwrap_or_default()),
        <[u8; 8]>::try_from(x.data().get(8..).unwrap_or_default()),
    ) else {
        return Err(StatusWord::WRONG_LENGTH);
    };
    let df = x.df()?;
    let key = match x.cmd.p2 {
        0 => df.key_of_type(KeyType::Internal),
        kid => df.key(kid).filter(|k| k.key_type == KeyType::Internal),
    }
    .ok_or(StatusWord::DATA_NOT_FOUND)?;
    if key.is_blocked() {
        return Err(StatusWord::BLOCKED);
    }
    let ck = key.card_key().ok_or(StatusWord::UNKNOWN_ERROR)?;
    let out = process_key(&ck, &r1).cryptogram(&r2).to_vec();
    x.blocks(2);
    x.case4_reply(out)
}

/// The `CLA INS P1 P2 Lc'` header that starts the MAC input (Lc' counts the 4 MAC bytes).
fn mac_header(x: &Exec<'_>) -> Vec<u8> {
    let c = x.cmd;
    let mut h = vec![c.cla, c.ins.0, c.p1, c.p2];
    let lc = c.data().len();
    match u8::try_from(lc) {
        Ok(b) => h.push(b),
        Err(_) => {
            h.push(0);
            h.extend_from_slice(&(lc as u16).to_be_bytes());
        }
    }
    h
}

/// The data of an update command (UPDATE RECORD / UPDATE BINARY) once its file's update condition allows
/// it: CLA `04` is line-protected (the STK MAC is checked and removed, and satisfies the *key* part of the
/// condition, CARD-PROFILE §6.4); `never` refuses before any MAC is checked. Empty data is `6700`.
pub(crate) fn update_payload(x: &mut Exec<'_>, update: crate::access::AccessCondition) -> Result<Vec<u8>, StatusWord> {
    if update == crate::access::AccessCondition::Never {
        return Err(StatusWord::SECURITY_NOT_SATISFIED);
    }
    let secure = x.cmd.cla == 0x04;
    let payload = if secure {
        let path = x.vol.path.clone();
        verify_mac(x, &path, KeyType::Maintenance)?
    } else {
        x.data().to_vec()
    };
    if !update.is_satisfied(&x.vol.security, secure) {
        return Err(StatusWord::SECURITY_NOT_SATISFIED);
    }
    if payload.is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    Ok(payload)
}

/// Checks the MAC (last 4 data bytes) of a line-protected command with the first key of type
/// `key_type` in the DF at `path`; returns the data without the MAC.
pub(crate) fn verify_mac(x: &mut Exec<'_>, path: &[usize], key_type: KeyType) -> Result<Vec<u8>, StatusWord> {
    let data = x.data();
    let Some(split) = data.len().checked_sub(4) else { return Err(StatusWord::WRONG_LENGTH) };
    let (payload, mac) = data.split_at(split);
    let (payload, mac) = (payload.to_vec(), mac.to_vec());
    let df = x.st.mf.at(path).ok_or(StatusWord::UNKNOWN_ERROR)?;
    let key = df.key_of_type(key_type).ok_or(StatusWord::KEY_NOT_FOUND)?;
    if key.is_blocked() {
        return Err(StatusWord::BLOCKED);
    }
    let (kid, alg) = (key.kid, key.algorithm);
    let ck = key.card_key().ok_or(StatusWord::UNKNOWN_ERROR)?;
    let challenge = x.challenge.take().ok_or(StatusWord::NO_CHALLENGE)?;
    // 3DES: the 4-byte challenge of GET CHALLENGE Le=04; SM4/AES: 8 bytes (CARD-PROFILE §6.4)
    let want = if alg == KeyAlgorithm::Tdes { 4 } else { 8 };
    if challenge.len() != want {
        return Err(StatusWord::NO_CHALLENGE);
    }
    let iv = challenge.as_slice();
    let mut input = mac_header(x);
    input.extend_from_slice(&payload);
    let expected = line_mac(&ck, iv, &input).map_err(|_| StatusWord::NO_CHALLENGE)?;
    x.blocks((input.len() + 1).div_ceil(alg.block_len()) + usize::from(alg == KeyAlgorithm::Tdes) * 2);
    let key = x.df_at_mut(path)?.key_mut(kid).ok_or(StatusWord::UNKNOWN_ERROR)?;
    if ct_eq(&expected, &mac) {
        let reset = key.tries_left != key.max_tries;
        key.tries_left = key.max_tries;
        if reset {
            x.wrote(1);
        }
        Ok(payload)
    } else {
        key.tries_left = key.tries_left.saturating_sub(1);
        x.wrote(1);
        x.keep_on_error = true;
        Err(StatusWord::MAC_WRONG)
    }
}
