//! The fixed-length field formats `cn`, `an`, `gb18030`, `b`, `dec`, `hex` (CARD-PROFILE §2.3).

use super::gbk::{gb18030_decode, gb18030_encode, gbk_decode, gbk_encode};
use super::{CodecError, Format};

/// Encodes the text form of a value into a field of `len` bytes.
///
/// Text forms: `cn` decimal digits; `an` text (UTF-8, stored as GBK); `gb18030` text (UTF-8, stored as
/// GB 18030); `b` and `hex` hexadecimal
/// (either case); `dec` a decimal number. The result is always exactly `len` bytes.
pub fn encode(format: Format, text: &str, len: usize) -> Result<Vec<u8>, CodecError> {
    match format {
        Format::Cn => encode_cn(text, len),
        Format::An => encode_an(text, len),
        Format::Gb18030 => encode_gb18030(text, len),
        Format::B | Format::Hex => encode_b(&parse_hex(text)?, len),
        Format::Dec => encode_dec(parse_decimal(text)?, len),
    }
}

/// Decodes a field into the text form [`encode`] takes (`b` and `hex` as uppercase hex).
pub fn decode(format: Format, bytes: &[u8]) -> Result<String, CodecError> {
    match format {
        Format::Cn => decode_cn(bytes),
        Format::An => decode_an(bytes),
        Format::Gb18030 => decode_gb18030(bytes),
        Format::B | Format::Hex => Ok(hex_upper(bytes)),
        Format::Dec => decode_dec(bytes).map(|v| v.to_string()),
    }
}

/// `cn`: packs decimal digits as BCD, left-justified, and pads with `F` nibbles to `len` bytes.
///
/// ```
/// # use card_core::codec::encode_cn;
/// assert_eq!(encode_cn("37170", 4).unwrap(), [0x37, 0x17, 0x0F, 0xFF]);
/// ```
pub fn encode_cn(digits: &str, len: usize) -> Result<Vec<u8>, CodecError> {
    let mut nibbles = Vec::with_capacity(digits.len());
    for (position, ch) in digits.chars().enumerate() {
        let d = ch.to_digit(10).filter(|_| ch.is_ascii_digit());
        match d {
            Some(d) => nibbles.push(d as u8),
            None => return Err(CodecError::NotDigit { ch, position }),
        }
    }
    let needed = nibbles.len().div_ceil(2);
    if needed > len {
        return Err(CodecError::TooLong { len: needed, max: len });
    }
    nibbles.resize(len * 2, 0x0F);
    Ok(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// `cn`: reads BCD digits up to the `F` padding.
///
/// Strict: a nibble `A`–`E` is [`CodecError::InvalidBcd`]; a digit after an `F` is
/// [`CodecError::DigitAfterPadding`].
pub fn decode_cn(bytes: &[u8]) -> Result<String, CodecError> {
    let mut out = String::with_capacity(bytes.len() * 2);
    let mut padding = false;
    let nibbles = bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]);
    for (position, nibble) in nibbles.enumerate() {
        match nibble {
            0x0F => padding = true,
            0..=9 if padding => return Err(CodecError::DigitAfterPadding { position }),
            0..=9 => out.push(char::from(b'0' + nibble)),
            _ => return Err(CodecError::InvalidBcd { position, nibble }),
        }
    }
    Ok(out)
}

/// `an`: GBK text, left-justified, padded with `00` to `len` bytes.
///
/// A `NUL` character is refused ([`CodecError::InvalidChar`]): it would read back as padding.
/// Trailing spaces are written but, see [`decode_an`], do not survive a read.
///
/// ```
/// # use card_core::codec::encode_an;
/// assert_eq!(encode_an("张三", 6).unwrap(), [0xD5, 0xC5, 0xC8, 0xFD, 0, 0]);
/// ```
pub fn encode_an(text: &str, len: usize) -> Result<Vec<u8>, CodecError> {
    if let Some(position) = text.chars().position(|c| c == '\0') {
        return Err(CodecError::InvalidChar { ch: '\0', position, allowed: "any GBK character but NUL" });
    }
    let mut bytes = gbk_encode(text)?;
    if bytes.len() > len {
        return Err(CodecError::TooLong { len: bytes.len(), max: len });
    }
    bytes.resize(len, 0x00);
    Ok(bytes)
}

/// `an`: strips the trailing padding and decodes GBK.
///
/// Padding is the longest trailing run of `00` **and `20`** bytes: the profile pads with `00`,
/// but real cards are also seen padded with spaces, so trailing spaces are dropped as well. A
/// `00` before the padding (text, `00`, text) is [`CodecError::NulInText`]; malformed GBK is
/// [`CodecError::MalformedGbk`].
pub fn decode_an(bytes: &[u8]) -> Result<String, CodecError> {
    let end = bytes.iter().rposition(|&b| b != 0x00 && b != 0x20).map_or(0, |i| i + 1);
    let text = &bytes[..end];
    if let Some(position) = text.iter().position(|&b| b == 0x00) {
        return Err(CodecError::NulInText { position });
    }
    gbk_decode(text)
}

/// `gb18030`: text in GB 18030 (four-byte sequences included), left-justified, padded with `00` to `len`
/// bytes. As [`encode_an`], but for the characters GBK lacks (the name extension, EF06 tag `4E`).
///
/// ```
/// # use card_core::codec::encode_gb18030;
/// assert_eq!(encode_gb18030("张𠮷", 8).unwrap(), [0xD5, 0xC5, 0x95, 0x34, 0xB2, 0x35, 0, 0]);
/// assert!(encode_gb18030("张𠮷", 5).is_err());
/// ```
pub fn encode_gb18030(text: &str, len: usize) -> Result<Vec<u8>, CodecError> {
    if let Some(position) = text.chars().position(|c| c == '\0') {
        return Err(CodecError::InvalidChar { ch: '\0', position, allowed: "any character but NUL" });
    }
    let mut bytes = gb18030_encode(text)?;
    if bytes.len() > len {
        return Err(CodecError::TooLong { len: bytes.len(), max: len });
    }
    bytes.resize(len, 0x00);
    Ok(bytes)
}

/// `gb18030`: strips the trailing padding (`00` and `20`, as [`decode_an`]) and decodes GB 18030.
pub fn decode_gb18030(bytes: &[u8]) -> Result<String, CodecError> {
    let end = bytes.iter().rposition(|&b| b != 0x00 && b != 0x20).map_or(0, |i| i + 1);
    let text = &bytes[..end];
    if let Some(position) = text.iter().position(|&b| b == 0x00) {
        return Err(CodecError::NulInText { position });
    }
    gb18030_decode(text)
}

/// `b` (and `hex`): binary of exactly `len` bytes, copied.
pub fn encode_b(value: &[u8], len: usize) -> Result<Vec<u8>, CodecError> {
    match value.len() {
        n if n > len => Err(CodecError::TooLong { len: n, max: len }),
        n if n < len => Err(CodecError::BadLength { expected: len, found: n }),
        _ => Ok(value.to_vec()),
    }
}

/// `b` (and `hex`): binary as uppercase hexadecimal.
pub fn decode_b(bytes: &[u8]) -> String {
    hex_upper(bytes)
}

/// `dec`: unsigned big-endian integer in `len` bytes.
///
/// ```
/// # use card_core::codec::encode_dec;
/// assert_eq!(encode_dec(0x0102, 4).unwrap(), [0, 0, 1, 2]);
/// assert!(encode_dec(0x1_0000, 2).is_err());
/// ```
pub fn encode_dec(value: u64, len: usize) -> Result<Vec<u8>, CodecError> {
    let be = value.to_be_bytes();
    let significant = be.iter().position(|&b| b != 0).map_or(0, |i| be.len() - i);
    if significant > len {
        return Err(CodecError::TooLong { len: significant, max: len });
    }
    let mut out = vec![0u8; len];
    let start = len - significant;
    out[start..].copy_from_slice(&be[be.len() - significant..]);
    Ok(out)
}

/// `dec`: unsigned big-endian integer; any length, as long as the value fits in `u64`.
pub fn decode_dec(bytes: &[u8]) -> Result<u64, CodecError> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    if significant.len() > 8 {
        return Err(CodecError::DecTooLarge { len: bytes.len() });
    }
    Ok(significant.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// Bytes as uppercase hexadecimal, e.g. `D15600000500`.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Hexadecimal text (either case, no separators) to bytes, with the offending position on error.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, CodecError> {
    let mut nibbles = Vec::with_capacity(text.len());
    for (position, ch) in text.chars().enumerate() {
        match ch.to_digit(16) {
            Some(d) => nibbles.push(d as u8),
            None => return Err(CodecError::NotHex { ch, position }),
        }
    }
    if nibbles.len() % 2 != 0 {
        return Err(CodecError::OddHexLength { len: nibbles.len() });
    }
    Ok(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// Decimal digits to `u64`.
fn parse_decimal(text: &str) -> Result<u64, CodecError> {
    if text.is_empty() {
        return Err(CodecError::Empty);
    }
    let mut value: u64 = 0;
    for (position, ch) in text.chars().enumerate() {
        let d = match ch {
            '0'..='9' => u64::from(ch) - u64::from('0'),
            _ => return Err(CodecError::NotDigit { ch, position }),
        };
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| CodecError::NumberTooLarge(text.to_owned()))?;
    }
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn cn_issue_date_and_padding() {
        // EF05 tag 05 issue date, cn 4, from the LD/T 33 sample `20101001`.
        assert_eq!(encode_cn("20101001", 4).unwrap(), h("20101001"));
        assert_eq!(decode_cn(&h("20101001")).unwrap(), "20101001");
        // EF05 tag 04, cn 12: region + sequence, F-padded.
        let org = encode_cn("410100813475", 12).unwrap();
        assert_eq!(org, h("410100813475FFFFFFFFFFFF"));
        assert_eq!(decode_cn(&org).unwrap(), "410100813475");
        assert_eq!(encode_cn("123", 2).unwrap(), h("123F"));
        assert_eq!(encode_cn("", 1).unwrap(), h("FF"));
    }

    #[test]
    fn cn_errors() {
        assert_eq!(encode_cn("12a4", 2).unwrap_err(), CodecError::NotDigit { ch: 'a', position: 2 });
        assert_eq!(encode_cn("١", 2).unwrap_err(), CodecError::NotDigit { ch: '١', position: 0 });
        assert_eq!(encode_cn("12345", 2).unwrap_err(), CodecError::TooLong { len: 3, max: 2 });
        assert_eq!(decode_cn(&h("1F2F")).unwrap_err(), CodecError::DigitAfterPadding { position: 2 });
        assert_eq!(decode_cn(&h("1A")).unwrap_err(), CodecError::InvalidBcd { position: 1, nibble: 0xA });
    }

    #[test]
    fn an_name_and_padding() {
        // EF06 tag 09 name, an 30.
        let name = encode_an("张三", 30).unwrap();
        assert_eq!(name.len(), 30);
        assert_eq!(&name[..4], h("D5C5C8FD"));
        assert!(name[4..].iter().all(|&b| b == 0));
        assert_eq!(decode_an(&name).unwrap(), "张三");
        // Space padding from some cards.
        assert_eq!(decode_an(&h("D5C5C8FD20200000")).unwrap(), "张三");
        assert_eq!(decode_an(&h("312E3030")).unwrap(), "1.00");
        assert_eq!(decode_an(&h("0000")).unwrap(), "");
        assert_eq!(decode_an(&[]).unwrap(), "");
    }

    #[test]
    fn an_errors() {
        assert_eq!(decode_an(&h("41004200")).unwrap_err(), CodecError::NulInText { position: 1 });
        assert_eq!(decode_an(&h("41D500")).unwrap_err(), CodecError::MalformedGbk { position: 1 });
        assert_eq!(encode_an("张三", 3).unwrap_err(), CodecError::TooLong { len: 4, max: 3 });
        assert!(matches!(encode_an("a\0", 3), Err(CodecError::InvalidChar { position: 1, .. })));
        assert_eq!(encode_an("王𠮷", 30).unwrap_err(), CodecError::NotGbk { ch: '𠮷', position: 1 });
    }

    #[test]
    fn gb18030_name_extension() {
        // EF06 tag 4E, 20 bytes: 张𠮷 (𠮷 U+20BB7, CJK extension B, a four-byte sequence)
        let ext = encode(Format::Gb18030, "张𠮷", 20).unwrap();
        assert_eq!(&ext[..6], h("D5C59534B235"));
        assert!(ext[6..].iter().all(|&b| b == 0));
        assert_eq!(decode(Format::Gb18030, &ext).unwrap(), "张𠮷");
        assert_eq!(decode_gb18030(&h("D5C5C8FD2000")).unwrap(), "张三");
        // five four-byte characters: 20 bytes fit, a sixth does not (never truncated)
        assert_eq!(encode_gb18030(&"𠮷".repeat(5), 20).unwrap().len(), 20);
        assert_eq!(encode_gb18030(&"𠮷".repeat(6), 20).unwrap_err(), CodecError::TooLong { len: 24, max: 20 });
        assert!(matches!(encode_gb18030("a\0", 3), Err(CodecError::InvalidChar { position: 1, .. })));
        assert_eq!(decode_gb18030(&h("41004200")).unwrap_err(), CodecError::NulInText { position: 1 });
        // a cut four-byte sequence
        assert_eq!(decode_gb18030(&h("D5C59534")).unwrap_err(), CodecError::MalformedGbk { position: 2 });
    }

    #[test]
    fn dec_and_binary() {
        assert_eq!(encode_dec(1000, 4).unwrap(), h("000003E8"));
        assert_eq!(decode_dec(&h("000003E8")).unwrap(), 1000);
        assert_eq!(encode_dec(0, 0).unwrap(), Vec::<u8>::new());
        assert_eq!(encode_dec(256, 1).unwrap_err(), CodecError::TooLong { len: 2, max: 1 });
        assert_eq!(decode_dec(&h("0000FFFFFFFFFFFFFFFF")).unwrap(), u64::MAX);
        assert_eq!(decode_dec(&h("01FFFFFFFFFFFFFFFF")).unwrap_err(), CodecError::DecTooLarge { len: 9 });
        assert_eq!(encode(Format::Dec, "1000", 4).unwrap(), h("000003E8"));
        assert_eq!(decode(Format::Dec, &h("000003E8")).unwrap(), "1000");
        assert!(matches!(encode(Format::Dec, "18446744073709551616", 8), Err(CodecError::NumberTooLarge(_))));

        assert_eq!(encode(Format::B, "d15600000500", 6).unwrap(), h("D15600000500"));
        assert_eq!(decode(Format::Hex, &h("d15600000500")).unwrap(), "D15600000500");
        assert_eq!(encode(Format::Hex, "D156", 3).unwrap_err(), CodecError::BadLength { expected: 3, found: 2 });
        assert_eq!(encode(Format::Hex, "D15600", 2).unwrap_err(), CodecError::TooLong { len: 3, max: 2 });
        assert_eq!(encode(Format::B, "D1G6", 2).unwrap_err(), CodecError::NotHex { ch: 'G', position: 2 });
        assert_eq!(encode(Format::B, "D15", 2).unwrap_err(), CodecError::OddHexLength { len: 3 });
    }

    #[test]
    fn generic_dispatch() {
        assert_eq!(encode(Format::Cn, "371700", 3).unwrap(), h("371700"));
        assert_eq!(encode(Format::An, "2.00", 4).unwrap(), b"2.00".to_vec());
        assert_eq!(decode(Format::Cn, &h("371700")).unwrap(), "371700");
        assert_eq!(decode(Format::An, b"2.00").unwrap(), "2.00");
    }
}
