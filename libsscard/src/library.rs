//! The library's state and operations, in safe Rust: [`Library`] holds the configuration and one slot per reader
//! role; each operation takes the slot's mutex for its whole run (one card operation per reader at a time), keeps
//! the connection to the card between calls and connects again when the card it knew is gone.
//!
//! The two-step exchanges (`iReadCardBas_HSM_Step1/2`, `iReadCard_HSM_Step1/2`, `iWriteCard_HSM_Step1/2`) hold
//! the card between their steps: Step1 starts a thread that takes the reader's slot, opens the card's PC/SC
//! transaction, sends the Step1 string back and waits, still in the transaction, for Step2's answer — at most the
//! configured `hsm.timeout_secs`. Other calls on that reader wait meanwhile. One exchange is pending per process
//! (the published Step2 names no reader): a new Step1 abandons the pending one, which releases its card; a Step2
//! of another function than the pending Step1's is −14 and leaves it pending.

use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};

use card_core::card::{Address, BasicInfo, ItemValues, SocialSecurityCard};
use card_core::national::{self, BAD_PARAMETER, NO_ANSWER, UNSUPPORTED};
use card_core::security::SecurityModule;
use card_core::transport::pinpad::PadTimeouts;
use card_core::transport::{PcscTransport, ReaderSelector, TransportError};
use secrecy::SecretString;

use crate::config::Config;
use crate::text;

/// A card in a reader, as the library keeps it between calls.
type Card = SocialSecurityCard<PcscTransport>;

/// Why a call failed: the card or its link (card-core's error, coded by `national::code`), or the call itself
/// (a code of CARD-PROFILE §7 and what it means here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The operation failed on the card or its link.
    #[error(transparent)]
    Card(#[from] card_core::Error),
    /// The call was refused or failed before or around the card.
    #[error("{what} (national code {code})")]
    Code {
        /// The national code.
        code: i32,
        /// What failed.
        what: &'static str,
    },
}

impl Failure {
    /// A failure with this national code.
    pub fn code(code: i32, what: &'static str) -> Failure {
        Failure::Code { code, what }
    }

    /// The national code (CARD-PROFILE §7) the C function returns.
    pub fn national_code(&self) -> i32 {
        match self {
            Failure::Card(e) => national::code(e),
            Failure::Code { code, .. } => *code,
        }
    }
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Self {
        Failure::Card(e.into())
    }
}

impl Reply {
    /// 0 and the empty string.
    pub fn empty() -> Reply {
        Reply { code: national::OK, out: Vec::new() }
    }
}

/// What a successful call gives the caller: its return code (0, or −2203 for a read whose holder data was
/// withheld) and the output string's bytes (GBK, no NUL).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// The return code.
    pub code: i32,
    /// The output, GBK.
    pub out: Vec<u8>,
}

/// One reader role's reader and the card connected in it.
struct Slot {
    reader: ReaderSelector,
    card: Mutex<Option<Card>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("reader", &self.reader).finish_non_exhaustive()
    }
}

impl Slot {
    fn new(reader: ReaderSelector) -> Slot {
        Slot { reader, card: Mutex::new(None) }
    }

    /// The slot, exclusively. A poisoned lock (a panic during an operation) drops the connection it held.
    fn lock(&self) -> MutexGuard<'_, Option<Card>> {
        self.card.lock().unwrap_or_else(|poisoned: PoisonError<_>| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            self.card.clear_poison();
            guard
        })
    }
}

/// The card in the slot, connected again if the one known is gone (or none was).
fn connected<'g>(slot: &Slot, held: &'g mut Option<Card>, lib: &Library) -> Result<&'g mut Card, TransportError> {
    let card = match held.take() {
        Some(card) if card.transport().is_live() => card,
        _ => {
            let transport = PcscTransport::connect(&slot.reader)?;
            SocialSecurityCard::new(transport).with_terminal(lib.config.terminal.clone())
        }
    };
    Ok(held.insert(card))
}

/// Whether an error means the connection to the card must be made again, as the terminal agent's reader pool
/// decides ([`card_core::Error::is_link_lost`]).
fn link_lost(e: &card_core::Error) -> bool {
    e.is_link_lost()
}

/// Whether a reader can be passed over for the next one of an automatic `iType`: no card, or no such reader.
fn absent(e: &TransportError) -> bool {
    matches!(e, TransportError::NoCard(_) | TransportError::NoReader(_) | TransportError::NoReaders)
}

/// The two-step exchanges, as their Step2 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exchange {
    /// `iReadCardBas_HSM_*`.
    ReadBasic,
    /// `iReadCard_HSM_*`.
    ReadItems,
    /// `iWriteCard_HSM_*`.
    WriteItems,
    /// `iReloadPIN_HSM_Step2`, `iUnblockPIN_HSM_Step2` (`unblock`).
    PinStep2 { unblock: bool },
    /// `iReloadPIN_HSM_Step3`, `iUnblockPIN_HSM_Step3`.
    PinStep3 { unblock: bool },
}

impl Exchange {
    fn step2(self) -> &'static str {
        match self {
            Exchange::ReadBasic => "no iReadCardBas_HSM_Step1 is waiting for its Step2",
            Exchange::ReadItems => "no iReadCard_HSM_Step1 is waiting for its Step2",
            Exchange::WriteItems => "no iWriteCard_HSM_Step1 is waiting for its Step2",
            Exchange::PinStep2 { unblock: false } => "no iReloadPIN_HSM_Step1 is waiting for its Step2",
            Exchange::PinStep2 { unblock: true } => "no iUnblockPIN_HSM_Step1 is waiting for its Step2",
            Exchange::PinStep3 { unblock: false } => "no iReloadPIN_HSM_Step2 is waiting for its Step3",
            Exchange::PinStep3 { unblock: true } => "no iUnblockPIN_HSM_Step2 is waiting for its Step3",
        }
    }
}

/// What a Step1 starts on the card.
enum Start {
    ReadBasic,
    ReadItems { card_info: String, address: Address },
    WriteItems { card_info: String, address: Address },
    Pin { card_info: String, unblock: bool },
}

impl Start {
    fn exchange(&self) -> Exchange {
        match self {
            Start::ReadBasic => Exchange::ReadBasic,
            Start::ReadItems { .. } => Exchange::ReadItems,
            Start::WriteItems { .. } => Exchange::WriteItems,
            Start::Pin { unblock, .. } => Exchange::PinStep2 { unblock: *unblock },
        }
    }
}

/// Step2's answer (and a write's data, or a new PIN), to the thread holding the card.
struct Answer {
    answer: String,
    data: Option<String>,
    pin: Option<SecretString>,
    reply: mpsc::SyncSender<Result<Reply, Failure>>,
}

/// The library of this process.
pub struct Library {
    config: Config,
    contact: Slot,
    contactless: Option<Slot>,
    /// The pending two-step exchange: which, and where its Step2 answer goes.
    pending: Mutex<Option<(Exchange, mpsc::SyncSender<Answer>)>>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Library {
    /// The library over `config`.
    pub fn new(config: Config) -> Library {
        let contact = Slot::new(config.contact.clone());
        let contactless = config.contactless.clone().map(Slot::new);
        Library { config, contact, contactless, pending: Mutex::new(None) }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Lets go of the connected cards of the readers not in use now, and abandons a pending two-step read (for
    /// the end of the process).
    pub fn release(&self) {
        lock(&self.pending).take();
        for slot in [Some(&self.contact), self.contactless.as_ref()].into_iter().flatten() {
            if let Ok(mut held) = slot.card.try_lock() {
                *held = None;
            }
        }
    }

    /// The readers an `iType` tries, in order: 1 contact, 2 contactless (−13 when none is configured), 3 contact
    /// then contactless, 4 contactless then contact; anything else −14.
    fn order(&self, itype: i32) -> Result<Vec<&Slot>, Failure> {
        let contactless = self.contactless.as_ref();
        let no_contactless = || Failure::code(UNSUPPORTED, "no contactless reader is configured");
        Ok(match itype {
            1 => vec![&self.contact],
            2 => vec![contactless.ok_or_else(no_contactless)?],
            3 => [Some(&self.contact), contactless].into_iter().flatten().collect(),
            4 => [contactless, Some(&self.contact)].into_iter().flatten().collect(),
            _ => return Err(Failure::code(BAD_PARAMETER, "iType must be 1, 2, 3 or 4")),
        })
    }

    /// Runs `op` on the card of the first reader of `order` that holds one, with that reader's slot held. A reader
    /// is passed over only when it has no card or does not exist; otherwise the error of the last reader tried is
    /// the call's. `op` says with its result whether the link to the card was lost (the slot then drops it).
    fn on_first_card<R>(&self, order: Vec<&Slot>, op: impl FnOnce(&mut Card) -> (R, bool)) -> Result<R, Failure> {
        let last = order.len().saturating_sub(1);
        for (i, slot) in order.into_iter().enumerate() {
            let mut held = slot.lock();
            let card = match connected(slot, &mut held, self) {
                Ok(card) => card,
                Err(e) if i < last && absent(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let (result, lost) = op(card);
            if lost {
                *held = None;
            }
            return Ok(result);
        }
        Err(Failure::code(UNSUPPORTED, "no reader for this iType"))
    }

    /// Runs `op` on the card of the first reader of `itype`'s order that holds one (see [`Self::on_first_card`]).
    fn with_card<R>(
        &self,
        itype: i32,
        op: impl FnOnce(&mut Card, &dyn SecurityModule) -> Result<R, card_core::Error>,
    ) -> Result<R, Failure> {
        let order = self.order(itype)?;
        let result = self.on_first_card(order, |card| {
            let result = op(card, self.config.keys.as_ref());
            let lost = matches!(&result, Err(e) if link_lost(e));
            (result, lost)
        })?;
        result.map_err(|e| self.keys_failure(e))
    }

    /// A card error as the caller sees it: with no keys configured at all, a key other than RKSSSE (−2203) that
    /// an operation needs is −2201 (no PSAM: this counter has no key source), so that the caller switches to the
    /// `_HSM_` functions; with a key file that lacks the key it stays card-core's −24 (key level insufficient).
    fn keys_failure(&self, e: card_core::Error) -> Failure {
        match &e {
            card_core::Error::MissingKey { key } if self.config.no_keys && key != "RKSSSE" => {
                Failure::code(national::NO_PSAM, "no keys are configured (keys.mode = none): use the _HSM_ functions")
            }
            _ => Failure::Card(e),
        }
    }

    /// `iReadCardBas`: the 11-field national string and 0, or −2203 with the holder fields empty when the
    /// configured keys cannot read them (a generation 3 card without RKSSSE). With the key service configured, a
    /// generation 3 card is read through it (Step 1, its answer and Step 2 in the card's transaction).
    pub fn read_basic(&self, itype: i32) -> Result<Reply, Failure> {
        let service = self.config.key_service.as_ref();
        let info = self.with_card(itype, |card, sm| match service {
            Some(backend) => card.read_basic_via(sm, backend),
            None => card.read_basic(sm),
        })?;
        self.basic_reply(&info)
    }

    fn basic_reply(&self, info: &BasicInfo) -> Result<Reply, Failure> {
        let national_string = info.national(&self.config.terminal);
        Ok(Reply { code: info.national_code(), out: text::encode(national_string.as_str())? })
    }

    /// `iReadCard`: the values of `address`, mirroring it, after checking `card_info` (`卡识别码|卡号|`) against the
    /// card. The address and the card information are checked before the card is touched.
    pub fn read_card(&self, itype: i32, card_info: &str, address: &str) -> Result<Reply, Failure> {
        let address: Address = address.parse()?;
        national::check_card_info_shape(card_info)?;
        let values = self.with_card(itype, |card, sm| {
            card.read_basic(sm)?.check_card_info(card_info)?;
            card.read_items(sm, &address, None)
        })?;
        Ok(Reply { code: national::OK, out: text::encode(&values.to_national())? })
    }

    /// `iWriteCard`: writes `data` (mirroring `address`) after checking `card_info` against the card. Nothing
    /// is written unless every value is valid for its item. The output is empty. With the key service
    /// configured, its answer authenticates the write (one DF, one update key per call).
    pub fn write_card(&self, itype: i32, card_info: &str, address: &str, data: &str) -> Result<Reply, Failure> {
        let address: Address = address.parse()?;
        ItemValues::parse(&address, data)?;
        national::check_card_info_shape(card_info)?;
        let service = self.config.key_service.as_ref();
        self.with_card(itype, |card, sm| {
            card.read_basic(sm)?.check_card_info(card_info)?;
            match service {
                Some(backend) => card.write_items_via(backend, &address, data),
                None => card.write_items(sm, &address, data),
            }
        })?;
        Ok(Reply { code: national::OK, out: Vec::new() })
    }

    /// `iReadCardBas_HSM_Step1`: the Step1 string; the card stays held until Step2 or the timeout.
    pub fn read_step1(&'static self, itype: i32) -> Result<Reply, Failure> {
        self.step1(itype, Start::ReadBasic)
    }

    /// `iReadCard_HSM_Step1`: checks the address and `card_info` (against the card too), then the Step1 string of
    /// the exchange for the address's read key (−2204 when every item is free: use `iReadCard`).
    pub fn read_items_step1(&'static self, itype: i32, card_info: &str, address: &str) -> Result<Reply, Failure> {
        let address: Address = address.parse()?;
        national::check_card_info_shape(card_info)?;
        self.step1(itype, Start::ReadItems { card_info: card_info.to_owned(), address })
    }

    /// `iWriteCard_HSM_Step1`: checks the address and `card_info` (against the card too), then the Step1 string of
    /// the exchange for the files' update key.
    pub fn write_items_step1(&'static self, itype: i32, card_info: &str, address: &str) -> Result<Reply, Failure> {
        let address: Address = address.parse()?;
        national::check_card_info_shape(card_info)?;
        self.step1(itype, Start::WriteItems { card_info: card_info.to_owned(), address })
    }

    /// Starts an exchange: a thread holds the card (see the module's documentation) and sends Step1's string back.
    fn step1(&'static self, itype: i32, start: Start) -> Result<Reply, Failure> {
        let order = self.order(itype)?;
        let exchange = start.exchange();
        // a pending exchange is abandoned: its thread releases its card
        lock(&self.pending).take();
        let (answers, waiting) = mpsc::sync_channel::<Answer>(1);
        let (ticket, step1) = mpsc::sync_channel::<Result<String, Failure>>(1);
        std::thread::Builder::new()
            .name("sscard two-step".into())
            .spawn(move || {
                let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let outcome = self.on_first_card(order, |card| ((), self.hold(card, &start, &ticket, &waiting)));
                    if let Err(e) = outcome {
                        let _ = ticket.send(Err(e));
                    }
                }));
                if held.is_err() {
                    let _ = ticket.try_send(Err(Failure::code(crate::INTERNAL_ERROR, "the two-step thread failed")));
                }
            })
            .map_err(|_| Failure::code(crate::INTERNAL_ERROR, "cannot start the two-step thread"))?;
        let step1 = step1.recv().map_err(|_| Failure::code(crate::INTERNAL_ERROR, "the two-step thread failed"))??;
        *lock(&self.pending) = Some((exchange, answers));
        Ok(Reply { code: national::OK, out: text::encode(&step1)? })
    }

    /// The two-step thread on the card: Step 1, then the wait for Step 2 in the card's transaction. Returns whether
    /// the link to the card was lost.
    fn hold(
        &self,
        card: &mut Card,
        start: &Start,
        ticket: &mpsc::SyncSender<Result<String, Failure>>,
        waiting: &mpsc::Receiver<Answer>,
    ) -> bool {
        let failed = |e: card_core::Error| {
            let lost = link_lost(&e);
            let _ = ticket.send(Err(e.into()));
            lost
        };
        let checked =
            |card: &mut Card, card_info: &str| card.read_basic(self.config.keys.as_ref())?.check_card_info(card_info);
        match start {
            Start::ReadBasic => match card.begin_two_step() {
                Err(e) => failed(e),
                Ok(session) => self.wait(session.step1(), ticket, waiting, |answer| {
                    let info = session.finish(&answer.answer)?;
                    self.basic_reply(&info)
                }),
            },
            Start::ReadItems { card_info, address } => {
                match checked(card, card_info).and_then(|()| card.begin_two_step_read_items(address)) {
                    Err(e) => failed(e),
                    Ok(session) => self.wait(session.step1(), ticket, waiting, |answer| {
                        let values = session.finish(&answer.answer)?;
                        Ok(Reply { code: national::OK, out: text::encode(&values.to_national())? })
                    }),
                }
            }
            Start::WriteItems { card_info, address } => {
                match checked(card, card_info).and_then(|()| card.begin_two_step_write_of(address, None)) {
                    Err(e) => failed(e),
                    Ok(session) => self.wait(session.step1(), ticket, waiting, |answer| {
                        let data = answer.data.as_deref().unwrap_or_default();
                        session.finish_external(data, &answer.answer)?;
                        Ok(Reply { code: national::OK, out: Vec::new() })
                    }),
                }
            }
            Start::Pin { card_info, unblock } => {
                match checked(card, card_info).and_then(|()| card.begin_two_step_pin(*unblock)) {
                    Err(e) => failed(e),
                    Ok(mut session) => {
                        let step1 = session.step1();
                        let mut step2_ok = false;
                        let lost = self.wait(step1, ticket, waiting, |answer| {
                            let pin = answer.pin.as_ref().ok_or(Failure::code(BAD_PARAMETER, "no new PIN"))?;
                            let request = session.step2(pin)?;
                            step2_ok = true;
                            Ok(Reply { code: national::OK, out: text::encode(&request)? })
                        });
                        if lost || !step2_ok {
                            return lost;
                        }
                        match waiting.recv_timeout(self.config.hsm_timeout) {
                            Ok(answer) => {
                                let result = session.finish(&answer.answer);
                                let lost = matches!(&result, Err(e) if link_lost(e));
                                let _ = answer.reply.send(result.map(|()| Reply::empty()).map_err(Failure::from));
                                lost
                            }
                            Err(_) => false,
                        }
                    }
                }
            }
        }
    }

    /// Sends Step 1's string and waits for Step 2 (at most `hsm.timeout_secs`), then finishes with its answer.
    /// Returns whether the link to the card was lost.
    fn wait(
        &self,
        step1: String,
        ticket: &mpsc::SyncSender<Result<String, Failure>>,
        waiting: &mpsc::Receiver<Answer>,
        finish: impl FnOnce(&Answer) -> Result<Reply, Failure>,
    ) -> bool {
        if ticket.send(Ok(step1)).is_err() {
            return false;
        }
        match waiting.recv_timeout(self.config.hsm_timeout) {
            Ok(answer) => {
                let result = finish(&answer);
                let lost = matches!(&result, Err(Failure::Card(e)) if link_lost(e));
                let _ = answer.reply.send(result);
                lost
            }
            // timed out, or abandoned for a new Step1: the transaction ends, the card is released
            Err(_) => false,
        }
    }

    /// `iReadCardBas_HSM_Step2`: the back end's answer to the pending Step1; the national string when the card
    /// accepts it. No pending Step1 of this function: −14; one that expired (the card was released): −4.
    pub fn read_step2(&self, answer: &str) -> Result<Reply, Failure> {
        self.step2(Exchange::ReadBasic, answer, None, None)
    }

    /// `iReadCard_HSM_Step2`: the external authentication's cryptogram (`C` or `C‖R4`); the values mirroring the
    /// address of Step1.
    pub fn read_items_step2(&self, answer: &str) -> Result<Reply, Failure> {
        self.step2(Exchange::ReadItems, answer, None, None)
    }

    /// `iWriteCard_HSM_Step2`: the external authentication's cryptogram and the data mirroring Step1's address.
    /// The data is checked for the card before the cryptogram is sent: bad data writes nothing.
    pub fn write_items_step2(&self, answer: &str, data: &str) -> Result<Reply, Failure> {
        self.step2(Exchange::WriteItems, answer, Some(data.to_owned()), None)
    }

    /// `iReloadPIN_HSM_Step1` (`unblock` false) or `iUnblockPIN_HSM_Step1`: checks `card_info` (against the card
    /// too), then the Step1 string naming the card for the back end; the card is held until Step3 or the timeout.
    pub fn pin_step1(&'static self, itype: i32, card_info: &str, unblock: bool) -> Result<Reply, Failure> {
        national::check_card_info_shape(card_info)?;
        self.step1(itype, Start::Pin { card_info: card_info.to_owned(), unblock })
    }

    /// `iReloadPIN_HSM_Step2` / `iUnblockPIN_HSM_Step2`: `key` must be empty (this profile's RELOAD PIN and PIN
    /// UNBLOCK carry their own MAC; no external authentication precedes them \[P\]); the new PIN is asked (twice)
    /// through pinentry, then the back end's second request: `<new PIN BCD>|`, or for UNBLOCK `<challenge>|<CLA INS
    /// P1 P2>|<new PIN BCD>|`.
    pub fn pin_step2(&self, key: &str, unblock: bool) -> Result<Reply, Failure> {
        if !matches!(key.trim_end_matches(['\r', '\n']), "" | "|") {
            return Err(Failure::code(
                national::NO_HSM_NEEDED,
                "no external authentication precedes RELOAD PIN or PIN UNBLOCK on this card: pKey must be empty",
            ));
        }
        let exchange = Exchange::PinStep2 { unblock };
        if !matches!(&*lock(&self.pending), Some((e, _)) if *e == exchange) {
            return Err(Failure::code(BAD_PARAMETER, exchange.step2()));
        }
        let pin = self.enter_pin(PinPrompt::New)?;
        self.step2(exchange, key, None, Some(pin))
    }

    /// `iReloadPIN_HSM_Step3` / `iUnblockPIN_HSM_Step3`: the back end's answer (`<MAC>|`, or for UNBLOCK
    /// `<secure data><MAC>|`) → RELOAD PIN / PIN UNBLOCK.
    pub fn pin_step3(&self, answer: &str, unblock: bool) -> Result<Reply, Failure> {
        self.step2(Exchange::PinStep3 { unblock }, answer, None, None)
    }

    /// Sends Step2's (or Step3's) answer to the thread holding the card and waits for its reply. A successful
    /// PIN Step2 leaves the exchange pending for its Step3.
    fn step2(
        &self,
        exchange: Exchange,
        answer: &str,
        data: Option<String>,
        pin: Option<SecretString>,
    ) -> Result<Reply, Failure> {
        let to_card = {
            let mut pending = lock(&self.pending);
            match pending.take() {
                Some((e, to_card)) if e == exchange => to_card,
                other => {
                    *pending = other;
                    return Err(Failure::code(BAD_PARAMETER, exchange.step2()));
                }
            }
        };
        let expired = || Failure::code(NO_ANSWER, "the two-step exchange expired: start again with Step1");
        let (reply, outcome) = mpsc::sync_channel(1);
        to_card.send(Answer { answer: answer.to_owned(), data, pin, reply }).map_err(|_| expired())?;
        let result = outcome.recv().map_err(|_| expired())?;
        if let (Exchange::PinStep2 { unblock }, Ok(_)) = (exchange, &result) {
            let mut pending = lock(&self.pending);
            if pending.is_none() {
                *pending = Some((Exchange::PinStep3 { unblock }, to_card));
            }
        }
        result
    }
}

/// Which PIN the holder is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinPrompt {
    /// The current PIN (VERIFY, the old PIN of CHANGE PIN).
    Current,
    /// A new PIN, asked twice (CHANGE, RELOAD, UNBLOCK).
    New,
}

impl Library {
    /// `iVerifyPin` (the vendor variant with the PIN as a parameter): VERIFY in SSSE. −51 wrong (the tries left in
    /// the output), −52 blocked.
    pub fn verify_pin_with(&self, itype: i32, pin: &SecretString) -> Result<Reply, Failure> {
        self.with_card(itype, |card, _| card.verify_pin(pin))?;
        Ok(Reply::empty())
    }

    /// `iChangePin` (the vendor variant): CHANGE PIN from `old` to `new`.
    pub fn change_pin_with(&self, itype: i32, old: &SecretString, new: &SecretString) -> Result<Reply, Failure> {
        self.with_card(itype, |card, _| card.change_pin(old, new))?;
        Ok(Reply::empty())
    }

    /// `iReloadPIN` (`unblock` false) or `iUnblockPIN` with a `new` PIN: after checking `card_info` against the
    /// card, RELOAD PIN (RLK) or PIN UNBLOCK (PUK) with the configured keys or the key service; with no keys
    /// −2201 (use the `_HSM_` functions).
    pub fn reset_pin_with(
        &self,
        itype: i32,
        card_info: &str,
        new: &SecretString,
        unblock: bool,
    ) -> Result<Reply, Failure> {
        national::check_card_info_shape(card_info)?;
        let service = self.config.key_service.as_ref();
        self.with_card(itype, |card, sm| {
            card.read_basic(sm)?.check_card_info(card_info)?;
            match (service, unblock) {
                (Some(backend), false) => card.reload_pin_via(backend, new),
                (Some(backend), true) => card.unblock_pin_via(backend, new),
                (None, false) => card.reload_pin(sm, new),
                (None, true) => card.unblock_pin(sm, new),
            }
        })?;
        Ok(Reply::empty())
    }

    /// `iReloadPIN` / `iUnblockPIN`: the new PIN asked through pinentry, then [`Self::reset_pin_with`].
    pub fn reset_pin(&self, itype: i32, card_info: &str, unblock: bool) -> Result<Reply, Failure> {
        national::check_card_info_shape(card_info)?;
        let new = self.enter_pin(PinPrompt::New)?;
        self.reset_pin_with(itype, card_info, &new, unblock)
    }

    /// The holder's PIN through the configured pinentry (a new PIN is asked twice); −13 when none is configured, a
    /// PIN entry code (−31 cancelled, −32 timeout, −33 the entries differ, …) when the dialog gives none.
    fn enter_pin(&self, prompt: PinPrompt) -> Result<SecretString, Failure> {
        let Some(program) = &self.config.pinentry else {
            return Err(Failure::code(UNSUPPORTED, "no pinentry is configured ([pin] pinentry) to ask the PIN"));
        };
        let entry = crate::pinentry::Pinentry::new(program.clone(), self.config.pin_timeout)
            .with_args(self.config.pinentry_args.iter().cloned());
        let asked = match prompt {
            PinPrompt::Current => entry.get_pin(&crate::pinentry::Dialog {
                title: "社会保障卡",
                description: "请持卡人输入社会保障卡密码",
                prompt: "密码:",
                error: None,
            }),
            PinPrompt::New => entry.get_new_pin(
                &crate::pinentry::Dialog {
                    title: "社会保障卡",
                    description: "请持卡人输入新的社会保障卡密码",
                    prompt: "新密码:",
                    error: None,
                },
                "再次输入新密码:",
                "两次输入的密码不一致",
            ),
        };
        asked.map_err(|e| Failure::Card(card_core::Error::PinEntry(e.to_pin_entry())))
    }

    /// `iVerifyPIN`: on the reader's PIN pad when it has one (the PIN never reaches the computer), else the
    /// holder's PIN through pinentry, then VERIFY.
    pub fn verify_pin(&self, itype: i32) -> Result<Reply, Failure> {
        let on_pad = self.with_card(itype, |card, _| {
            if card.has_pin_pad()? {
                card.verify_pin_on_pad(PadTimeouts::default()).map(|()| true)
            } else {
                Ok(false)
            }
        })?;
        if on_pad {
            return Ok(Reply::empty());
        }
        let pin = self.enter_pin(PinPrompt::Current)?;
        self.verify_pin_with(itype, &pin)
    }

    /// `iChangePIN`: on the reader's PIN pad when it has one (`FEATURE_MODIFY_PIN_DIRECT`), else the current and
    /// the new PIN through pinentry, then CHANGE PIN.
    pub fn change_pin(&self, itype: i32) -> Result<Reply, Failure> {
        let on_pad = self.with_card(itype, |card, _| {
            if card.has_pin_pad()? {
                card.change_pin_on_pad(PadTimeouts::default()).map(|()| true)
            } else {
                Ok(false)
            }
        })?;
        if on_pad {
            return Ok(Reply::empty());
        }
        let old = self.enter_pin(PinPrompt::Current)?;
        let new = self.enter_pin(PinPrompt::New)?;
        self.change_pin_with(itype, &old, &new)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn itype_orders() {
        let mut config = Config::default();
        let lib = Library::new(Config { contact: ReaderSelector::Name("A".into()), ..Config::default() });
        let names = |v: Vec<&Slot>| v.into_iter().map(|s| s.reader.to_string()).collect::<Vec<_>>();
        assert_eq!(names(lib.order(1).unwrap()), ["A"]);
        assert_eq!(names(lib.order(3).unwrap()), ["A"]);
        assert_eq!(names(lib.order(4).unwrap()), ["A"]);
        assert_eq!(lib.order(2).unwrap_err().national_code(), UNSUPPORTED);
        assert_eq!(lib.order(0).unwrap_err().national_code(), BAD_PARAMETER);
        assert_eq!(lib.order(5).unwrap_err().national_code(), BAD_PARAMETER);
        config.contact = ReaderSelector::Name("A".into());
        config.contactless = Some(ReaderSelector::Name("B".into()));
        let lib = Library::new(config);
        assert_eq!(names(lib.order(2).unwrap()), ["B"]);
        assert_eq!(names(lib.order(3).unwrap()), ["A", "B"]);
        assert_eq!(names(lib.order(4).unwrap()), ["B", "A"]);
    }

    #[test]
    fn step2_without_step1_is_a_bad_parameter() {
        let lib = Library::new(Config::default());
        assert_eq!(lib.read_step2("00|00|").unwrap_err().national_code(), BAD_PARAMETER);
    }
}
