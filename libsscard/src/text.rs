//! Strings across the C boundary: GBK (GB 18030 for the few names GBK cannot write) both ways, and the result
//! fitted into the caller's buffer of the published size.

use card_core::codec;
use card_core::national::{ILLEGAL_CHAR, ILLEGAL_LENGTH};

use crate::library::Failure;

/// A caller's string as text: GBK, or GB 18030 (its superset). Bytes that are neither: −41.
pub(crate) fn decode(bytes: &[u8], what: &'static str) -> Result<String, Failure> {
    codec::gb18030_decode(bytes).map_err(|_| Failure::code(ILLEGAL_CHAR, what))
}

/// A result as the caller's bytes: GBK, with GB 18030 four-byte sequences for characters outside GBK.
pub(crate) fn encode(text: &str) -> Result<Vec<u8>, Failure> {
    codec::gb18030_encode(text).map_err(|_| Failure::code(ILLEGAL_CHAR, "the result has a character GB 18030 lacks"))
}

/// Whether `len` bytes and their terminating NUL fit in a buffer of `capacity` bytes; −42 if not.
pub(crate) fn fits(len: usize, capacity: usize) -> Result<(), Failure> {
    if len < capacity {
        Ok(())
    } else {
        Err(Failure::code(ILLEGAL_LENGTH, "the result does not fit the published buffer size"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gbk_both_ways() {
        assert_eq!(encode("张三|").unwrap(), [0xD5, 0xC5, 0xC8, 0xFD, b'|']);
        // 𠮷 is outside GBK: its GB 18030 four bytes
        assert_eq!(encode("𠮷").unwrap(), [0x95, 0x34, 0xB2, 0x35]);
        assert_eq!(decode(&[0xD5, 0xC5, 0xC8, 0xFD], "x").unwrap(), "张三");
        assert_eq!(decode(&[0xD5], "x").unwrap_err().national_code(), ILLEGAL_CHAR);
        assert_eq!(decode(&[0xFF, 0xFF], "x").unwrap_err().national_code(), ILLEGAL_CHAR);
    }

    #[test]
    fn the_terminating_nul_counts() {
        assert!(fits(1023, 1024).is_ok());
        assert_eq!(fits(1024, 1024).unwrap_err().national_code(), ILLEGAL_LENGTH);
        assert_eq!(fits(0, 0).unwrap_err().national_code(), ILLEGAL_LENGTH);
    }
}
