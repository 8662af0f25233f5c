//! CARD-PROFILE §4 personalization commands of the reference COS: CREATE FILE, WRITE KEY (plain and
//! secure), ERASE DF, END PERSONALIZATION. Encodings in [`crate::fs`] (CREATE FILE) and
//! [`crate::keys`] (key and PIN records); rules in [`crate::cos`] (lifecycle).

use card_core::apdu::StatusWord;

use super::records::FILE_EXISTS;
use super::{auth, ok, Exec, Lifecycle, Res};
use crate::fs::{parse_create, Df, NewFile, EEPROM_CAPACITY};
use crate::keys::{parse_key_record, KeyRecord, KeyType, KEY_RECORD_LEN};
use card_core::crypto::secure_data_decrypt;

/// The MK rule: the current DF's MK must be authenticated; a DF without an MK is open before END
/// PERSONALIZATION only.
fn master_key_authorised(x: &Exec<'_>) -> Result<(), StatusWord> {
    match x.df()?.key_of_type(KeyType::Master) {
        Some(mk) if x.vol.security.is_authenticated(mk.kid) => Ok(()),
        None if x.st.lifecycle != Lifecycle::Personalized => Ok(()),
        _ => Err(StatusWord::SECURITY_NOT_SATISFIED),
    }
}

fn not_personalized(x: &Exec<'_>) -> Result<(), StatusWord> {
    if x.st.lifecycle == Lifecycle::Personalized {
        return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
    }
    Ok(())
}

fn started(x: &mut Exec<'_>) {
    if x.st.lifecycle == Lifecycle::Blank {
        x.st.lifecycle = Lifecycle::Personalizing;
    }
}

pub(crate) fn create_file(x: &mut Exec<'_>) -> Res {
    not_personalized(x)?;
    if x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    master_key_authorised(x)?;
    let fid = x.p1p2();
    let new = parse_create(fid, x.data()).ok_or(StatusWord::WRONG_DATA)?;
    let df = x.df()?;
    if df.fid == fid || df.ef_by_fid(fid).is_some() || df.df_by_fid(fid).is_some() {
        return Err(FILE_EXISTS);
    }
    let added = match &new {
        NewFile::Ef(ef) => {
            if ef.sfi != 0 && df.ef_by_sfi(ef.sfi).is_some() {
                return Err(FILE_EXISTS);
            }
            ef.footprint()
        }
        NewFile::Df { aid } => {
            if aid.as_deref().is_some_and(|a| x.st.mf.has_aid(a)) {
                return Err(FILE_EXISTS);
            }
            Df::new(fid, None).footprint()
        }
    };
    if x.st.mf.footprint() + added > EEPROM_CAPACITY {
        return Err(StatusWord::NO_SPACE);
    }
    let df = x.df_mut()?;
    match new {
        NewFile::Ef(ef) => df.files.push(ef),
        NewFile::Df { aid } => df.dfs.push(Df::new(fid, aid)),
    }
    x.wrote(32);
    started(x);
    ok(Vec::new())
}

pub(crate) fn write_key(x: &mut Exec<'_>) -> Res {
    if x.cmd.p1 != 0x01 {
        return Err(StatusWord::WRONG_P1P2);
    }
    let kid = x.cmd.p2;
    let record = if x.cmd.cla == 0x80 {
        not_personalized(x)?;
        if x.data().len() != KEY_RECORD_LEN {
            return Err(StatusWord::WRONG_LENGTH);
        }
        master_key_authorised(x)?;
        zeroize::Zeroizing::new(x.data().to_vec())
    } else {
        if x.data().len() < 4 + 8 {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let path = x.vol.path.clone();
        let enc = auth::verify_mac(x, &path, KeyType::Master)?;
        let mk = x.df()?.key_of_type(KeyType::Master).ok_or(StatusWord::KEY_NOT_FOUND)?;
        let bs = mk.algorithm.block_len();
        let ck = mk.card_key().ok_or(StatusWord::UNKNOWN_ERROR)?;
        x.blocks(enc.len().div_ceil(bs));
        secure_data_decrypt(&ck, &enc).map_err(|_| StatusWord::SM_DATA_WRONG)?
    };
    let parsed = parse_key_record(kid, &record).ok_or(StatusWord::WRONG_DATA)?;
    let df = x.df_mut()?;
    match parsed {
        KeyRecord::Pin(pin) => df.pin = Some(pin),
        KeyRecord::Key(key) => {
            match df.keys.iter_mut().find(|k| k.kid == kid) {
                Some(slot) => *slot = key,
                None => df.keys.push(key),
            }
            x.vol.security.forget(kid);
        }
    }
    x.wrote(KEY_RECORD_LEN);
    started(x);
    ok(Vec::new())
}

pub(crate) fn erase_df(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    master_key_authorised(x)?;
    let df = x.df_mut()?;
    df.files.clear();
    df.dfs.clear();
    df.pin = None;
    df.blocked = false;
    df.keys.retain(|k| k.key_type == KeyType::Master);
    x.vol.ef = None;
    x.wrote(32);
    ok(Vec::new())
}

pub(crate) fn end_personalization(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    if x.st.lifecycle != Lifecycle::Personalizing || !x.vol.path.is_empty() {
        return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
    }
    let mk = x.st.mf.key_of_type(KeyType::Master).ok_or(StatusWord::SECURITY_NOT_SATISFIED)?;
    if !x.vol.security.is_authenticated(mk.kid) {
        return Err(StatusWord::SECURITY_NOT_SATISFIED);
    }
    x.st.lifecycle = Lifecycle::Personalized;
    x.wrote(1);
    ok(Vec::new())
}
