//! The card's simple record TLV (CARD-PROFILE §2 and §2.2).

use super::TlvError;

/// One primitive TLV as a linear record EF holds it: 1-byte tag, 1-byte length, value.
///
/// Tags `00` and `FF` are never tags: they are padding (as in ISO/IEC 7816-4, where they are
/// invalid SIMPLE-TLV tags and may surround BER-TLV objects). The length is always one byte
/// (0–255); ISO's three-byte `FF xx xx` length form is not used by this card, whose longest
/// item is 0x50 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordTlv {
    /// The tag, e.g. `0x09` for the holder's name.
    pub tag: u8,
    /// The value, in the item's format (`cn`, `an`, …; see [`crate::codec`]).
    pub value: Vec<u8>,
}

impl RecordTlv {
    /// Reads one record: the TLV must start at byte 0 and its length must fit.
    ///
    /// Bytes after the value are tolerated only if each is `00` or `FF`: some COSes return
    /// fixed-size records padded that way. Anything else after the value is
    /// [`TlvError::TrailingBytes`]; an empty or all-padding record is [`TlvError::BlankRecord`].
    pub fn parse(record: &[u8]) -> Result<RecordTlv, TlvError> {
        if record.iter().all(|&b| is_padding(b)) {
            return Err(TlvError::BlankRecord);
        }
        let (tlv, end) = read_one(record, 0)?;
        if let Some((i, &byte)) = record.iter().enumerate().skip(end).find(|(_, &b)| !is_padding(b)) {
            return Err(TlvError::TrailingBytes { offset: i, byte });
        }
        Ok(tlv)
    }

    /// Reads records returned back to back (READ RECORD "all from P1"), skipping `00`/`FF`
    /// padding before, between and after them. All padding, or nothing, is an empty list.
    pub fn parse_all(bytes: &[u8]) -> Result<Vec<RecordTlv>, TlvError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(skip) = bytes.iter().skip(pos).position(|&b| !is_padding(b)) {
            let (tlv, end) = read_one(bytes, pos + skip)?;
            out.push(tlv);
            pos = end;
        }
        Ok(out)
    }

    /// Reads the sub-items of a constructed `B-TLV(...)` item (CARD-PROFILE §2.2), e.g. the value
    /// of DF01 EF15 tag 40: a sequence of simple TLVs, with the same padding rule as
    /// [`RecordTlv::parse_all`].
    pub fn parse_nested(value: &[u8]) -> Result<Vec<RecordTlv>, TlvError> {
        RecordTlv::parse_all(value)
    }

    /// Tag, length and value; fails for a value over 255 bytes or a tag of `00`/`FF`.
    pub fn encode(&self) -> Result<Vec<u8>, TlvError> {
        if is_padding(self.tag) {
            return Err(TlvError::BadRecordTag { offset: 0, tag: self.tag });
        }
        let len = u8::try_from(self.value.len()).map_err(|_| TlvError::ValueTooLong { len: self.value.len() })?;
        let mut out = Vec::with_capacity(2 + self.value.len());
        out.push(self.tag);
        out.push(len);
        out.extend_from_slice(&self.value);
        Ok(out)
    }

    /// Encodes a sequence of items, e.g. the value of a `B-TLV(...)` item.
    pub fn encode_all(items: &[RecordTlv]) -> Result<Vec<u8>, TlvError> {
        let mut out = Vec::new();
        for item in items {
            out.extend(item.encode()?);
        }
        Ok(out)
    }
}

fn is_padding(b: u8) -> bool {
    b == 0x00 || b == 0xFF
}

/// One TLV at `pos`; returns it and the offset after its value.
fn read_one(bytes: &[u8], pos: usize) -> Result<(RecordTlv, usize), TlvError> {
    let (tag, len) = match bytes.get(pos..) {
        Some([tag, len, ..]) => (*tag, usize::from(*len)),
        _ => return Err(TlvError::Truncated { offset: pos, needed: 2, available: bytes.len().saturating_sub(pos) }),
    };
    if is_padding(tag) {
        return Err(TlvError::BadRecordTag { offset: pos, tag });
    }
    let start = pos + 2;
    let value = bytes.get(start..start + len).ok_or(TlvError::Truncated {
        offset: pos,
        needed: len,
        available: bytes.len() - start,
    })?;
    Ok((RecordTlv { tag, value: value.to_vec() }, start + len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::{decode_an, decode_cn};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn ef05_records() {
        // EF05 rec 3, tag 03 spec version an 4 "2.00".
        let r = RecordTlv::parse(&h("03 04 322E3030")).unwrap();
        assert_eq!(r, RecordTlv { tag: 0x03, value: b"2.00".to_vec() });
        assert_eq!(decode_an(&r.value).unwrap(), "2.00");
        assert_eq!(r.encode().unwrap(), h("03 04 322E3030"));
        // EF05 rec 5, issue date cn 4.
        let r = RecordTlv::parse(&h("05 04 20101001")).unwrap();
        assert_eq!(decode_cn(&r.value).unwrap(), "20101001");
        // EF06 rec 2, name an 30 (张三 + 26 × 00), padded record.
        let mut rec = h("09 1E D5C5C8FD");
        rec.extend([0u8; 26]);
        rec.extend([0xFF; 4]);
        let r = RecordTlv::parse(&rec).unwrap();
        assert_eq!(decode_an(&r.value).unwrap(), "张三");
    }

    #[test]
    fn record_errors() {
        assert_eq!(
            RecordTlv::parse(&h("03 04 322E30")).unwrap_err(),
            TlvError::Truncated { offset: 0, needed: 4, available: 3 }
        );
        assert_eq!(
            RecordTlv::parse(&h("03 02 322E 30")).unwrap_err(),
            TlvError::TrailingBytes { offset: 4, byte: 0x30 }
        );
        assert_eq!(RecordTlv::parse(&h("03")).unwrap_err(), TlvError::Truncated { offset: 0, needed: 2, available: 1 });
        assert_eq!(RecordTlv::parse(&[]).unwrap_err(), TlvError::BlankRecord);
        assert_eq!(RecordTlv::parse(&h("FFFF")).unwrap_err(), TlvError::BlankRecord);
        assert_eq!(RecordTlv::parse(&h("FF0141")).unwrap_err(), TlvError::BadRecordTag { offset: 0, tag: 0xFF });
        let long = RecordTlv { tag: 0x21, value: vec![0x41; 256] };
        assert_eq!(long.encode().unwrap_err(), TlvError::ValueTooLong { len: 256 });
        assert_eq!(
            RecordTlv { tag: 0x00, value: vec![] }.encode().unwrap_err(),
            TlvError::BadRecordTag { offset: 0, tag: 0 }
        );
    }

    #[test]
    fn all_records_and_nested() {
        let all = RecordTlv::parse_all(&h("05 04 20101001 06 04 20201001 FFFF 07 09 583030303030303139 00")).unwrap();
        assert_eq!(all.iter().map(|r| r.tag).collect::<Vec<_>>(), [5, 6, 7]);
        assert_eq!(decode_an(&all[2].value).unwrap(), "X00000019");
        assert_eq!(RecordTlv::parse_all(&h("FF00FF")).unwrap(), vec![]);
        assert!(matches!(RecordTlv::parse_all(&h("05 04 2010")), Err(TlvError::Truncated { offset: 0, .. })));

        // DF01 EF15 tag 40: B-TLV(57 an 03, 58 cn 03, 59 an 28).
        let sub = [
            RecordTlv { tag: 0x57, value: b"ABC".to_vec() },
            RecordTlv { tag: 0x58, value: h("371700") },
            RecordTlv { tag: 0x59, value: vec![0x41; 0x28] },
        ];
        let value = RecordTlv::encode_all(&sub).unwrap();
        let outer = RecordTlv { tag: 0x40, value: value.clone() }.encode().unwrap();
        let parsed = RecordTlv::parse(&outer).unwrap();
        assert_eq!(parsed.tag, 0x40);
        assert_eq!(RecordTlv::parse_nested(&parsed.value).unwrap(), sub);
    }
}
