//! The key file of a DF (CARD-PROFILE §5) and its PIN.
//!
//! # Key record (WRITE KEY data, CARD-PROFILE §4)
//!
//! `type(1) ‖ version(1) ‖ algorithm(1) ‖ max tries(1) ‖ key(16)` — 20 bytes, written with
//! `80 D4 01 kid 14 record` (plain, before END PERSONALIZATION) or
//! `84 D4 01 kid Lc ENC_MK(Ld ‖ record ‖ pad) MAC4` (secure, any time).
//!
//! | type | key | use |
//! |---|---|---|
//! | `01` | MK, master key of the DF | external authentication; authorises CREATE FILE, plain WRITE KEY, ERASE DF; encrypts and MACs secure WRITE KEY |
//! | `02` | IRK, internal authentication key | INTERNAL AUTHENTICATE |
//! | `03` | external authentication key (UKMF, UK, RK, RKSSSE) | EXTERNAL AUTHENTICATE |
//! | `04` | PUK, PIN unblock key | PIN UNBLOCK (MAC and encryption) |
//! | `05` | STK, maintenance key | line protection of updates, APPLICATION BLOCK/UNBLOCK, CARD BLOCK |
//! | `06` | RLK, PIN reload key | RELOAD PIN (MAC, IV zero) |
//! | `0F` | the PIN of the DF | VERIFY / CHANGE / RELOAD / UNBLOCK |
//!
//! Algorithm: `01` 3DES, `03` SM4, `04` AES-128 (CARD-PROFILE §1). Max tries: `1`–`15` (the `x` of `63Cx`).
//!
//! **PIN record**: type `0F`, version and algorithm ignored (write `00`), max tries as for keys, and in
//! place of the key the PIN bytes as VERIFY sends them (e.g. 3 bytes BCD `123456`), padded on the right
//! with `FF` to 16 bytes. A DF holds at most one PIN; the kid of a PIN record is ignored. VERIFY in a DF
//! without a PIN uses the PIN of the nearest ancestor DF (the PIN of SSSE protects DF01's files).

use serde::{Deserialize, Serialize};

use crate::hexfmt::SecretHex;
use card_core::crypto::{Algorithm, CardKey};

pub use card_core::reference_cos::{KeyType, KEY_RECORD_LEN, MAX_PIN_LEN, MAX_TRIES, PIN_RECORD_TYPE};

/// A key's algorithm, as stored in images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    /// `01` two-key 3DES.
    #[serde(rename = "3des")]
    Tdes,
    /// `03` SM4.
    Sm4,
    /// `04` AES-128.
    Aes128,
}

impl KeyAlgorithm {
    /// From the algorithm byte (CARD-PROFILE §1).
    pub fn from_id(id: u8) -> Option<KeyAlgorithm> {
        Some(match Algorithm::from_id(id).ok()? {
            Algorithm::Tdes => KeyAlgorithm::Tdes,
            Algorithm::Sm4 => KeyAlgorithm::Sm4,
            Algorithm::Aes128 => KeyAlgorithm::Aes128,
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    /// The algorithm byte.
    pub fn id(self) -> u8 {
        self.crypto().id()
    }

    /// The `card_core::crypto` algorithm.
    pub(crate) fn crypto(self) -> Algorithm {
        match self {
            KeyAlgorithm::Tdes => Algorithm::Tdes,
            KeyAlgorithm::Sm4 => Algorithm::Sm4,
            KeyAlgorithm::Aes128 => Algorithm::Aes128,
        }
    }

    /// Block length in bytes.
    pub fn block_len(self) -> usize {
        self.crypto().block_len()
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = crate::Error;

    /// `3des`, `sm4` or `aes128` (case-insensitive), as images name them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "3des" | "tdes" => Ok(KeyAlgorithm::Tdes),
            "sm4" => Ok(KeyAlgorithm::Sm4),
            "aes128" | "aes-128" => Ok(KeyAlgorithm::Aes128),
            _ => Err(crate::Error::BadParams("algorithm must be 3des, sm4 or aes128")),
        }
    }
}

/// One key of a key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyEntry {
    pub kid: u8,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub version: u8,
    pub algorithm: KeyAlgorithm,
    pub max_tries: u8,
    pub tries_left: u8,
    /// The key value. Images of this test card hold keys in clear hex: test material only.
    pub value: SecretHex,
}

impl KeyEntry {
    /// The key, ready for `card_core::crypto`.
    pub fn card_key(&self) -> Option<CardKey> {
        CardKey::new(self.algorithm.crypto(), &self.value.0).ok()
    }

    pub fn is_blocked(&self) -> bool {
        self.tries_left == 0
    }
}

/// The PIN of a DF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PinEntry {
    pub max_tries: u8,
    pub tries_left: u8,
    /// The PIN bytes. Test material, as the keys.
    pub value: SecretHex,
}

impl PinEntry {
    pub fn is_blocked(&self) -> bool {
        self.tries_left == 0
    }
}

/// A decoded WRITE KEY record.
pub(crate) enum KeyRecord {
    Key(KeyEntry),
    Pin(PinEntry),
}

/// Decodes a 20-byte key record for kid `kid` (card-core's reference COS codec); `None` if a field is out of
/// range.
pub(crate) fn parse_key_record(kid: u8, rec: &[u8]) -> Option<KeyRecord> {
    use card_core::reference_cos::KeyRecord as Record;
    Some(match Record::decode(rec)? {
        Record::Pin { max_tries, bcd } => {
            KeyRecord::Pin(PinEntry { max_tries, tries_left: max_tries, value: SecretHex(bcd) })
        }
        Record::Key { key_type, version, algorithm, max_tries, value } => KeyRecord::Key(KeyEntry {
            kid,
            key_type,
            version,
            algorithm: KeyAlgorithm::from_id(algorithm)?,
            max_tries,
            tries_left: max_tries,
            value: SecretHex(value),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let mut rec = vec![0x03, 0x01, 0x03, 0x05];
        rec.extend_from_slice(&[0x11; 16]);
        let Some(KeyRecord::Key(k)) = parse_key_record(4, &rec) else { panic!("key") };
        assert_eq!((k.kid, k.key_type, k.algorithm, k.tries_left), (4, KeyType::External, KeyAlgorithm::Sm4, 5));
        assert!(!format!("{k:?}").contains("1111"));
        let mut pin = vec![0x0F, 0, 0, 3, 0x12, 0x34, 0x56];
        pin.resize(20, 0xFF);
        let Some(KeyRecord::Pin(p)) = parse_key_record(0, &pin) else { panic!("pin") };
        assert_eq!(&p.value.0[..], &[0x12, 0x34, 0x56]);
        rec[2] = 0x02; // SSF33: not supported
        assert!(parse_key_record(4, &rec).is_none());
        pin[10] = 0x00; // data after the padding
        assert!(parse_key_record(0, &pin).is_none());
    }
}
