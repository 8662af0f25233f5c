//! The national two-step ("HSM") exchange of CARD-PROFILE §7, for terminals that hold no keys.
//!
//! 1. The terminal selects SSSE, reads EF05 record 1 (card identifier, free on every generation) and
//!    GET CHALLENGE (`R3`), then draws `R1`, `R2` (internal authentication) and `R4` (the `X` of external
//!    authentication) and sends the back end [`Step1`]:
//!    `region|ATR historical bytes|algorithm|card identifier|R1|R2|R3|R4|` — all hex uppercase, the
//!    region as 6 digits, the algorithm as its 2-digit id (`01` 3DES, `03` SM4). As real terminals send it
//!    (the public generation 3 trace of CARD-PROFILE §7), field 2 may hold the **whole ATR** (its historical
//!    bytes are taken) and a 9th field (32 zeros in the trace, reserved) may follow; both are accepted.
//! 2. The back end's HSM answers [`Step2Answer`]: `internal|external|` — the card's expected answer to
//!    INTERNAL AUTHENTICATE `R1 ‖ R2` with IRK, and the EXTERNAL AUTHENTICATE cryptogram for `R3`, `R4`
//!    with RKSSSE. The national form, which the back end sends ([`Step2Answer::national`]), is 32 hex each:
//!    the result ‖ the original it was computed from (`R2`, `R4`); a 16-digit field (the reader-interface
//!    spec's form) is accepted too, and of a 32-digit one the first 16 digits are used.
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
use crate::transport::historical_bytes;
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
    fields_between(s, n, n, what)
}

/// Splits `a|b|…|` into `min..=max` fields (each terminated by `|`).
fn fields_between(s: &str, min: usize, max: usize, what: &str) -> Result<Vec<String>, Error> {
    let body = s
        .trim_end_matches(['\r', '\n', '\0'])
        .strip_suffix('|')
        .ok_or_else(|| bad(&format!("{what} must end with |")))?;
    let parts: Vec<String> = body.split('|').map(str::to_owned).collect();
    if parts.len() < min || parts.len() > max {
        let expected = if min == max { format!("{min}") } else { format!("{min} or {max}") };
        return Err(bad(&format!("{what} has {} fields, expected {expected}", parts.len())));
    }
    Ok(parts)
}

/// Step 1's field 2: the historical bytes, or a whole ATR (`3B`/`3F` first, the historical bytes ending it,
/// an optional TCK after them) whose historical bytes are taken. Historical bytes never start with `3B` or
/// `3F` (ISO/IEC 7816-4 §8.1.1: the category indicator is `00`, `10` or `8x`, others are proprietary).
fn hist_of(field: Vec<u8>) -> Vec<u8> {
    if matches!(field.first(), Some(0x3B | 0x3F)) {
        if let Some(hist) = historical_bytes(&field) {
            let end = field.len() - hist.len();
            // the historical bytes end the ATR, or one TCK follows them
            let ends = field.get(end..).is_some_and(|t| t == hist)
                || field.get(end - 1..field.len() - 1).is_some_and(|t| t == hist);
            if ends && !hist.is_empty() {
                return hist.to_vec();
            }
        }
    }
    field
}
fn eight(text: &str, what: &str) -> Result<[u8; 8], Error> {
    let bytes = parse_hex(text).map_err(|_| bad(&format!("{what} is not hex")))?;
    let head = bytes.get(..8).filter(|_| bytes.len() == 8 || bytes.len() == 16);
    head.and_then(|h| <[u8; 8]>::try_from(h).ok()).ok_or_else(|| bad(&format!("{what} must be 16 hex digits")))
}

impl FromStr for Step1 {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let f = fields_between(s, 8, 9, "step 1")?;
        if let Some(reserved) = f.get(8) {
            if reserved.len() > 64 || parse_hex(reserved).is_err() {
                return Err(bad("the 9th field must be hex (32 zeros as terminals send it)"));
            }
        }
        let region = RegionCode::parse(&f[0]).map_err(|_| bad("region"))?;
        let field2 = parse_hex(&f[1]).map_err(|_| bad("historical bytes"))?;
        let historical_bytes = hist_of(field2);
        if historical_bytes.len() < 8 || historical_bytes.len() > 15 {
            return Err(bad("historical bytes must be 8 to 15 bytes (or a whole ATR holding them)"));
        }
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

impl Step2Answer {
    /// The national form the back end sends (CARD-PROFILE §7, the public trace): 32 hex each,
    /// `internal ‖ R2|external ‖ R4|`.
    pub fn national(&self, step1: &Step1) -> String {
        format!(
            "{}{}|{}{}|",
            hex_upper(&self.internal),
            hex_upper(&step1.r2),
            hex_upper(&self.external),
            hex_upper(&step1.r4)
        )
    }
}

impl FromStr for Step2Answer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let f = fields(s, 2, "step 2 answer")?;
        Ok(Step2Answer { internal: eight(&f[0], "internal")?, external: eight(&f[1], "external")? })
    }
}

/// The answer of a one-key exchange whose `pKey` is published as 32 bytes (`iReadCard_HSM_Step2`,
/// `iWriteCard_HSM_Step2`, CARD-PROFILE §7) \[P\]: only the EXTERNAL AUTHENTICATE half of the HSM's answer fits,
/// so the card's internal authentication is not part of these exchanges. `C` (16 hex) or `C ‖ R4` (32 hex, as the
/// public trace's HSM answers it; `R4` must then be Step 1's), optionally ending with `|`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalAnswer {
    /// The EXTERNAL AUTHENTICATE cryptogram for Step 1's `R3`, `R4`.
    pub external: [u8; 8],
}

impl ExternalAnswer {
    /// Parses `answer` for `step1`: a 32-hex answer whose second half is not Step 1's `R4` answers another Step 1.
    pub fn parse_for(answer: &str, step1: &Step1) -> Result<ExternalAnswer, Error> {
        let text = answer.trim_end_matches(['\r', '\n', '\0']);
        let text = text.strip_suffix('|').unwrap_or(text);
        if text.contains('|') {
            return Err(bad("this answer is the external authentication's cryptogram alone: one field"));
        }
        let bytes = parse_hex(text).map_err(|_| bad("the answer is not hex"))?;
        let (c, original) = match bytes.len() {
            8 => (&bytes[..], None),
            16 => (&bytes[..8], Some(&bytes[8..])),
            _ => return Err(bad("the answer is 16 hex digits (C) or 32 (C and R4)")),
        };
        if original.is_some_and(|r4| r4 != step1.r4) {
            return Err(bad("the answer's R4 is not this Step 1's: it answers another exchange"));
        }
        let external = <[u8; 8]>::try_from(c).map_err(|_| bad("the cryptogram is 16 hex digits"))?;
        Ok(ExternalAnswer { external })
    }
}

/// The back end of a one-key exchange ([`ExternalAnswer`]): `C ‖ R4` (32 hex) for `key` (inventory name: RKSSSE,
/// `RK_DF01`, `UKMF`, `UK_DF01`, …) with the keys of `local`.
pub fn backend_external_answer(local: &LocalKeys, step1: &str, key: &str) -> Result<String, Error> {
    let s: Step1 = step1.parse()?;
    let card = s.card_context()?;
    let external = local.external_auth(&card, key, &s.r3, &s.r4)?;
    Ok(format!("{}{}", hex_upper(&external), hex_upper(&s.r4)))
}

/// The back end of the two-step read: answers a Step1 string with the keys of `local` (IRK and RKSSSE), in
/// the national 32-hex form ([`Step2Answer::national`]).
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
    Ok(Step2Answer { internal, external }.national(&s))
}

/// One hex field of a PIN operation's Step2 string.
fn pin_field(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    parse_hex(text).map_err(|_| bad(&format!("{what} is not hex")))
}

/// RELOAD PIN's answer (key service `pin-reload`): `<MAC 8 hex>|`, the §6.4 MAC with the card's `key` (RLK)
/// and a zero IV over the new PIN (BCD). The back end's computation, whatever parsed and checked the request.
pub fn pin_reload_answer(sm: &dyn SecurityModule, card: &CardContext, key: &str, pin: &[u8]) -> Result<String, Error> {
    let mac = sm.line_mac_zero_iv(card, key, pin)?;
    Ok(format!("{}|", hex_upper(&mac)))
}

/// PIN UNBLOCK's answer (key service `pin-unblock`): `<secure data><MAC 8 hex>|` — `ENC(Ld ‖ PIN ‖ pad)` (§6.5)
/// and the line-protection MAC (§6.4) over `CLA INS P1 P2 Lc' ‖ secure data` with the card's `challenge`, both
/// under the card's `key` (PUK).
pub fn pin_unblock_answer(
    sm: &dyn SecurityModule,
    card: &CardContext,
    key: &str,
    challenge: &[u8],
    header: &[u8; 4],
    pin: &[u8],
) -> Result<String, Error> {
    let enc = sm.secure_data(card, key, pin)?;
    let lc = u8::try_from(enc.len() + 4).map_err(|_| bad("secure data too long"))?;
    let mut input = header.to_vec();
    input.push(lc);
    input.extend_from_slice(&enc);
    let mac = sm.line_mac(card, key, challenge, &input)?;
    Ok(format!("{}{}|", hex_upper(&enc), hex_upper(&mac)))
}

/// The back end of a RELOAD PIN with `local`'s RLK: Step2 `<new PIN BCD hex>|` → [`pin_reload_answer`].
pub fn backend_pin_reload(local: &LocalKeys, step1: &str, step2: &str) -> Result<String, Error> {
    let card = step1.parse::<Step1>()?.card_context()?;
    let f = fields(step2, 1, "pin-reload step 2")?;
    let pin = zeroize::Zeroizing::new(pin_field(&f[0], "the new PIN")?);
    if pin.is_empty() || pin.len() > 8 {
        return Err(bad("the new PIN must be 1 to 8 BCD bytes"));
    }
    pin_reload_answer(local, &card, "RLK", &pin)
}

/// The back end of a PIN UNBLOCK with `local`'s PUK: Step2 `<card challenge>|<CLA INS P1 P2>|<new PIN BCD>|` →
/// [`pin_unblock_answer`].
pub fn backend_pin_unblock(local: &LocalKeys, step1: &str, step2: &str) -> Result<String, Error> {
    let card = step1.parse::<Step1>()?.card_context()?;
    let f = fields(step2, 3, "pin-unblock step 2")?;
    let challenge = pin_field(&f[0], "the challenge")?;
    if challenge.len() != crate::command::mac_challenge_len(card.algorithm) as usize {
        return Err(bad("the challenge's length does not fit the card's algorithm"));
    }
    let header: [u8; 4] =
        pin_field(&f[1], "the header")?.try_into().map_err(|_| bad("the header is CLA INS P1 P2, 8 hex digits"))?;
    if header != crate::command::PIN_UNBLOCK {
        return Err(bad("the header is not PIN UNBLOCK's"));
    }
    let pin = zeroize::Zeroizing::new(pin_field(&f[2], "the new PIN")?);
    if pin.is_empty() || pin.len() > 8 {
        return Err(bad("the new PIN must be 1 to 8 BCD bytes"));
    }
    pin_unblock_answer(local, &card, "PUK", &challenge, &header, &pin)
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

    #[test]
    fn external_answers_of_one_key_exchanges() {
        let text = "371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|\
                    0101010101010101|0202020202020202|0303030303030303|0404040404040404|";
        let s: Step1 = text.parse().unwrap();
        let c = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        for ok in ["0011223344556677", "0011223344556677|", "00112233445566770404040404040404", "0011223344556677\r\n"]
        {
            assert_eq!(ExternalAnswer::parse_for(ok, &s).unwrap().external, c, "{ok}");
        }
        for bad in ["", "0011", "001122334455667704040404040404", "00112233445566770505050505050505", "00|11|", "zz"] {
            assert!(matches!(ExternalAnswer::parse_for(bad, &s), Err(Error::BadParameter(_))), "{bad}");
        }
    }

    /// CARD-PROFILE §7, the public trace of a real generation 3 card in HSM mode: the whole ATR in field 2
    /// and a 9th field of 32 zeros.
    #[test]
    fn step1_as_a_real_terminal_sends_it() {
        let text = "519900|3B6D000000814A444686605199000001AC|03|519900D15600000510000B26FFFFFFFF|\
                    0101010101010101|0202020202020202|0303030303030303|0404040404040404|\
                    00000000000000000000000000000000|";
        let s: Step1 = text.parse().unwrap();
        assert_eq!(s.region.as_str(), "519900");
        assert_eq!(hex_upper(&s.historical_bytes), "00814A444686605199000001AC");
        assert_eq!(s.card_context().unwrap().card_factor, [0x86, 0x60, 0x51, 0x99, 0x00, 0x00, 0x01, 0xAC]);
        // the historical bytes alone give the same card
        let plain = text.replace("3B6D000000814A444686605199000001AC", "00814A444686605199000001AC");
        assert_eq!(plain.parse::<Step1>().unwrap(), s);
        // a 10th field, a 9th that is not hex
        let err = format!("{text}00|").parse::<Step1>().unwrap_err().to_string();
        assert!(err.contains("has 10 fields, expected 8 or 9"), "{err}");
        let err = text.replace("00000000000000000000000000000000|", "zz|").parse::<Step1>().unwrap_err();
        assert!(err.to_string().contains("9th field"), "{err}");
        // the answer in the national form: result ‖ original, 32 hex each, read back
        let answer = Step2Answer { internal: [0xAA; 8], external: [0xBB; 8] };
        let national = answer.national(&s);
        assert_eq!(national, "AAAAAAAAAAAAAAAA0202020202020202|BBBBBBBBBBBBBBBB0404040404040404|");
        assert_eq!(national.parse::<Step2Answer>().unwrap(), answer);
    }
}
