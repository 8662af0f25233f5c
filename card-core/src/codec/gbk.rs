//! GBK text, strictly: ASCII plus the two-byte sequences of GB 18030 (CARD-PROFILE §2.3).
//!
//! `encoding_rs::GBK` follows the WHATWG Encoding Standard, which is lenient in ways a card
//! field must not be:
//!
//! - its one-shot encoder ([`encoding_rs::Encoding::encode`]) replaces an unmappable character
//!   with an HTML numeric reference such as `&#134071;` and only reports `had_errors`;
//! - the GBK encoder emits the single byte `80` for `€`, which is not in GB 18030's two-byte
//!   subset, and the shared gb18030 machinery can produce four-byte sequences;
//! - its decoder is the full gb18030 decoder: it accepts four-byte sequences and `80`.
//!
//! So [`gbk_encode`] encodes one character at a time with the `GB18030` encoder (which gives `€`
//! its two-byte code `A2E3` and everything outside GBK a four-byte code, never a numeric
//! reference) and accepts only a one-byte ASCII result or
//! a two-byte result without errors that decodes back to the same character (a few Private Use
//! Area characters do not); anything else is [`CodecError::NotGbk`] naming the first
//! offending character and its position. [`gbk_decode`] checks the byte structure itself
//! (ASCII `00`–`7F`, or lead `81`–`FE` followed by trail `40`–`7E`/`80`–`FE`) before asking
//! `encoding_rs` for the character, and reports the offset of the first malformed sequence.

use encoding_rs::{GB18030, GBK};

use super::CodecError;

/// Encodes `text` in GBK; fails on the first character GBK cannot encode.
///
/// ```
/// # use card_core::codec::gbk_encode;
/// assert_eq!(gbk_encode("张三").unwrap(), [0xD5, 0xC5, 0xC8, 0xFD]);
/// assert!(gbk_encode("吉𠮷").is_err());
/// ```
pub fn gbk_encode(text: &str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for (position, ch) in text.chars().enumerate() {
        if ch.is_ascii() {
            out.push(ch as u8);
            continue;
        }
        let (bytes, _, had_errors) = GB18030.encode(ch.encode_utf8(&mut buf));
        match &bytes[..] {
            [lead, trail] if !had_errors && is_lead(*lead) && is_trail(*trail) && decodes_to(&bytes, ch) => {
                out.extend_from_slice(&bytes);
            }
            _ => return Err(CodecError::NotGbk { ch, position }),
        }
    }
    Ok(out)
}

/// Decodes GBK bytes; fails on the first malformed or unmapped sequence.
///
/// ```
/// # use card_core::codec::gbk_decode;
/// assert_eq!(gbk_decode(&[0xD5, 0xC5, 0xC8, 0xFD]).unwrap(), "张三");
/// assert!(gbk_decode(&[0xD5]).is_err());
/// ```
pub fn gbk_decode(bytes: &[u8]) -> Result<String, CodecError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii() {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let malformed = CodecError::MalformedGbk { position: i };
        let pair = match bytes.get(i..i + 2) {
            Some(pair @ [lead, trail]) if is_lead(*lead) && is_trail(*trail) => pair,
            _ => return Err(malformed),
        };
        let text = GBK.decode_without_bom_handling_and_without_replacement(pair).ok_or(malformed)?;
        out.push_str(&text);
        i += 2;
    }
    Ok(out)
}

/// Encodes `text` in GB 18030 (all of Unicode: ASCII, the two-byte GBK codes, four-byte sequences
/// for the rest) — the encoding of the name extension EF06 tag `4E` for characters outside GBK
/// (profile decision, see `card::basic`). Fails only on a character that does not round-trip.
///
/// ```
/// # use card_core::codec::gb18030_encode;
/// assert_eq!(gb18030_encode("吉𠮷").unwrap(), [0xBC, 0xAA, 0x95, 0x34, 0xB2, 0x35]);
/// ```
pub fn gb18030_encode(text: &str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for (position, ch) in text.chars().enumerate() {
        let (bytes, _, had_errors) = GB18030.encode(ch.encode_utf8(&mut buf));
        let back = GB18030.decode_without_bom_handling_and_without_replacement(&bytes);
        if had_errors || back.as_deref() != Some(ch.encode_utf8(&mut [0u8; 4])) {
            return Err(CodecError::NotGbk { ch, position });
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Decodes GB 18030 bytes (one, two or four bytes per character); fails on the first malformed
/// sequence.
pub fn gb18030_decode(bytes: &[u8]) -> Result<String, CodecError> {
    match GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(text.into_owned()),
        None => {
            // the offset of the first bad sequence, for the message
            let mut decoder = GB18030.new_decoder_without_bom_handling();
            let mut out = String::with_capacity(bytes.len() * 3 + 16);
            let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
            let position = match result {
                encoding_rs::DecoderResult::Malformed(bad, after) => {
                    read.saturating_sub(usize::from(bad) + usize::from(after))
                }
                _ => read,
            };
            Err(CodecError::MalformedGbk { position })
        }
    }
}

/// Whether `pair` reads back as `ch`: the encoder maps some Private Use Area characters (legacy
/// GBK mappings such as U+E78D) to sequences the decoder reads as their GB 18030-2005
/// replacements (U+FE10); such a character would not survive a write and a read, so it is refused.
fn decodes_to(pair: &[u8], ch: char) -> bool {
    GBK.decode_without_bom_handling_and_without_replacement(pair).is_some_and(|s| s.chars().eq(core::iter::once(ch)))
}

fn is_lead(b: u8) -> bool {
    (0x81..=0xFE).contains(&b)
}

fn is_trail(b: u8) -> bool {
    (0x40..=0x7E).contains(&b) || (0x80..=0xFE).contains(&b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_covers_what_gbk_cannot() {
        let bytes = gb18030_encode("李𠮷").unwrap();
        assert_eq!(bytes, hex::decode("C0EE9534B235").unwrap());
        assert_eq!(gb18030_decode(&bytes).unwrap(), "李𠮷");
        assert_eq!(gb18030_encode("张三").unwrap(), gbk_encode("张三").unwrap());
        assert_eq!(gb18030_decode(&[0x95, 0x34]).unwrap_err(), CodecError::MalformedGbk { position: 0 });
    }

    /// CJK extension A: GBK holds 52 of its characters (e.g. U+3447 㑇), not 㐀 U+3400, which GB 18030 writes
    /// in four bytes like extension B's 𠮷 U+20BB7.
    #[test]
    fn extension_a_and_b_outside_gbk() {
        assert_eq!(gbk_encode("㐀").unwrap_err(), CodecError::NotGbk { ch: '㐀', position: 0 });
        assert_eq!(gb18030_encode("㐀").unwrap(), hex::decode("8139EE39").unwrap());
        assert_eq!(gbk_encode("\u{3447}").unwrap().len(), 2);
        assert_eq!(gb18030_encode("张𠮷").unwrap(), hex::decode("D5C59534B235").unwrap());
    }

    #[test]
    fn zhang_san() {
        assert_eq!(gbk_encode("张三").unwrap(), hex::decode("D5C5C8FD").unwrap());
        assert_eq!(gbk_decode(&hex::decode("D5C5C8FD").unwrap()).unwrap(), "张三");
    }

    #[test]
    fn ssse_aid_is_sx1_sh_and_shehui_baozhang() {
        let aid = hex::decode("7378312E73682EC9E7BBE1B1A3D5CF").unwrap();
        assert_eq!(gbk_decode(&aid).unwrap(), "sx1.sh.社会保障");
        assert_eq!(gbk_encode("sx1.sh.社会保障").unwrap(), aid);
    }

    #[test]
    fn unmappable_char_is_named_with_its_position() {
        assert_eq!(gbk_encode("张三吉𠮷").unwrap_err(), CodecError::NotGbk { ch: '𠮷', position: 3 });
        // € is the single byte 80 in WHATWG GBK; here its GB 18030 two-byte code.
        assert_eq!(gbk_encode("€").unwrap(), [0xA2, 0xE3]);
        // A character GB 18030 maps only with four bytes.
        assert!(matches!(gbk_encode("a\u{0080}"), Err(CodecError::NotGbk { position: 1, .. })));
        // A PUA character whose legacy mapping reads back as U+FE10.
        assert!(matches!(gbk_encode("\u{E78D}"), Err(CodecError::NotGbk { position: 0, .. })));
    }

    #[test]
    fn decoder_rejects_what_gb18030_would_accept() {
        // Four-byte GB 18030 sequence for U+0080.
        assert_eq!(gbk_decode(&[0x41, 0x81, 0x30, 0x81, 0x30]).unwrap_err(), CodecError::MalformedGbk { position: 1 });
        assert_eq!(gbk_decode(&[0x80]).unwrap_err(), CodecError::MalformedGbk { position: 0 });
        assert_eq!(gbk_decode(&[0x41, 0xFF]).unwrap_err(), CodecError::MalformedGbk { position: 1 });
        assert_eq!(gbk_decode(&[0xD5, 0xC5, 0xC8]).unwrap_err(), CodecError::MalformedGbk { position: 2 });
    }

    /// Every BMP character that encodes decodes back to itself, in two bytes (or ASCII).
    #[test]
    fn every_encodable_bmp_char_round_trips() {
        let mut encodable = 0;
        for ch in (0u32..=0xFFFF).filter_map(char::from_u32) {
            let s = ch.to_string();
            if let Ok(bytes) = gbk_encode(&s) {
                encodable += 1;
                assert!(bytes.len() == 1 || bytes.len() == 2, "{ch:?}");
                assert_eq!(gbk_decode(&bytes).unwrap(), s, "{ch:?} -> {bytes:02X?}");
            }
        }
        // GBK holds 21 886 graphic characters plus ASCII and user-defined areas.
        assert!(encodable > 21_000, "{encodable}");
    }

    /// Every well-formed two-byte sequence decodes, and is written back identically, except
    /// `A3A0`, which GB 18030-2005 reads as U+3000 (ideographic space, written `A1A1`).
    #[test]
    fn every_two_byte_sequence_decodes_and_round_trips() {
        for lead in 0x81..=0xFEu8 {
            for trail in (0x40..=0xFEu8).filter(|&t| t != 0x7F) {
                let text = gbk_decode(&[lead, trail]).unwrap();
                let again = gbk_encode(&text).unwrap();
                if (lead, trail) == (0xA3, 0xA0) {
                    assert_eq!(again, [0xA1, 0xA1]);
                } else {
                    assert_eq!(again, [lead, trail], "{text:?}");
                }
            }
        }
    }
}
