//! The reference COS's personalization encoding (CARD-PROFILE §4, personalization commands [P]; every byte in
//! `card-sim/COS.md`): CREATE FILE data, key and PIN records, access-condition bytes, key types — one codec that
//! issuance encodes with and card-sim decodes with. Personalization commands are not standard: a real chip family
//! needs an encoding of its own, beside this one.
//!
//! | byte | access condition |
//! |---|---|
//! | `00` | free |
//! | `10` | PIN verified |
//! | `2k` | external authentication with key `k` |
//! | `3k` | PIN verified **or** key `k` (`PIN\|KEY`) |
//! | `4k` | PIN verified **and** key `k` (`PIN+KEY`) |
//! | `FF` | never |
//!
//! CREATE FILE data: a DF `38 ‖ [AID]`; an EF `type ‖ SFI ‖ read ‖ update ‖ a ‖ b [‖ (record ‖ read)…]` with type
//! `01` transparent (`a b` = size), `04` linear (`a` = records, `b` = record length; then per-record read
//! conditions), `06` cyclic. A key record: `type ‖ version ‖ algorithm ‖ max tries ‖ key(16)`; the PIN record:
//! `0F ‖ 00 ‖ 00 ‖ max tries ‖ PIN (BCD) ‖ FF…` to 20 bytes.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apdu::{ApduError, Command, Ins, Response};
use crate::crypto::{line_mac, secure_data_encrypt, CardKey};
use crate::profile::{self, Df, Ef, EfKind, Generation, KeyUsage};
use crate::transport::CardTransaction;
use crate::Error;

/// Length of a key (or PIN) record.
pub const KEY_RECORD_LEN: usize = 20;
/// Most tries a key or PIN may have (one hex digit in `63Cx`).
pub const MAX_TRIES: u8 = 15;
/// Longest PIN, in bytes.
pub const MAX_PIN_LEN: usize = 8;
/// Type byte of the PIN record.
pub const PIN_RECORD_TYPE: u8 = 0x0F;
/// CREATE FILE type byte of a DF.
pub const DF_TYPE: u8 = 0x38;

/// An access condition with its key id (CARD-PROFILE §3), as CREATE FILE carries it and card images keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Always allowed.
    Free,
    /// After a successful VERIFY PIN.
    Pin,
    /// After a successful EXTERNAL AUTHENTICATE with the key of this kid.
    Key(u8),
    /// PIN verified or the key authenticated (`PIN|KEY`).
    PinOrKey(u8),
    /// PIN verified and the key authenticated (`PIN+KEY`).
    PinAndKey(u8),
    /// Never allowed.
    Never,
}

impl Access {
    /// Decodes the one-byte form; `None` for an unassigned byte.
    pub fn from_byte(b: u8) -> Option<Access> {
        let kid = b & 0x0F;
        match b >> 4 {
            _ if b == 0xFF => Some(Access::Never),
            0x0 if b == 0x00 => Some(Access::Free),
            0x1 if b == 0x10 => Some(Access::Pin),
            0x2 => Some(Access::Key(kid)),
            0x3 => Some(Access::PinOrKey(kid)),
            0x4 => Some(Access::PinAndKey(kid)),
            _ => None,
        }
    }

    /// The one-byte form; `None` if the kid does not fit a nibble.
    pub fn to_byte(self) -> Option<u8> {
        let with = |kind: u8, kid: u8| (kid <= 0x0F).then_some(kind << 4 | kid);
        match self {
            Access::Free => Some(0x00),
            Access::Pin => Some(0x10),
            Access::Key(k) => with(2, k),
            Access::PinOrKey(k) => with(3, k),
            Access::PinAndKey(k) => with(4, k),
            Access::Never => Some(0xFF),
        }
    }

    /// A profile condition of `df`, its key named by kid.
    pub fn from_profile(df: &Df, a: &profile::Access) -> Result<Access, Error> {
        let kid =
            |k: &str| df.key(k).map(|s| s.kid).ok_or_else(|| Error::BadParameter(format!("{}: no key {k}", df.name)));
        Ok(match a {
            profile::Access::Free => Access::Free,
            profile::Access::Pin => Access::Pin,
            profile::Access::Key(k) => Access::Key(kid(k)?),
            profile::Access::PinOrKey(k) => Access::PinOrKey(kid(k)?),
            profile::Access::PinAndKey(k) => Access::PinAndKey(kid(k)?),
            profile::Access::Never => Access::Never,
        })
    }

    fn byte(self) -> Result<u8, Error> {
        self.to_byte().ok_or_else(|| Error::BadParameter(format!("access {self:?}: a key id is one hex digit")))
    }
}

/// What a key is for: the type byte of its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// `01` MK, master key of the DF.
    Master,
    /// `02` IRK, internal authentication.
    Internal,
    /// `03` external authentication (UKMF, UK, RK, RKSSSE).
    External,
    /// `04` PUK, PIN unblock.
    PinUnblock,
    /// `05` STK, maintenance / line protection.
    Maintenance,
    /// `06` RLK, PIN reload.
    PinReload,
}

impl KeyType {
    /// From the type byte of a key record.
    pub fn from_byte(b: u8) -> Option<KeyType> {
        Some(match b {
            0x01 => KeyType::Master,
            0x02 => KeyType::Internal,
            0x03 => KeyType::External,
            0x04 => KeyType::PinUnblock,
            0x05 => KeyType::Maintenance,
            0x06 => KeyType::PinReload,
            _ => return None,
        })
    }

    /// The type byte.
    pub fn to_byte(self) -> u8 {
        match self {
            KeyType::Master => 0x01,
            KeyType::Internal => 0x02,
            KeyType::External => 0x03,
            KeyType::PinUnblock => 0x04,
            KeyType::Maintenance => 0x05,
            KeyType::PinReload => 0x06,
        }
    }

    /// The type of a profile key usage.
    pub fn of_usage(u: KeyUsage) -> KeyType {
        match u {
            KeyUsage::Master => KeyType::Master,
            KeyUsage::InternalAuth => KeyType::Internal,
            KeyUsage::ExternalAuth => KeyType::External,
            KeyUsage::PinUnblock => KeyType::PinUnblock,
            KeyUsage::Maintenance => KeyType::Maintenance,
            KeyUsage::PinReload => KeyType::PinReload,
        }
    }

    /// Whether EXTERNAL AUTHENTICATE may use a key of this type.
    pub fn can_authenticate(self) -> bool {
        matches!(self, KeyType::Master | KeyType::External)
    }
}

/// A WRITE KEY record. Its secret bytes are zeroized and never printed.
pub enum KeyRecord {
    /// A key.
    Key {
        /// What it is for.
        key_type: KeyType,
        /// Version (`00` = a transport key).
        version: u8,
        /// Algorithm id (CARD-PROFILE §1).
        algorithm: u8,
        /// Try limit.
        max_tries: u8,
        /// The 16 key bytes.
        value: Zeroizing<Vec<u8>>,
    },
    /// The PIN of the DF.
    Pin {
        /// Try limit.
        max_tries: u8,
        /// The PIN, BCD.
        bcd: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRecord::Key { key_type, version, algorithm, max_tries, .. } => f
                .debug_struct("Key")
                .field("key_type", key_type)
                .field("version", version)
                .field("algorithm", algorithm)
                .field("max_tries", max_tries)
                .finish_non_exhaustive(),
            KeyRecord::Pin { max_tries, .. } => {
                f.debug_struct("Pin").field("max_tries", max_tries).finish_non_exhaustive()
            }
        }
    }
}

impl KeyRecord {
    /// The record of `key` at `version` for a key of `usage`.
    pub fn key(usage: KeyUsage, version: u8, max_tries: u8, key: &CardKey) -> KeyRecord {
        KeyRecord::Key {
            key_type: KeyType::of_usage(usage),
            version,
            algorithm: key.algorithm().id(),
            max_tries,
            value: Zeroizing::new(key.expose_secret().to_vec()),
        }
    }

    /// The 20 record bytes.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut rec = Zeroizing::new(Vec::with_capacity(KEY_RECORD_LEN));
        match self {
            KeyRecord::Key { key_type, version, algorithm, max_tries, value } => {
                rec.extend_from_slice(&[key_type.to_byte(), *version, *algorithm, *max_tries]);
                rec.extend_from_slice(value);
            }
            KeyRecord::Pin { max_tries, bcd } => {
                rec.extend_from_slice(&[PIN_RECORD_TYPE, 0x00, 0x00, *max_tries]);
                rec.extend_from_slice(bcd);
                rec.resize(KEY_RECORD_LEN, 0xFF);
            }
        }
        rec
    }

    /// Decodes a 20-byte record; `None` if a field is out of range (the card answers `6A80`).
    pub fn decode(rec: &[u8]) -> Option<KeyRecord> {
        let [ty, version, alg, max_tries, key @ ..] = rec else { return None };
        if key.len() != 16 || *max_tries == 0 || *max_tries > MAX_TRIES {
            return None;
        }
        if *ty == PIN_RECORD_TYPE {
            let len = key.iter().position(|b| *b == 0xFF).unwrap_or(key.len());
            let (pin, pad) = key.split_at(len);
            if pin.is_empty() || pin.len() > MAX_PIN_LEN || pad.iter().any(|b| *b != 0xFF) {
                return None;
            }
            return Some(KeyRecord::Pin { max_tries: *max_tries, bcd: Zeroizing::new(pin.to_vec()) });
        }
        crate::crypto::Algorithm::from_id(*alg).ok()?;
        Some(KeyRecord::Key {
            key_type: KeyType::from_byte(*ty)?,
            version: *version,
            algorithm: *alg,
            max_tries: *max_tries,
            value: Zeroizing::new(key.to_vec()),
        })
    }
}

/// The layout of a new EF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layout {
    /// Linear, one TLV per record.
    Linear {
        /// Number of records.
        records: u8,
        /// Largest record.
        record_len: u8,
        /// Records with a read condition of their own, stricter than the file's.
        record_read: Vec<(u8, Access)>,
    },
    /// Cyclic, fixed records.
    Cyclic {
        /// Number of records.
        records: u8,
        /// Record length.
        record_len: u8,
    },
    /// Transparent.
    Transparent {
        /// Size in bytes.
        size: u16,
    },
}

/// A new EF: CREATE FILE data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfSpec {
    /// Short file id (0: none).
    pub sfi: u8,
    /// Read condition.
    pub read: Access,
    /// Update condition.
    pub update: Access,
    /// Layout.
    pub layout: Layout,
}

/// What a CREATE FILE command creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSpec {
    /// A DF, with its AID if it has one.
    Df {
        /// The DF name.
        aid: Option<Vec<u8>>,
    },
    /// An EF.
    Ef(EfSpec),
}

impl EfSpec {
    /// The EF `ef` of `df` on a card of generation `g`, as the profile says.
    pub fn from_profile(df: &Df, ef: &Ef, g: Generation) -> Result<EfSpec, Error> {
        let big = || Error::BadParameter(format!("{} {}: layout too large", df.name, ef.name));
        let layout = match &ef.kind {
            EfKind::Linear { .. } => {
                let mut record_read = Vec::new();
                for (n, item) in ef.items(g).enumerate() {
                    if let Some(rule) = &item.read {
                        let n = u8::try_from(n + 1).map_err(|_| big())?;
                        record_read.push((n, Access::from_profile(df, rule.for_generation(g))?));
                    }
                }
                Layout::Linear {
                    records: u8::try_from(ef.record_count(g).unwrap_or(0)).map_err(|_| big())?,
                    record_len: u8::try_from(ef.record_len(g).unwrap_or(0)).map_err(|_| big())?,
                    record_read,
                }
            }
            EfKind::Cyclic { records, .. } => Layout::Cyclic {
                records: *records,
                record_len: u8::try_from(ef.record_len(g).unwrap_or(0)).map_err(|_| big())?,
            },
            EfKind::Transparent { .. } => {
                Layout::Transparent { size: u16::try_from(ef.size(g).unwrap_or(0)).map_err(|_| big())? }
            }
        };
        Ok(EfSpec {
            sfi: ef.sfi,
            read: Access::from_profile(df, ef.read.for_generation(g))?,
            update: Access::from_profile(df, ef.update.for_generation(g))?,
            layout,
        })
    }
}

impl FileSpec {
    /// The CREATE FILE data.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(match self {
            FileSpec::Df { aid } => [&[DF_TYPE][..], aid.as_deref().unwrap_or_default()].concat(),
            FileSpec::Ef(EfSpec { sfi, read, update, layout }) => {
                let (r, u) = (read.byte()?, update.byte()?);
                match layout {
                    Layout::Linear { records, record_len, record_read } => {
                        let mut v = vec![0x04, *sfi, r, u, *records, *record_len];
                        for (n, a) in record_read {
                            v.extend_from_slice(&[*n, a.byte()?]);
                        }
                        v
                    }
                    Layout::Cyclic { records, record_len } => vec![0x06, *sfi, r, u, *records, *record_len],
                    Layout::Transparent { size } => {
                        let [hi, lo] = size.to_be_bytes();
                        vec![0x01, *sfi, r, u, hi, lo]
                    }
                }
            }
        })
    }

    /// Decodes CREATE FILE data for file id `fid`; `None` if malformed (the card answers `6A80`).
    pub fn decode(fid: u16, data: &[u8]) -> Option<FileSpec> {
        if matches!(fid, 0x3F00 | 0x0000 | 0xFFFF) {
            return None;
        }
        match data {
            [DF_TYPE] => Some(FileSpec::Df { aid: None }),
            [DF_TYPE, aid @ ..] if (5..=16).contains(&aid.len()) => Some(FileSpec::Df { aid: Some(aid.to_vec()) }),
            [ty, sfi, read, update, a, b, extra @ ..] if extra.len() % 2 == 0 && (extra.is_empty() || *ty == 0x04) => {
                let read = Access::from_byte(*read)?;
                let update = Access::from_byte(*update)?;
                if *sfi > 30 {
                    return None;
                }
                let layout = match ty {
                    0x01 => {
                        let size = u16::from_be_bytes([*a, *b]);
                        if size == 0 || size > 0x7FFF {
                            return None;
                        }
                        Layout::Transparent { size }
                    }
                    0x04 if (1..=0xFE).contains(a) && *b >= 2 => {
                        let record_read = extra
                            .chunks(2)
                            .map(|p| match p {
                                [record, ac] if (1..=*a).contains(record) => Some((*record, Access::from_byte(*ac)?)),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>()?;
                        Layout::Linear { records: *a, record_len: *b, record_read }
                    }
                    0x06 if (1..=0xFE).contains(a) && *b >= 1 => Layout::Cyclic { records: *a, record_len: *b },
                    _ => return None,
                };
                Some(FileSpec::Ef(EfSpec { sfi: *sfi, read, update, layout }))
            }
            _ => None,
        }
    }
}

/// Reference COS CREATE FILE: `80 E0 FID Lc data`.
pub fn create_file(fid: u16, spec: &FileSpec) -> Result<Command, Error> {
    let [hi, lo] = fid.to_be_bytes();
    Ok(Command::new(0x80, Ins::CREATE_FILE, hi, lo).with_data(spec.encode()?)?)
}

/// Reference COS WRITE KEY, plain (before END PERSONALIZATION): `80 D4 01 kid Lc record`. Sensitive.
pub fn write_key(kid: u8, record: &KeyRecord) -> Result<Command, ApduError> {
    Ok(Command::new(0x80, Ins::WRITE_KEY, 0x01, kid).with_data(record.encode().to_vec())?.sensitive())
}

/// Reference COS WRITE KEY, secure: `84 D4 01 kid Lc ENC_MK(Ld ‖ record ‖ pad) MAC4` — the record as secure data
/// (§6.5) and the command line-protected (§6.4, after GET CHALLENGE) under `mk`, the MK the current DF holds now.
pub fn secure_write_key(
    tx: &mut (dyn CardTransaction + '_),
    mk: &CardKey,
    kid: u8,
    record: &KeyRecord,
) -> Result<Response, Error> {
    let enc = secure_data_encrypt(mk, &record.encode())?;
    crate::command::line_protected(tx, mk.algorithm(), [0x84, Ins::WRITE_KEY.0, 0x01, kid], &enc, true, |c, input| {
        Ok(line_mac(mk, c, input)?)
    })
}

/// Reference COS ERASE DF: `80 0E 00 00` (before END PERSONALIZATION, or with the DF's MK).
pub fn erase_df() -> Command {
    Command::new(0x80, Ins::ERASE_DF, 0, 0)
}

/// Reference COS END PERSONALIZATION: `80 EA 00 00`.
pub fn end_personalization() -> Command {
    Command::new(0x80, Ins::END_PERSONALIZATION, 0, 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn access_bytes_round_trip() {
        for ac in
            [Access::Free, Access::Pin, Access::Key(4), Access::PinOrKey(0x0A), Access::PinAndKey(7), Access::Never]
        {
            assert_eq!(Access::from_byte(ac.to_byte().unwrap()), Some(ac));
        }
        assert_eq!(Access::from_byte(0x01), None);
        assert_eq!(Access::from_byte(0x55), None);
        assert_eq!(Access::Key(0x10).to_byte(), None);
    }

    #[test]
    fn records_round_trip_and_hide_their_secrets() {
        let rec = KeyRecord::Key {
            key_type: KeyType::External,
            version: 1,
            algorithm: 3,
            max_tries: 5,
            value: Zeroizing::new(vec![0x11; 16]),
        };
        let bytes = rec.encode();
        assert_eq!(bytes[..4], [0x03, 0x01, 0x03, 0x05]);
        assert!(!format!("{rec:?}").contains("17"), "no key byte in Debug");
        assert!(matches!(KeyRecord::decode(&bytes), Some(KeyRecord::Key { key_type: KeyType::External, .. })));
        let pin = KeyRecord::Pin { max_tries: 3, bcd: Zeroizing::new(vec![0x12, 0x34, 0x56]) };
        let bytes = pin.encode();
        assert_eq!(bytes.len(), KEY_RECORD_LEN);
        assert!(
            matches!(KeyRecord::decode(&bytes), Some(KeyRecord::Pin { max_tries: 3, bcd }) if bcd[..] == [0x12, 0x34, 0x56])
        );
        assert!(KeyRecord::decode(&bytes[..19]).is_none());
        let mut bad = bytes.to_vec();
        bad[3] = 16;
        assert!(KeyRecord::decode(&bad).is_none(), "more than 15 tries");
    }

    #[test]
    fn create_file_data_round_trips() {
        let ef = FileSpec::Ef(EfSpec {
            sfi: 5,
            read: Access::Free,
            update: Access::Key(4),
            layout: Layout::Linear { records: 7, record_len: 20, record_read: vec![(7, Access::Key(0x0A))] },
        });
        assert_eq!(ef.encode().unwrap(), [0x04, 5, 0x00, 0x24, 7, 20, 7, 0x2A]);
        assert_eq!(FileSpec::decode(0xEF05, &ef.encode().unwrap()), Some(ef));
        let df = FileSpec::Df { aid: Some(vec![0xD1, 0x56, 0, 0, 5, 0]) };
        assert_eq!(FileSpec::decode(0xDF01, &df.encode().unwrap()), Some(df));
        assert!(FileSpec::decode(0x3F00, &[DF_TYPE]).is_none());
        assert!(FileSpec::decode(0xEF05, &[0x04, 31, 0, 0, 7, 20]).is_none());
        assert!(FileSpec::decode(0xEF05, &[0x04, 5, 0x01, 0, 7, 20]).is_none());
        assert!(FileSpec::decode(0xEF07, &[0x01, 7, 0, 0, 0x80, 0]).is_none());
    }

    #[test]
    fn every_file_of_the_built_in_profile_encodes() {
        let p = profile::Profile::builtin();
        for g in [Generation::ONE, Generation::TWO, Generation::THREE] {
            for df in p.dfs_for(g) {
                for ef in df.efs_for(g) {
                    let spec = FileSpec::Ef(EfSpec::from_profile(df, ef, g).unwrap());
                    assert_eq!(
                        FileSpec::decode(ef.fid, &spec.encode().unwrap()),
                        Some(spec),
                        "{} {}",
                        df.name,
                        ef.name
                    );
                }
            }
        }
    }
}
