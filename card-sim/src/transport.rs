//! [`SimTransport`]: the card in process, behind `card_core::transport::Transport`, with tearing and
//! the modeled card time.
//!
//! Tearing: [`SimTransport::arm_tear`] makes the Nth APDU transmitted from then on (1-based, GET
//! RESPONSE included) remove the card — [`TearPoint::BeforeWrite`]: the command is not executed;
//! [`TearPoint::AfterWrite`]: it is executed and committed, and its response is lost. Either way the
//! card is powered off, `transmit` answers `TransportError::CardRemoved` and new transactions
//! `TransportError::NoCard` until [`SimTransport::reinsert`].
//!
//! Hostility: [`SimTransport::set_hostile`] makes the card misbehave on the wire ([`Hostile`]): its answers (and
//! ATR) are distorted after the COS has executed the command. In process an empty answer is an empty `Ok`; in a
//! vpcd reader it is a frame of 0 bytes.
//!
//! Pacing: [`SimTransport::set_pace`] makes every APDU take its modeled time in real time — the answer is held
//! until the command's modeled time (transmission at the model's bit rate, processing, EEPROM pages) has passed
//! since it arrived — so a demo or a benchmark through pcscd feels like a real card. The COS's own work counts
//! towards that time; a command the host computer takes longer to execute than modeled is not slowed further.

use std::time::{Duration, Instant};

use card_core::apdu::Sensitivity;
use card_core::transport::{CardTransaction, Transport, TransportError};

use crate::{Card, Hostile, TimingModel};

/// When a tear removes the card, relative to the command's write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TearPoint {
    /// The card is removed before the command runs: nothing is written.
    BeforeWrite,
    /// The command runs and commits; the card is removed before the response is sent.
    AfterWrite,
}

/// A planned card removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tear {
    /// The APDU (1-based, counted from when the tear was armed) at which the card goes.
    pub after_apdu: u64,
    /// Before or after that APDU's write.
    pub when: TearPoint,
}

/// The virtual card as a [`Transport`].
#[derive(Debug)]
pub struct SimTransport {
    card: Card,
    atr: Vec<u8>,
    name: String,
    present: bool,
    timing: TimingModel,
    modeled: Duration,
    apdus: u64,
    tear: Option<(Tear, u64)>,
    /// The misbehaviour, and the APDUs seen since it was set.
    hostile: Option<(Hostile, u64)>,
    /// Whether APDUs take their modeled time in real time.
    pace: bool,
}

impl SimTransport {
    /// The card, inserted and powered, with the default timing model.
    pub fn new(card: Card) -> Self {
        SimTransport::with_timing(card, TimingModel::default())
    }

    /// The card with a given timing model.
    pub fn with_timing(mut card: Card, timing: TimingModel) -> Self {
        card.power_on();
        let atr = card.atr();
        SimTransport {
            hostile: None,
            card,
            atr,
            name: "card-sim in process".to_owned(),
            present: true,
            timing,
            modeled: Duration::ZERO,
            apdus: 0,
            tear: None,
            pace: false,
        }
    }

    /// Makes every APDU take its modeled time in real time (or not: the default, as fast as the host computes).
    pub fn set_pace(&mut self, pace: bool) {
        self.pace = pace;
    }

    /// Whether APDUs take their modeled time in real time.
    pub fn is_paced(&self) -> bool {
        self.pace
    }

    /// The card.
    pub fn card(&self) -> &Card {
        &self.card
    }

    /// The card, mutable (e.g. to save its image).
    pub fn card_mut(&mut self) -> &mut Card {
        &mut self.card
    }

    /// Takes the card out.
    pub fn into_card(self) -> Card {
        self.card
    }

    /// Arms a tear; replaces any armed tear.
    pub fn arm_tear(&mut self, tear: Tear) {
        self.tear = Some((tear, 0));
    }

    /// Disarms the tear.
    pub fn disarm_tear(&mut self) {
        self.tear = None;
    }

    /// Makes the card hostile (or well-behaved again with `None`); the ATR changes at once for `ShortAtr`.
    pub fn set_hostile(&mut self, hostile: Option<Hostile>) {
        self.hostile = hostile.map(|h| (h, 0));
        self.atr = self.current_atr();
    }

    /// The misbehaviour, if the card is hostile.
    pub fn hostile(&self) -> Option<Hostile> {
        self.hostile.map(|(h, _)| h)
    }

    /// The card's ATR as the reader sees it (a hostile card's, if it is one).
    fn current_atr(&self) -> Vec<u8> {
        let atr = self.card.atr();
        match &self.hostile {
            Some((h, _)) => h.atr(atr),
            None => atr,
        }
    }

    /// Whether the card is in the reader.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// Removes the card now (powered off).
    pub fn remove(&mut self) {
        self.present = false;
        self.card.power_off();
    }

    /// Puts the card back: powered on, volatile state reset. A spent tear is disarmed.
    pub fn reinsert(&mut self) {
        self.present = true;
        self.card.power_on();
        self.atr = self.current_atr();
    }

    /// Total modeled card time so far.
    pub fn modeled_time(&self) -> Duration {
        self.modeled
    }

    /// APDUs the card answered or was torn on.
    pub fn apdu_count(&self) -> u64 {
        self.apdus
    }

    /// Resets the modeled time and APDU count to zero.
    pub fn reset_counters(&mut self) {
        self.modeled = Duration::ZERO;
        self.apdus = 0;
    }

    /// The timing model.
    pub fn timing(&self) -> &TimingModel {
        &self.timing
    }

    pub(crate) fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.present {
            return Err(TransportError::CardRemoved);
        }
        let arrived = Instant::now();
        self.apdus += 1;
        let tear_now = match &mut self.tear {
            Some((tear, seen)) => {
                *seen += 1;
                (*seen == tear.after_apdu).then_some(tear.when)
            }
            None => None,
        };
        if tear_now == Some(TearPoint::BeforeWrite) {
            self.tear = None;
            self.remove();
            return Err(TransportError::CardRemoved);
        }
        let (response, work) = self.card.process_traced(command);
        let modeled = self.timing.apdu_time(command.len(), response.len(), &work);
        self.modeled += modeled;
        if self.pace {
            // the card answers when its modeled time is over (a tear after the write too: the card goes then)
            std::thread::sleep(modeled.saturating_sub(arrived.elapsed()));
        }
        if tear_now == Some(TearPoint::AfterWrite) {
            self.tear = None;
            self.remove();
            return Err(TransportError::CardRemoved);
        }
        Ok(match &mut self.hostile {
            Some((hostile, seen)) => {
                *seen += 1;
                hostile.distort(command, response, *seen)
            }
            None => response,
        })
    }
}

impl Transport for SimTransport {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        if !self.present {
            return Err(TransportError::NoCard(self.name.clone()));
        }
        Ok(Box::new(SimTransaction { sim: self }))
    }

    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn name(&self) -> &str {
        &self.name
    }
}

struct SimTransaction<'a> {
    sim: &'a mut SimTransport,
}

impl CardTransaction for SimTransaction<'_> {
    fn transmit(&mut self, command: &[u8], _sensitivity: Sensitivity) -> Result<Vec<u8>, TransportError> {
        self.sim.transmit(command)
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        if !self.sim.present {
            return Err(TransportError::CardRemoved);
        }
        self.sim.card.reset();
        self.sim.atr = self.sim.current_atr();
        Ok(self.sim.atr.clone())
    }

    fn atr(&self) -> &[u8] {
        &self.sim.atr
    }
}
