//! CARD-PROFILE §4 APPLICATION BLOCK / UNBLOCK, CARD BLOCK (all `84 xx 00 00 04 MAC4` under the
//! current DF's STK), GET DATA key info and GET RESPONSE.
//!
//! GET DATA `80 CA 00 C1 00` answers, for every key of the current DF in kid order, 4 bytes:
//! `kid ‖ version ‖ algorithm ‖ tries left` (no wrapping tag). Other P1-P2: `6A88`.

use card_core::apdu::StatusWord;

use super::{auth, ok, Exec, Reply, Res};
use crate::keys::KeyType;

fn block_command(x: &mut Exec<'_>) -> Result<(), StatusWord> {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if x.data().len() != 4 {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let path = x.vol.path.clone();
    auth::verify_mac(x, &path, KeyType::Maintenance).map(|_| ())
}

pub(crate) fn application_block(x: &mut Exec<'_>) -> Res {
    block_command(x)?;
    x.df_mut()?.blocked = true;
    x.vol.security.clear();
    x.vol.ef = None;
    x.wrote(1);
    ok(Vec::new())
}

pub(crate) fn application_unblock(x: &mut Exec<'_>) -> Res {
    block_command(x)?;
    let df = x.df_mut()?;
    if df.blocked {
        df.blocked = false;
        x.wrote(1);
    }
    ok(Vec::new())
}

pub(crate) fn card_block(x: &mut Exec<'_>) -> Res {
    block_command(x)?;
    x.st.card_blocked = true;
    x.vol.security.clear();
    x.wrote(1);
    ok(Vec::new())
}

pub(crate) fn get_data(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0x00C1 {
        return Err(StatusWord::DATA_NOT_FOUND);
    }
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let keys = x.df()?.key_info();
    x.read_reply(keys.concat())
}

pub(crate) fn get_response(x: &mut Exec<'_>) -> Res {
    if x.p1p2() != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let pending = x.vol.pending.take().ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
    let le = x.cmd.le().map_or(256, |l| usize::try_from(l).unwrap_or(usize::MAX));
    if le > pending.len() {
        return Err(StatusWord(0x6C00 | (pending.len().min(256) & 0xFF) as u16));
    }
    let (now, rest) = pending.split_at(le);
    if rest.is_empty() {
        return ok(now.to_vec());
    }
    let sw = StatusWord(0x6100 | (rest.len().min(256) & 0xFF) as u16);
    let data = now.to_vec();
    x.vol.pending = Some(rest.to_vec());
    Ok(Reply { data, sw })
}
