//! One operation's view of the card: the transaction, what was selected and authenticated, the generation.

use std::collections::BTreeSet;

use secrecy::{ExposeSecret, SecretString};

use super::{CardFacts, CardInfo};
use crate::apdu::{Command, Response, StatusWord};
use crate::codec::{decode_an, encode_cn};
use crate::command;
use crate::crypto::{card_factor, Algorithm, CryptoError};
use crate::profile::{Access, Df, Generation, Profile};
use crate::security::{algorithm_of, key_name, CardContext, SecurityModule};
use crate::tlv::{find, parse_ber, parse_fci, primitive_value, Limits, RecordTlv, TlvError};
use crate::transport::{historical_bytes, CardTransaction, CardTransactionExt};
use crate::Error;

/// The SSSE DDF's name in the profile.
pub(crate) const SSSE: &str = "SSSE";

/// One operation's view of the card. Its fields are private: the security state (keys authenticated, PIN
/// verified) changes only through what the card answered — an authentication, a VERIFY — and is cleared only by
/// selecting another DF.
pub(crate) struct Session<'a> {
    tx: &'a mut dyn CardTransaction,
    profile: &'a Profile,
    sm: &'a dyn SecurityModule,
    pin: Option<&'a SecretString>,
    /// What is known of this card from earlier operations (READ RECORD "all" support, generation).
    facts: &'a mut CardFacts,
    generation: Generation,
    /// False while a 3DES card's generation (1 or 2) is provisional: see [`Session::open`].
    generation_known: bool,
    ctx: CardContext,
    historical_bytes: Vec<u8>,
    /// The DF selected last.
    df: String,
    /// Keys (profile names) authenticated in the current DF.
    keys: BTreeSet<String>,
    pin_verified: bool,
}

impl<'a> Session<'a> {
    /// Selects SSSE and learns the generation and the algorithm (see [`Detected`]).
    ///
    /// With `need_generation` false, a 3DES card (FCI `86` = `01`: generation 1 or 2) is opened as
    /// generation 2 without the READ RECORD of EF05 record 3; the caller reads EF05 anyway and corrects it
    /// with [`Session::learn_spec_version`].
    pub fn open(
        tx: &'a mut dyn CardTransaction,
        profile: &'a Profile,
        sm: &'a dyn SecurityModule,
        pin: Option<&'a SecretString>,
        facts: &'a mut CardFacts,
        need_generation: bool,
    ) -> Result<Session<'a>, Error> {
        let hist = historical_bytes(tx.atr()).map(<[u8]>::to_vec).unwrap_or_default();
        let factor =
            card_factor(&hist).map_err(|_| Error::UnknownCard("ATR has fewer than 8 historical bytes".into()))?;
        let ssse = profile.df(SSSE).ok_or_else(|| Error::UnknownCard("the profile has no SSSE".into()))?;
        let fci = select(tx, ssse, true)?;
        let detected = Detected::from_fci(&fci)?;
        // a generation learnt before on this card (same ATR) stands if the FCI's algorithm agrees with it
        let learnt = facts.generation.filter(|g| detected.algorithm.is_none_or(|a| a == algorithm_of(*g)));
        let detected = Detected { generation: detected.generation.or(learnt), ..detected };
        let (generation, algorithm, generation_known) = match detected {
            Detected { generation: Some(g), algorithm } => (g, algorithm.unwrap_or_else(|| algorithm_of(g)), true),
            // an SM4 card is handled as generation 3 (CARD-PROFILE §4.2)
            Detected { generation: None, algorithm: Some(Algorithm::Sm4) } => (Generation::THREE, Algorithm::Sm4, true),
            Detected { generation: None, algorithm: Some(a @ Algorithm::Tdes) } if !need_generation => {
                (Generation::TWO, a, false)
            }
            Detected { generation: None, algorithm } => {
                // no algorithm in the FCI, or 3DES (generation 1 or 2): the spec version says which (§4.2), EF05
                // record 3 in the built-in profile — its record is the same on every generation
                let (ef05, record, _) = ssse
                    .field(Generation::ONE, crate::profile::ItemField::SpecVersion)
                    .ok_or_else(|| Error::UnknownCard("the profile has no spec_version item in SSSE".into()))?;
                let rec = RecordTlv::parse(&tx.exchange_ok(&command::read_record(record, ef05.sfi)?)?)?;
                let g = generation_of_spec_version(&rec.value)?;
                (g, algorithm.unwrap_or_else(|| algorithm_of(g)), true)
            }
        };
        if generation_known {
            facts.generation = Some(generation);
        }
        let ctx = CardContext { region: None, card_factor: factor, algorithm };
        Ok(Session {
            tx,
            profile,
            sm,
            pin,
            facts,
            generation,
            generation_known,
            ctx,
            historical_bytes: hist,
            df: SSSE.to_owned(),
            keys: BTreeSet::new(),
            pin_verified: false,
        })
    }

    /// Sets the generation from EF05 tag 03 when SELECT left it open (a 3DES card opened without
    /// `need_generation`); otherwise checks nothing: the FCI or record 3 decided already.
    pub fn learn_spec_version(&mut self, value: &[u8]) -> Result<(), Error> {
        if !self.generation_known {
            self.generation = generation_of_spec_version(value)?;
            self.generation_known = true;
            self.facts.generation = Some(self.generation);
        }
        Ok(())
    }

    /// The session of a two-step exchange's Step 2, resumed in the transaction of Step 1 with `df` current and
    /// nothing authenticated (SELECT of `df` was the last command of Step 1).
    #[allow(clippy::too_many_arguments)]
    pub fn resume(
        tx: &'a mut dyn CardTransaction,
        profile: &'a Profile,
        sm: &'a dyn SecurityModule,
        facts: &'a mut CardFacts,
        generation: Generation,
        historical_bytes: Vec<u8>,
        ctx: CardContext,
        df: &str,
    ) -> Session<'a> {
        Session {
            tx,
            profile,
            sm,
            pin: None,
            facts,
            generation,
            generation_known: true,
            ctx,
            historical_bytes,
            df: df.to_owned(),
            keys: BTreeSet::new(),
            pin_verified: false,
        }
    }

    /// The card's generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The profile.
    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// What is known of the card across operations.
    pub fn facts(&mut self) -> &mut CardFacts {
        self.facts
    }

    /// The card as the security module sees it.
    pub fn ctx(&self) -> &CardContext {
        &self.ctx
    }

    /// The issuing region, once EF05 told it: the security module needs it for region keys.
    pub fn learn_region(&mut self, region: crate::codec::RegionCode) {
        self.ctx.region = Some(region);
    }

    /// The ATR's historical bytes.
    pub fn historical_bytes(&self) -> &[u8] {
        &self.historical_bytes
    }

    /// Whether the security module holds the current DF's key `key` for this card.
    pub fn holds(&self, key: &str) -> bool {
        self.sm.has_key(&self.ctx, &key_name(&self.df, key))
    }

    /// Secure data (CARD-PROFILE §6.5) under the current DF's `key`, from the security module.
    pub fn secure_data(&self, key: &str, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.sm.secure_data(&self.ctx, &key_name(&self.df, key), data)
    }

    /// The MAC of §6.4 with IV zero under the current DF's `key` (RELOAD PIN), from the security module.
    pub fn line_mac_zero_iv(&self, key: &str, data: &[u8]) -> Result<[u8; 4], Error> {
        self.sm.line_mac_zero_iv(&self.ctx, &key_name(&self.df, key), data)
    }

    /// A line-protected command (CARD-PROFILE §6.4) under the current DF's `key`, MAC from the security module.
    pub fn line_protected(
        &mut self,
        key: &str,
        header: [u8; 4],
        data: &[u8],
        sensitive: bool,
    ) -> Result<Response, Error> {
        let inventory = key_name(&self.df, key);
        if !self.sm.has_key(&self.ctx, &inventory) {
            return Err(Error::MissingKey { key: inventory });
        }
        let (sm, ctx) = (self.sm, &self.ctx);
        command::line_protected(self.tx, ctx.algorithm, header, data, sensitive, |challenge, input| {
            sm.line_mac(ctx, &inventory, challenge, input)
        })
    }

    /// VERIFY with `pin` in the current DF; the PIN counts as verified in this DF from now on.
    pub fn verify(&mut self, pin: &SecretString) -> Result<(), Error> {
        let bytes = self.pin_bytes(pin)?;
        super::pin::pin_status(self.tx.exchange(&command::verify_pin(&bytes)?)?.sw())?;
        self.pin_verified = true;
        Ok(())
    }

    /// SELECT of `name` that accepts a blocked application (`6A81`: selected, but blocked — what APPLICATION
    /// UNBLOCK needs); the security state starts empty.
    pub fn select_df_even_blocked(&mut self, name: &str) -> Result<(), Error> {
        let df = self.df_spec(name)?;
        let aid = df.aid.as_deref().ok_or_else(|| Error::BadParameter(format!("{name} has no AID")))?;
        let sw = self.tx.exchange(&command::select_by_name(aid)?)?.sw();
        if sw != StatusWord::OK && sw != StatusWord::FUNCTION_NOT_SUPPORTED {
            return Err(Error::from_status(sw));
        }
        self.df = df.name.clone();
        self.keys.clear();
        self.pin_verified = false;
        Ok(())
    }

    pub fn card_info(&self) -> CardInfo {
        CardInfo {
            generation: self.generation,
            algorithm: self.ctx.algorithm,
            historical_bytes: self.historical_bytes.clone(),
            read_all: self.facts.read_all,
        }
    }

    pub fn df_spec(&self, name: &str) -> Result<&'a Df, Error> {
        let profile: &'a Profile = self.profile;
        profile
            .df(name)
            .filter(|d| d.generations.contains(self.generation))
            .ok_or_else(|| Error::BadParameter(format!("no DF {name} on a generation {} card", self.generation)))
    }

    /// Makes `name` the current DF (no-op if it is); the security state starts empty.
    pub fn select_df(&mut self, name: &str) -> Result<(), Error> {
        if self.df.eq_ignore_ascii_case(name) {
            return Ok(());
        }
        let df = self.df_spec(name)?;
        select(self.tx, df, false)?;
        self.df = df.name.clone();
        self.keys.clear();
        self.pin_verified = false;
        Ok(())
    }

    /// GET CHALLENGE of `len` bytes.
    pub fn challenge(&mut self, len: u32) -> Result<Vec<u8>, Error> {
        command::challenge(self.tx, len)
    }

    /// CARD-PROFILE §6.2 with the current DF's key `key` (profile name), cryptogram from the security module.
    pub fn external_auth(&mut self, key: &str) -> Result<(), Error> {
        let inventory = key_name(&self.df, key);
        if !self.sm.has_key(&self.ctx, &inventory) {
            return Err(Error::MissingKey { key: inventory });
        }
        let kid = self.kid(key)?;
        let (sm, ctx) = (self.sm, &self.ctx);
        let resp = command::authenticate(self.tx, kid, |r, x| sm.external_auth(ctx, &inventory, r, x))?;
        self.authenticated(key, resp.sw())
    }

    /// EXTERNAL AUTHENTICATE with a given cryptogram (the challenge was fetched before).
    pub fn external_auth_with(&mut self, key: &str, c: &[u8; 8], x: &[u8; 8]) -> Result<(), Error> {
        let kid = self.kid(key)?;
        let resp = self.tx.exchange(&command::external_authenticate(kid, c, x)?)?;
        self.authenticated(key, resp.sw())
    }

    /// The kid of the current DF's key `key`.
    fn kid(&self, key: &str) -> Result<u8, Error> {
        self.df_spec(&self.df.clone())?
            .key(key)
            .map(|k| k.kid)
            .ok_or_else(|| Error::MissingKey { key: key_name(&self.df, key) })
    }

    /// The card's answer to EXTERNAL AUTHENTICATE with `key`: the security state, or the error with tries left.
    fn authenticated(&mut self, key: &str, sw: StatusWord) -> Result<(), Error> {
        match sw {
            StatusWord::OK => {
                self.keys.insert(key.to_owned());
                Ok(())
            }
            sw => Err(match sw.tries_left() {
                Some(tries_left) => Error::AuthFailed { key: key_name(&self.df, key), tries_left },
                None => Error::from_status(sw),
            }),
        }
    }

    /// VERIFY with the operation's PIN.
    pub fn verify_own_pin(&mut self) -> Result<bool, Error> {
        let Some(pin) = self.pin else { return Ok(false) };
        self.verify(pin)?;
        Ok(true)
    }

    /// Whether `access` is met now, without sending anything.
    pub fn is_met(&self, access: &Access) -> bool {
        match access {
            Access::Free => true,
            Access::Pin => self.pin_verified,
            Access::Key(k) => self.keys.contains(k),
            Access::PinOrKey(k) => self.pin_verified || self.keys.contains(k),
            Access::PinAndKey(k) => self.pin_verified && self.keys.contains(k),
            Access::Never => false,
        }
    }

    /// Whether `access` can be met with the module's keys or the operation's PIN.
    pub fn can_meet(&self, access: &Access) -> bool {
        let has = |k: &str| self.keys.contains(k) || self.sm.has_key(&self.ctx, &key_name(&self.df, k));
        let pin = self.pin_verified || self.pin.is_some();
        match access {
            Access::Free => true,
            Access::Pin => pin,
            Access::Key(k) => has(k),
            Access::PinOrKey(k) => pin || has(k),
            Access::PinAndKey(k) => pin && has(k),
            Access::Never => false,
        }
    }

    /// Meets `access` in the current DF: external authentication with the module's key, or the PIN.
    pub fn meet(&mut self, access: &Access) -> Result<(), Error> {
        if self.is_met(access) {
            return Ok(());
        }
        let missing = |k: &str, df: &str| Error::MissingKey { key: key_name(df, k) };
        match access {
            Access::Free => Ok(()),
            Access::Pin => {
                if self.verify_own_pin()? {
                    Ok(())
                } else {
                    Err(Error::Card(StatusWord::SECURITY_NOT_SATISFIED))
                }
            }
            Access::Key(k) => self.external_auth(k),
            Access::PinOrKey(k) => {
                if self.sm.has_key(&self.ctx, &key_name(&self.df, k)) {
                    self.external_auth(k)
                } else if self.verify_own_pin()? {
                    Ok(())
                } else {
                    Err(missing(k, &self.df))
                }
            }
            Access::PinAndKey(k) => {
                if !self.pin_verified && !self.verify_own_pin()? {
                    return Err(Error::Card(StatusWord::SECURITY_NOT_SATISFIED));
                }
                if !self.keys.contains(k) {
                    self.external_auth(k)?;
                }
                Ok(())
            }
            Access::Never => Err(Error::Card(StatusWord::SECURITY_NOT_SATISFIED)),
        }
    }

    /// CARD-PROFILE §6.3 in SSSE, checked by the security module.
    pub fn internal_auth(&mut self) -> Result<(), Error> {
        let r1: [u8; 8] = rand::random();
        let r2: [u8; 8] = rand::random();
        let answer = self.internal_auth_raw(&r1, &r2)?;
        self.sm.check_internal_auth(&self.ctx, &r1, &r2, &answer)
    }

    /// INTERNAL AUTHENTICATE `R1 ‖ R2` in SSSE; the card's 8-byte answer.
    pub fn internal_auth_raw(&mut self, r1: &[u8; 8], r2: &[u8; 8]) -> Result<Vec<u8>, Error> {
        self.select_df(SSSE)?;
        let answer = self.tx.exchange_ok(&command::internal_authenticate(r1, r2)?)?;
        if answer.len() != 8 {
            return Err(crate::apdu::ProtocolError::Unexpected("internal authentication answer is not 8 bytes").into());
        }
        Ok(answer)
    }

    /// A PIN as the card stores it: BCD of the profile's length, `F`-padded (CARD-PROFILE §4 VERIFY).
    pub fn pin_bytes(&self, pin: &SecretString) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        let digits = pin.expose_secret();
        let len = self.profile.pin.length;
        if digits.len() < 4 || digits.len() > len * 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadParameter(format!("a PIN is 4 to {} digits", len * 2)));
        }
        Ok(zeroize::Zeroizing::new(encode_cn(digits, len)?))
    }

    /// Exchange; a non-9000 answer becomes an error.
    pub fn send(&mut self, cmd: &Command) -> Result<Vec<u8>, Error> {
        self.tx.exchange_ok(cmd)
    }

    /// Exchange, status word left to the caller.
    pub fn send_raw(&mut self, cmd: &Command) -> Result<Response, Error> {
        self.tx.exchange(cmd)
    }
}

/// SELECT by AID (CARD-PROFILE §4); `6A82` means this is not the application: wrong card type for SSSE.
fn select(tx: &mut dyn CardTransaction, df: &Df, ssse: bool) -> Result<Vec<u8>, Error> {
    let aid = df.aid.as_deref().ok_or_else(|| Error::BadParameter(format!("{} has no AID", df.name)))?;
    let resp = tx.exchange(&command::select_by_name(aid)?)?;
    match resp.sw() {
        StatusWord::OK => Ok(resp.into_data()),
        StatusWord::FILE_NOT_FOUND if ssse => Err(Error::UnknownCard("no SSSE application".into())),
        sw => Err(Error::from_status(sw)),
    }
}

/// What the SSSE FCI says about the card (CARD-PROFILE §4.2).
///
/// A real card answers `6F 84 <AID> A5 (88 <SFI>, 9F0C (86 <algorithm>))`: the algorithm (`01` 3DES,
/// `02` SSF33 — refused, `03` SM4, `04` AES [P]) but no spec version. A COS that follows this project's
/// earlier profile decision may also carry `9F08` = `0g00` (or `0g`), the spec version g.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Detected {
    pub generation: Option<Generation>,
    pub algorithm: Option<Algorithm>,
}

impl Detected {
    /// What the SSSE FCI `fci` says. No FCI (empty data) says nothing; a malformed one is the card's fault
    /// ([`TlvError::BadFci`], or [`TlvError::NotFci`] when it is not one `6F` template): an `A5`, `9F0C` or `86`
    /// that does not parse, an `86` that is not one byte or names no algorithm. `86` = `02` (SSF33) is a known
    /// algorithm this crate does not implement ([`CryptoError::UnsupportedAlgorithm`]).
    pub fn from_fci(fci: &[u8]) -> Result<Detected, Error> {
        let bad = |reason: String| Error::Tlv(TlvError::BadFci { reason });
        let parsed = parse_fci(fci).map_err(|e| match e {
            e @ TlvError::NotFci { .. } => Error::Tlv(e),
            e => bad(e.to_string()),
        })?;
        let Some(prop) = parsed.and_then(|f| f.proprietary) else {
            return Ok(Detected::default());
        };
        let tlvs =
            parse_ber(&prop, Limits::default()).map_err(|e| bad(format!("in A5 (proprietary template): {e}")))?;
        let generation = find(&tlvs, &[0x9F, 0x08]).and_then(primitive_value).and_then(|v| match v {
            [g] | [g, 0x00] => Generation::new(*g),
            _ => None,
        });
        let algorithm = match find(&tlvs, &[0x9F, 0x0C]).and_then(primitive_value) {
            None => None,
            Some(dd) => {
                let inner = parse_ber(dd, Limits::default())
                    .map_err(|e| bad(format!("in 9F0C (issuer discretionary data): {e}")))?;
                find(&inner, &[0x86]).and_then(primitive_value).map(<[u8]>::to_vec)
            }
        };
        let algorithm = match algorithm.as_deref() {
            None => None,
            Some([SSF33]) => return Err(CryptoError::UnsupportedAlgorithm(SSF33).into()),
            Some([id]) => Some(Algorithm::from_id(*id).map_err(|_| {
                bad(format!("86 (algorithm) is {id:02X}, none of 01 (3DES), 02 (SSF33), 03 (SM4), 04 (AES-128)"))
            })?),
            Some(v) => {
                return Err(bad(format!("86 (algorithm) is {} bytes ({}), not 1", v.len(), hex::encode_upper(v))))
            }
        };
        Ok(Detected { generation, algorithm })
    }
}

/// The SSF33 algorithm id in an FCI's `86` (CARD-PROFILE §1): known, not supported.
const SSF33: u8 = 0x02;

/// The generation of an EF05 tag 03 value (CARD-PROFILE §4.2).
fn generation_of_spec_version(value: &[u8]) -> Result<Generation, Error> {
    let version = decode_an(value).map_err(Error::CardData)?;
    Generation::from_spec_version(&version).ok_or_else(|| Error::UnknownCard(format!("spec version {version:?}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const AID: &str = "840F 7378312E73682EC9E7BBE1B1A3D5CF";

    /// The reason of a [`TlvError::BadFci`], or a panic.
    fn bad_fci(fci: &str) -> String {
        match Detected::from_fci(&h(fci)) {
            Err(Error::Tlv(TlvError::BadFci { reason })) => reason,
            other => panic!("{fci}: {other:?}"),
        }
    }

    #[test]
    fn the_real_cards_fci_gives_the_algorithm() {
        // CARD-PROFILE §4.2, a public trace
        let d = Detected::from_fci(&h(&format!("6F1C {AID} A509 8801 1E 9F0C03 860103"))).unwrap();
        assert_eq!(d, Detected { generation: None, algorithm: Some(Algorithm::Sm4) });
        let d = Detected::from_fci(&h(&format!("6F1E {AID} A50B 9F0802 0200 9F0C03 860101"))).unwrap();
        assert_eq!(d, Detected { generation: Generation::new(2), algorithm: Some(Algorithm::Tdes) });
        assert_eq!(Detected::from_fci(&[]).unwrap(), Detected::default());
        assert_eq!(Detected::from_fci(&h(&format!("6F11 {AID}"))).unwrap(), Detected::default());
    }

    #[test]
    fn a_malformed_fci_is_the_cards_fault_and_says_where() {
        // 86 of two bytes
        let r = bad_fci(&format!("6F1D {AID} A50A 8801 1E 9F0C04 86020300"));
        assert_eq!(r, "86 (algorithm) is 2 bytes (0300), not 1");
        // 86 naming no algorithm
        let r = bad_fci(&format!("6F1C {AID} A509 8801 1E 9F0C03 86017F"));
        assert!(r.contains("86 (algorithm) is 7F, none of 01"), "{r}");
        // A5 whose length runs past the 6F
        let r = bad_fci(&format!("6F1C {AID} A519 8801 1E 9F0C03 860103"));
        assert!(r.contains("needs") && r.contains("more bytes"), "{r}");
        // 6F whose length runs past the answer
        assert_eq!(bad_fci(&format!("6FFF {AID} A509 8801 1E 9F0C03 860103")), "invalid length field at offset 1");
        // inside A5 (the pre-scan looks into constructed objects), and inside 9F0C (primitive: parsed here)
        assert!(bad_fci(&format!("6F17 {AID} A504 9F0C05 86")).contains("more bytes"));
        let r = bad_fci(&format!("6F19 {AID} A506 9F0C03 860503"));
        assert!(r.starts_with("in 9F0C (issuer discretionary data): "), "{r}");
        // not a 6F template at all
        assert!(matches!(Detected::from_fci(&h("8400")), Err(Error::Tlv(TlvError::NotFci { .. }))));
        // SSF33: known, not supported
        assert!(matches!(
            Detected::from_fci(&h(&format!("6F19 {AID} A506 9F0C03 860102"))),
            Err(Error::Crypto(CryptoError::UnsupportedAlgorithm(0x02)))
        ));
    }
}
