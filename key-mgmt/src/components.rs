//! Key components for ceremonies: parsing, checks and XOR combination/splitting.
//!
//! A key is never handled whole by one custodian: it is the XOR of 2 or 3 components, each
//! entered by one custodian with its KCV shown for cross-checking. A component is refused when
//! it has the wrong length, is trivial (all bytes equal, e.g. all zero) or repeats another
//! component (two equal components cancel out); a 16-byte 3DES result whose halves are equal
//! (single DES) is refused too.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A secret byte string (component or key), zeroized on drop.
pub type Secret = Zeroizing<Vec<u8>>;

/// Parses one component from hex text (whitespace ignored); `index` is 1-based, for messages.
/// The message of a refusal never contains the text.
pub fn parse_hex(text: &str, index: usize, expected_len: usize) -> Result<Secret> {
    let clean: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    if !clean.len().is_multiple_of(2) || !clean.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::BadComponent { index, reason: "not hexadecimal".into() });
    }
    let bytes = Zeroizing::new(
        hex::decode(clean.as_bytes()).map_err(|_| Error::BadComponent { index, reason: "not hexadecimal".into() })?,
    );
    if bytes.len() != expected_len {
        return Err(Error::BadComponent {
            index,
            reason: format!("wrong length: {} bytes, expected {expected_len}", bytes.len()),
        });
    }
    Ok(bytes)
}

/// Whether all bytes are equal (all zero, all `FF`, …).
pub fn is_trivial(bytes: &[u8]) -> bool {
    bytes.windows(2).all(|w| w[0] == w[1])
}

/// Checks `components` (each `len` bytes, `min..=max` of them) and returns their XOR.
pub fn combine(components: &[Secret], len: usize, min: usize, max: usize, allowed: &'static str) -> Result<Secret> {
    if components.len() < min || components.len() > max {
        return Err(Error::ComponentCount { got: components.len(), allowed });
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, c) in components.iter().enumerate() {
        let index = i + 1;
        if c.len() != len {
            return Err(Error::BadComponent {
                index,
                reason: format!("wrong length: {} bytes, expected {len}", c.len()),
            });
        }
        if is_trivial(c) {
            return Err(Error::BadComponent { index, reason: "trivial (all bytes are the same)".into() });
        }
        if let Some(j) = components[..i].iter().position(|p| card_core::crypto::ct_eq(p, c)) {
            return Err(Error::BadComponent { index, reason: format!("same as component {}", j + 1) });
        }
        for (o, b) in out.iter_mut().zip(c.iter()) {
            *o ^= b;
        }
    }
    if is_trivial(&out) {
        return Err(Error::BadComponent {
            index: components.len(),
            reason: "the components combine to a trivial key".into(),
        });
    }
    Ok(out)
}

/// Splits `key` into `n` (2 or 3) random components whose XOR is `key`; none trivial, no two equal.
pub fn split(key: &[u8], n: usize) -> Result<Vec<Secret>> {
    if !(2..=3).contains(&n) {
        return Err(Error::ComponentCount { got: n, allowed: "2 or 3 are allowed" });
    }
    loop {
        let mut comps: Vec<Secret> = Vec::with_capacity(n);
        let mut last = Zeroizing::new(key.to_vec());
        for _ in 1..n {
            let mut c = Zeroizing::new(vec![0u8; key.len()]);
            rand::fill(&mut c[..]);
            for (l, b) in last.iter_mut().zip(c.iter()) {
                *l ^= b;
            }
            comps.push(c);
        }
        comps.push(last);
        // Redraw in the (negligible) case of a trivial or repeated component.
        if combine(&comps, key.len(), n, n, "").is_ok() {
            return Ok(comps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> Secret {
        Zeroizing::new(b.to_vec())
    }

    #[test]
    fn combine_xors() {
        let k = combine(&[s(&[1, 2, 3, 4]), s(&[4, 4, 4, 5])], 4, 2, 3, "2 or 3").unwrap();
        assert_eq!(&k[..], &[5, 6, 7, 1]);
    }

    #[test]
    fn refusals() {
        let good = s(&[1, 2, 3, 4]);
        let e = combine(&[good.clone(), s(&[0, 0, 0, 0])], 4, 2, 3, "").unwrap_err();
        assert!(matches!(e, Error::BadComponent { index: 2, .. }), "{e}");
        let e = combine(&[s(&[7, 7, 7, 7]), good.clone()], 4, 2, 3, "").unwrap_err();
        assert!(matches!(e, Error::BadComponent { index: 1, .. }));
        let e = combine(&[good.clone(), good.clone()], 4, 2, 3, "").unwrap_err();
        assert!(e.to_string().contains("same as component 1"), "{e}");
        let e = combine(&[good.clone(), s(&[1, 2, 3])], 4, 2, 3, "").unwrap_err();
        assert!(e.to_string().contains("wrong length"));
        let e = combine(std::slice::from_ref(&good), 4, 2, 3, "2 or 3").unwrap_err();
        assert!(matches!(e, Error::ComponentCount { got: 1, .. }));
        // Components combining to all-same bytes.
        let e = combine(&[good.clone(), s(&[0, 3, 2, 5])], 4, 2, 3, "").unwrap_err();
        assert!(e.to_string().contains("trivial key"), "{e}");
        assert!(parse_hex("zz", 1, 1).unwrap_err().to_string().contains("not hexadecimal"));
        assert!(parse_hex("0102", 1, 16).unwrap_err().to_string().contains("wrong length"));
    }

    #[test]
    fn split_recombines() {
        let key = [0x3Cu8; 15].iter().chain(&[1]).copied().collect::<Vec<_>>();
        for n in [2, 3] {
            let parts = split(&key, n).unwrap();
            assert_eq!(parts.len(), n);
            assert_eq!(&combine(&parts, 16, n, n, "").unwrap()[..], &key[..]);
        }
        assert!(matches!(split(&key, 4), Err(Error::ComponentCount { got: 4, .. })));
    }
}
