//! The national two-step ("HSM") exchange of CARD-PROFILE §7, for terminals that hold no keys.
//!
//! 1. The terminal selects SSSE, reads EF05 record 1 (card identifier, free on every generation) and
//!    GET CHALLENGE (`R3`), then draws `R1`, `R2` (internal authentication) and `R4` (the `X` of external
//!    authentication) and sends the back end [`Step1`]:
//!    `region|ATR historical bytes|algorithm|card identifier|R1|R2|R3|R4|` — all hex uppercase, the
//!    region as 6 digits, the algorithm as its 2-digit id (`01` 3DES, `03` SM4).
//! 2. The back end's HSM answers [`Step2Answer`]: `internal|external|` — the card's expected answer to
//!    INTERNAL AUTHENTICATE `R1 ‖ R2` with IRK, and the EXTERNAL AUTHENTICATE cryptogram for `R3`, `R4`
//!    with RKSSSE, 16 hex digits each. (Some sources say 32 hex: "authentication data + original"; a
//!    32-digit field is accepted and its first 16 digits used.)
//! 3. The terminal sends EXTERNAL AUTHENTICATE with the cryptogram, INTERNAL AUTHENTICATE with `R1 ‖ R2`
//!    and compares, then reads.
//!
//! The card's challenge `R3` lives only until the card's next command: steps 1 and 3 must run in one PC/SC
//! transaction with nothing sent in between (`card::TwoStepRead` holds the transaction).
//! [`backend_answer`] (read) and [`backend_answer_for`] (write, naming the update key) play the back end with a
//! [`LocalKeys`]. A two-step write (`card::TwoStepWrite`) uses the same strings: the card's challenge is taken
//! in the DF of the files to write, and the external cryptogram is for that DF's update key.

use std::fmt;
use std::str::FromStr;

use super::{CardContext, LocalKeys, SecurityModule};
use crate::codec::{hex_upper, parse_hex, RegionCode};
use crate::crypto::{card_factor, Algorithm};
use crate::Error;

/// The `…_HSM_Step1` string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step1 {
    /// Issuing region (card identifier bytes 0–2).
    pub region: RegionCode,
    /// ATR historical bytes (the card factor is their last 8).
    pub historical_bytes: Vec<u8>,
    /// The card's algorithm.
    pub algorithm: Algorithm,
    /// EF05 tag 01, 16 bytes.
    pub card_id: Vec<u8>,
    /// Internal authentication: process key input.
    pub r1: [u8; 8],
    /// Internal authentication: data.
    pub r2: [u8; 8],
    /// The card's challenge (GET CHALLENGE).
    pub r3: [u8; 8],
    /// External authentication: the terminal's `X`.
    pub r4: [u8; 8],
}

impl Step1 {
    /// The card as a security module sees it.
    pub fn card_context(&self) -> Result<CardContext, Error> {
        Ok(CardContext {
            region: Some(self.region),
            card_factor: card_factor(&self.historical_bytes)?,
            algorithm: self.algorithm,
        })
    }
}

impl fmt::Display for Step1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{:02X}|{}|{}|{}|{}|{}|",
            self.region.as_str(),
            hex_upper(&self.historical_bytes),
            self.algorithm.id(),
            hex_upper(&self.card_id),
            hex_upper(&self.r1),
            hex_upper(&self.r2),
            hex_upper(&self.r3),
            hex_upper(&self.r4)
        )
    }
}

fn bad(what: &str) -> Error {
    Error::BadParameter(format!("two-step: {what}"))
}

/// Splits `a|b|…|` into exactly `n` fields (each terminated by `|`).
fn fields(s: &str, n: usize, what: &str) -> Result<Vec<String>, Error> {
    let body = s
        .trim_end_matches(['\r', '\n', '\0'])
        .strip_suffix('|')
        .ok_or_else(|| bad(&format!("{what} must end with |")))?;
    let parts: Vec<String> = body.split('|').map(str::to_owned).collect();
    if parts.len() != n {
        return Err(bad(&format!("{what} has {} fields, expected {n}", parts.len())));
    }
    Ok(parts)
}

fn eight(text: &str, what: &str) -> Result<[u8; 8], Error> {
    let bytes = parse_hex(text).map_err(|_| bad(&format!("{what} is not hex")))?;
    let head = bytes.get(..8).filter(|_| bytes.len() == 8 || bytes.len() == 16);
    head.and_then(|h| <[u8; 8]>::try_from(h).ok()).ok_or_else(|| bad(&format!("{what} must be 16 hex digits")))
}

impl FromStr for Step1 {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let f = fields(s, 8, "step 1")?;
        let region = RegionCode::parse(&f[0]).map_err(|_| bad("region"))?;
        let historical_bytes = parse_hex(&f[1]).map_err(|_| bad("historical bytes"))?;
        let alg = u8::from_str_radix(&f[2], 16).map_err(|_| bad("algorithm"))?;
        let algorithm = Algorithm::from_id(alg)?;
        let card_id = parse_hex(&f[3]).map_err(|_| bad("card identifier"))?;
        if card_id.len() != 16 {
            return Err(bad("card identifier must be 16 bytes"));
        }
        Ok(Step1 {
            region,
            historical_bytes,
            algorithm,
            card_id,
            r1: eight(&f[4], "R1")?,
            r2: eight(&f[5], "R2")?,
            r3: eight(&f[6], "R3")?,
            r4: eight(&f[7], "R4")?,
        })
    }
}

/// The back end's answer: `internal|external|`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step2Answer {
    /// What the card must answer to INTERNAL AUTHENTICATE `R1 ‖ R2`.
    pub internal: [u8; 8],
    /// The EXTERNAL AUTHENTICATE cryptogram (RKSSSE) for `R3`, `R4`.
    pub external: [u8; 8],
}

impl fmt::Display for Step2Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|", hex_upper(&self.internal), hex_upper(&self.external))
    }
}

impl FromStr for Step2Answer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let f = fields(s, 2, "step 2 answer")?;
        Ok(Step2Answer { internal: eight(&f[0], "internal")?, external: eight(&f[1], "external")? })
    }
}

/// The back end of the two-step read: answers a Step1 string with the keys of `local` (IRK and RKSSSE).
pub fn backend_answer(local: &LocalKeys, step1: &str) -> Result<String, Error> {
    backend_answer_for(local, step1, "RKSSSE")
}

/// The back end of a two-step exchange whose external authentication is with `key` (inventory name: RKSSSE
/// for a read, the file's update key — UKMF, `UK_DF01`, … — for a write); IRK for the internal one.
pub fn backend_answer_for(local: &LocalKeys, step1: &str, key: &str) -> Result<String, Error> {
    let s: Step1 = step1.parse()?;
    let card = s.card_context()?;
    let internal = local.internal_auth_answer(&card, &s.r1, &s.r2)?;
    let external = local.external_auth(&card, key, &s.r3, &s.r4)?;
    Ok(Step2Answer { internal, external }.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn step1_round_trip() {
        let text = "371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|\
                    0101010101010101|0202020202020202|0303030303030303|0404040404040404|";
        let s: Step1 = text.parse().unwrap();
        assert_eq!(s.algorithm, Algorithm::Sm4);
        assert_eq!(s.to_string(), text);
        assert_eq!(s.card_context().unwrap().card_factor, [0, 0, 0, 0, 0, 0, 0, 0xA3]);
        assert!("371700|00|03|".parse::<Step1>().is_err());
        let a: Step2Answer = "00112233445566778899AABBCCDDEEFF|0011223344556677|".parse().unwrap();
        assert_eq!(a.internal, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        assert!("0011|".parse::<Step2Answer>().is_err());
    }
}
