//! CARD-PROFILE §4 READ BINARY and UPDATE BINARY (plain `00 D6`, line-protected `04 D6`).
//!
//! P1 bit 8 set: P1 bits 5–1 are an SFI and P2 the offset; otherwise P1‖P2 is a 15-bit offset into
//! the current EF. An offset at or past the end answers `6B00`; data past the end `6700`.

use crate::access::Check as _;
use card_core::apdu::StatusWord;

use super::records::{resolve_sfi, WRONG_STRUCTURE};
use super::{auth, ok, Exec, Res};
use crate::fs::EfBody;

fn address(x: &mut Exec<'_>) -> Result<(usize, usize), StatusWord> {
    let (p1, p2) = (x.cmd.p1, x.cmd.p2);
    if p1 & 0x80 != 0 {
        if p1 & 0x60 != 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        let sfi = p1 & 0x1F;
        if sfi == 0 {
            return Err(StatusWord::WRONG_P1P2);
        }
        Ok((resolve_sfi(x, sfi)?, usize::from(p2)))
    } else {
        Ok((resolve_sfi(x, 0)?, usize::from(u16::from_be_bytes([p1, p2]))))
    }
}

pub(crate) fn read_binary(x: &mut Exec<'_>) -> Res {
    if !x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let (i, offset) = address(x)?;
    let ef = x.df()?.files.get(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    if !ef.read.is_satisfied(&x.vol.security, false) {
        return Err(StatusWord::SECURITY_NOT_SATISFIED);
    }
    let EfBody::Transparent { data, .. } = &ef.body else { return Err(WRONG_STRUCTURE) };
    let rest = data.0.get(offset..).filter(|r| !r.is_empty()).ok_or(StatusWord::WRONG_OFFSET)?;
    let rest = rest.to_vec();
    x.read_reply(rest)
}

pub(crate) fn update_binary(x: &mut Exec<'_>) -> Res {
    if x.data().is_empty() {
        return Err(StatusWord::WRONG_LENGTH);
    }
    let (i, offset) = address(x)?;
    let ef = x.df()?.files.get(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let update = ef.update;
    let EfBody::Transparent { size, .. } = &ef.body else { return Err(WRONG_STRUCTURE) };
    if offset >= usize::from(*size) {
        return Err(StatusWord::WRONG_OFFSET);
    }
    let payload = auth::update_payload(x, update)?;
    let ef = x.df_mut()?.files.get_mut(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
    let EfBody::Transparent { data, .. } = &mut ef.body else { return Err(WRONG_STRUCTURE) };
    let target = data.0.get_mut(offset..offset.saturating_add(payload.len())).ok_or(StatusWord::WRONG_LENGTH)?;
    target.copy_from_slice(&payload);
    x.wrote(payload.len());
    ok(Vec::new())
}
