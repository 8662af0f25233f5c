//! The answers, in the national string formats of [`card_core::security::key_service`], and the refusals with
//! their national codes (CARD-PROFILE §7).
//!
//! | what went wrong | HTTP | `error` | national code |
//! |---|---|---|---|
//! | body not JSON, too large, a field missing or unknown; Step1 or step2 malformed (field count, hex, lengths) | 400 | `bad_request` | −14 bad parameter |
//! | Step1 well-formed but inconsistent (card identifier of another region than field 1) | 400 | `illegal_data` | −23 illegal data |
//! | a PIN that is not 4–12 digits | 400 | `bad_pin` | −41 illegal character / −42 illegal length |
//! | algorithm id unknown (`02` SSF33 …) or of which no key is held | 400 | `algorithm_unsupported` | −2202 |
//! | region not served here; key or card's key version not held | 400 | `no_key` | −2203 no key |
//! | terminal not allowed the operation, region or DF; `terminal` ≠ certificate CN; certificate revoked | 403 | `forbidden` | −24 key level insufficient |
//! | rate limit | 429 | `rate_limited` | −12 no connection (try again later) |
//! | audit log or journal unusable | 503 | `unavailable` | −12 |

use card_core::codec::{hex_upper, parse_hex, RegionCode};
use card_core::crypto::Algorithm;
use card_core::national;
use card_core::profile::{Access, Generation, Profile};
use card_core::security::key_service::{Answer, AnswerRequest, Operation};
use card_core::security::two_step::{self, Step1, Step2Answer};
use card_core::security::{key_name, CardContext};
use zeroize::Zeroizing;

use super::keys::{Journal, KeyRefusal, KeySource};
use super::policy::TerminalPolicy;

/// A refusal: HTTP status, kind, national code, message (never a key, a cryptogram, a random or a PIN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable kind.
    pub error: &'static str,
    /// National code.
    pub code: i32,
    /// In words.
    pub message: String,
}

impl Refused {
    /// 400, −14.
    pub fn bad(message: impl Into<String>) -> Refused {
        Refused { status: 400, error: "bad_request", code: national::BAD_PARAMETER, message: message.into() }
    }
    /// 403, −24.
    pub fn forbidden(message: impl Into<String>) -> Refused {
        Refused { status: 403, error: "forbidden", code: national::KEY_LEVEL, message: message.into() }
    }
    /// 503, −12.
    pub fn unavailable(message: impl Into<String>) -> Refused {
        Refused { status: 503, error: "unavailable", code: national::NO_CONNECTION, message: message.into() }
    }
    /// 429, −12.
    pub fn limited(message: impl Into<String>) -> Refused {
        Refused { status: 429, error: "rate_limited", code: national::NO_CONNECTION, message: message.into() }
    }
}

impl From<KeyRefusal> for Refused {
    fn from(r: KeyRefusal) -> Refused {
        let (error, code) = match r {
            KeyRefusal::NoAlgorithm { .. } => ("algorithm_unsupported", national::ALGORITHM_UNSUPPORTED),
            KeyRefusal::RegionNotServed(_) | KeyRefusal::NoKey { .. } => ("no_key", national::NO_RKSSSE),
        };
        Refused { status: 400, error, code, message: r.to_string() }
    }
}

/// What the audit line says about the request, filled in as far as it got.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Card identifier, hex.
    pub card_id: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Key asked for.
    pub key: Option<String>,
    /// Its version.
    pub version: Option<u8>,
}

/// What the computation needs.
pub struct Context<'a> {
    /// The keys.
    pub keys: &'a dyn KeySource,
    /// The journal, if configured.
    pub journal: Option<&'a Journal>,
    /// The asking terminal's policy.
    pub policy: &'a TerminalPolicy,
}

/// Step1, with the national code of what is wrong in it.
fn parse_step1(text: &str) -> Result<Step1, Refused> {
    if text.len() > 512 {
        return Err(Refused::bad("step1 is longer than 512 characters"));
    }
    // the algorithm field first: an unknown id is −2202, not a bad parameter
    if let Some(alg) = text.split('|').nth(2) {
        if alg.len() == 2 && u8::from_str_radix(alg, 16).is_ok_and(|id| Algorithm::from_id(id).is_err()) {
            return Err(Refused {
                status: 400,
                error: "algorithm_unsupported",
                code: national::ALGORITHM_UNSUPPORTED,
                message: format!("algorithm {alg} is not supported (01 3DES, 03 SM4, 04 AES-128)"),
            });
        }
    }
    let s: Step1 = text.parse().map_err(|e: card_core::Error| Refused::bad(e.to_string()))?;
    // the card identifier starts with the region in BCD (CARD-PROFILE §2.1)
    if s.card_id.get(..3) != Some(&s.region.to_bcd()[..]) {
        return Err(Refused {
            status: 400,
            error: "illegal_data",
            code: national::ILLEGAL_DATA,
            message: "the card identifier is not of the region in field 1".into(),
        });
    }
    Ok(s)
}

/// The DF and update key of `file` (`SSSEEF05`, `DF01EF06`) on cards of `alg`'s generations; the key must be the
/// same for all of them (3DES: generations 1 and 2).
fn update_key(file: &str, alg: Algorithm) -> Result<(String, String), Refused> {
    let (df, ef) = Profile::builtin().file(file).ok_or_else(|| {
        Refused::bad(format!("{:?} is not a file of the profile", file.chars().take(16).collect::<String>()))
    })?;
    let gens: &[Generation] =
        if alg == Algorithm::Tdes { &[Generation::ONE, Generation::TWO] } else { &[Generation::THREE] };
    let mut key: Option<String> = None;
    for g in gens {
        match ef.update.for_generation(*g) {
            Access::Key(k) if key.as_deref().is_none_or(|prev| prev == k) => key = Some(k.clone()),
            Access::Key(_) => {
                return Err(Refused::bad(format!("{file} is updated under different keys by generation")))
            }
            other => return Err(Refused::bad(format!("{file} is updated under {other}, not by a key"))),
        }
    }
    let key = key.ok_or_else(|| Refused::bad(format!("{file}: no update key")))?;
    Ok((df.name.clone(), key_name(&df.name, &key)))
}

/// `step2` of a PIN operation: its `|`-terminated fields.
fn step2_fields(req: &AnswerRequest, n: usize) -> Result<Vec<&str>, Refused> {
    let text = req.step2.as_deref().ok_or_else(|| Refused::bad(format!("{} needs step2", req.operation)))?;
    let body = text.strip_suffix('|').ok_or_else(|| Refused::bad("step2 must end with |"))?;
    let fields: Vec<&str> = body.split('|').collect();
    if fields.len() != n || text.len() > 256 {
        return Err(Refused::bad(format!("step2 of {} has {} fields, expected {n}", req.operation, fields.len())));
    }
    Ok(fields)
}

/// A new PIN in BCD hex (`123456`, or padded with `F`): checked as the card checks it, kept zeroized.
fn pin_bcd(hex: &str) -> Result<Zeroizing<Vec<u8>>, Refused> {
    let pin = Zeroizing::new(parse_hex(hex).map_err(|_| Refused::bad("the PIN is not hex"))?);
    let digits = Zeroizing::new(hex.trim_end_matches(['F', 'f']).to_string());
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refused {
            status: 400,
            error: "bad_pin",
            code: national::ILLEGAL_CHAR,
            message: "the PIN holds a character that is not a digit".into(),
        });
    }
    if digits.len() < 4 || digits.len() > 12 || pin.len() > 6 {
        return Err(Refused {
            status: 400,
            error: "bad_pin",
            code: national::ILLEGAL_LENGTH,
            message: "a PIN is 4 to 12 digits".into(),
        });
    }
    Ok(pin)
}

fn hex_n(text: &str, what: &str, lens: &[usize]) -> Result<Vec<u8>, Refused> {
    let b = parse_hex(text).map_err(|_| Refused::bad(format!("{what} is not hex")))?;
    if !lens.contains(&b.len()) {
        return Err(Refused::bad(format!("{what} has {} bytes", b.len())));
    }
    Ok(b)
}

fn card_err(e: card_core::Error) -> Refused {
    match e {
        card_core::Error::MissingKey { key } => {
            Refused { status: 400, error: "no_key", code: national::NO_RKSSSE, message: format!("no key {key}") }
        }
        other => Refused::bad(other.to_string()),
    }
}

/// Computes the answer to `req` (the terminal already authenticated and matched): policy, keys, versions, then
/// the national string. `facts` is filled in as far as it gets, for the audit line.
pub fn answer(req: &AnswerRequest, cx: &Context<'_>, facts: &mut Facts) -> Result<Answer, Refused> {
    let op = req.operation;
    if !cx.policy.allows_operation(op) {
        return Err(Refused::forbidden(format!("this terminal may not ask {op}")));
    }
    let step1 = parse_step1(&req.step1)?;
    let region: RegionCode = step1.region;
    facts.card_id = Some(hex_upper(&step1.card_id));
    facts.region = Some(region.as_str().to_string());
    if !cx.policy.allows_region(region) {
        return Err(Refused::forbidden(format!("this terminal may not ask for region {}", region.as_str())));
    }
    let (df, key) = match op {
        Operation::Read => ("SSSE".to_string(), "RKSSSE".to_string()),
        Operation::Write => {
            let file = req.file.as_deref().ok_or_else(|| Refused::bad("write needs file (SSSEEF05, DF01EF06, …)"))?;
            update_key(file, step1.algorithm)?
        }
        Operation::PinReload => ("SSSE".to_string(), "RLK".to_string()),
        Operation::PinUnblock => ("SSSE".to_string(), "PUK".to_string()),
    };
    if op != Operation::Write && req.file.is_some() {
        return Err(Refused::bad(format!("{op} takes no file")));
    }
    if matches!(op, Operation::Read | Operation::Write) && req.step2.is_some() {
        return Err(Refused::bad(format!("{op} takes no step2")));
    }
    facts.key = Some(key.clone());
    if !cx.policy.allows_df(&df) {
        return Err(Refused::forbidden(format!("this terminal may not use the keys of {df}")));
    }
    let card_id = hex_upper(&step1.card_id);
    let journal = match cx.journal {
        Some(j) => j.versions(&card_id).map_err(|e| Refused::unavailable(format!("journal: {e}")))?,
        None => None,
    };
    let version_of = |name: &str| journal.as_ref().and_then(|m| m.get(name).copied());
    let mut names: Vec<(&str, Option<u8>)> = vec![(key.as_str(), version_of(&key))];
    if matches!(op, Operation::Read | Operation::Write) {
        names.push(("IRK", version_of("IRK")));
    }
    let module = cx.keys.module(region, step1.algorithm, &names)?;
    let version = module
        .versions
        .get(&key)
        .copied()
        .ok_or_else(|| Refused::unavailable("key source answered without the key"))?;
    facts.version = Some(version);
    let card = step1.card_context().map_err(card_err)?;
    let sm = &*module.sm;
    let text = match op {
        Operation::Read | Operation::Write => {
            let internal = irk_answer(sm, &card, &step1)?;
            let external = sm.external_auth(&card, &key, &step1.r3, &step1.r4).map_err(card_err)?;
            Step2Answer { internal, external }.national(&step1)
        }
        Operation::PinReload => {
            let f = step2_fields(req, 1)?;
            let pin = pin_bcd(f[0])?;
            two_step::pin_reload_answer(sm, &card, &key, &pin).map_err(card_err)?
        }
        Operation::PinUnblock => {
            let f = step2_fields(req, 3)?;
            let challenge_len: &[usize] = if step1.algorithm == Algorithm::Tdes { &[4, 8] } else { &[8] };
            let challenge = hex_n(f[0], "the card challenge", challenge_len)?;
            let header: [u8; 4] = hex_n(f[1], "CLA INS P1 P2", &[4])?
                .try_into()
                .map_err(|_| Refused::bad("CLA INS P1 P2 has 4 bytes"))?;
            // PUK's MAC is given for PIN UNBLOCK only, never for a command of the terminal's choosing
            if header != card_core::command::PIN_UNBLOCK {
                return Err(Refused::bad("CLA INS P1 P2 is not PIN UNBLOCK's (84 24 00 00)"));
            }
            let pin = pin_bcd(f[2])?;
            let challenge =
                challenge.get(..if step1.algorithm == Algorithm::Tdes { 4 } else { 8 }).unwrap_or(&challenge);
            two_step::pin_unblock_answer(sm, &card, &key, challenge, &header, &pin).map_err(card_err)?
        }
    };
    Ok(Answer { answer: text, key, version })
}

/// IRK's answer to INTERNAL AUTHENTICATE `R1 ‖ R2` (CARD-PROFILE §6.3). [`SecurityModule`] only *checks* an
/// internal authentication answer, so the answer is computed with its external authentication primitive, which is
/// the same construction (§6.1–§6.3: process key from the challenge, cryptogram of the data): `C(IRK, R1, R2)`.
/// The tests compare it with `LocalKeys::internal_auth_answer` through `backend_answer`.
///
/// [`SecurityModule`]: card_core::security::SecurityModule
fn irk_answer(
    sm: &(dyn card_core::security::SecurityModule + Send + Sync),
    card: &CardContext,
    s: &Step1,
) -> Result<[u8; 8], Refused> {
    // §6.3: SK from IRK and R1, the answer is the cryptogram of R2 — §6.2's C with challenge R1 and X = R2
    sm.external_auth(card, "IRK", &s.r1, &s.r2).map_err(card_err)
}
