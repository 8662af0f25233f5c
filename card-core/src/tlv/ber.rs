//! BER-TLV (ISO/IEC 7816-4 §5.2) through `iso7816-tlv`, with bounds checked first.

use core::fmt;
use core::ops::Range;

use iso7816_tlv::ber::{Tlv, Value};

use super::TlvError;

/// The error of the `iso7816-tlv` crate, which does not implement [`std::error::Error`] in the
/// configuration the workspace builds; its message is kept as is.
#[derive(Debug, Clone, PartialEq)]
pub struct BerError(pub iso7816_tlv::TlvError);

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BerError {}

impl From<iso7816_tlv::TlvError> for TlvError {
    fn from(e: iso7816_tlv::TlvError) -> Self {
        TlvError::Ber(BerError(e))
    }
}

/// Bounds on BER-TLV input, checked before any parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting: a top-level data object is at depth 1, its children at depth 2, ….
    pub max_depth: usize,
    /// Longest input, in bytes.
    pub max_len: usize,
    /// Most data objects in all (the crate's constructed-value parsing is quadratic in the
    /// number of children, so this bounds the work as well as the memory).
    pub max_items: usize,
}

impl Default for Limits {
    /// Depth 8, 64 KiB, 1024 data objects: far above any FCI or record of the profile.
    fn default() -> Self {
        Limits { max_depth: 8, max_len: 64 * 1024, max_items: 1024 }
    }
}

/// Tag and value position of one data object, as found by [`Header::read`].
struct Header {
    tag: Range<usize>,
    constructed: bool,
    value: Range<usize>,
}

impl Header {
    /// Reads the tag and length fields at `pos`; the value must end by `end`.
    fn read(bytes: &[u8], pos: usize, end: usize) -> Result<Header, TlvError> {
        let byte = |i: usize| if i < end { bytes.get(i).copied() } else { None };
        let bad_tag = TlvError::BadTag { offset: pos };
        let first = byte(pos).ok_or(TlvError::Truncated { offset: pos, needed: 1, available: 0 })?;
        if first == 0x00 {
            return Err(bad_tag);
        }
        let mut cursor = pos + 1;
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes: bit 8 set means another follows; at most 3 bytes in all.
            loop {
                let b = byte(cursor).ok_or(TlvError::BadTag { offset: pos })?;
                cursor += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if cursor - pos >= 3 {
                    return Err(bad_tag);
                }
            }
        }
        let tag = pos..cursor;
        let len_offset = cursor;
        let truncated_len = TlvError::Truncated { offset: pos, needed: 1, available: 0 };
        let l = byte(cursor).ok_or(truncated_len)?;
        cursor += 1;
        let len = match l {
            0x00..=0x7F => usize::from(l),
            0x81..=0x84 => {
                let n = usize::from(l & 0x7F);
                let mut len: u64 = 0;
                for i in 0..n {
                    let b = byte(cursor + i).ok_or(TlvError::Truncated {
                        offset: pos,
                        needed: n,
                        available: end.saturating_sub(cursor),
                    })?;
                    len = len << 8 | u64::from(b);
                }
                cursor += n;
                usize::try_from(len).map_err(|_| TlvError::BadLength { offset: len_offset })?
            }
            _ => return Err(TlvError::BadLength { offset: len_offset }),
        };
        let available = end - cursor;
        if len > available {
            return Err(TlvError::Truncated { offset: pos, needed: len, available });
        }
        Ok(Header { tag, constructed: first & 0x20 != 0, value: cursor..cursor + len })
    }
}

/// Walks all data objects iteratively and checks them against `limits`.
fn prescan(bytes: &[u8], limits: Limits) -> Result<(), TlvError> {
    if bytes.len() > limits.max_len {
        return Err(TlvError::TooLong { len: bytes.len(), max: limits.max_len });
    }
    // End offsets of the constructed values we are inside.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0;
    let mut items = 0usize;
    loop {
        while open.last() == Some(&pos) {
            open.pop();
        }
        let end = open.last().copied().unwrap_or(bytes.len());
        if pos >= end {
            return Ok(());
        }
        let depth = open.len() + 1;
        if depth > limits.max_depth {
            return Err(TlvError::TooDeep { offset: pos, max: limits.max_depth });
        }
        items += 1;
        if items > limits.max_items {
            return Err(TlvError::TooManyItems { max: limits.max_items });
        }
        let header = Header::read(bytes, pos, end)?;
        if header.constructed {
            open.push(header.value.end);
            pos = header.value.start;
        } else {
            pos = header.value.end;
        }
    }
}

/// Parses all BER-TLV data objects in `bytes`, in order, within `limits`.
///
/// No padding is skipped: `00` is an invalid tag. Hostile input (deep nesting, lengths past
/// the end or beyond 4 bytes, tags longer than 3 bytes) gives an error, never a panic or deep
/// recursion.
pub fn parse_ber(bytes: &[u8], limits: Limits) -> Result<Vec<Tlv>, TlvError> {
    prescan(bytes, limits)?;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (tlv, tail) = Tlv::parse(rest);
        out.push(tlv?);
        rest = tail;
    }
    Ok(out)
}

/// The first data object with tag `tag` (its bytes, e.g. `&[0x5F, 0x2D]`), searching depth
/// first in document order, constructed objects included.
///
/// Unlike the crate's own `Tlv::find`, which matches primitive objects only, this finds
/// `A5` as well as `84`.
pub fn find<'a>(tlvs: &'a [Tlv], tag: &[u8]) -> Option<&'a Tlv> {
    find_all(tlvs, tag).into_iter().next()
}

/// All data objects with tag `tag`, depth first in document order (iterative).
pub fn find_all<'a>(tlvs: &'a [Tlv], tag: &[u8]) -> Vec<&'a Tlv> {
    let mut found = Vec::new();
    let mut stack: Vec<&Tlv> = tlvs.iter().rev().collect();
    while let Some(tlv) = stack.pop() {
        if tlv.tag().to_bytes() == tag {
            found.push(tlv);
        }
        if let Value::Constructed(children) = tlv.value() {
            stack.extend(children.iter().rev());
        }
    }
    found
}

/// The value of a primitive data object; `None` for a constructed one.
pub fn primitive_value(tlv: &Tlv) -> Option<&[u8]> {
    match tlv.value() {
        Value::Primitive(v) => Some(v),
        Value::Constructed(_) => None,
    }
}

/// The file control information of a SELECT response: template `6F` (CARD-PROFILE §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fci {
    /// Tag `84`, the DF name (AID), e.g. `7378312E73682EC9E7BBE1B1A3D5CF` for SSSE.
    pub df_name: Option<Vec<u8>>,
    /// The value of tag `A5`, the proprietary template, as received (its own TLVs).
    pub proprietary: Option<Vec<u8>>,
    /// The whole `6F` data object as received.
    pub raw: Vec<u8>,
}

/// Reads the FCI of a SELECT response (without its status word).
///
/// Empty data (a card may select without returning an FCI) is `Ok(None)`. Anything else must
/// be exactly one `6F` data object within [`Limits::default`]; in it, the first `84` and the
/// first `A5` are taken and other objects are ignored (they stay in [`Fci::raw`]).
pub fn parse_fci(bytes: &[u8]) -> Result<Option<Fci>, TlvError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    prescan(bytes, Limits::default())?;
    let top = Header::read(bytes, 0, bytes.len())?;
    let tag = &bytes[top.tag.clone()];
    if tag != [0x6F] {
        return Err(TlvError::NotFci { reason: format!("first tag is {}", hex::encode_upper(tag)) });
    }
    if top.value.end != bytes.len() {
        return Err(TlvError::NotFci {
            reason: format!("{} bytes after the 6F template", bytes.len() - top.value.end),
        });
    }
    let mut fci = Fci { df_name: None, proprietary: None, raw: bytes.to_vec() };
    let mut pos = top.value.start;
    while pos < top.value.end {
        let child = Header::read(bytes, pos, top.value.end)?;
        let value = bytes[child.value.clone()].to_vec();
        match &bytes[child.tag.clone()] {
            [0x84] if fci.df_name.is_none() => fci.df_name = Some(value),
            [0xA5] if fci.proprietary.is_none() => fci.proprietary = Some(value),
            _ => {}
        }
        pos = child.value.end;
    }
    Ok(Some(fci))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const SSSE_AID: &str = "7378312E73682EC9E7BBE1B1A3D5CF";

    #[test]
    fn fci_of_ssse() {
        // 6F: 84 (the SSSE AID, 15 bytes), A5 (proprietary: 9F08 version 02).
        let resp = h(&format!("6F 17 84 0F {SSSE_AID} A5 04 9F08 01 02"));
        let fci = parse_fci(&resp).unwrap().unwrap();
        assert_eq!(fci.df_name.unwrap(), h(SSSE_AID));
        assert_eq!(fci.proprietary.unwrap(), h("9F080102"));
        assert_eq!(fci.raw, resp);
        assert_eq!(parse_fci(&[]).unwrap(), None);
        assert_eq!(
            parse_fci(&h("6F05 8403 AABB")).unwrap_err(),
            TlvError::Truncated { offset: 0, needed: 5, available: 4 }
        );
    }

    #[test]
    fn fci_errors() {
        assert!(matches!(parse_fci(&h("8400")), Err(TlvError::NotFci { .. })));
        assert!(matches!(parse_fci(&h("6F00 9000")), Err(TlvError::NotFci { .. })));
        assert_eq!(
            parse_fci(&h("6F04 8403 AABB")).unwrap_err(),
            TlvError::Truncated { offset: 2, needed: 3, available: 2 }
        );
        let bare = parse_fci(&h("6F00")).unwrap().unwrap();
        assert_eq!((bare.df_name, bare.proprietary), (None, None));
    }

    #[test]
    fn parse_and_find() {
        let tlvs =
            parse_ber(&h(&format!("6F 17 84 0F {SSSE_AID} A5 04 9F08 01 02 9F38 00")), Limits::default()).unwrap();
        assert_eq!(tlvs.len(), 2);
        assert_eq!(primitive_value(find(&tlvs, &[0x84]).unwrap()).unwrap(), h(SSSE_AID));
        assert!(primitive_value(find(&tlvs, &[0xA5]).unwrap()).is_none());
        assert_eq!(primitive_value(find(&tlvs, &[0x9F, 0x08]).unwrap()).unwrap(), [0x02]);
        assert_eq!(find_all(&tlvs, &[0x9F, 0x38]).len(), 1);
        assert!(find(&tlvs, &[0x88]).is_none());
    }

    #[test]
    fn long_lengths() {
        let mut data = h("0482 0100");
        data.extend([0xAB; 256]);
        let tlvs = parse_ber(&data, Limits::default()).unwrap();
        assert_eq!(primitive_value(&tlvs[0]).unwrap().len(), 256);
        assert_eq!(
            parse_ber(&h("04 85 0000000001 AB"), Limits::default()).unwrap_err(),
            TlvError::BadLength { offset: 1 }
        );
        assert_eq!(parse_ber(&h("04 80"), Limits::default()).unwrap_err(), TlvError::BadLength { offset: 1 });
        assert!(matches!(parse_ber(&h("04 84 FFFFFFFF 00"), Limits::default()), Err(TlvError::Truncated { .. })));
        assert!(matches!(parse_ber(&h("04 82 01"), Limits::default()), Err(TlvError::Truncated { .. })));
    }

    #[test]
    fn bad_tags() {
        assert_eq!(parse_ber(&h("0000"), Limits::default()).unwrap_err(), TlvError::BadTag { offset: 0 });
        assert_eq!(parse_ber(&h("5F"), Limits::default()).unwrap_err(), TlvError::BadTag { offset: 0 });
        assert_eq!(parse_ber(&h("5F818101 00"), Limits::default()).unwrap_err(), TlvError::BadTag { offset: 0 });
        assert!(parse_ber(&h("5F8101 00"), Limits::default()).is_ok());
        assert!(parse_ber(&h("5F2D 02 7A68"), Limits::default()).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // 100 000 nested 70 templates, each with a 4-byte length field.
        let depth: u32 = 100_000;
        let mut data = Vec::new();
        for i in 0..depth {
            data.extend([0x70, 0x84]);
            data.extend((6 * (depth - i - 1)).to_be_bytes());
        }
        let limits = Limits { max_len: usize::MAX, ..Limits::default() };
        assert!(matches!(parse_ber(&data, limits), Err(TlvError::TooDeep { max: 8, .. })));
        // Exactly at the limit is fine.
        let ok = h("6F0E 700C 700A 7008 7006 7004 7002 0400");
        assert_eq!(parse_ber(&ok, Limits::default()).unwrap().len(), 1);
        assert!(matches!(parse_ber(&ok, Limits { max_depth: 7, ..Limits::default() }), Err(TlvError::TooDeep { .. })));
    }

    #[test]
    fn limits_on_size_and_count() {
        let big = [0x04, 0x00].repeat(40_000);
        assert_eq!(parse_ber(&big, Limits::default()).unwrap_err(), TlvError::TooLong { len: 80_000, max: 65_536 });
        let many = [0x04, 0x00].repeat(2_000);
        assert_eq!(parse_ber(&many, Limits::default()).unwrap_err(), TlvError::TooManyItems { max: 1024 });
        assert_eq!(parse_ber(&[], Limits::default()).unwrap().len(), 0);
    }

    #[test]
    fn crate_error_keeps_its_message() {
        let e = TlvError::from(iso7816_tlv::TlvError::TruncatedInput);
        assert_eq!(e.to_string(), "BER-TLV: Error input too short");
        assert!(std::error::Error::source(&e).is_some());
    }
}
