//! The file system of the card (CARD-PROFILE §2): MF `3F00`, DFs (DDF/ADF) with a key file and a PIN,
//! and elementary files — linear (one simple TLV per record), cyclic (fixed-length records, newest is
//! record 1) and transparent.
//!
//! # CREATE FILE data (`80 E0 FID_hi FID_lo Lc data`)
//!
//! The file is created in the current DF; the type byte is the ISO/IEC 7816-4 file descriptor byte.
//!
//! | file | data |
//! |---|---|
//! | DF (DDF or ADF) | `38 ‖ [AID (5–16 bytes)]` |
//! | transparent EF | `01 ‖ SFI ‖ read AC ‖ update AC ‖ size (2, big-endian, 1–7FFF)` |
//! | linear EF, TLV records | `04 ‖ SFI ‖ read AC ‖ update AC ‖ max records (1–FE) ‖ max record length (2–FF) ‖ [record ‖ read AC]…` |
//! | cyclic EF | `06 ‖ SFI ‖ read AC ‖ update AC ‖ records (1–FE) ‖ record length (1–FF)` |
//!
//! The optional pairs after a linear EF's layout give single records their own read condition
//! (CARD-PROFILE §3: on a gen 3 card EF05 record 7 needs RKSSSE while records 1–6 are free).
//!
//! SFI `01`–`1E` (or `00`: the EF has no SFI); the AC bytes as in [`crate::access`]. A FID, SFI or AID
//! already used answers `6A89`; `3F00`, `0000`, `FFFF` and malformed data answer `6A80`; a full card `6A84`.
//!
//! Linear records start unwritten (READ RECORD answers `6A83`); UPDATE RECORD `rr` writes record `rr`
//! (1 ≤ rr ≤ max records) with one simple TLV `tag ‖ len ‖ value`. Cyclic records start empty; APPEND
//! RECORD (`00 E2 00 SFI<<3`), or UPDATE RECORD with P1 = `00`, writes a new record 1 and drops the
//! oldest when full; UPDATE RECORD `rr` ≥ 1 rewrites record `rr` in place.

use serde::{Deserialize, Serialize};

use crate::access::AccessCondition;
use crate::hexfmt::{self, HexBytes};
use crate::keys::{KeyEntry, PinEntry};

/// FID of the MF.
pub const MF_FID: u16 = 0x3F00;
/// EEPROM available for files (bytes), the sum of [`Ef::footprint`]s and DF overheads.
pub const EEPROM_CAPACITY: usize = 64 * 1024;
/// Bytes a DF header, key slot or file header occupies.
const HEADER_BYTES: usize = 32;

/// A dedicated file (MF, DDF or ADF).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Df {
    /// File identifier.
    #[serde(with = "hexfmt::fid")]
    pub fid: u16,
    /// DF name (AID), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) aid: Option<HexBytes>,
    /// APPLICATION BLOCK was applied (and not undone).
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub(crate) keys: Vec<KeyEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pin: Option<PinEntry>,
    #[serde(default)]
    pub(crate) files: Vec<Ef>,
    #[serde(default)]
    pub(crate) dfs: Vec<Df>,
}

/// An elementary file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ef {
    /// File identifier.
    #[serde(with = "hexfmt::fid")]
    pub fid: u16,
    /// Short file identifier (1–30), 0 = none.
    pub sfi: u8,
    /// Condition for READ RECORD / READ BINARY.
    pub read: AccessCondition,
    /// Condition for UPDATE RECORD / UPDATE BINARY / APPEND RECORD.
    pub update: AccessCondition,
    /// Read conditions of single records that differ from `read` (linear EFs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_read: Vec<RecordAccess>,
    /// Structure and content.
    #[serde(flatten)]
    pub(crate) body: EfBody,
}

/// A record whose read condition differs from its file's (CARD-PROFILE §3: gen 3 EF05 record 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAccess {
    /// Record number (1-based).
    pub record: u8,
    /// Its read condition.
    pub read: AccessCondition,
}

/// Structure and content of an EF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "structure", rename_all = "snake_case")]
pub(crate) enum EfBody {
    Transparent { size: u16, data: HexBytes },
    Linear { max_records: u8, record_len: u8, records: Vec<Option<HexBytes>> },
    Cyclic { max_records: u8, record_len: u8, records: Vec<HexBytes> },
}

impl Df {
    /// A DF with nothing in it.
    pub(crate) fn new(fid: u16, aid: Option<Vec<u8>>) -> Df {
        Df {
            fid,
            aid: aid.map(HexBytes),
            blocked: false,
            keys: Vec::new(),
            pin: None,
            files: Vec::new(),
            dfs: Vec::new(),
        }
    }

    /// The DF name (AID).
    pub fn aid(&self) -> Option<&[u8]> {
        self.aid.as_ref().map(|a| a.0.as_slice())
    }

    /// The EFs of this DF.
    pub fn files(&self) -> &[Ef] {
        &self.files
    }

    /// The DFs directly below this one.
    pub fn dfs(&self) -> &[Df] {
        &self.dfs
    }

    /// The DF below this one (or this one) with this AID.
    pub fn df_by_aid(&self, aid: &[u8]) -> Option<&Df> {
        self.find_aid(aid).and_then(|p| self.at(&p))
    }

    /// The EF of this DF with this SFI.
    pub fn ef_with_sfi(&self, sfi: u8) -> Option<&Ef> {
        self.files.iter().find(|f| f.sfi == sfi)
    }

    /// Whether the DF holds a PIN.
    pub fn has_pin(&self) -> bool {
        self.pin.is_some()
    }

    /// `(kid, version, algorithm id, tries left)` of every key, as GET DATA key info answers.
    pub fn key_info(&self) -> Vec<[u8; 4]> {
        let mut v: Vec<[u8; 4]> =
            self.keys.iter().map(|k| [k.kid, k.version, k.algorithm.id(), k.tries_left]).collect();
        v.sort_unstable();
        v
    }

    /// The DF at a path of child indices below this one.
    pub(crate) fn at(&self, path: &[usize]) -> Option<&Df> {
        path.iter().try_fold(self, |df, i| df.dfs.get(*i))
    }

    /// Mutable [`Df::at`].
    pub(crate) fn at_mut(&mut self, path: &[usize]) -> Option<&mut Df> {
        path.iter().try_fold(self, |df, i| df.dfs.get_mut(*i))
    }

    /// Path to the first DF (depth first) whose AID is `aid`.
    pub(crate) fn find_aid(&self, aid: &[u8]) -> Option<Vec<usize>> {
        if self.aid() == Some(aid) {
            return Some(Vec::new());
        }
        self.dfs.iter().enumerate().find_map(|(i, d)| {
            d.find_aid(aid).map(|mut p| {
                p.insert(0, i);
                p
            })
        })
    }

    pub(crate) fn key(&self, kid: u8) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub(crate) fn key_mut(&mut self, kid: u8) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|k| k.kid == kid)
    }

    /// The first key of a type (by kid order as written).
    pub(crate) fn key_of_type(&self, t: crate::keys::KeyType) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.key_type == t)
    }

    pub(crate) fn ef_by_sfi(&self, sfi: u8) -> Option<usize> {
        self.files.iter().position(|f| f.sfi == sfi)
    }

    pub(crate) fn ef_by_fid(&self, fid: u16) -> Option<usize> {
        self.files.iter().position(|f| f.fid == fid)
    }

    pub(crate) fn df_by_fid(&self, fid: u16) -> Option<usize> {
        self.dfs.iter().position(|d| d.fid == fid)
    }

    /// Whether any AID in this subtree equals `aid`.
    pub(crate) fn has_aid(&self, aid: &[u8]) -> bool {
        self.find_aid(aid).is_some()
    }

    /// EEPROM used by this DF and everything below it.
    pub(crate) fn footprint(&self) -> usize {
        HEADER_BYTES * (1 + self.keys.len() + usize::from(self.pin.is_some()))
            + self.files.iter().map(Ef::footprint).sum::<usize>()
            + self.dfs.iter().map(Df::footprint).sum::<usize>()
    }
}

impl Ef {
    /// Record `n` (1-based) of a linear or cyclic EF, if written.
    pub fn record(&self, n: usize) -> Option<&[u8]> {
        let i = n.checked_sub(1)?;
        match &self.body {
            EfBody::Linear { records, .. } => records.get(i)?.as_ref().map(|r| r.0.as_slice()),
            EfBody::Cyclic { records, .. } => records.get(i).map(|r| r.0.as_slice()),
            EfBody::Transparent { .. } => None,
        }
    }

    /// The content of a transparent EF.
    pub fn binary(&self) -> Option<&[u8]> {
        match &self.body {
            EfBody::Transparent { data, .. } => Some(&data.0),
            _ => None,
        }
    }

    /// The read condition of record `n` (1-based).
    pub fn record_read_condition(&self, n: usize) -> AccessCondition {
        self.record_read.iter().find(|r| usize::from(r.record) == n).map_or(self.read, |r| r.read)
    }

    /// EEPROM used by the file: header and the whole data area.
    pub fn footprint(&self) -> usize {
        HEADER_BYTES
            + match &self.body {
                EfBody::Transparent { size, .. } => usize::from(*size),
                EfBody::Linear { max_records, record_len, .. } | EfBody::Cyclic { max_records, record_len, .. } => {
                    usize::from(*max_records) * usize::from(*record_len)
                }
            }
    }

    /// Checks the body's invariants (used when loading images).
    pub(crate) fn check(&self) -> Result<(), String> {
        let fid = self.fid;
        if self.sfi > 30 {
            return Err(format!("EF {fid:04X}: SFI {} outside 0..=30", self.sfi));
        }
        match &self.body {
            EfBody::Transparent { size, data } if data.0.len() != usize::from(*size) => {
                Err(format!("EF {fid:04X}: {} data bytes for size {size}", data.0.len()))
            }
            EfBody::Linear { max_records, record_len, records } => {
                if records.len() > usize::from(*max_records) {
                    return Err(format!("EF {fid:04X}: more records than {max_records}"));
                }
                for r in records.iter().flatten() {
                    if r.0.len() > usize::from(*record_len) || !is_simple_tlv(&r.0) {
                        return Err(format!("EF {fid:04X}: record {:?} is not a TLV of at most {record_len}", r));
                    }
                }
                Ok(())
            }
            EfBody::Cyclic { max_records, record_len, records } => {
                if records.len() > usize::from(*max_records)
                    || records.iter().any(|r| r.0.len() != usize::from(*record_len))
                {
                    return Err(format!("EF {fid:04X}: cyclic records do not match {max_records}×{record_len}"));
                }
                Ok(())
            }
            EfBody::Transparent { .. } => Ok(()),
        }
    }
}

/// Whether `rec` is exactly one simple TLV: `tag ‖ len ‖ value(len)`.
pub(crate) fn is_simple_tlv(rec: &[u8]) -> bool {
    matches!(rec, [_, len, value @ ..] if usize::from(*len) == value.len())
}

/// What a CREATE FILE command asks for.
pub(crate) enum NewFile {
    Df { aid: Option<Vec<u8>> },
    Ef(Ef),
}

/// Decodes CREATE FILE data (card-core's reference COS codec); `None` if malformed.
pub(crate) fn parse_create(fid: u16, data: &[u8]) -> Option<NewFile> {
    use card_core::reference_cos::{EfSpec, FileSpec, Layout};
    Some(match FileSpec::decode(fid, data)? {
        FileSpec::Df { aid } => NewFile::Df { aid },
        FileSpec::Ef(EfSpec { sfi, read, update, layout }) => {
            let (body, record_read) = match layout {
                Layout::Transparent { size } => {
                    (EfBody::Transparent { size, data: HexBytes(vec![0; usize::from(size)]) }, Vec::new())
                }
                Layout::Linear { records, record_len, record_read } => (
                    EfBody::Linear { max_records: records, record_len, records: Vec::new() },
                    record_read.into_iter().map(|(record, read)| RecordAccess { record, read }).collect(),
                ),
                Layout::Cyclic { records, record_len } => {
                    (EfBody::Cyclic { max_records: records, record_len, records: Vec::new() }, Vec::new())
                }
            };
            NewFile::Ef(Ef { fid, sfi, read, update, record_read, body })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_data() {
        assert!(matches!(parse_create(0xEF05, &[0x04, 5, 0x00, 0x24, 7, 20]), Some(NewFile::Ef(_))));
        assert!(matches!(parse_create(0xDF01, &[0x38, 0xD1, 0x56, 0, 0, 5, 0]), Some(NewFile::Df { aid: Some(_) })));
        assert!(parse_create(0x3F00, &[0x38]).is_none());
        assert!(parse_create(0xEF05, &[0x04, 31, 0, 0, 7, 20]).is_none());
        assert!(parse_create(0xEF05, &[0x04, 5, 0x01, 0, 7, 20]).is_none());
        assert!(parse_create(0xEF07, &[0x01, 7, 0, 0, 0x80, 0]).is_none());
        assert!(is_simple_tlv(&[1, 2, 3, 4]));
        assert!(!is_simple_tlv(&[1, 3, 3, 4]));
    }
}
