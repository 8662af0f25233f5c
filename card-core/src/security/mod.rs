//! Who computes cryptograms (ARCHITECTURE "Read at the counter"): a [`SecurityModule`] takes what the card
//! gives (challenge, card factor, region, algorithm) and returns cryptograms and MACs — never keys.
//!
//! - [`LocalKeys`]: region-level keys held in this process (zeroized), card keys derived per CARD-PROFILE §5.2;
//! - [`key_file`]: region keys (or the published test keys) from a TOML file into a [`LocalKeys`];
//! - [`NoKeys`]: holds nothing; a generation 3 read then returns the holder fields empty (national −2203);
//! - [`two_step`]: the national `…_HSM_Step1` / `…_Step2` exchange, for terminals that hold no keys: the
//!   back end answers with [`two_step::backend_answer`] (a [`LocalKeys`] on its side).
//!
//! Key names are key-mgmt's inventory names ([`key_name`]): `IRK`, `UKMF`, `RKSSSE`, `PUK`, `STK`, `RLK`, `MK`
//! in SSSE; `UK_DF01`, `RK_DF02`, `STK_DF01`, … in the applications; `MK_MF` in the MF.

#[cfg(feature = "key-service")]
pub mod key_client;
pub mod key_file;
pub mod key_service;
pub mod local;
pub mod two_step;

use crate::codec::RegionCode;
use crate::crypto::Algorithm;
use crate::profile::Generation;
use crate::Error;

pub use local::LocalKeys;

/// What a security module needs to know about the card to compute for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardContext {
    /// The issuing region (EF05 tag 01 bytes 0–2), when already read. A module for one region uses its own
    /// when `None` (a generation 3 card must be authenticated before its records can be read).
    pub region: Option<RegionCode>,
    /// The card factor: the last 8 ATR historical bytes (CARD-PROFILE §5.2).
    pub card_factor: [u8; 8],
    /// The card's algorithm (3DES for generations 1–2, SM4 for 3).
    pub algorithm: Algorithm,
}

/// Computes cryptograms for a card, from keys it holds or can reach.
///
/// `key` is always an inventory name ([`key_name`]). A module that does not hold a key answers
/// [`Error::MissingKey`]; [`SecurityModule::has_key`] lets the caller decide before touching the card.
pub trait SecurityModule {
    /// Whether the module can compute with `key` for this card (region and algorithm included).
    fn has_key(&self, card: &CardContext, key: &str) -> bool;

    /// CARD-PROFILE §6.2: the cryptogram `C` of EXTERNAL AUTHENTICATE for the card's `challenge` and the
    /// terminal's `x`.
    fn external_auth(&self, card: &CardContext, key: &str, challenge: &[u8; 8], x: &[u8; 8]) -> Result<[u8; 8], Error>;

    /// CARD-PROFILE §6.3: checks the card's answer to INTERNAL AUTHENTICATE `R1 ‖ R2` against IRK.
    /// Ok only if it matches ([`Error::InternalAuthFailed`] otherwise); compared in constant time.
    fn check_internal_auth(&self, card: &CardContext, r1: &[u8; 8], r2: &[u8; 8], answer: &[u8]) -> Result<(), Error>;

    /// CARD-PROFILE §6.4: the 4-byte line-protection MAC over `input` (`CLA INS P1 P2 Lc'` ‖ data) with the
    /// card's `challenge` (4 bytes for 3DES, 8 for SM4/AES).
    fn line_mac(&self, card: &CardContext, key: &str, challenge: &[u8], input: &[u8]) -> Result<[u8; 4], Error>;

    /// The §6.4 MAC with a zero IV (RELOAD PIN with RLK).
    fn line_mac_zero_iv(&self, card: &CardContext, key: &str, input: &[u8]) -> Result<[u8; 4], Error>;

    /// CARD-PROFILE §6.5: secure data `ENC_K(Ld ‖ data ‖ pad)` (PIN UNBLOCK with PUK).
    fn secure_data(&self, card: &CardContext, key: &str, data: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A security module without keys: every computation is [`Error::MissingKey`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKeys;

fn missing(key: &str) -> Error {
    Error::MissingKey { key: key.to_owned() }
}

impl SecurityModule for NoKeys {
    fn has_key(&self, _: &CardContext, _: &str) -> bool {
        false
    }
    fn external_auth(&self, _: &CardContext, key: &str, _: &[u8; 8], _: &[u8; 8]) -> Result<[u8; 8], Error> {
        Err(missing(key))
    }
    fn check_internal_auth(&self, _: &CardContext, _: &[u8; 8], _: &[u8; 8], _: &[u8]) -> Result<(), Error> {
        Err(missing("IRK"))
    }
    fn line_mac(&self, _: &CardContext, key: &str, _: &[u8], _: &[u8]) -> Result<[u8; 4], Error> {
        Err(missing(key))
    }
    fn line_mac_zero_iv(&self, _: &CardContext, key: &str, _: &[u8]) -> Result<[u8; 4], Error> {
        Err(missing(key))
    }
    fn secure_data(&self, _: &CardContext, key: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
        Err(missing(key))
    }
}

/// The inventory name of a profile key (key-mgmt, card-sim fixtures): `MK_MF` for the MF's MK, the bare
/// name in SSSE (`UKMF`, `RKSSSE`), `NAME_DFxx` in an application (`UK_DF01`).
pub fn key_name(df: &str, key: &str) -> String {
    match df {
        "MF" => format!("{key}_MF"),
        "SSSE" => key.to_owned(),
        app => format!("{key}_{app}"),
    }
}

/// The card algorithm of a generation (CARD-PROFILE §1): 3DES for 1 and 2, SM4 for 3.
pub fn algorithm_of(generation: Generation) -> Algorithm {
    if generation == Generation::THREE {
        Algorithm::Sm4
    } else {
        Algorithm::Tdes
    }
}
