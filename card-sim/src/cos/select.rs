//! CARD-PROFILE §4 SELECT: by name (`P1 04`), by FID (`P1 00`), EF under the current DF (`P1 02`).
//!
//! `P2 00` answers the FCI of a DF, `P2 0C` no data. A DF with an AID answers as a real card does
//! (CARD-PROFILE §4.2, from a public trace): `6F L 84 L AID A5 L [88 01 1E] 9F0C 03 86 01 <algorithm>` (`88` in
//! the directory DF SSSE only, as in the trace, byte for byte `6F1C…`) — the card's
//! algorithm (`01` 3DES on generations 1 and 2, `03` SM4 on generation 3) in the issuer discretionary data, no
//! spec version. Options of the image: `fci_algorithm = false` leaves `9F0C` out (a COS without it: hosts
//! read EF05 record 3), `fci_spec_version = true` adds `9F08 02 0g00` in front (this project's earlier profile
//! decision). The MF (no AID) answers `6F L A5 L (83 02 FID, 8A 01 LCS)`, LCS `03` before END PERSONALIZATION,
//! `05` after. Selecting an EF answers no data. By FID the card looks at the MF (`3F00`), the current DF
//! itself, its children, its parent and the parent's children.

use card_core::apdu::StatusWord;

use super::{blocked_on_path, CardState, Exec, Lifecycle, Res};
use crate::fs::{Df, MF_FID};

pub(crate) fn select(x: &mut Exec<'_>) -> Res {
    if !matches!(x.cmd.p2, 0x00 | 0x0C) {
        return Err(StatusWord::WRONG_P1P2);
    }
    let data = x.data().to_vec();
    match x.cmd.p1 {
        0x04 => {
            if !(5..=16).contains(&data.len()) {
                return Err(StatusWord::WRONG_LENGTH);
            }
            let path = x.st.mf.find_aid(&data).ok_or(StatusWord::FILE_NOT_FOUND)?;
            enter_df(x, path)
        }
        0x00 | 0x02 => {
            let [hi, lo] = data.as_slice() else { return Err(StatusWord::WRONG_LENGTH) };
            let fid = u16::from_be_bytes([*hi, *lo]);
            let df = x.df()?;
            if let Some(i) = df.ef_by_fid(fid) {
                x.vol.ef = Some(i);
                return super::ok(Vec::new());
            }
            if x.cmd.p1 == 0x02 {
                return Err(StatusWord::FILE_NOT_FOUND);
            }
            let here = x.vol.path.clone();
            let parent = here.split_last().map(|(_, p)| p.to_vec());
            let path = if fid == MF_FID {
                Vec::new()
            } else if df.fid == fid {
                here
            } else if let Some(i) = df.df_by_fid(fid) {
                [here.as_slice(), &[i]].concat()
            } else if let Some(parent) = parent {
                let pdf = x.st.mf.at(&parent).ok_or(StatusWord::UNKNOWN_ERROR)?;
                if pdf.fid == fid {
                    parent
                } else {
                    let i = pdf.df_by_fid(fid).ok_or(StatusWord::FILE_NOT_FOUND)?;
                    [parent.as_slice(), &[i]].concat()
                }
            } else {
                return Err(StatusWord::FILE_NOT_FOUND);
            };
            enter_df(x, path)
        }
        _ => Err(StatusWord::WRONG_P1P2),
    }
}

fn enter_df(x: &mut Exec<'_>, path: Vec<usize>) -> Res {
    if path != x.vol.path {
        x.vol.security.clear();
    }
    x.vol.ef = None;
    x.vol.path = path;
    if blocked_on_path(&x.st.mf, &x.vol.path) {
        x.keep_on_error = true;
        return Err(StatusWord::FUNCTION_NOT_SUPPORTED);
    }
    if x.cmd.p2 == 0x0C {
        return super::ok(Vec::new());
    }
    let fci = fci(x.df()?, x.st);
    x.case4_reply(fci)
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag, value.len() as u8];
    v.extend_from_slice(value);
    v
}

fn fci(df: &Df, st: &CardState) -> Vec<u8> {
    let Some(aid) = df.aid() else {
        let lcs = if st.lifecycle == Lifecycle::Personalized { 0x05 } else { 0x03 };
        let mut prop = tlv(0x83, &df.fid.to_be_bytes());
        prop.extend(tlv(0x8A, &[lcs]));
        return tlv(0x6F, &tlv(0xA5, &prop));
    };
    let mut prop = Vec::new();
    if !df.dfs.is_empty() {
        // the directory DF (SSSE): `88 01 1E` as the real card's trace has it (an SFI the reference COS does
        // not use; hosts skip it)
        prop.extend([0x88, 0x01, 0x1E]);
    }
    if st.fci_spec_version {
        // spec version `g.00` as two BCD bytes, e.g. 0200
        prop.extend([0x9F, 0x08, 0x02, st.generation, 0x00]);
    }
    if st.fci_algorithm {
        let algorithm = if st.generation == 3 { 0x03 } else { 0x01 };
        prop.extend([0x9F, 0x0C, 0x03, 0x86, 0x01, algorithm]);
    }
    let mut inner = tlv(0x84, aid);
    inner.extend(tlv(0xA5, &prop));
    tlv(0x6F, &inner)
}
