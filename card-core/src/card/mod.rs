//! The social security application on a card: [`SocialSecurityCard`] over any [`Transport`].
//!
//! Every operation is one PC/SC transaction that starts from scratch: SELECT SSSE (learning the generation),
//! then selects, authenticates and reads what it needs. No security state is carried from one operation to the
//! next; a card removed mid-operation surfaces as `Error::Transport(TransportError::CardRemoved)` and the next
//! operation, after re-insertion, starts clean.
//!
//! # Generation detection (CARD-PROFILE §4.2)
//!
//! A real card's SSSE FCI names the **algorithm** (`A5` → `9F0C` → `86`: `01` 3DES, `03` SM4) but not the spec
//! version. An SM4 card is handled as generation 3 at once. A 3DES card is generation 1 or 2: reading the basic
//! information learns which from EF05 tag 03 in the same READ that fetches EF05; other operations read EF05
//! record 3 right after SELECT (one more APDU). A card whose FCI names no algorithm gets the same READ of
//! record 3. A spec version `9F08` in the FCI (an option of card-sim, this project's earlier profile decision)
//! is used when present.
//!
//! # Read all records \[P\]
//!
//! READ RECORD "all from P1" (`00 B2 P1 SFI<<3|101 00`) returns a linear EF's records back to back. Whether a
//! card supports it is learnt on first use (`6A86` = no) and cached per card (by ATR) in the
//! [`SocialSecurityCard`] value; afterwards records are read one by one. APDU counts of
//! [`SocialSecurityCard::read_basic`] (tested):
//!
//! | card | with read-all | without |
//! |---|---|---|
//! | gen 1/2 (FCI `86` = 3DES) | 3: SELECT, EF05, EF06 | 16 (first read: 1 + 1 probe + 7 + 7), then 15 |
//! | gen 3 (FCI `86` = SM4), RKSSSE held | 5: SELECT, EF05, GET CHALLENGE, EXTERNAL AUTHENTICATE, EF06 | 18 |
//! | gen 3, no keys | 2: SELECT, EF05 (holder data withheld, national −2203) | 9 |
//!
//! # Use (what a terminal agent does)
//!
//! ```no_run
//! # fn main() -> Result<(), card_core::Error> {
//! use card_core::card::{SocialSecurityCard, TerminalIds};
//! use card_core::security::NoKeys;
//! use card_core::transport::{PcscTransport, ReaderSelector, RecordingTransport};
//!
//! let reader = ReaderSelector::Name("Virtual PCD 00 00".into());
//! let transport = RecordingTransport::counting(PcscTransport::connect(&reader)?);
//! let terminal = TerminalIds { terminal_no: "371700000001".into(), device_no: "D01".into() };
//! // keep one per reader: it caches the read-all probe per card
//! let mut card = SocialSecurityCard::new(transport).with_terminal(terminal.clone());
//!
//! // iReadCardBas: keys from a LocalKeys (or NoKeys: a gen 3 card then answers with −2203)
//! let info = card.read_basic(&NoKeys)?;
//! println!("{} {} apdus={}", info.national(&terminal), info.national_code(), card.transport().counters().apdus);
//!
//! // the two-step exchange: Step 1 to the back end, its answer back, within one transaction
//! let session = card.begin_two_step()?;
//! let answer: String = ask_back_end(&session.step1());
//! let info = session.finish(&answer)?;
//! # let _ = info; Ok(()) }
//! # fn ask_back_end(_: &str) -> String { String::new() }
//! ```
//!
//! Errors map to the national codes with [`crate::national::code`].
//!
//! # Modules
//!
//! [`basic`]: [`BasicInfo`] and the national `iReadCardBas` string; [`address`]: the national file address
//! syntax; `records`: record and binary reads; `pin`: PIN commands and application block.

pub mod address;
pub mod basic;
mod pin;
mod records;
mod session;
mod two_step;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use crate::crypto::Algorithm;
use crate::profile::{Generation, Profile};
use crate::security::key_service::{Backend, Operation, Query};
use crate::security::SecurityModule;
use crate::transport::pinpad::{self, PadTimeouts, ReaderFeatures};
use crate::transport::{CardTransaction, PinEntryError, Transport};
use crate::Error;

pub use address::{Address, FileAddress, ItemValues};
pub use basic::{BasicInfo, HolderText, NameItems, NationalBasic, TerminalIds};
pub use two_step::{TwoStepPin, TwoStepRead, TwoStepReadItems, TwoStepWrite};

use session::Session;

/// The card identifier (EF05 tag 01) in an open session, before anything else: `None` when its access rule is not
/// met yet or the card refuses the READ RECORD; a link failure is an error.
fn read_card_id(s: &mut Session<'_>) -> Result<Option<Vec<u8>>, Error> {
    const CARD_ID: u8 = 0x01;
    let profile: &Profile = s.profile();
    let g = s.generation();
    let Some(ef) = profile.df(session::SSSE).and_then(|df| df.ef("EF05")) else { return Ok(None) };
    let Some((record, item)) = ef.record_of(g, CARD_ID) else { return Ok(None) };
    let free = s.is_met(ef.read.for_generation(g)) && item.read.as_ref().is_none_or(|r| s.is_met(r.for_generation(g)));
    if !free {
        return Ok(None);
    }
    let resp = s.send_raw(&crate::command::read_record(record, ef.sfi)?)?;
    if resp.sw() != crate::apdu::StatusWord::OK {
        return Ok(None);
    }
    Ok(crate::tlv::RecordTlv::parse(resp.data()).ok().filter(|r| r.tag == CARD_ID).map(|r| r.value))
}

/// What an operation learnt of a card that the next one on the same card (same ATR) can use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CardFacts {
    /// Whether READ RECORD "all" works (`None`: not tried yet).
    pub read_all: Option<bool>,
    /// The generation, once known (a 3DES card's FCI does not tell 1 from 2: EF05 record 3 does).
    pub generation: Option<Generation>,
}

/// What SELECT SSSE tells about a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardInfo {
    /// Generation (spec version).
    pub generation: Generation,
    /// Algorithm of the generation.
    pub algorithm: Algorithm,
    /// ATR historical bytes.
    pub historical_bytes: Vec<u8>,
    /// Whether the card supports READ RECORD "all from P1", if known yet.
    pub read_all: Option<bool>,
}

/// The social security application of the card in a reader.
///
/// Holds the transport, the card profile, the terminal identifiers of the national string and, per card (by
/// ATR), whether READ RECORD "all" works and the generation once learnt. Keep one per reader.
pub struct SocialSecurityCard<T> {
    transport: T,
    profile: Arc<Profile>,
    terminal: TerminalIds,
    /// What was learnt of each card (by ATR): READ RECORD "all" support, the generation.
    cards: HashMap<Vec<u8>, CardFacts>,
    /// Inside [`SocialSecurityCard::identified`]: the card identifier the latest operation read.
    identify: Option<Option<Vec<u8>>>,
}

impl<T: Transport> SocialSecurityCard<T> {
    /// With the built-in profile and empty terminal identifiers.
    pub fn new(transport: T) -> Self {
        SocialSecurityCard::with_profile(transport, Arc::new(Profile::builtin().clone()))
    }

    /// With a deployment's profile.
    pub fn with_profile(transport: T, profile: Arc<Profile>) -> Self {
        SocialSecurityCard {
            transport,
            profile,
            terminal: TerminalIds::default(),
            cards: HashMap::new(),
            identify: None,
        }
    }

    /// Sets the terminal identifiers printed in the national string (configuration).
    pub fn with_terminal(mut self, terminal: TerminalIds) -> Self {
        self.terminal = terminal;
        self
    }

    /// The terminal identifiers.
    pub fn terminal(&self) -> &TerminalIds {
        &self.terminal
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The transport (e.g. to read its counters).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Whether the card now in the reader supports READ RECORD "all", if known.
    pub fn read_all_support(&self) -> Option<bool> {
        self.cards.get(self.transport.atr()).and_then(|f| f.read_all)
    }

    /// Runs `op` in one transaction on a freshly selected SSSE.
    fn run<R>(
        &mut self,
        sm: &dyn SecurityModule,
        pin: Option<&SecretString>,
        op: impl FnOnce(&mut Session<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.run_with(sm, pin, true, op)
    }

    /// [`Self::run`]; `need_generation` false lets a 3DES card's generation wait for the caller's EF05 read.
    fn run_with<R>(
        &mut self,
        sm: &dyn SecurityModule,
        pin: Option<&SecretString>,
        need_generation: bool,
        op: impl FnOnce(&mut Session<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let SocialSecurityCard { transport, profile, cards, identify, .. } = self;
        let mut tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        let mut s = Session::open(&mut *tx, profile, sm, pin, cache, need_generation)?;
        if let Some(id) = identify.as_mut() {
            *id = read_card_id(&mut s)?;
        }
        op(&mut s)
    }

    /// Runs `op` (operations of this card) with each operation also reading the card identifier (EF05 tag 01,
    /// CARD-PROFILE §3) right after its SELECT SSSE, inside the operation's own transaction: one READ RECORD more,
    /// no transaction of its own. Gives back the identifier the last operation read, even when `op` failed after
    /// the read, with `op`'s result.
    ///
    /// The identifier is `None` when no operation got that far, when the profile protects the item beyond what
    /// the operation has met at that point (nothing: it is read before any authentication), or when the card
    /// refuses the read; a link failure during the read fails the operation. The two-step exchanges are not
    /// covered (their Step 1 reads the identifier anyway), and [`Self::read_basic`] needs none of it: its
    /// [`BasicInfo::card_id`] is the same item.
    pub fn identified<R>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<R, Error>,
    ) -> (Option<Vec<u8>>, Result<R, Error>) {
        let outer = self.identify.replace(None);
        let result = op(self);
        let id = std::mem::replace(&mut self.identify, outer).flatten();
        (id, result)
    }

    /// SELECT SSSE: generation, algorithm, historical bytes. 1 APDU for an SM4 card, 2 for a 3DES card (EF05
    /// record 3 tells generation 1 from 2) or a card whose FCI names no algorithm.
    pub fn detect(&mut self) -> Result<CardInfo, Error> {
        let info = self.run(&crate::security::NoKeys, None, |s| Ok(s.card_info()))?;
        Ok(CardInfo { read_all: self.read_all_support(), ..info })
    }

    /// Reads the basic information (EF05, EF06; see the APDU counts above).
    ///
    /// A generation 3 card whose RKSSSE the module does not hold still answers: the card number and the holder
    /// fields are `None` and [`BasicInfo::withheld`] names the key (national −2203).
    pub fn read_basic(&mut self, sm: &dyn SecurityModule) -> Result<BasicInfo, Error> {
        // EF05 holds the spec version: a 3DES card's generation comes from that read, not one of its own
        self.run_with(sm, None, false, basic::read)
    }

    /// Reads the items of a national address; values mirror the address ([`ItemValues::to_national`]).
    /// Files readable with `pin|key` use the key when the module holds it, else `pin` if given.
    pub fn read_items(
        &mut self,
        sm: &dyn SecurityModule,
        address: &Address,
        pin: Option<&SecretString>,
    ) -> Result<ItemValues, Error> {
        self.run(sm, pin, |s| address::read(s, address))
    }

    /// Writes items: `data` mirrors `address` (`SSSEEF06|张三|$` for `SSSEEF06|09|$`); each file's update key
    /// (UKMF, `UK_DFxx`) is authenticated first. Values are encoded at their full length (CARD-PROFILE §2.3).
    pub fn write_items(&mut self, sm: &dyn SecurityModule, address: &Address, data: &str) -> Result<(), Error> {
        let values = ItemValues::parse(address, data)?;
        self.run(sm, None, |s| address::write(s, &values))
    }

    /// Reads a transparent EF whole (photo `SSSEEF08`, fingerprint `SSSEEF07`, `DF01EF16`…) in 256-byte chunks.
    pub fn read_binary(&mut self, sm: &dyn SecurityModule, file: &str) -> Result<Vec<u8>, Error> {
        self.run(sm, None, |s| records::read_file_binary(s, file))
    }

    /// Writes `data` at the start of a transparent EF in chunks (the rest of the file is left as it is).
    pub fn write_binary(&mut self, sm: &dyn SecurityModule, file: &str, data: &[u8]) -> Result<(), Error> {
        self.run(sm, None, |s| records::write_file_binary(s, file, data))
    }

    /// VERIFY PIN in SSSE. [`Error::WrongPin`] with the tries left, [`Error::PinBlocked`].
    pub fn verify_pin(&mut self, pin: &SecretString) -> Result<(), Error> {
        self.run(&crate::security::NoKeys, None, |s| pin::verify(s, pin))
    }

    /// CHANGE PIN (`80 5E 01 00 OLD FF NEW`): needs no prior VERIFY; a wrong old PIN counts as a wrong PIN.
    pub fn change_pin(&mut self, old: &SecretString, new: &SecretString) -> Result<(), Error> {
        self.run(&crate::security::NoKeys, None, |s| pin::change(s, old, new))
    }

    /// Whether the reader has a PIN pad for VERIFY (PC/SC part 10 `FEATURE_VERIFY_PIN_DIRECT`): the reader's
    /// feature request in a transaction of its own, no APDU. `false` for a transport without a reader (card-sim)
    /// and a reader whose driver has no part 10 features (vsmartcard-vpcd).
    pub fn has_pin_pad(&mut self) -> Result<bool, Error> {
        let mut tx = self.transport.transaction()?;
        Ok(pinpad::features(&mut *tx)?.has_pin_pad())
    }

    /// VERIFY PIN in SSSE with the PIN typed on the reader's pad (`FEATURE_VERIFY_PIN_DIRECT`, CARD-PROFILE §7
    /// `iVerifyPIN`): the PIN never reaches the host. [`PinEntryError::NoPinPad`] (before any APDU) when the reader
    /// has no pad, so that the caller can ask for the PIN another way; the pad's timeout, cancel, … as
    /// [`Error::PinEntry`]; the card's answer as [`Self::verify_pin`] gives it ([`Error::WrongPin`] …).
    pub fn verify_pin_on_pad(&mut self, timeouts: PadTimeouts) -> Result<(), Error> {
        self.on_pad(pinpad::Feature::VERIFY_PIN_DIRECT, |tx, features, spec| {
            pin::verify_on_pad(tx, features, spec, timeouts)
        })
    }

    /// CHANGE PIN with the current PIN and the new one (twice) typed on the reader's pad
    /// (`FEATURE_MODIFY_PIN_DIRECT`, `iChangePIN`); as [`Self::verify_pin_on_pad`] ([`PinEntryError::NoPinPad`] when
    /// the reader cannot modify a PIN; [`PinEntryError::Mismatch`] when the two entries of the new PIN differ).
    pub fn change_pin_on_pad(&mut self, timeouts: PadTimeouts) -> Result<(), Error> {
        self.on_pad(pinpad::Feature::MODIFY_PIN_DIRECT, |tx, features, spec| {
            pin::change_on_pad(tx, features, spec, timeouts)
        })
    }

    /// Runs a PIN pad operation in one transaction: the reader's features (no pad with `needed` → no APDU, an
    /// error), then SELECT SSSE (and the card identifier inside [`Self::identified`]), then `op` on the transaction.
    fn on_pad<R>(
        &mut self,
        needed: pinpad::Feature,
        op: impl FnOnce(&mut dyn CardTransaction, &ReaderFeatures, &crate::profile::PinSpec) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let SocialSecurityCard { transport, profile, cards, identify, .. } = self;
        let mut tx = transport.transaction()?;
        let features = pinpad::features(&mut *tx)?;
        if features.code(needed).is_none() {
            return Err(PinEntryError::NoPinPad.into());
        }
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        {
            // SELECT SSSE: the PIN lives there; the session's security state is not needed afterwards
            let mut s = Session::open(&mut *tx, profile, &crate::security::NoKeys, None, cache, true)?;
            if let Some(id) = identify.as_mut() {
                *id = read_card_id(&mut s)?;
            }
        }
        op(&mut *tx, &features, &profile.pin)
    }

    /// RELOAD PIN (`80 5E 00 00 NEW MAC`, MAC with RLK, IV zero): sets the PIN and its tries; also unblocks.
    pub fn reload_pin(&mut self, sm: &dyn SecurityModule, new: &SecretString) -> Result<(), Error> {
        self.run(sm, None, |s| pin::reload(s, new))
    }

    /// RELOAD PIN with the MAC from `backend` (the key service holds RLK): the card named by a Step1 string,
    /// the new PIN sent inside the service's TLS connection (the national HSM form carries it the same way).
    pub fn reload_pin_via(&mut self, backend: &dyn Backend, new: &SecretString) -> Result<(), Error> {
        self.run(&crate::security::NoKeys, None, |s| pin::reload_via(s, backend, new))
    }

    /// PIN UNBLOCK with the secure data and MAC from `backend` (the key service holds PUK), for the card's
    /// fresh challenge.
    pub fn unblock_pin_via(&mut self, backend: &dyn Backend, new: &SecretString) -> Result<(), Error> {
        self.run(&crate::security::NoKeys, None, |s| pin::unblock_via(s, backend, new))
    }

    /// PIN UNBLOCK (`84 24`, the new PIN as secure data under PUK, MAC under PUK with a fresh challenge).
    pub fn unblock_pin(&mut self, sm: &dyn SecurityModule, new: &SecretString) -> Result<(), Error> {
        self.run(sm, None, |s| pin::unblock(s, new))
    }

    /// APPLICATION BLOCK of `df` (`SSSE`, `DF01`, …) with its STK.
    pub fn block_application(&mut self, sm: &dyn SecurityModule, df: &str) -> Result<(), Error> {
        self.run(sm, None, |s| pin::application(s, df, true))
    }

    /// APPLICATION UNBLOCK of `df` with its STK.
    pub fn unblock_application(&mut self, sm: &dyn SecurityModule, df: &str) -> Result<(), Error> {
        self.run(sm, None, |s| pin::application(s, df, false))
    }

    /// INTERNAL AUTHENTICATE in SSSE with fresh `R1 ‖ R2`: proves the card genuine against the region's IRK.
    /// [`Error::InternalAuthFailed`] when the answer does not match.
    pub fn authenticate_card(&mut self, sm: &dyn SecurityModule) -> Result<(), Error> {
        self.run(sm, None, |s| s.internal_auth())
    }

    /// Reads the basic information, through the key service when it must: with `sm` for a card it can read (a
    /// generation 1 or 2 card, or a module holding RKSSSE); a generation 3 card at a terminal without RKSSSE goes
    /// through the two-step exchange with `backend`, in the same transaction (see `two_step::read_basic_via`).
    pub fn read_basic_via(&mut self, sm: &dyn SecurityModule, backend: &dyn Backend) -> Result<BasicInfo, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let mut tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        two_step::read_basic_via(&mut *tx, profile, cache, sm, backend)
    }

    /// Reads a transparent EF of SSSE whole (the photo `SSSEEF08`, the fingerprint `SSSEEF07`) as
    /// [`SocialSecurityCard::read_binary`] does, or — a generation 3 card whose RKSSSE `sm` does not hold —
    /// through the two-step exchange with `backend` in the same transaction (the key service's RKSSSE
    /// cryptogram, then the file).
    pub fn read_binary_via(
        &mut self,
        sm: &dyn SecurityModule,
        backend: &dyn Backend,
        file: &str,
    ) -> Result<Vec<u8>, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let mut tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        two_step::read_via(&mut *tx, profile, cache, sm, backend, |s| records::read_file_binary(s, file))
    }

    /// Writes items through the two-step exchange with `backend` (the key service computes the update key's
    /// cryptogram; one DF, one key per call): Step 1, the back end's answer and Step 2 in one transaction.
    pub fn write_items_via(&mut self, backend: &dyn Backend, address: &Address, data: &str) -> Result<(), Error> {
        let w = self.begin_two_step_write(address, data)?;
        let (step1, file) = (w.step1(), w.file());
        let answer = backend.answer(&Query { file: Some(&file), ..Query::new(Operation::Write, &step1) })?;
        w.finish(&answer.answer)
    }

    /// Starts the two-step read of the basic information for a terminal without keys (CARD-PROFILE §7):
    /// the returned value holds the card's transaction until [`TwoStepRead::finish`] or drop.
    pub fn begin_two_step(&mut self) -> Result<TwoStepRead<'_>, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        TwoStepRead::begin(tx, profile, cache)
    }

    /// Starts a two-step write of items (one DF, one update key) for a terminal without keys: the returned
    /// value holds the transaction; send [`TwoStepWrite::step1`] and [`TwoStepWrite::key`] to the back end and
    /// pass its answer to [`TwoStepWrite::finish`]. `data` is checked for the card before Step 1 ends.
    pub fn begin_two_step_write(&mut self, address: &Address, data: &str) -> Result<TwoStepWrite<'_>, Error> {
        self.begin_two_step_write_of(address, Some(data))
    }

    /// Starts a two-step write whose data comes with Step 2 (`iWriteCard_HSM_Step1/2`): pass the data and the
    /// external authentication's cryptogram to [`TwoStepWrite::finish_external`].
    pub fn begin_two_step_write_of(
        &mut self,
        address: &Address,
        data: Option<&str>,
    ) -> Result<TwoStepWrite<'_>, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        TwoStepWrite::begin(tx, profile, cache, address, data)
    }

    /// Starts RELOAD PIN (`unblock` false) or PIN UNBLOCK in three steps for a terminal without keys
    /// (`iReloadPIN_HSM_*`, `iUnblockPIN_HSM_*`): the returned value holds the transaction (see [`TwoStepPin`]).
    pub fn begin_two_step_pin(&mut self, unblock: bool) -> Result<TwoStepPin<'_>, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        TwoStepPin::begin(tx, profile, cache, unblock)
    }

    /// Starts a two-step read of items (one DF, one read key) for a terminal without keys
    /// (`iReadCard_HSM_Step1`): the returned value holds the transaction until [`TwoStepReadItems::finish`] or
    /// drop. Items every card gives freely: −2204 ([`Error::National`]), read them with [`Self::read_items`].
    pub fn begin_two_step_read_items(&mut self, address: &Address) -> Result<TwoStepReadItems<'_>, Error> {
        let SocialSecurityCard { transport, profile, cards, .. } = self;
        let tx = transport.transaction()?;
        let atr = tx.atr().to_vec();
        let cache = cards.entry(atr).or_default();
        TwoStepReadItems::begin(tx, profile, cache, address)
    }
}
