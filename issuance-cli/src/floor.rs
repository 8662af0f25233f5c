//! The personalization floor (issue 15 §4): the least that any personalization of a plan must send to the card —
//! its state-changing commands alone — and what they cost on the wire, in EEPROM and in modeled card time.
//!
//! # What is counted
//!
//! Every step of the plan that [changes the card](Step::writes), as the COS adapter encodes it: CREATE FILE of
//! each DF and EF, WRITE KEY of each key (the MF's MK included), the PIN record, UPDATE RECORD of each record,
//! UPDATE BINARY of each chunk of a transparent EF, END PERSONALIZATION. Each is counted once, answered `9000`:
//!
//! - `apdus`: one per command;
//! - `bytes`: command bytes + the two status bytes (as [`crate::run::Costs`] counts an exchange);
//! - `eeprom_pages`: the pages the COS programs for it ([`CosAdapter::modeled_work`]: a key record, a file
//!   header, the record or chunk written, the lifecycle byte);
//! - `modeled`: the card time of those exchanges in card-core's timing model ([`card_core::timing::TimingModel`]
//!   default: 9600 bit/s T=0, per-APDU overhead, block operations, 3 ms per page), exactly as
//!   [`crate::run::Costs::modeled`] adds it up for a real run.
//!
//! # Why it is a floor
//!
//! A card of the profile cannot be personalized without each of these commands: each one puts something on the
//! card that nothing else puts there. Everything else a run sends is there for other reasons and left out: SELECT
//! (which DF a write goes to), GET CHALLENGE + EXTERNAL AUTHENTICATE (the access conditions of the writes), the
//! blank-card probe, and the read-back verification. Those are the overhead a run is measured against
//! (`issued / floor`).
//!
//! # The floor of a verified card
//!
//! [`Plan::verified_floor`] adds to it the least that the verification of CARD-PROFILE §8 step 7 can send, however
//! it is arranged: one proof of each key — GET CHALLENGE + EXTERNAL AUTHENTICATE for a master or
//! external-authentication key, INTERNAL AUTHENTICATE for an internal one —, one VERIFY of the PIN, and each written
//! EF read back once (READ RECORD "all" for the records 1…n of a linear EF, else one READ RECORD per record; READ
//! BINARY per chunk), each answered with exactly what it must return. It still leaves out every SELECT, the key info,
//! the reset and the blank-card probe. Where the run proves a key while personalizing (authenticating with a
//! DF's MK to write its files), that authentication is the key's one proof: a run can reach this floor only by
//! proving each key once, wherever it does.

use std::collections::BTreeMap;
use std::time::Duration;

use card_core::apdu::Sensitivity;
use card_core::command;
use card_core::crypto::{Algorithm, CardKey};
use card_core::profile::Generation;
use card_core::transport::{CardTransaction, TransportError};

use crate::cos::{CosAdapter, ReferenceCos};
use crate::pin::Pin;
use crate::plan::{Plan, Step};
use crate::prepare::{algorithm_of, CardKeys};
use crate::verify;
use crate::{Defect, Error};

/// The floor of a plan (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floor {
    /// State-changing commands.
    pub apdus: u64,
    /// Their bytes: commands plus status words.
    pub bytes: u64,
    /// EEPROM pages they program.
    pub eeprom_pages: u64,
    /// Their modeled card time.
    pub modeled: Duration,
}

impl Floor {
    /// The modeled time in whole microseconds.
    pub fn modeled_us(&self) -> u64 {
        u64::try_from(self.modeled.as_micros()).unwrap_or(u64::MAX)
    }
}

/// A card that answers `9000` to everything and counts what it is sent: the floor's bookkeeping.
struct Tally<'a> {
    floor: Floor,
    cos: &'a dyn CosAdapter,
    alg: Algorithm,
}

impl Tally<'_> {
    /// Counts `command` answered with `data_len` bytes and `9000`.
    fn count(&mut self, command: &[u8], data_len: usize) -> Vec<u8> {
        let mut response = vec![0; data_len];
        response.extend([0x90, 0x00]);
        let work = self.cos.modeled_work(command, &response, self.alg);
        self.floor.apdus += 1;
        self.floor.bytes += (command.len() + response.len()) as u64;
        self.floor.eeprom_pages += u64::from(work.eeprom_pages_written);
        self.floor.modeled += crate::timing::modeled(command, &response, &work);
        response
    }

    /// [`Tally::count`] of a command as built (card-core's builders, or [`verify`]'s).
    fn command<E>(&mut self, command: Result<card_core::apdu::Command, E>, data_len: usize) -> Result<(), Error>
    where
        Error: From<E>,
    {
        self.count(&command?.to_bytes(), data_len);
        Ok(())
    }
}

impl CardTransaction for Tally<'_> {
    fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
        Ok(self.count(command, 0))
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        Ok(Vec::new())
    }
    fn atr(&self) -> &[u8] {
        &[]
    }
}

impl Plan {
    /// The floor of this plan with the reference COS's encodings ([`Plan::floor_with`]).
    pub fn floor(&self) -> Result<Floor, Error> {
        self.floor_with(&ReferenceCos)
    }

    /// The floor of this plan (see [`crate::floor`]) as `cos` encodes its writes: the plan's writing steps run
    /// through the adapter against a card that accepts everything. Keys and PIN are stand-ins of the right length
    /// (the plan holds neither): lengths, not values, make the floor.
    pub fn floor_with(&self, cos: &dyn CosAdapter) -> Result<Floor, Error> {
        self.tally(cos, false)
    }

    /// The floor of a verified card of this plan with the reference COS's encodings ([`Plan::verified_floor_with`]).
    pub fn verified_floor(&self) -> Result<Floor, Error> {
        self.verified_floor_with(&ReferenceCos)
    }

    /// The floor of this plan plus the least verification (see [`crate::floor`], "The floor of a verified card").
    pub fn verified_floor_with(&self, cos: &dyn CosAdapter) -> Result<Floor, Error> {
        self.tally(cos, true)
    }

    fn tally(&self, cos: &dyn CosAdapter, verified: bool) -> Result<Floor, Error> {
        let g = Generation::new(self.generation).ok_or(Defect::Generation(self.generation))?;
        let alg = algorithm_of(g);
        let mut stand_ins = BTreeMap::new();
        for s in &self.steps {
            if let Step::WriteKey { key, .. } = s {
                stand_ins.insert(key.name.clone(), (CardKey::from_array(alg, [0; 16]), key.version));
            }
        }
        let keys = CardKeys::new(stand_ins, (CardKey::from_array(alg, [0; 16]), 0));
        let mut tally = Tally { floor: Floor::default(), cos, alg };
        for s in self.steps.iter().filter(|s| s.writes()) {
            cos.execute(&mut tally, s, &keys, Pin::default_initial())?;
        }
        if verified {
            self.least_verification(&mut tally)?;
        }
        Ok(tally.floor)
    }

    /// Counts the least verification of this plan's card into `tally`.
    fn least_verification(&self, tally: &mut Tally<'_>) -> Result<(), Error> {
        let zeros = [0u8; 8];
        for s in &self.steps {
            match s {
                Step::WriteKey { kid, usage, .. } if usage == "master" || usage == "external-auth" => {
                    tally.command(command::get_challenge(8), 8)?;
                    tally.command(command::external_authenticate(*kid, &zeros, &zeros), 0)?;
                }
                Step::WriteKey { usage, .. } if usage == "internal-auth" => {
                    tally.command(command::internal_authenticate(&zeros, &zeros), 8)?;
                }
                Step::SetPin { length, .. } => tally.command(command::verify_pin(&vec![0; *length]), 0)?,
                Step::WriteBinary { sfi, data, .. } => {
                    for (i, chunk) in data.chunks(crate::cos::BINARY_CHUNK).enumerate() {
                        let le = u32::try_from(chunk.len()).unwrap_or(0);
                        let read = verify::read_binary_chunk(*sfi, i * crate::cos::BINARY_CHUNK, le, data.len());
                        tally.command(read, chunk.len())?;
                    }
                }
                _ => {}
            }
        }
        for writes in verify::records_by_ef(&self.steps) {
            if let Some((_, sfi, all)) = verify::whole_ef(&writes) {
                tally.command(command::read_records_from(1, sfi), all.len())?;
                continue;
            }
            for s in writes {
                if let Step::WriteRecord { sfi, record, value, .. } = s {
                    tally.command(command::read_record(*record, *sfi), 2 + value.len())?;
                }
            }
        }
        Ok(())
    }
}
