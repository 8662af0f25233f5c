//! Binary values in card images as uppercase hex strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Bytes stored as an uppercase hex string in images.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode_upper(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim()).map(HexBytes).map_err(serde::de::Error::custom)
    }
}

/// Secret bytes (keys, PINs): hex in images — this is a TEST card, its image is test material —
/// zeroized on drop, never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretHex(pub Zeroizing<Vec<u8>>);

impl fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "REDACTED({} bytes)", self.0.len())
    }
}

impl Serialize for SecretHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode_upper(&*self.0)))
    }
}

impl<'de> Deserialize<'de> for SecretHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        hex::decode(s.trim()).map(|v| SecretHex(Zeroizing::new(v))).map_err(serde::de::Error::custom)
    }
}

/// A file identifier as four hex digits (`"DDF1"`).
pub(crate) mod fid {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:04X}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let s = String::deserialize(d)?;
        u16::from_str_radix(s.trim(), 16).map_err(serde::de::Error::custom)
    }
}
