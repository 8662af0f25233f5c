//! The key inventory: which keys exist (from the card profile), their levels, states and
//! metadata (CARD-PROFILE §5).
//!
//! Names: a key of the MF is `NAME_MF` (`MK_MF`); a key of SSSE keeps its profile name (`MK`,
//! `IRK`, `UKMF`, `PUK`, `STK`, `RLK`, `RKSSSE`); a key of an application DF is `NAME_DFxx`
//! (`MK_DF01`, `UK_DF01`, `RK_DF01`, `STK_DF01`, …). Two store keys are not card keys:
//! `TRANSPORT` (the blank card's transport key, §5.1) and `KEK` (a transport key-encryption key for
//! key block export).

use core::fmt;
use std::str::FromStr;

use card_core::crypto::{Algorithm, KcvMethod};
use card_core::profile::{KeyUsage as ProfileUsage, Profile};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tr31::{KeyUsage, ModeOfUse};

/// What a stored key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A card key of the profile (an issuer master key from which card keys are derived).
    Card(ProfileUsage),
    /// The transport key of blank cards.
    Transport,
    /// A key-encryption key for key block export/import.
    Kek,
}

impl Role {
    /// The X9.143 key usage and mode of use recorded in the key block header.
    ///
    /// Issuer keys of a card are EMV-style issuer master keys (`E0`–`E6`) used to derive
    /// (`X`): MK → `E5` personalization, IRK → `E0` (card authentication), PUK → `E1`
    /// (confidentiality), STK/RLK → `E2` (integrity), UK/RK/UKMF/RKSSSE → `E6` (other).
    pub fn tr31(self) -> (KeyUsage, ModeOfUse) {
        match self {
            Role::Card(u) => (
                match u {
                    ProfileUsage::Master => KeyUsage::E5,
                    ProfileUsage::InternalAuth => KeyUsage::E0,
                    ProfileUsage::PinUnblock => KeyUsage::E1,
                    ProfileUsage::Maintenance | ProfileUsage::PinReload => KeyUsage::E2,
                    ProfileUsage::ExternalAuth => KeyUsage::E6,
                },
                ModeOfUse::X,
            ),
            Role::Transport => (KeyUsage::E5, ModeOfUse::N),
            Role::Kek => (KeyUsage::K0, ModeOfUse::B),
        }
    }
}

/// A key the store may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDef {
    /// Store name (`MK_MF`, `UKMF`, `UK_DF01`, `KEK`, …).
    pub name: String,
    /// DF on the card (`MF`, `SSSE`, `DF01`, …), `None` for store-only keys.
    pub df: Option<String>,
    /// The key's name in its DF (`MK`, `UK`, …).
    pub profile_name: Option<String>,
    /// What it is for.
    pub role: Role,
}

impl KeyDef {
    /// Whether this is a card key (part of a card key set).
    pub fn is_card_key(&self) -> bool {
        matches!(self.role, Role::Card(_))
    }
}

/// Store name of key `key` in DF `df` (see the module documentation).
pub fn store_name(df: &str, key: &str) -> String {
    if df.eq_ignore_ascii_case("SSSE") {
        key.to_string()
    } else {
        format!("{key}_{df}")
    }
}

/// Every key the store can hold: the profile's card keys (MF, SSSE, then each DF, in profile
/// order) and then `TRANSPORT` and `KEK`.
pub fn key_defs(profile: &Profile) -> Vec<KeyDef> {
    let mut out = Vec::new();
    for df in std::iter::once(&profile.mf).chain(profile.dfs.iter()) {
        for k in &df.keys {
            out.push(KeyDef {
                name: store_name(&df.name, &k.name),
                df: Some(df.name.clone()),
                profile_name: Some(k.name.clone()),
                role: Role::Card(k.usage),
            });
        }
    }
    out.push(KeyDef { name: "TRANSPORT".into(), df: None, profile_name: None, role: Role::Transport });
    out.push(KeyDef { name: "KEK".into(), df: None, profile_name: None, role: Role::Kek });
    out
}

/// The definition of `name` (exact spelling), or [`Error::UnknownKeyName`].
pub fn key_def(profile: &Profile, name: &str) -> Result<KeyDef> {
    key_defs(profile)
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::UnknownKeyName(name.chars().take(40).collect()))
}

/// Lifecycle state of a key version. Legal transitions: pre-active → active → retired →
/// destroyed, and pre-active → destroyed (a key never used).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Stored, not yet for use.
    PreActive,
    /// In use for new cards.
    Active,
    /// No longer used for new cards; still needed for cards in circulation.
    Retired,
    /// Key material overwritten; the metadata stays.
    Destroyed,
}

impl KeyState {
    /// Text form: `pre-active`, `active`, `retired`, `destroyed`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::PreActive => "pre-active",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Destroyed => "destroyed",
        }
    }

    /// Whether `self → to` is allowed.
    pub fn can_become(self, to: KeyState) -> bool {
        matches!(
            (self, to),
            (KeyState::PreActive, KeyState::Active)
                | (KeyState::Active, KeyState::Retired)
                | (KeyState::Retired, KeyState::Destroyed)
                | (KeyState::PreActive, KeyState::Destroyed)
        )
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pre-active" => KeyState::PreActive,
            "active" => KeyState::Active,
            "retired" => KeyState::Retired,
            "destroyed" => KeyState::Destroyed,
            _ => {
                return Err(Error::Integrity(format!("unknown key state {:?}", s.chars().take(16).collect::<String>())))
            }
        })
    }
}

/// Level of a key in the hierarchy (CARD-PROFILE §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Issuer master key.
    Issuer,
    /// Provincial key: Div(issuer key, province factor); region code `PP0000`.
    Province,
    /// Region (city) key: Div(issuer key, region factor).
    Region,
}

impl Level {
    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Issuer => "issuer",
            Level::Province => "province",
            Level::Region => "region",
        }
    }

    /// The level of a key derived for `region`: a code ending in `0000` is a province.
    pub fn for_region(region: &str) -> Level {
        if region.ends_with("0000") {
            Level::Province
        } else {
            Level::Region
        }
    }
}

impl FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "issuer" => Level::Issuer,
            "province" => Level::Province,
            "region" => Level::Region,
            _ => return Err(Error::Integrity("unknown key level".into())),
        })
    }
}

/// Parses a CLI algorithm name: `3des`, `sm4`, `aes` (case-insensitive; also the display names).
pub fn parse_algorithm(s: &str) -> Result<Algorithm> {
    match s.to_ascii_lowercase().as_str() {
        "3des" | "tdes" => Ok(Algorithm::Tdes),
        "sm4" => Ok(Algorithm::Sm4),
        "aes" | "aes-128" | "aes128" => Ok(Algorithm::Aes128),
        _ => Err(Error::InvalidInput(format!(
            "unknown algorithm {:?}: use 3des, sm4 or aes",
            s.chars().take(16).collect::<String>()
        ))),
    }
}

/// The KCV method the store records for keys of `alg` (CARD-PROFILE §6.6): `E_K(0)` for 3DES
/// and SM4, CMAC (X9.24) for AES.
pub fn kcv_method(alg: Algorithm) -> KcvMethod {
    match alg {
        Algorithm::Tdes | Algorithm::Sm4 => KcvMethod::Zeros,
        Algorithm::Aes128 => KcvMethod::Cmac,
    }
}

/// Text form of a KCV method: `zeros`, `gp-ones`, `cmac`.
pub fn kcv_method_name(m: KcvMethod) -> &'static str {
    match m {
        KcvMethod::Zeros => "zeros",
        KcvMethod::GlobalPlatformOnes => "gp-ones",
        KcvMethod::Cmac => "cmac",
    }
}

/// Metadata of one stored key version: never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Store name.
    pub name: String,
    /// Version (01–FF; 00 for a transport key).
    pub version: u8,
    /// Hierarchy level.
    pub level: Level,
    /// Region or province code; empty for issuer keys.
    pub region: String,
    /// Algorithm display name (`3DES`, `SM4`, `AES-128`).
    pub algorithm: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Key check value, uppercase hex (kept after the key is destroyed).
    pub kcv: String,
    /// How the KCV was computed.
    pub kcv_method: String,
    /// Creation time (RFC 3339, UTC).
    pub created: String,
    /// Time of the last state change (RFC 3339, UTC).
    pub updated: String,
    /// The key it was derived from (`NAME vV`), if any.
    pub parent: Option<String>,
    /// How it came to be: ceremony or operation reference (`import:…`, `generate`, `rotate`, …).
    pub ceremony: Option<String>,
}

impl KeyRecord {
    /// The algorithm as a [`card_core::crypto::Algorithm`].
    pub fn alg(&self) -> Result<Algorithm> {
        match self.algorithm.as_str() {
            "3DES" => Ok(Algorithm::Tdes),
            "SM4" => Ok(Algorithm::Sm4),
            "AES-128" => Ok(Algorithm::Aes128),
            _ => Err(Error::Integrity(format!("unknown algorithm in record of {}", self.name))),
        }
    }
}
