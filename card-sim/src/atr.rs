//! The answer to reset (ISO/IEC 7816-3 §8).
//!
//! ```text
//! 3B 6F 00 00  H1 … H15
//! TS T0 TB1 TC1
//! ```
//!
//! - `TS 3B` direct convention; `T0 6F`: TB1 and TC1 follow, 15 historical bytes; `TB1 00` no Vpp;
//!   `TC1 00` no extra guard time. No TD1: the card offers T=0 only, so no TCK is sent (ISO/IEC 7816-3 §8.2.5).
//! - Historical bytes (15):
//!
//! | bytes | content |
//! |---|---|
//! | H1 | `53` category indicator: proprietary (ISO/IEC 7816-4 §8.1.1: neither `00`, `10` nor `8x`) |
//! | H2 | `53` `'S'`, this COS |
//! | H3 | generation: `01`, `02`, `03` (spec version 1.00/2.00/3.00) |
//! | H4 | COS version `10` (1.0) |
//! | H5–H7 | issuing region code, 6 BCD digits (`371700` → `37 17 00`) |
//! | H8–H15 | chip serial, 8 bytes big-endian: the **card factor** (CARD-PROFILE §5.2, last 8 historical bytes) |

/// Category indicator and COS tag (H1, H2).
pub const COS_TAG: [u8; 2] = [0x53, 0x53];
/// COS version byte (H4).
pub const COS_VERSION: u8 = 0x10;

/// Encodes a 6-digit region code as 3 BCD bytes; `None` if it is not 6 decimal digits.
pub fn region_bcd(region: &str) -> Option<[u8; 3]> {
    let d: Vec<u8> = region.bytes().map(|c| c.wrapping_sub(b'0')).collect();
    match d.as_slice() {
        [a, b, c, e, f, g] if d.iter().all(|x| *x <= 9) => Some([a << 4 | b, c << 4 | e, f << 4 | g]),
        _ => None,
    }
}

/// The historical bytes for a card.
pub fn historical_bytes(generation: u8, region: [u8; 3], serial: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(15);
    h.extend_from_slice(&COS_TAG);
    h.push(generation);
    h.push(COS_VERSION);
    h.extend_from_slice(&region);
    h.extend_from_slice(&serial.to_be_bytes());
    h
}

/// The whole ATR for a card.
pub fn atr(generation: u8, region: [u8; 3], serial: u64) -> Vec<u8> {
    let hist = historical_bytes(generation, region, serial);
    let mut atr = vec![0x3B, 0x60 | (hist.len() as u8 & 0x0F), 0x00, 0x00];
    atr.extend_from_slice(&hist);
    atr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let region = region_bcd("371700").unwrap();
        assert_eq!(region, [0x37, 0x17, 0x00]);
        let atr = atr(3, region, 0x0102_0304_0506_0708);
        assert_eq!(hex::encode_upper(&atr), "3B6F00005353031037170001020304050607 08".replace(' ', ""));
        let hist = card_core::transport::historical_bytes(&atr).unwrap();
        assert_eq!(&hist[7..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(region_bcd("37170").is_none());
        assert!(region_bcd("37170A").is_none());
    }
}
