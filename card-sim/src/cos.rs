//! The card operating system: state, lifecycle and the command interpreter (CARD-PROFILE §4).
//!
//! # Atomicity
//!
//! [`Card::process`] runs every command on a copy of the persistent state (and of the volatile state)
//! and keeps the copy only if the command succeeds — or if it failed in a way that must leave a trace:
//! a wrong PIN, a wrong cryptogram or a wrong MAC decrements a try counter (that *is* a persistent
//! change), and selecting a blocked application makes it current (`6A81`). A challenge is consumed by
//! the next command whatever its outcome (GET RESPONSE excepted).
//!
//! # Lifecycle
//!
//! - `Blank`: as the chip maker ships it — only the MF with its transport key (MF MK, kid `00`, version `00`).
//! - `Personalizing`: after the first CREATE FILE or WRITE KEY.
//! - `Personalized`: after END PERSONALIZATION (`80 EA`, in the MF, with the MF MK authenticated).
//!   Plain WRITE KEY and CREATE FILE answer `6985`; secure WRITE KEY (`84 D4`) still works.
//!
//! CREATE FILE, plain WRITE KEY and ERASE DF need EXTERNAL AUTHENTICATE with the MK of the current DF
//! (`6982` otherwise). A DF that has no MK yet (just created) accepts them freely, but only before END
//! PERSONALIZATION — so a new DF can receive its keys, its MK first.
//!
//! An application (DF) blocked by APPLICATION BLOCK answers `6A81` to SELECT, but becomes current, so
//! that GET CHALLENGE and APPLICATION UNBLOCK reach it; every other command in it answers `6A81`.
//! After CARD BLOCK every command answers `6A81`, for ever.
//!
//! # T=0 mode
//!
//! With [`Card::set_t0_mode`], commands that return data in case 4 (SELECT, INTERNAL AUTHENTICATE)
//! answer `61xx` and deliver through GET RESPONSE, and a case 2 read (READ RECORD, READ BINARY,
//! GET DATA, GET RESPONSE) with an Le other than the available length answers `6Cxx`.

mod auth;
mod binary;
mod lifecycle;
mod perso;
mod pin;
mod records;
mod select;

use card_core::apdu::{Command, Ins, StatusWord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::access::SecurityState;
use crate::fs::{Df, MF_FID};
use crate::hexfmt::SecretHex;
use crate::keys::{KeyAlgorithm, KeyEntry, KeyType, MAX_TRIES};
use crate::Error;

/// EEPROM page size used to count page writes for the timing model, and what a command cost the chip
/// (both part of the timing model, [`card_core::timing`]).
pub use card_core::timing::{CardWork, EEPROM_PAGE};

/// Where the card is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Only the transport key.
    Blank,
    /// Personalization has started.
    Personalizing,
    /// END PERSONALIZATION done.
    Personalized,
}

/// Parameters of a blank card.
pub struct BlankParams {
    /// Card generation: 1, 2 (3DES) or 3 (SM4); written into the ATR.
    pub generation: u8,
    /// Issuing region code, 6 digits (`"371700"`).
    pub region: String,
    /// Chip serial: the last 8 historical bytes (the card factor).
    pub serial: u64,
    /// The transport key (MF MK, kid `00`, version `00`). Test material.
    pub transport_key: [u8; 16],
    /// Algorithm of the transport key.
    pub algorithm: KeyAlgorithm,
}

/// The persistent state: what a card image holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CardState {
    pub generation: u8,
    pub region: String,
    pub serial: u64,
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub card_blocked: bool,
    #[serde(default)]
    pub t0_mode: bool,
    /// READ RECORD "all from P1" (`P2 …101`) supported; off: `6A86` like a COS without it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub read_all: bool,
    /// The DF FCIs carry the spec version (`A5` → `9F08`, this project's earlier profile decision); real cards
    /// do not.
    #[serde(default, skip_serializing_if = "is_false", alias = "fci_version")]
    pub fci_spec_version: bool,
    /// The DF FCIs carry the algorithm (`A5` → `9F0C` → `86`) as real cards do; off: a COS without it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub fci_algorithm: bool,
    pub mf: Df,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(b: &bool) -> bool {
    *b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// The volatile state, lost on reset and power-off.
#[derive(Clone, Debug, Default)]
pub(crate) struct Volatile {
    pub powered: bool,
    /// Path of child indices from the MF to the current DF.
    pub path: Vec<usize>,
    /// Index of the current EF in the current DF.
    pub ef: Option<usize>,
    pub security: SecurityState,
    pub challenge: Option<Zeroizing<Vec<u8>>>,
    /// T=0: data waiting for GET RESPONSE.
    pub pending: Option<Vec<u8>>,
}

/// The virtual social security card.
pub struct Card {
    pub(crate) state: CardState,
    pub(crate) vol: Volatile,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("generation", &self.state.generation)
            .field("region", &self.state.region)
            .field("serial", &self.state.serial)
            .field("lifecycle", &self.state.lifecycle)
            .finish_non_exhaustive()
    }
}

/// A successful (or warning) answer.
pub(crate) struct Reply {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

pub(crate) type Res = Result<Reply, StatusWord>;

pub(crate) fn ok(data: Vec<u8>) -> Res {
    Ok(Reply { data, sw: StatusWord::OK })
}

/// `63Cx`.
pub(crate) fn tries_sw(tries: u8) -> StatusWord {
    StatusWord(0x63C0 | u16::from(tries.min(15)))
}

/// One command being executed on copies of the card's state.
pub(crate) struct Exec<'a> {
    pub st: &'a mut CardState,
    pub vol: &'a mut Volatile,
    pub cmd: &'a Command,
    /// The challenge of the previous GET CHALLENGE, if any (already consumed from the card).
    pub challenge: Option<Zeroizing<Vec<u8>>>,
    /// Commit the copies even though the command fails.
    pub keep_on_error: bool,
    pub work: CardWork,
}

impl Exec<'_> {
    pub fn p1p2(&self) -> u16 {
        u16::from_be_bytes([self.cmd.p1, self.cmd.p2])
    }

    pub fn data(&self) -> &[u8] {
        self.cmd.data()
    }

    /// The current DF.
    pub fn df(&self) -> Result<&Df, StatusWord> {
        self.st.mf.at(&self.vol.path).ok_or(StatusWord::UNKNOWN_ERROR)
    }

    /// The current DF, mutable.
    pub fn df_mut(&mut self) -> Result<&mut Df, StatusWord> {
        self.st.mf.at_mut(&self.vol.path).ok_or(StatusWord::UNKNOWN_ERROR)
    }

    /// The DF at `path`, mutable.
    pub fn df_at_mut(&mut self, path: &[usize]) -> Result<&mut Df, StatusWord> {
        self.st.mf.at_mut(path).ok_or(StatusWord::UNKNOWN_ERROR)
    }

    /// Whether the current DF or one of its ancestors is blocked.
    pub fn in_blocked_df(&self) -> bool {
        blocked_on_path(&self.st.mf, &self.vol.path)
    }

    /// Counts an EEPROM write of `n` bytes.
    pub fn wrote(&mut self, n: usize) {
        self.work.wrote(n);
    }

    /// Counts block cipher operations.
    pub fn blocks(&mut self, n: usize) {
        self.work.blocks(n);
    }

    /// Answers read data according to Le (truncation; `6Cxx` in T=0 mode).
    pub fn read_reply(&self, mut data: Vec<u8>) -> Res {
        let Some(le) = self.cmd.le() else { return ok(data) };
        let le = usize::try_from(le).unwrap_or(usize::MAX);
        if self.st.t0_mode {
            let expect = data.len().min(256);
            if le != expect {
                return Err(StatusWord(0x6C00 | (expect & 0xFF) as u16));
            }
        }
        data.truncate(le);
        ok(data)
    }

    /// Answers case 4 data: directly, or `61xx` and GET RESPONSE in T=0 mode.
    pub fn case4_reply(&mut self, mut data: Vec<u8>) -> Res {
        if self.st.t0_mode && !data.is_empty() {
            let sw = StatusWord(0x6100 | (data.len().min(256) & 0xFF) as u16);
            self.vol.pending = Some(data);
            return Ok(Reply { data: Vec::new(), sw });
        }
        if let Some(le) = self.cmd.le() {
            data.truncate(usize::try_from(le).unwrap_or(usize::MAX));
        }
        ok(data)
    }
}

pub(crate) fn blocked_on_path(mf: &Df, path: &[usize]) -> bool {
    (0..=path.len()).any(|n| path.get(..n).and_then(|p| mf.at(p)).is_some_and(|d| d.blocked))
}

impl Card {
    /// A blank card: the MF with the transport key, lifecycle `Blank`, powered on.
    pub fn new_blank(params: BlankParams) -> Result<Card, Error> {
        if !(1..=3).contains(&params.generation) {
            return Err(Error::BadParams("generation must be 1, 2 or 3"));
        }
        if crate::atr::region_bcd(&params.region).is_none() {
            return Err(Error::BadParams("region code must be 6 digits"));
        }
        let mut mf = Df::new(MF_FID, None);
        mf.keys.push(KeyEntry {
            kid: 0,
            key_type: KeyType::Master,
            version: 0,
            algorithm: params.algorithm,
            max_tries: MAX_TRIES,
            tries_left: MAX_TRIES,
            value: SecretHex(Zeroizing::new(params.transport_key.to_vec())),
        });
        let state = CardState {
            generation: params.generation,
            region: params.region,
            serial: params.serial,
            lifecycle: Lifecycle::Blank,
            card_blocked: false,
            t0_mode: false,
            read_all: true,
            fci_spec_version: false,
            fci_algorithm: true,
            mf,
        };
        Ok(Card::from_state(state))
    }

    pub(crate) fn from_state(state: CardState) -> Card {
        let mut card = Card { state, vol: Volatile::default() };
        card.power_on();
        card
    }

    /// The answer to reset (layout in [`crate::atr`]).
    pub fn atr(&self) -> Vec<u8> {
        let region = crate::atr::region_bcd(&self.state.region).unwrap_or_default();
        crate::atr::atr(self.state.generation, region, self.state.serial)
    }

    /// Powers the card on (cold reset): volatile state cleared, MF current.
    pub fn power_on(&mut self) {
        self.vol = Volatile { powered: true, ..Volatile::default() };
    }

    /// Powers the card off: volatile state lost.
    pub fn power_off(&mut self) {
        self.vol = Volatile::default();
    }

    /// Warm reset: as power-on.
    pub fn reset(&mut self) {
        self.power_on();
    }

    /// Whether the card is powered.
    pub fn is_powered(&self) -> bool {
        self.vol.powered
    }

    /// Turns T=0 mode (`61xx` / `6Cxx` answers) on or off; kept in the image.
    pub fn set_t0_mode(&mut self, on: bool) {
        self.state.t0_mode = on;
    }

    /// Turns READ RECORD "all from P1" (`P2 …101`) on or off; off, the card answers `6A86` like a COS
    /// that does not know it. Kept in the image (only when off).
    pub fn set_read_all(&mut self, on: bool) {
        self.state.read_all = on;
    }

    /// Whether READ RECORD "all from P1" is supported.
    pub fn read_all(&self) -> bool {
        self.state.read_all
    }

    /// Adds the spec version to the DF FCIs (`A5` → `9F08`, this project's earlier profile decision; real cards
    /// have no such tag) or leaves it out (the default). Kept in the image (only when on).
    pub fn set_fci_spec_version(&mut self, on: bool) {
        self.state.fci_spec_version = on;
    }

    /// Whether the DF FCIs carry the spec version.
    pub fn fci_spec_version(&self) -> bool {
        self.state.fci_spec_version
    }

    /// Puts the algorithm in the DF FCIs (`A5` → `9F0C` → `86`, as real cards do: the default) or leaves it out
    /// (a COS without it; hosts then read EF05 record 3). Kept in the image (only when off).
    pub fn set_fci_algorithm(&mut self, on: bool) {
        self.state.fci_algorithm = on;
    }

    /// Whether the DF FCIs carry the algorithm.
    pub fn fci_algorithm(&self) -> bool {
        self.state.fci_algorithm
    }

    /// Whether T=0 mode is on.
    pub fn t0_mode(&self) -> bool {
        self.state.t0_mode
    }

    /// The lifecycle state.
    pub fn lifecycle(&self) -> Lifecycle {
        self.state.lifecycle
    }

    /// Whether CARD BLOCK was applied.
    pub fn is_card_blocked(&self) -> bool {
        self.state.card_blocked
    }

    /// Card generation (1–3).
    pub fn generation(&self) -> u8 {
        self.state.generation
    }

    /// Issuing region code.
    pub fn region(&self) -> &str {
        &self.state.region
    }

    /// Chip serial.
    pub fn serial(&self) -> u64 {
        self.state.serial
    }

    /// The MF, for inspection.
    pub fn mf(&self) -> &Df {
        &self.state.mf
    }

    /// Executes one command APDU and returns the response APDU (data ‖ SW1 SW2). Never panics.
    /// A card that is not powered is powered on first.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.process_traced(apdu).0
    }

    /// [`Card::process`], also returning what the command cost the chip.
    pub fn process_traced(&mut self, apdu: &[u8]) -> (Vec<u8>, CardWork) {
        if !self.vol.powered {
            self.power_on();
        }
        let (reply, work) = match Command::parse(apdu) {
            Ok(cmd) => self.execute(&cmd),
            Err(_) => (Err(StatusWord::WRONG_LENGTH), CardWork::default()),
        };
        let (mut data, sw) = match reply {
            Ok(r) => (r.data, r.sw),
            Err(sw) => (Vec::new(), sw),
        };
        tracing::trace!(target: "card_sim", ins = format_args!("{:02X}", apdu.get(1).copied().unwrap_or(0)), sw = format_args!("{:04X}", sw.0));
        data.extend_from_slice(&sw.to_bytes());
        (data, work)
    }

    fn execute(&mut self, cmd: &Command) -> (Res, CardWork) {
        if self.state.card_blocked {
            return (Err(StatusWord::FUNCTION_NOT_SUPPORTED), CardWork::default());
        }
        let get_response = cmd.ins == Ins::GET_RESPONSE;
        let challenge = if get_response { None } else { self.vol.challenge.take() };
        if !get_response {
            self.vol.pending = None;
        }
        let mut st = self.state.clone();
        let mut vol = self.vol.clone();
        let mut x =
            Exec { st: &mut st, vol: &mut vol, cmd, challenge, keep_on_error: false, work: CardWork::default() };
        let res = dispatch(&mut x);
        let mut work = x.work;
        if res.is_ok() || x.keep_on_error {
            self.state = st;
            self.vol = vol;
        } else {
            work.eeprom_bytes_written = 0;
            work.eeprom_pages_written = 0;
        }
        (res, work)
    }
}

type Handler = fn(&mut Exec<'_>) -> Res;

fn dispatch(x: &mut Exec<'_>) -> Res {
    let cla = x.cmd.cla;
    if !matches!(cla, 0x00 | 0x04 | 0x80 | 0x84) {
        return Err(StatusWord::CLA_NOT_SUPPORTED);
    }
    let ins = x.cmd.ins;
    let (classes, handler): (&[u8], Handler) = match ins {
        Ins::SELECT => (&[0x00], select::select),
        Ins::READ_RECORD => (&[0x00], records::read_record),
        Ins::UPDATE_RECORD => (&[0x00, 0x04], records::update_record),
        records::APPEND_RECORD => (&[0x00, 0x04], records::append_record),
        Ins::READ_BINARY => (&[0x00], binary::read_binary),
        Ins::UPDATE_BINARY => (&[0x00, 0x04], binary::update_binary),
        Ins::GET_CHALLENGE => (&[0x00], auth::get_challenge),
        Ins::EXTERNAL_AUTHENTICATE => (&[0x00], auth::external_authenticate),
        Ins::INTERNAL_AUTHENTICATE => (&[0x00], auth::internal_authenticate),
        Ins::VERIFY => (&[0x00], pin::verify),
        Ins::CHANGE_RELOAD_PIN => (&[0x80], pin::change_or_reload),
        Ins::PIN_UNBLOCK => (&[0x84], pin::unblock),
        Ins::APPLICATION_BLOCK => (&[0x84], lifecycle::application_block),
        Ins::APPLICATION_UNBLOCK => (&[0x84], lifecycle::application_unblock),
        Ins::CARD_BLOCK => (&[0x84], lifecycle::card_block),
        Ins::GET_DATA => (&[0x80], lifecycle::get_data),
        Ins::GET_RESPONSE => (&[0x00], lifecycle::get_response),
        Ins::CREATE_FILE => (&[0x80], perso::create_file),
        Ins::WRITE_KEY => (&[0x80, 0x84], perso::write_key),
        Ins::ERASE_DF => (&[0x80], perso::erase_df),
        Ins::END_PERSONALIZATION => (&[0x80], perso::end_personalization),
        _ => return Err(StatusWord::INS_NOT_SUPPORTED),
    };
    if !classes.contains(&cla) {
        return Err(StatusWord::CLA_NOT_SUPPORTED);
    }
    let allowed_when_blocked =
        matches!(ins, Ins::SELECT | Ins::GET_CHALLENGE | Ins::APPLICATION_UNBLOCK | Ins::GET_RESPONSE);
    if !allowed_when_blocked && x.in_blocked_df() {
        return Err(StatusWord::FUNCTION_NOT_SUPPORTED);
    }
    handler(x)
}
