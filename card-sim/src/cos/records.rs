//! CARD-PROFILE §4 READ RECORD (by number `P2 …100`, by tag `P2 …000`, all from P1 `P2 …101`),
//! UPDATE RECORD (plain `00 DC`, line-protected `04 DC`) and APPEND RECORD (`00 E2`, ISO/IEC 7816-4,
//! for cyclic EFs). P2 bits 8–4 carry the SFI (0 = current EF).

use crate::access::Check as _;
use card_core::apdu::{Ins, StatusWord};

use super::{auth, ok, Exec, Res};
use crate::fs::{is_simple_tlv, EfBody};
use crate::hexfmt::HexBytes;

/// APPEND RECORD (ISO/IEC 7816-4 §11.3.5), an extension for cyclic EFs.
pub(crate) const APPEND_RECORD: Ins = Ins(0xE2);
/// `6981` command incompatible with the file structure.
pub(crate) const WRONG_STRUCTURE: StatusWord = StatusWord(0x6981);
/// `6A89` file already exists.
pub(crate) const FILE_EXISTS: StatusWord = StatusWord(0x6A89);

/// Makes the EF with this SFI current (0: the current EF) and returns its index.
pub(crate) fn resolve_sfi(x: &mut Exec<'_>, sfi: u8) -> Result<usize, StatusWord> {
    match sfi {
        0 => x.vol.ef.ok_or(StatusWord::FILE_NOT_FOUND),
        1..=30 => {
            let i = x.df()?.ef_by_sfi(sfi).ok_or(StatusWord::FILE_NOT_FOUND)?;
            x.vol.ef = Some(i);
            Ok(i)
        }
        _ => Err(StatusWord::WRONG_P1P2),
    }
}

pub(crate) fn read_record(x: &mut Exec<'_>) -> Res {
    let (p1, mode) = (x.cmd.p1, x.cmd.p2 & 0x07);
    if !matches!(mode, 0b000 | 0b100 | 0b101) || (mode != 0 && p1 == 0) || (mode == 0b101 && !x.st.read_all) {
        return Err(StatusWord::WRONG_P1P2);
    }
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let i = resolve_sfi(x, x.cmd.p2 >> 3)?;
    let df = x.df()?;
    let ef = df.files.get(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let sec = &x.vol.security;
    if !ef.read.is_satisfied(sec, false) {
        return Err(StatusWord::SECURITY_NOT_SATISFIED);
    }
    let nth = usize::from(p1).saturating_sub(1);
    // (record number, record) pairs the command addresses, in order
    let data = match (&ef.body, mode) {
        (EfBody::Transparent { .. }, _) => return Err(WRONG_STRUCTURE),
        (EfBody::Linear { records, .. }, _) => {
            let written = records.iter().enumerate().filter_map(|(i, r)| r.as_ref().map(|r| (i + 1, r)));
            let chosen: Vec<(usize, &HexBytes)> = match mode {
                0b100 => written.filter(|(n, _)| *n == nth + 1).collect(),
                0b000 => written.filter(|(_, r)| r.0.first() == Some(&p1)).take(1).collect(),
                _ => written.filter(|(n, _)| *n > nth).collect(),
            };
            if chosen.iter().any(|(n, _)| !ef.record_read_condition(*n).is_satisfied(sec, false)) {
                return Err(StatusWord::SECURITY_NOT_SATISFIED);
            }
            let all: Vec<u8> = chosen.iter().flat_map(|(_, r)| r.0.iter().copied()).collect();
            (!chosen.is_empty()).then_some(all)
        }
        (EfBody::Cyclic { .. }, 0b000) => return Err(StatusWord::WRONG_P1P2),
        (EfBody::Cyclic { records, .. }, 0b100) => records.get(nth).map(|r| r.0.clone()),
        (EfBody::Cyclic { records, .. }, _) => {
            let all: Vec<u8> = records.iter().skip(nth).flat_map(|r| r.0.iter().copied()).collect();
            (!all.is_empty()).then_some(all)
        }
    };
    let data = data.ok_or(StatusWord::RECORD_NOT_FOUND)?;
    x.read_reply(data)
}

/// Resolves the EF, checks line protection (CLA `04`) and the update condition; returns the EF index
/// and the record data (MAC removed).
fn prepare_update(x: &mut Exec<'_>, sfi: u8) -> Result<(usize, Vec<u8>), StatusWord> {
    let i = resolve_sfi(x, sfi)?;
    let update = x.df()?.files.get(i).ok_or(StatusWord::FILE_NOT_FOUND)?.update;
    Ok((i, auth::update_payload(x, update)?))
}

pub(crate) fn update_record(x: &mut Exec<'_>) -> Res {
    if x.cmd.p2 & 0x07 != 0b100 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let p1 = x.cmd.p1;
    let (i, rec) = prepare_update(x, x.cmd.p2 >> 3)?;
    let n = rec.len();
    let ef = x.df_mut()?.files.get_mut(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    match &mut ef.body {
        EfBody::Transparent { .. } => return Err(WRONG_STRUCTURE),
        EfBody::Linear { max_records, record_len, records } => {
            if p1 == 0 || p1 > *max_records {
                return Err(StatusWord::RECORD_NOT_FOUND);
            }
            if n > usize::from(*record_len) {
                return Err(StatusWord::WRONG_LENGTH);
            }
            if !is_simple_tlv(&rec) {
                return Err(StatusWord::WRONG_DATA);
            }
            let idx = usize::from(p1) - 1;
            if records.len() <= idx {
                records.resize(idx + 1, None);
            }
            if let Some(slot) = records.get_mut(idx) {
                *slot = Some(HexBytes(rec));
            }
        }
        EfBody::Cyclic { max_records, record_len, records } => {
            if n != usize::from(*record_len) {
                return Err(StatusWord::WRONG_LENGTH);
            }
            if p1 == 0 {
                records.insert(0, HexBytes(rec));
                records.truncate(usize::from(*max_records));
            } else {
                let slot = records.get_mut(usize::from(p1) - 1).ok_or(StatusWord::RECORD_NOT_FOUND)?;
                *slot = HexBytes(rec);
            }
        }
    }
    x.wrote(n);
    ok(Vec::new())
}

pub(crate) fn append_record(x: &mut Exec<'_>) -> Res {
    if x.cmd.p1 != 0 || x.cmd.p2 & 0x07 != 0 {
        return Err(StatusWord::WRONG_P1P2);
    }
    if x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let (i, rec) = prepare_update(x, x.cmd.p2 >> 3)?;
    let n = rec.len();
    let ef = x.df_mut()?.files.get_mut(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    match &mut ef.body {
        EfBody::Transparent { .. } => return Err(WRONG_STRUCTURE),
        EfBody::Linear { max_records, record_len, records } => {
            if n > usize::from(*record_len) {
                return Err(StatusWord::WRONG_LENGTH);
            }
            if !is_simple_tlv(&rec) {
                return Err(StatusWord::WRONG_DATA);
            }
            if let Some(slot) = records.iter_mut().find(|r| r.is_none()) {
                *slot = Some(HexBytes(rec));
            } else if records.len() < usize::from(*max_records) {
                records.push(Some(HexBytes(rec)));
            } else {
                return Err(StatusWord::NO_SPACE);
            }
        }
        EfBody::Cyclic { max_records, record_len, records } => {
            if n != usize::from(*record_len) {
                return Err(StatusWord::WRONG_LENGTH);
            }
            records.insert(0, HexBytes(rec));
            records.truncate(usize::from(*max_records));
        }
    }
    x.wrote(n);
    ok(Vec::new())
}
