//! Cryptography of the social security card (CARD-PROFILE §5–§6).
//!
//! Two layers:
//!
//! - **Primitives** ([`block`], [`pad`], [`mac`]): single DES ([`DesKey`]), two-key 3DES
//!   ([`TdesKey`]), SM4 ([`Sm4Key`]), AES-128/256 ([`AesKey`]) over the RustCrypto block ciphers;
//!   ISO/IEC 9797-1 padding methods 1 and 2; MAC algorithms 1 (CBC-MAC) and 3 (retail MAC);
//!   SM4/AES CBC-MAC; AES and 3DES CMAC; DES odd parity ([`adjust_parity`]).
//! - **Card mechanisms** ([`keys`], [`div`], [`sm`]): the 16-byte [`CardKey`] of a card
//!   [`Algorithm`], diversification (§5.2), key check values (§6.6), process keys and
//!   authentication cryptograms (§6.1–§6.3), line-protection MAC (§6.4) and secure data (§6.5).
//!
//! Every key type holds a fixed-size array, is zeroized on drop, has no `Clone`/`Serialize`
//! and prints `<redacted>` in `Debug`. No error carries key bytes.

use core::fmt;

pub mod block;
pub mod div;
pub mod keys;
pub mod mac;
pub mod pad;
pub mod sm;

pub use block::{adjust_parity, AesKey, DesKey, Sm4Key, TdesKey};
pub use div::{card_factor, region_factor};
pub use keys::{CardKey, Kcv, KcvMethod};
pub use mac::{aes_cmac, cbc_mac_aes, cbc_mac_des, cbc_mac_sm4, cbc_mac_tdes, retail_mac, sm4_cmac, tdes_cmac};
pub use pad::{iso9797_pad, iso9797_unpad2, Padding};
pub use sm::{line_mac, line_mac_zero_iv, process_key, secure_data_decrypt, secure_data_encrypt, SessionKey};

/// A card algorithm, with the identifier used in key records and the HSM two-step exchange
/// (CARD-PROFILE §1: `01` DES/3DES, `02` SSF33 — not supported, `03` SM4, `04` AES-128, a profile extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Two-key 3DES (EDE) with 16-byte keys, 8-byte blocks; id `01` (card generations 1 and 2).
    Tdes,
    /// SM4 (GB/T 32907), 16-byte keys and blocks; id `03` (card generation 3).
    Sm4,
    /// AES-128, 16-byte keys and blocks; id `04` (profile extension).
    Aes128,
}

/// The SSF33 algorithm id (CARD-PROFILE §1), known but not supported.
const SSF33_ID: u8 = 0x02;

impl Algorithm {
    /// The card's algorithm identifier (CARD-PROFILE §1): `01`, `03` or `04`.
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Tdes => 0x01,
            Algorithm::Sm4 => 0x03,
            Algorithm::Aes128 => 0x04,
        }
    }

    /// Parses a card algorithm identifier (CARD-PROFILE §1).
    ///
    /// `02` (SSF33) and unknown ids give [`CryptoError::UnsupportedAlgorithm`].
    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            0x01 => Ok(Algorithm::Tdes),
            0x03 => Ok(Algorithm::Sm4),
            0x04 => Ok(Algorithm::Aes128),
            other => Err(CryptoError::UnsupportedAlgorithm(other)),
        }
    }

    /// Block length in bytes: 8 for 3DES, 16 for SM4 and AES-128.
    pub fn block_len(self) -> usize {
        match self {
            Algorithm::Tdes => 8,
            Algorithm::Sm4 | Algorithm::Aes128 => 16,
        }
    }

    /// Display name: `"3DES"`, `"SM4"`, `"AES-128"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Tdes => "3DES",
            Algorithm::Sm4 => "SM4",
            Algorithm::Aes128 => "AES-128",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of an unsupported algorithm id, for error messages.
fn unsupported_name(id: u8) -> &'static str {
    if id == SSF33_ID {
        "SSF33"
    } else {
        "unknown"
    }
}

/// Errors of the crypto module (CARD-PROFILE §5–§6). No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key had the wrong length.
    #[error("wrong key length: expected {expected} bytes, got {got}")]
    WrongKeyLength {
        /// Accepted length(s), e.g. `"16"` or `"16 or 32"`.
        expected: &'static str,
        /// Length given.
        got: usize,
    },
    /// An input had the wrong length (single block, factor source, secure data, …).
    #[error("wrong data length: expected {expected} bytes, got {got}")]
    WrongDataLength {
        /// What was expected, e.g. `"8"`, `"a multiple of 16"`, `"at least 8"`.
        expected: &'static str,
        /// Length given.
        got: usize,
    },
    /// A challenge for the line-protection MAC (CARD-PROFILE §6.4) had the wrong length.
    #[error("wrong challenge length for {algorithm}: expected {expected} bytes, got {got}")]
    WrongChallengeLength {
        /// Algorithm of the key.
        algorithm: Algorithm,
        /// 4 for 3DES, 8 for SM4 and AES.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// ISO/IEC 9797-1 padding method 2 not found where required.
    #[error("bad padding")]
    BadPadding,
    /// Decrypted secure data (CARD-PROFILE §6.5) whose length byte `Ld` disagrees with its content.
    #[error("secure data length byte says {declared}, content has {actual} bytes")]
    SecureDataLength {
        /// The decrypted `Ld`.
        declared: usize,
        /// The bytes between `Ld` and the padding.
        actual: usize,
    },
    /// An algorithm id that this crate does not implement, e.g. `02` SSF33 (CARD-PROFILE §1).
    #[error("unsupported algorithm {0:#04x} ({name})", name = unsupported_name(*.0))]
    UnsupportedAlgorithm(u8),
    /// A region code that is not exactly 6 ASCII digits (CARD-PROFILE §5.2).
    #[error("region code must be 6 ASCII digits, got {0:?}")]
    InvalidRegionCode(String),
}

/// Constant-time equality for MACs and cryptograms (STYLE "Secrets": `subtle`).
///
/// Slices of different lengths compare unequal (the length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests;
