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
use crate::security::two_step::{ExternalAnswer, Step1, Step2Answer};
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
    finish_read_with(tx, profile, facts, generation, step1, answer, basic::read)
}

/// Step 2 of a read, then `read` in the authenticated session.
fn finish_read_with<R>(
    tx: &mut (dyn CardTransaction + '_),
    profile: &Profile,
    facts: &mut CardFacts,
    generation: crate::profile::Generation,
    step1: &Step1,
    answer: &str,
    read: impl FnOnce(&mut Session<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let answer: Step2Answer = answer.parse()?;
    let replay = Replay { answer: &answer, key: "RKSSSE" };
    let mut s = resume_session(tx, profile, &replay, facts, generation, step1, SSSE)?;
    if s.df_spec(SSSE)?.key("RKSSSE").is_some_and(|k| k.generations.contains(s.generation())) {
        s.external_auth_with("RKSSSE", &answer.external, &step1.r4)?;
    }
    let card = s.internal_auth_raw(&step1.r1, &step1.r2)?;
    replay.check_internal_auth(s.ctx(), &step1.r1, &step1.r2, &card)?;
    read(&mut s)
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
    read_via(tx, profile, facts, sm, backend, basic::read)
}

/// What SSSE holds under RKSSSE on a generation 3 card (the basic information, the photo, the fingerprint), read
/// in one transaction: with `sm` when it can (a card without RKSSSE, or a module holding it), else through the
/// two-step exchange with `backend` — Step 1, the back end's answer, Step 2 — then `read`.
pub(crate) fn read_via<R>(
    tx: &mut (dyn CardTransaction + '_),
    profile: &Profile,
    facts: &mut CardFacts,
    sm: &dyn SecurityModule,
    backend: &dyn Backend,
    read: impl Fn(&mut Session<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut cache = *facts;
    let (generation, step1) = {
        let mut s = Session::open(&mut *tx, profile, sm, None, &mut cache, false)?;
        let needs = s.df_spec(SSSE)?.key("RKSSSE").is_some_and(|k| k.generations.contains(s.generation()));
        if !needs || sm.has_key(s.ctx(), "RKSSSE") {
            let value = read(&mut s);
            *facts = cache;
            return value;
        }
        (s.generation(), step1_in(&mut s)?)
    };
    *facts = cache;
    let answer = backend.answer(&Query::new(Operation::Read, &step1.to_string()))?;
    finish_read_with(tx, profile, facts, generation, &step1, &answer.answer, read)
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
    address: Address,
    /// The values, when given at Step 1 (checked then); `None` when they come with Step 2.
    values: Option<ItemValues>,
}

impl<'a> TwoStepWrite<'a> {
    pub(crate) fn begin(
        mut tx: Box<dyn CardTransaction + 'a>,
        profile: &'a Profile,
        facts: &'a mut CardFacts,
        address: &Address,
        data: Option<&str>,
    ) -> Result<Self, Error> {
        let values = data.map(|data| ItemValues::parse(address, data)).transpose()?;
        let bad = |m: String| Error::BadParameter(format!("two-step write: {m}"));
        let mut target: Option<(String, String)> = None;
        let mut cache = *facts;
        let (generation, ctx, hist, card_id, r3, df, key) = {
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, &mut cache, true)?;
            // the values are checked against the card's generation right after SELECT, before Step 1 goes on
            if let Some(values) = &values {
                address::encode(&s, values)?;
            }
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
        Ok(TwoStepWrite { tx, profile, facts, step1, generation, df, key, address: address.clone(), values })
    }

    /// The `…_HSM_Step1` string for the back end.
    pub fn step1(&self) -> String {
        self.step1.to_string()
    }

    /// The file to write as the key service is told it (`SSSEEF05`, `DF01EF06`: the address's first file; every
    /// file of one exchange is in one DF under one key).
    pub fn file(&self) -> String {
        self.address.0.first().map(|seg| seg.file.clone()).unwrap_or_default()
    }

    /// The key (inventory name, e.g. `UKMF`, `UK_DF01`) whose cryptogram the back end must compute.
    pub fn key(&self) -> String {
        crate::security::key_name(&self.df, &self.key)
    }

    /// Step 2: authenticate with the back end's cryptogram, check the card, write (the values given at Step 1).
    pub fn finish(mut self, answer: &str) -> Result<(), Error> {
        let values = self.values.take().ok_or_else(|| Error::BadParameter("two-step write: no values".into()))?;
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
            address::write(&mut s, &values)
        } else {
            address::write(&mut s, &values)?;
            s.select_df(SSSE)?;
            check(&mut s, &self.step1)
        }
    }

    /// Step 2 of `iWriteCard_HSM_Step2`: `data` (mirroring the address) and the external authentication's
    /// cryptogram alone ([`ExternalAnswer`]: the published `pKey` holds 32 bytes). Every value is encoded for the
    /// card before EXTERNAL AUTHENTICATE: bad data is refused with nothing sent. No internal authentication.
    pub fn finish_external(mut self, data: &str, answer: &str) -> Result<(), Error> {
        let values = ItemValues::parse(&self.address, data)?;
        let answer = ExternalAnswer::parse_for(answer, &self.step1)?;
        let mut s = resume_session(
            &mut *self.tx,
            self.profile,
            &crate::security::NoKeys,
            self.facts,
            self.generation,
            &self.step1,
            &self.df,
        )?;
        address::encode(&s, &values)?;
        s.external_auth_with(&self.key, &answer.external, &self.step1.r4)?;
        address::write(&mut s, &values)
    }
}

/// A two-step read of items (`iReadCard_HSM_Step1/2`, CARD-PROFILE §7) for a terminal without keys: the items of
/// one DF whose read condition names one key (`RKSSSE` for a generation 3 card's SSSE files, the DF's `RK` for an
/// application's), with the back end computing the EXTERNAL AUTHENTICATE cryptogram. It holds the transaction.
///
/// Step 1: SELECT SSSE, READ RECORD EF05 1 (card identifier), SELECT the DF, GET CHALLENGE (`R3`): the Step 1
/// string. Step 2 ([`TwoStepReadItems::finish`]): EXTERNAL AUTHENTICATE with the answer, then the items. Items that
/// every card gives freely need no exchange: [`Error::National`] −2204 (no HSM authentication needed).
pub struct TwoStepReadItems<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    profile: &'a Profile,
    facts: &'a mut CardFacts,
    step1: Step1,
    generation: crate::profile::Generation,
    df: String,
    key: String,
    address: Address,
}

/// The one DF and key (profile name) that the read conditions of `address`'s items name on generation `g`;
/// `None` when every item is free. A condition that no key meets (PIN only, never) and items of two DFs or keys
/// are refused.
fn read_key(
    profile: &Profile,
    g: crate::profile::Generation,
    address: &Address,
) -> Result<Option<(String, String)>, Error> {
    use crate::profile::Access;
    let bad = |m: String| Error::BadParameter(format!("two-step read: {m}"));
    let mut target: Option<(String, String)> = None;
    for seg in &address.0 {
        let (df, ef) = profile.file(&seg.file).ok_or_else(|| bad(format!("no file {}", seg.file)))?;
        let mut rules = vec![ef.read.for_generation(g)];
        for tag in &seg.tags {
            let (_, item) = ef.record_of(g, *tag).ok_or_else(|| bad(format!("no item {tag:02X} in {}", seg.file)))?;
            rules.extend(item.read.as_ref().map(|r| r.for_generation(g)));
        }
        for rule in rules {
            let key = match rule {
                Access::Free => continue,
                Access::Key(k) | Access::PinOrKey(k) => k.clone(),
                other => return Err(bad(format!("{} is read under {other}, which no back end answers", seg.file))),
            };
            match &target {
                None => target = Some((df.name.clone(), key)),
                Some((d, k)) if *d == df.name && *k == key => {}
                Some(_) => return Err(bad("one exchange reads the files of one DF under one key".into())),
            }
        }
    }
    Ok(target)
}

impl<'a> TwoStepReadItems<'a> {
    pub(crate) fn begin(
        mut tx: Box<dyn CardTransaction + 'a>,
        profile: &'a Profile,
        facts: &'a mut CardFacts,
        address: &Address,
    ) -> Result<Self, Error> {
        let mut cache = *facts;
        let (generation, ctx, hist, card_id, r3, df, key) = {
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, &mut cache, true)?;
            let (df, key) =
                read_key(profile, s.generation(), address)?.ok_or(Error::National(crate::national::NO_HSM_NEEDED))?;
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
        Ok(TwoStepReadItems { tx, profile, facts, step1, generation, df, key, address: address.clone() })
    }

    /// The `iReadCard_HSM_Step1` string for the back end.
    pub fn step1(&self) -> String {
        self.step1.to_string()
    }

    /// The card identifier of Step 1 (hex), to check a caller's `pCardInfo` against.
    pub fn card_id(&self) -> String {
        crate::codec::hex_upper(&self.step1.card_id)
    }

    /// The key (inventory name, e.g. `RKSSSE`, `RK_DF01`) whose cryptogram the back end must compute.
    pub fn key(&self) -> String {
        crate::security::key_name(&self.df, &self.key)
    }

    /// Step 2: EXTERNAL AUTHENTICATE with the back end's cryptogram ([`ExternalAnswer`]), then the items.
    pub fn finish(mut self, answer: &str) -> Result<ItemValues, Error> {
        let answer = ExternalAnswer::parse_for(answer, &self.step1)?;
        let mut s = resume_session(
            &mut *self.tx,
            self.profile,
            &crate::security::NoKeys,
            self.facts,
            self.generation,
            &self.step1,
            &self.df,
        )?;
        s.external_auth_with(&self.key, &answer.external, &self.step1.r4)?;
        address::read(&mut s, &self.address)
    }
}

/// RELOAD PIN or PIN UNBLOCK in three steps for a terminal without keys (`iReloadPIN_HSM_Step1/2/3`,
/// `iUnblockPIN_HSM_Step1/2/3`, CARD-PROFILE §7); it holds the transaction throughout.
///
/// Step 1 ([`TwoStepPin::step1`]): SELECT SSSE, READ RECORD EF05 1, GET CHALLENGE: the Step 1 string that names
/// the card for the back end. Step 2 ([`TwoStepPin::step2`]): the new PIN → the back end's second request, the key
/// service's `pin-reload` / `pin-unblock` Step2 (`<new PIN BCD>|`; for UNBLOCK `<challenge>|<CLA INS P1 P2>|<new
/// PIN BCD>|` with a fresh challenge). Step 3 ([`TwoStepPin::finish`]): the back end's answer (`<MAC>|`; for
/// UNBLOCK `<secure data><MAC>|`) → RELOAD PIN `80 5E 00 00` / PIN UNBLOCK `84 24 00 00`. In this profile these
/// commands carry their own MAC: there is no EXTERNAL AUTHENTICATE before them \[P\].
pub struct TwoStepPin<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    profile: &'a Profile,
    facts: &'a mut CardFacts,
    step1: Step1,
    generation: crate::profile::Generation,
    unblock: bool,
    /// The new PIN (BCD) between Step 2 and Step 3.
    pin: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl<'a> TwoStepPin<'a> {
    pub(crate) fn begin(
        mut tx: Box<dyn CardTransaction + 'a>,
        profile: &'a Profile,
        facts: &'a mut CardFacts,
        unblock: bool,
    ) -> Result<Self, Error> {
        let mut cache = *facts;
        let (generation, step1) = {
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, &mut cache, true)?;
            (s.generation(), step1_in(&mut s)?)
        };
        *facts = cache;
        Ok(TwoStepPin { tx, profile, facts, step1, generation, unblock, pin: None })
    }

    /// The Step 1 string for the back end.
    pub fn step1(&self) -> String {
        self.step1.to_string()
    }

    /// The card identifier of Step 1 (hex), to check a caller's `pCardInfo` against.
    pub fn card_id(&self) -> String {
        crate::codec::hex_upper(&self.step1.card_id)
    }

    /// Step 2: the new PIN (checked against the profile's PIN format) → the back end's second request. The
    /// returned string holds the PIN: it is zeroized when dropped.
    pub fn step2(&mut self, new: &secrecy::SecretString) -> Result<zeroize::Zeroizing<String>, Error> {
        let mut s = resume_session(
            &mut *self.tx,
            self.profile,
            &crate::security::NoKeys,
            self.facts,
            self.generation,
            &self.step1,
            SSSE,
        )?;
        let pin = s.pin_bytes(new)?;
        let request =
            if self.unblock { super::pin::unblock_step2(&mut s, &pin)? } else { super::pin::reload_step2(&pin) };
        self.pin = Some(pin);
        Ok(request)
    }

    /// Step 3: the back end's answer → RELOAD PIN or PIN UNBLOCK. [`Error::BadParameter`] before Step 2.
    pub fn finish(mut self, answer: &str) -> Result<(), Error> {
        let pin = self.pin.take().ok_or_else(|| Error::BadParameter("Step 3 before Step 2".into()))?;
        let mut s = resume_session(
            &mut *self.tx,
            self.profile,
            &crate::security::NoKeys,
            self.facts,
            self.generation,
            &self.step1,
            SSSE,
        )?;
        if self.unblock {
            super::pin::send_unblock(&mut s, answer)
        } else {
            super::pin::send_reload(&mut s, &pin, answer)
        }
    }
}
