//! ISO/IEC 7064 check characters, pure systems with radix 2: MOD 11-2 (citizen ID) and
//! MOD 37-2 (card number, a profile decision).

use super::CodecError;

const MOD37_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// ISO/IEC 7064 pure system, radix 2: with `s = Σ aᵢ·2ⁿ⁻ⁱ mod M` over the character values
/// (Horner: `s = 2s + aᵢ`), the check value `c` makes `2s + c ≡ 1 (mod M)`, i.e.
/// `c = (1 − 2s) mod M`.
fn pure_system_radix2(values: impl Iterator<Item = u32>, modulus: u32) -> u32 {
    let p = values.fold(0, |p, v| (2 * p + v) % modulus);
    (modulus + 1 - (2 * p) % modulus) % modulus
}

/// ISO 7064 MOD 11-2 check character (`0`–`9` or `X`) of a string of decimal digits.
///
/// The citizen ID (GB 11643) applies it to its first 17 digits; any non-empty digit string is
/// accepted, so ISO 7064's own examples can be checked too.
///
/// ```
/// # use card_core::codec::mod11_2_check;
/// assert_eq!(mod11_2_check("11010519491231002").unwrap(), 'X');
/// ```
pub fn mod11_2_check(digits17: &str) -> Result<char, CodecError> {
    if digits17.is_empty() {
        return Err(CodecError::Empty);
    }
    let mut values = Vec::with_capacity(digits17.len());
    for (position, ch) in digits17.chars().enumerate() {
        match ch {
            '0'..='9' => values.push(u32::from(ch) - u32::from('0')),
            _ => return Err(CodecError::NotDigit { ch, position }),
        }
    }
    let c = pure_system_radix2(values.into_iter(), 11);
    Ok(char::from_digit(c, 10).unwrap_or('X'))
}

/// ISO/IEC 7064 MOD 37-2 check character (`0`–`9`, `A`–`Z` or `*`) of a string of `0`–`9A`–`Z`.
///
/// Pure system, alphabet `0-9A-Z*` (values 0–36), radix 2. Lowercase letters are refused.
///
/// ```
/// # use card_core::codec::mod37_2_check;
/// assert_eq!(mod37_2_check("G123489654321").unwrap(), 'Y');
/// ```
pub fn mod37_2_check(s: &str) -> Result<char, CodecError> {
    if s.is_empty() {
        return Err(CodecError::Empty);
    }
    let values = alnum_values(s)?;
    let c = pure_system_radix2(values.into_iter(), 37);
    Ok(MOD37_ALPHABET.get(c as usize).map_or('*', |&b| char::from(b)))
}

fn alnum_values(s: &str) -> Result<Vec<u32>, CodecError> {
    s.chars()
        .enumerate()
        .map(|(position, ch)| match ch {
            '0'..='9' => Ok(u32::from(ch) - u32::from('0')),
            'A'..='Z' => Ok(u32::from(ch) - u32::from('A') + 10),
            _ => Err(CodecError::InvalidChar { ch, position, allowed: "0-9, A-Z" }),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mod11_2_vectors() {
        // CARD-PROFILE §9 (GB 11643 example).
        assert_eq!(mod11_2_check("11010519491231002").unwrap(), 'X');
        // LD/T 33 sample SSN (CARD-PROFILE §7).
        assert_eq!(mod11_2_check("11111119810101111").unwrap(), '0');
        assert_eq!(mod11_2_check("079").unwrap(), 'X');
        assert_eq!(mod11_2_check("0794").unwrap(), '0');
        assert_eq!(mod11_2_check("12a").unwrap_err(), CodecError::NotDigit { ch: 'a', position: 2 });
        assert_eq!(mod11_2_check("").unwrap_err(), CodecError::Empty);
    }

    #[test]
    fn mod37_2_vectors() {
        assert_eq!(mod37_2_check("G123489654321").unwrap(), 'Y');
        assert_eq!(mod37_2_check("X0000001").unwrap(), 'O');
        assert!(matches!(mod37_2_check("x1"), Err(CodecError::InvalidChar { ch: 'x', position: 0, .. })));
    }
}
