//! ISO/IEC 9797-1 padding (CARD-PROFILE §6 notation `pad` = method 2).

use super::CryptoError;

/// An ISO/IEC 9797-1 padding method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Method 1: append `00` bytes up to a multiple of the block length (none if already a
    /// multiple). An empty message becomes one block of zeros (ISO/IEC 9797-1:2011).
    /// Not reversible.
    Method1,
    /// Method 2: append `80` then `00` bytes up to a multiple of the block length; always
    /// added (a full block `80 00…` if already aligned). CARD-PROFILE §6 `pad`.
    Method2,
}

/// Pads `data` to a multiple of `block_len` with the given ISO/IEC 9797-1 method.
///
/// `block_len` is 8 or 16 in this crate; 0 is treated as 1 (no alignment).
pub fn iso9797_pad(data: &[u8], block_len: usize, method: Padding) -> Vec<u8> {
    let block_len = block_len.max(1);
    let mut out = Vec::with_capacity(data.len() + block_len);
    out.extend_from_slice(data);
    match method {
        Padding::Method1 => {
            if out.is_empty() {
                out.resize(block_len, 0);
            }
        }
        Padding::Method2 => out.push(0x80),
    }
    while !out.len().is_multiple_of(block_len) {
        out.push(0x00);
    }
    out
}

/// Removes ISO/IEC 9797-1 padding method 2: trailing `00` bytes, then a mandatory `80`.
///
/// `data` must be a non-empty multiple of `block_len`, and the padding must lie within the
/// last block; otherwise [`CryptoError::BadPadding`] (or `WrongDataLength`).
pub fn iso9797_unpad2(data: &[u8], block_len: usize) -> Result<&[u8], CryptoError> {
    let block_len = block_len.max(1);
    if data.is_empty() || !data.len().is_multiple_of(block_len) {
        return Err(CryptoError::WrongDataLength {
            expected: "a non-empty multiple of the block length",
            got: data.len(),
        });
    }
    let last_block_start = data.len() - block_len;
    let mut i = data.len();
    while i > last_block_start {
        i -= 1;
        match data.get(i) {
            Some(0x00) => continue,
            Some(0x80) => return data.get(..i).ok_or(CryptoError::BadPadding),
            _ => return Err(CryptoError::BadPadding),
        }
    }
    Err(CryptoError::BadPadding)
}
