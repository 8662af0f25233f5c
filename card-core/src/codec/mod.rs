//! Values as the card stores them (CARD-PROFILE §2.3) and the identifiers printed on it.
//!
//! - [`Format`] and the generic [`encode`]/[`decode`] pair, with typed helpers per format
//!   ([`encode_cn`], [`decode_an`], [`encode_dec`], …);
//! - GBK text, strict both ways ([`gbk_encode`], [`gbk_decode`]);
//! - [`Date`] (`YYYYMMDD`), [`CitizenId`] (GB 11643), [`CardNumber`] (EF05 tag 07),
//!   [`RegionCode`], and the ISO/IEC 7064 check characters ([`mod11_2_check`], [`mod37_2_check`]).
//!
//! Writers always produce the full defined length; a value that does not fit, a character GBK
//! cannot encode or a non-digit in a `cn` field is an error, never a truncation. Decoders are
//! strict about what a card sends: bad padding and malformed GBK are errors, never replacement
//! characters.

mod check;
mod date;
mod gbk;
mod ids;
mod values;

pub use check::{mod11_2_check, mod37_2_check};
pub use date::Date;
pub use gbk::{gb18030_decode, gb18030_encode, gbk_decode, gbk_encode};
pub use ids::{CardNumber, CitizenId, RegionCode, Sex};
pub use values::{
    decode, decode_an, decode_b, decode_cn, decode_dec, decode_gb18030, encode, encode_an, encode_b, encode_cn,
    encode_dec, encode_gb18030, hex_upper, parse_hex,
};

use core::fmt;
use core::str::FromStr;

/// A value could not be encoded to, or decoded from, its card format.
///
/// Positions count characters (`char`s) of a text, bytes of a byte string, or nibbles of a
/// BCD (`cn`) string, always from 0; each variant says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value needs more bytes (or characters) than its field holds.
    #[error("value needs {len} bytes but the field holds {max}")]
    TooLong {
        /// Bytes (or characters) the value needs.
        len: usize,
        /// Bytes (or characters) the field holds.
        max: usize,
    },
    /// A value that must have one exact length has another.
    #[error("expected a length of {expected}, found {found}")]
    BadLength {
        /// The required length.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A character of a text has no GBK (GB 18030 two-byte subset) encoding.
    #[error("character '{ch}' (U+{code:04X}) at position {position} cannot be encoded in GBK", code = u32::from(*ch))]
    NotGbk {
        /// The character.
        ch: char,
        /// Its position in the text, in characters.
        position: usize,
    },
    /// Bytes that are not GBK (GB 18030 two-byte subset) text.
    #[error("malformed GBK at byte {position}")]
    MalformedGbk {
        /// Offset of the first byte of the offending sequence.
        position: usize,
    },
    /// A character where only a decimal digit may stand.
    #[error("character '{ch}' at position {position} is not a decimal digit")]
    NotDigit {
        /// The character.
        ch: char,
        /// Its position in the text, in characters.
        position: usize,
    },
    /// A character outside the alphabet of the value.
    #[error("character '{ch}' at position {position} is not allowed here (allowed: {allowed})")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its position in the text, in characters.
        position: usize,
        /// The allowed characters, described.
        allowed: &'static str,
    },
    /// A character where a hexadecimal digit must stand.
    #[error("character '{ch}' at position {position} is not a hexadecimal digit")]
    NotHex {
        /// The character.
        ch: char,
        /// Its position in the text, in characters.
        position: usize,
    },
    /// Hexadecimal text with an odd number of digits.
    #[error("hexadecimal text has an odd number of digits ({len})")]
    OddHexLength {
        /// Number of hex digits.
        len: usize,
    },
    /// A `cn` nibble that is neither a digit nor the `F` pad.
    #[error("nibble {nibble:X} at nibble position {position} is neither a BCD digit nor F padding")]
    InvalidBcd {
        /// Position in nibbles.
        position: usize,
        /// The nibble value (`A`–`E`).
        nibble: u8,
    },
    /// A `cn` digit after the `F` padding started.
    #[error("digit after F padding at nibble position {position}")]
    DigitAfterPadding {
        /// Position of the digit, in nibbles.
        position: usize,
    },
    /// An `an` field with a `00` byte inside its text (only trailing padding may be `00`).
    #[error("00 byte inside the text at byte {position}")]
    NulInText {
        /// Offset of the `00` byte.
        position: usize,
    },
    /// A `dec` value larger than `u64` can hold.
    #[error("decimal value of {len} bytes does not fit in 64 bits")]
    DecTooLarge {
        /// Length of the value in bytes.
        len: usize,
    },
    /// A decimal number (text form of `dec`) larger than `u64::MAX`.
    #[error("decimal number {0} does not fit in 64 bits")]
    NumberTooLarge(String),
    /// The check character does not match.
    #[error("check character is '{found}', expected '{expected}'")]
    BadCheck {
        /// The check character computed from the other characters.
        expected: char,
        /// The check character found.
        found: char,
    },
    /// Year, month and day that are not a calendar date (`YYYYMMDD`).
    #[error("{year:04}{month:02}{day:02} is not a valid date")]
    InvalidDate {
        /// Year as read.
        year: u16,
        /// Month as read.
        month: u8,
        /// Day as read.
        day: u8,
    },
    /// A birth date before 1900 or after today.
    #[error("birth date {date} is implausible (before 1900 or after {today})")]
    ImplausibleBirthDate {
        /// The birth date.
        date: Date,
        /// The date it was checked against.
        today: Date,
    },
    /// A region code whose province part is `00`.
    #[error("region code {code} has no province (first two digits 00)")]
    InvalidRegion {
        /// The six digits.
        code: String,
    },
    /// An empty value where at least one character is needed.
    #[error("empty value")]
    Empty,
    /// A format name other than `cn`, `an`, `gb18030`, `b`, `dec`, `hex`.
    #[error("unknown value format {0:?} (expected cn, an, gb18030, b, dec or hex)")]
    UnknownFormat(String),
}

/// The value formats of CARD-PROFILE §2.3.
///
/// Constructed items (`B-TLV(...)` in §2.2) are not a value format: see [`crate::tlv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `cn`: BCD digits, left-justified, padded on the right with `F` nibbles.
    Cn,
    /// `an`: GBK text, left-justified, padded on the right with `00`.
    An,
    /// `gb18030`: text in all of GB 18030 (ASCII, the two-byte GBK codes and the four-byte sequences for
    /// everything else, e.g. 𠮷 U+20BB7), left-justified, padded on the right with `00` — `an` for the
    /// characters GBK lacks; the name extension EF06 tag `4E` (CARD-PROFILE §2.1, profile decision).
    Gb18030,
    /// `b`: binary, exact length.
    B,
    /// `dec`: unsigned binary integer, big-endian.
    Dec,
    /// `hex`: binary, shown as uppercase hexadecimal.
    Hex,
}

impl Format {
    /// The profile's spelling: `cn`, `an`, `gb18030`, `b`, `dec` or `hex`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cn => "cn",
            Format::An => "an",
            Format::Gb18030 => "gb18030",
            Format::B => "b",
            Format::Dec => "dec",
            Format::Hex => "hex",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = CodecError;

    /// Parses the profile's spelling; ASCII case is ignored (`AN` is `an`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Format::Cn, Format::An, Format::Gb18030, Format::B, Format::Dec, Format::Hex]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| CodecError::UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in [Format::Cn, Format::An, Format::Gb18030, Format::B, Format::Dec, Format::Hex] {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        assert_eq!("GB18030".parse::<Format>().unwrap(), Format::Gb18030);
        assert_eq!("AN".parse::<Format>().unwrap(), Format::An);
        assert!(matches!("B-TLV".parse::<Format>(), Err(CodecError::UnknownFormat(_))));
    }

    #[test]
    fn not_gbk_message() {
        let e = CodecError::NotGbk { ch: '𠮷', position: 3 };
        assert_eq!(e.to_string(), "character '𠮷' (U+20BB7) at position 3 cannot be encoded in GBK");
    }
}
