//! [`TwoStepRead`] and [`TwoStepWrite`]: the national two-step exchange (see `security::two_step`) for a
//! terminal that holds no keys: the back end's HSM computes the cryptograms.

use super::address::{self, Address, ItemValues};
use super::basic::{self, BasicInfo};
use super::session::{Session, SSSE};
use super::CardFacts;
use crate::codec::RegionCode;
use crate::crypto::ct_eq;
use crate::profile::{ItemField, Profile};
use crate::security::key_service::{Backend, Operation, Query};
use crate::security::two_step::{Step1, Step2Answer};
use crate::security::{CardContext, SecurityModule};
use crate::tlv::RecordTlv;
use crate::transport::CardTransaction;
use crate::Error;

/// A two-step read in progress: it holds the card's transaction, so the challenge `R3` of Step 1 is still
/// valid when [`TwoStepRead::finish`] sends EXTERNAL AUTHENTICATE. Send [`TwoStepRead::step1`] to the back end,
/// pass its answer to `finish`; dropping the value ends the transaction (start again then).
///
/// APDUs: Step 1 = SELECT, READ RECORD EF05 1, GET CHALLENGE; Step 2 = EXTERNAL AUTHENTICATE, INTERNAL
/// AUTHENTICATE, EF05, EF06 (7 with read-all).
pub struct TwoStepRead<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    profile: &'a Profile,
    facts: &'a mut CardFacts,
    step1: Step1,
    generation: crate::profile::Generation,
}

/// A security module that only replays the back end's answer for one key.
struct Replay<'r> {
    answer: &'r Step2Answer,
    key: &'r str,
}

impl SecurityModule for Replay<'_> {
    fn has_key(&self, _: &CardContext, key: &str) -> bool {
        key == self.key
    }
    fn external_auth(&self, _: &CardContext, key: &str, _: &[u8; 8], _: &[u8; 8]) -> Result<[u8; 8], Error> {
        if key == self.key {
            Ok(self.answer.external)
        } else {
            Err(Error::MissingKey { key: key.to_owned() })
        }
    }
    fn check_internal_auth(&self, _: &CardContext, _: &[u8; 8], _: &[u8; 8], answer: &[u8]) -> Result<(), Error> {
        if ct_eq(&self.answer.internal, answer) {
            Ok(())
        } else {
            Err(Error::InternalAuthFailed)
        }
    }
    fn line_mac(&self, _: &CardContext, key: &str, _: &[u8], _: &[u8]) -> Result<[u8; 4], Error> {
        Err(Error::MissingKey { key: key.to_owned() })
    }
    fn line_mac_zero_iv(&self, _: &CardContext, key: &str, _: &[u8]) -> Result<[u8; 4], Error> {
        Err(Error::MissingKey { key: key.to_owned() })
    }
    fn secure_data(&self, _: &CardContext, key: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::MissingKey { key: key.to_owned() })
    }
}

/// Step 1's string from what the card said: the region from the card identifier, fresh `R1`, `R2`, `R4`.
fn new_step1(algorithm: crate::crypto::Algorithm, hist: Vec<u8>, card_id: Vec<u8>, r3: &[u8]) -> Result<Step1, Error> {
    let region = RegionCode::from_bcd(card_id.get(..3).unwrap_or_default()).map_err(Error::CardData)?;
    let r3: [u8; 8] = r3.try_into().map_err(|_| Error::BadParameter("challenge".into()))?;
    Ok(Step1 {
        region,
        historical_bytes: hist,
        algorithm,
        card_id,
        r1: rand::random(),
        r2: rand::random(),
        r3,
        r4: rand::random(),
    })
}

/// The session of Step 2, resumed in the transaction of Step 1 with `df` current and nothing authenticated.
fn resume_session<'s>(
    tx: &'s mut (dyn CardTransaction + '_),
    profile: &'s Profile,
    sm: &'s dyn SecurityModule,
    facts: &'s mut CardFacts,
    generation: crate::profile::Generation,
    step1: &Step1,
    df: &str,
) -> Result<Session<'s>, Error> {
    let ctx = step1.card_context()?;
    Ok(Session::resume(tx, profile, sm, facts, generation, step1.historical_bytes.clone(), ctx, df))
}

/// Step 1 in an open session (SSSE selected): EF05's card identifier, GET CHALLENGE, fresh `R1`, `R2`, `R4`.
pub(crate) fn step1_in(s: &mut Session<'_>) -> Result<Step1, Error> {
    let (ef05, rec, _) = s
        .df_spec(SSSE)?
        .field(s.generation(), ItemField::CardId)
        .ok_or_else(|| Error::UnknownCard("no card_id item in the profile".into()))?;
    let rec = RecordTlv::parse(&s.send(&crate::command::read_record(rec, ef05.sfi)?)?)?;
    let r3 = s.challenge(8)?;
    new_step1(s.ctx().algorithm, s.historical_bytes().to_vec(), rec.value, &r3)
}

/// Step 2 of a read: external authentication with the back end's cryptogram (when the generation has RKSSSE),
/// internal authentication checked against its expected answer, then the basic information.
fn finish_read(
    tx: &mut (dyn CardTransaction + '_),
    profile: &Profile,
    facts: &mut CardFacts,
    generation: crate::profile::Generation,
    step1: &Step1,
    answer: &str,
) -> Result<BasicInfo, Error> {
    let answer: Step2Answer = answer.parse()?;
    let replay = Replay { answer: &answer, key: "RKSSSE" };
    let mut s = resume_session(tx, profile, &replay, facts, generation, step1, SSSE)?;
    if s.df_spec(SSSE)?.key("RKSSSE").is_some_and(|k| k.generations.contains(s.generation())) {
        s.external_auth_with("RKSSSE", &answer.external, &step1.r4)?;
    }
    let card = s.internal_auth_raw(&step1.r1, &step1.r2)?;
    replay.check_internal_auth(s.ctx(), &step1.r1, &step1.r2, &card)?;
    basic::read(&mut s)
}

/// The basic information in one transaction: read with `sm` when it can (a generation 1 or 2 card, or a module
/// holding RKSSSE), else — a generation 3 card at a terminal without keys — through the two-step exchange with
/// `backend` (the key service): Step 1, the back end's answer, Step 2, with nothing else sent in between.
///
/// APDUs: as [`super::SocialSecurityCard::read_basic`] when no back end is needed; 7 for a generation 3 card
/// through the back end (SELECT, READ RECORD, GET CHALLENGE; EXTERNAL and INTERNAL AUTHENTICATE, EF05, EF06 with
/// read-all), plus one HTTPS request.
pub(crate) fn read_basic_via(
    tx: &mut (dyn CardTransaction + '_),
    profile: &Profile,
    facts: &mut CardFacts,
    sm: &dyn SecurityModule,
    backend: &dyn Backend,
) -> Result<BasicInfo, Error> {
    let mut cache = *facts;
    let (generation, step1) = {
        let mut s = Session::open(&mut *tx, profile, sm, None, &mut cache, false)?;
        let needs = s.df_spec(SSSE)?.key("RKSSSE").is_some_and(|k| k.generations.contains(s.generation()));
        if !needs || sm.has_key(s.ctx(), "RKSSSE") {
            let info = basic::read(&mut s);
            *facts = cache;
            return info;
        }
        (s.generation(), step1_in(&mut s)?)
    };
    *facts = cache;
    let answer = backend.answer(&Query::new(Operation::Read, &step1.to_string()))?;
    finish_read(tx, profile, facts, generation, &step1, &answer.answer)
}

impl<'a> TwoStepRead<'a> {
    pub(crate) fn begin(
        mut tx: Box<dyn CardTransaction + 'a>,
        profile: &'a Profile,
        facts: &'a mut CardFacts,
    ) -> Result<Self, Error> {
        let mut cache = *facts;
        let (generation, step1) = {
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, &mut cache, true)?;
            (s.generation(), step1_in(&mut s)?)
        };
        *facts = cache;
        Ok(TwoStepRead { tx, profile, facts, step1, generation })
    }

    /// The `…_HSM_Step1` string for the back end: `region|hist|algorithm|card id|R1|R2|R3|R4|`.
    pub fn step1(&self) -> String {
        self.step1.to_string()
    }

    /// Step 2: external authentication with the back end's cryptogram, internal authentication checked against
    /// its expected answer ([`Error::InternalAuthFailed`] otherwise), then the basic information.
    pub fn finish(mut self, answer: &str) -> Result<BasicInfo, Error> {
        finish_read(&mut *self.tx, self.profile, self.facts, self.generation, &self.step1, answer)
    }
}

/// A two-step write in progress (CARD-PROFILE §7 `iWriteCard` for a terminal without keys): the items of one
/// DF, written under that DF's update key (UKMF for SSSE files, `UK_DFxx` for an application's), with the
/// back end computing the EXTERNAL AUTHENTICATE cryptogram. Like [`TwoStepRead`] it holds the transaction.
///
/// Step 1: SELECT SSSE, READ RECORD EF05 1 (card identifier), SELECT the target DF, GET CHALLENGE (`R3`); the
/// Step1 string has the read's format, and the back end is told which key ([`TwoStepWrite::key`]).
/// Step 2 ([`TwoStepWrite::finish`]): EXTERNAL AUTHENTICATE with the back end's cryptogram, then — in SSSE —
/// INTERNAL AUTHENTICATE checked before writing; in an application DF, whose security state SELECT SSSE would
/// clear, the items are written first and the card is checked right after (a mismatch is
/// [`Error::InternalAuthFailed`]). Values are encoded right after the SELECT that tells the generation: bad data stops there.
pub struct TwoStepWrite<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    profile: &'a Profile,
    facts: &'a mut CardFacts,
    step1: Step1,
    generation: crate::profile::Generation,
    df: String,
    key: String,
    values: ItemValues,
}

impl<'a> TwoStepWrite<'a> {
    pub(crate) fn begin(
        mut tx: Box<dyn CardTransaction + 'a>,
        profile: &'a Profile,
        facts: &'a mut CardFacts,
        address: &Address,
        data: &str,
    ) -> Result<Self, Error> {
        let values = ItemValues::parse(address, data)?;
        let bad = |m: String| Error::BadParameter(format!("two-step write: {m}"));
        let mut target: Option<(String, String)> = None;
        let mut cache = *facts;
        let (generation, ctx, hist, card_id, r3, df, key) = {
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, &mut cache, true)?;
            // the values are checked against the card's generation right after SELECT, before Step 1 goes on
            address::encode(&s, &values)?;
            for seg in &address.0 {
                let (df, ef) = profile.file(&seg.file).ok_or_else(|| bad(format!("no file {}", seg.file)))?;
                let key = match ef.update.for_generation(s.generation()) {
                    crate::profile::Access::Key(k) => k.clone(),
                    other => return Err(bad(format!("{} is updated under {other}, not one key", seg.file))),
                };
                match &target {
                    None => target = Some((df.name.clone(), key)),
                    Some((d, k)) if *d == df.name && *k == key => {}
                    Some(_) => return Err(bad("one exchange writes the files of one DF under one key".into())),
                }
            }
            let (df, key) = target.ok_or_else(|| bad("nothing to write".into()))?;
            let (ef05, rec, _) = s
                .df_spec(SSSE)?
                .field(s.generation(), ItemField::CardId)
                .ok_or_else(|| Error::UnknownCard("no card_id item in the profile".into()))?;
            let rec = RecordTlv::parse(&s.send(&crate::command::read_record(rec, ef05.sfi)?)?)?;
            s.select_df(&df)?;
            let r3 = s.challenge(8)?;
            (s.generation(), s.ctx().clone(), s.historical_bytes().to_vec(), rec.value, r3, df, key)
        };
        *facts = cache;
        let step1 = new_step1(ctx.algorithm, hist, card_id, &r3)?;
        Ok(TwoStepWrite { tx, profile, facts, step1, generation, df, key, values })
    }

    /// The `…_HSM_Step1` string for the back end.
    pub fn step1(&self) -> String {
        self.step1.to_string()
    }

    /// The file to write as the key service is told it (`SSSEEF05`, `DF01EF06`: the address's first file; every
    /// file of one exchange is in one DF under one key).
    pub fn file(&self) -> String {
        self.values.address.0.first().map(|seg| seg.file.clone()).unwrap_or_default()
    }

    /// The key (inventory name, e.g. `UKMF`, `UK_DF01`) whose cryptogram the back end must compute.
    pub fn key(&self) -> String {
        crate::security::key_name(&self.df, &self.key)
    }

    /// Step 2: authenticate with the back end's cryptogram, check the card, write.
    pub fn finish(mut self, answer: &str) -> Result<(), Error> {
        let answer: Step2Answer = answer.parse()?;
        let inventory = self.key();
        let replay = Replay { answer: &answer, key: &inventory };
        let mut s =
            resume_session(&mut *self.tx, self.profile, &replay, self.facts, self.generation, &self.step1, &self.df)?;
        s.external_auth_with(&self.key, &answer.external, &self.step1.r4)?;
        let check = |s: &mut Session<'_>, step1: &Step1| -> Result<(), Error> {
            let card = s.internal_auth_raw(&step1.r1, &step1.r2)?;
            replay.check_internal_auth(s.ctx(), &step1.r1, &step1.r2, &card)
        };
        if self.df == SSSE {
            check(&mut s, &self.step1)?;
            address::write(&mut s, &self.values)
        } else {
            address::write(&mut s, &self.values)?;
            s.select_df(SSSE)?;
            check(&mut s, &self.step1)
        }
    }
}
