//! PINs as secrets, from the holders file (or a PIN file at the desk) to the card: a [`Pin`] is digits held in a
//! [`SecretString`] (zeroized on drop), with a `Debug` that prints `REDACTED`, no `Clone`, no `Serialize`. Its
//! digits are exposed in one place, where the card's BCD bytes are made ([`Pin::bcd`]); card-core's PIN
//! services take the secret itself ([`Pin::as_secret`]).

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The PIN set when a holder has none of their own [P]: the customary initial PIN of the card.
pub const DEFAULT_PIN: &str = "123456";

static DEFAULT: LazyLock<Pin> = LazyLock::new(|| Pin(SecretString::from(DEFAULT_PIN)));

/// A PIN: ASCII digits, secret.
pub struct Pin(SecretString);

/// A text refused as a PIN (the text is not kept).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be {} to {} digits", .lengths.start(), .lengths.end())]
pub struct NotAPin {
    /// The lengths allowed.
    pub lengths: RangeInclusive<usize>,
}

impl Pin {
    /// `text` as a PIN, if it is `lengths` ASCII digits.
    pub fn parse(text: &str, lengths: RangeInclusive<usize>) -> Result<Pin, NotAPin> {
        if lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Pin(SecretString::from(text)))
        } else {
            Err(NotAPin { lengths })
        }
    }

    /// [`DEFAULT_PIN`].
    pub fn default_initial() -> &'static Pin {
        &DEFAULT
    }

    /// CARD-PROFILE §4 VERIFY / the reference COS's PIN record: the digits in BCD, `F`-padded to `len` bytes;
    /// `None` if they do not fit.
    pub fn bcd(&self, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        card_core::codec::encode_cn(self.0.expose_secret(), len).ok().map(Zeroizing::new)
    }

    /// The secret, for card-core's PIN services (which take a [`SecretString`]).
    pub fn as_secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(REDACTED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bcd_and_debug() {
        let pin = Pin::parse("2468", 4..=6).unwrap();
        assert_eq!(pin.bcd(3).unwrap().as_slice(), [0x24, 0x68, 0xFF]);
        assert_eq!(format!("{pin:?}"), "Pin(REDACTED)");
        for bad in ["12a4", "123", "1234567", "", "１２３４"] {
            assert_eq!(Pin::parse(bad, 4..=6).unwrap_err().to_string(), "must be 4 to 6 digits", "{bad:?}");
        }
        assert_eq!(Pin::default_initial().bcd(3).unwrap().as_slice(), [0x12, 0x34, 0x56]);
        assert!(pin.bcd(1).is_none());
    }
}
