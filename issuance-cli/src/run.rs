//! Running a plan on a card, with the journal, and the resume policy.
//!
//! # Resume policy
//!
//! The plan is rebuilt from the journal (holder data, card id, number, dates) and the key store, so it
//! is the same plan. What the card holds is then read from the card itself, not guessed from the
//! journal: GET DATA key info in the MF tells whether the transport key (kid 00 at the transport
//! version) is still in place.
//!
//! - **Transport key still in place** (torn anywhere before the MF MK was written): the card is still in
//!   personalization, so authenticate with the transport key, ERASE DF in the MF (which removes
//!   everything but the MF's key) and run the whole plan again as a new attempt. Steps are not
//!   individually idempotent (CREATE FILE answers `6A89` the second time, a key may or may not have been
//!   written), so restarting from a clean MF is the one policy that is always right.
//! - **MF MK in place**: every step before the MF MK was confirmed, so only END PERSONALIZATION may be
//!   missing: authenticate with the MF MK and send it; `6985` means it was already done.
//! - Then the card is verified (read back, authentications); a card that fails verification after END
//!   PERSONALIZATION cannot be re-personalized and is `rejected` (its card id and number stay burnt).
//!
//! A card is `issued` only after verification passed.

use std::time::Duration;

use card_core::apdu::{Sensitivity, StatusWord};
use card_core::crypto::{card_factor, Algorithm};
use card_core::profile::{Generation, Profile};
use card_core::transport::{historical_bytes, CardTransaction, CardTransactionExt, Transport, TransportError};

use crate::cos::{authenticate, select_mf, CosAdapter};
use crate::holders::Holder;
use crate::journal::ahead::Ahead;
use crate::journal::{state, Assigned, CardRow, Journal, NewCard};
use crate::pin::Pin;
use crate::plan::{self, Plan};
use crate::prepare::{self, algorithm_of, CardKeys, KeySource, Prepared, Settings};
use crate::verify;
use crate::{Defect, Error, HolderFault, HolderProblem, InputError, JournalError, KeyError, Malformed, Mismatch, Row};

/// The version of the transport key on a blank card (CARD-PROFILE §5.1, card-sim COS.md).
pub const TRANSPORT_VERSION: u8 = 0x00;

/// APDUs, bytes and modeled card time of one card's run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Costs {
    /// Command APDUs sent.
    pub apdus: u64,
    /// Bytes sent plus bytes received.
    pub bytes: u64,
    /// The modeled card time of the APDUs exchanged (card-sim's timing model, [`crate::timing`]): what
    /// a card would take at 9600 bit/s, whatever the transport (PC/SC or in process).
    pub modeled: Duration,
    /// Of `apdus`, those of the read-back verification.
    pub verification_apdus: u64,
}

impl Costs {
    /// The modeled card time in whole microseconds (as the journal keeps it).
    pub fn modeled_us(&self) -> u64 {
        u64::try_from(self.modeled.as_micros()).unwrap_or(u64::MAX)
    }
}

/// A transaction that counts what crosses the wire and models the card's time for it.
struct Counting<'a> {
    inner: Box<dyn CardTransaction + 'a>,
    costs: &'a mut Costs,
    cos: &'a dyn CosAdapter,
    /// The card's algorithm (its block length for the modeled work).
    alg: Algorithm,
}

impl CardTransaction for Counting<'_> {
    fn transmit(&mut self, command: &[u8], s: Sensitivity) -> Result<Vec<u8>, TransportError> {
        self.costs.apdus += 1;
        self.costs.bytes += command.len() as u64;
        let r = self.inner.transmit(command, s)?;
        self.costs.bytes += r.len() as u64;
        let work = self.cos.modeled_work(command, &r, self.alg);
        self.costs.modeled += crate::timing::modeled(command, &r, &work);
        Ok(r)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.inner.reset()
    }
    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }
}

/// The issuance engine for one desk: profile, COS adapter, keys, journal, settings.
pub struct Issuer<'a> {
    /// The card layout.
    pub profile: &'a Profile,
    /// The chip family's adapter.
    pub cos: &'a dyn CosAdapter,
    /// Card keys.
    pub keys: &'a dyn KeySource,
    /// The journal.
    pub journal: &'a Journal,
    /// Batch settings (generation, validity, …).
    pub settings: Settings,
}

impl<'a> Issuer<'a> {
    /// An issuer with the built-in card profile and the reference COS (card-sim's, the first adapter).
    pub fn reference(keys: &'a dyn KeySource, journal: &'a Journal, settings: Settings) -> Self {
        Issuer { profile: Profile::builtin(), cos: &crate::cos::ReferenceCos, keys, journal, settings }
    }
}

/// The card id, number and dates of `holder`'s card with sequence number `seq`.
fn assigned_for_holder(holder: &Holder, s: &Settings, seq: u64) -> Result<Assigned, Error> {
    let p = prepare::prepare(holder, seq, s)?;
    Ok(Assigned {
        card_id: hex::encode_upper(p.card_id),
        card_number: p.card_number,
        issue_date: p.issue_date,
        expiry_date: p.expiry_date,
        card_type: p.card_type,
    })
}

/// The generation of a journalled card.
pub(crate) fn generation_of(row: &CardRow) -> Result<Generation, Error> {
    u8::try_from(row.generation)
        .ok()
        .and_then(Generation::new)
        .ok_or_else(|| JournalError::Generation { row: Row::Card(row.id), generation: row.generation }.into())
}

/// The chip serial (card factor) of the card in `t`, hex.
pub fn chip_of(t: &dyn Transport) -> Result<[u8; 8], Error> {
    let hist = historical_bytes(t.atr()).ok_or(Malformed::NoHistoricalBytes)?;
    Ok(card_factor(hist).map_err(card_core::Error::from)?)
}

impl Issuer<'_> {
    /// Refuses a chip that has an unfinished card in the journal (`resume` finishes it).
    fn refuse_unfinished(&self, chip_hex: &str) -> Result<(), Error> {
        match self.journal.open_card_of_chip(chip_hex)? {
            Some(open) => Err(InputError::Unfinished {
                chip: chip_hex.to_owned(),
                card_number: open.card_number,
                holder_line: open.holder_line,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Refuses a card that is not blank (the chip maker's transport key not in its MF), naming what the journal
    /// knows of the chip; returns what the probe cost (SELECT MF, GET DATA: nothing written, no try counted).
    fn refuse_not_blank(&self, t: &mut dyn Transport, alg: Algorithm, chip_hex: &str) -> Result<Costs, Error> {
        let mut probe = Costs::default();
        let mf_version = self.mf_key_version(t, alg, &mut probe)?;
        if mf_version != Some(TRANSPORT_VERSION) {
            let known = self
                .journal
                .last_card_of_chip(chip_hex)?
                .map(|c| format!("card {} ({}, holder line {})", c.card_number, c.state, c.holder_line));
            return Err(InputError::NotBlank { chip: chip_hex.to_owned(), mf_key_version: mf_version, known }.into());
        }
        Ok(probe)
    }

    /// Personalizes the blank card in `t` for `holder` and verifies it. Returns the card row id.
    pub fn issue(&self, t: &mut dyn Transport, holder: &Holder, batch: Option<i64>) -> Result<(i64, Costs), Error> {
        let chip = chip_of(t)?;
        let chip_hex = hex::encode_upper(chip);
        self.refuse_unfinished(&chip_hex)?;
        let s = &self.settings;
        // the keys first: a key store without this generation's keys must not leave a failed card behind
        let keys = self.keys.card_keys(&holder.region, &chip, algorithm_of(s.generation))?;
        keys.check(self.profile, s.generation)?;
        // which card is in the reader? Only a blank card (the chip maker's transport key in the MF) is personalized:
        // an issued card is refused before anything that writes or counts a try is sent, and nothing is journalled
        let probe = self.refuse_not_blank(t, keys.transport.0.algorithm(), &chip_hex)?;
        let new = NewCard {
            batch,
            holder_line: holder.line,
            ssn: &holder.ssn,
            region: &holder.region,
            generation: s.generation.number(),
            chip: &chip_hex,
            atr: &hex::encode_upper(t.atr()),
            reader: t.name(),
        };
        let (id, _) = self.journal.new_card(&new, &|seq| assigned_for_holder(holder, s, seq))?;
        let row = self.journal.card(id)?;
        let costs = self.run_card(t, &row, holder, holder.initial_pin(), &keys, probe)?;
        Ok((id, costs))
    }

    /// Personalizes the blank card in `t` for a holder of `batch` that this call claims in the journal — line
    /// `prefer` if no desk has claimed it yet, else the next free holder — and verifies it. Several desks sharing
    /// one journal can work through one batch this way: each holder is claimed once. `pin_of` gives a holder's
    /// own initial PIN (by SSN); a holder whose PIN is missing is not claimed. `None`: no holder is left.
    pub fn issue_from_batch<'p>(
        &self,
        t: &mut dyn Transport,
        batch: i64,
        prefer: Option<u64>,
        pin_of: &dyn Fn(&str) -> Option<&'p Pin>,
    ) -> Result<Option<(Holder, i64, Costs)>, Error> {
        let chip = chip_of(t)?;
        let chip_hex = hex::encode_upper(chip);
        self.refuse_unfinished(&chip_hex)?;
        let s = &self.settings;
        let alg = algorithm_of(s.generation);
        // a blank card only (see `issue`): checked before any holder is claimed
        let probe = self.refuse_not_blank(t, alg, &chip_hex)?;
        let atr = hex::encode_upper(t.atr());
        let reader = t.name().to_owned();
        // the claimed holder's keys and PIN are checked inside the claim: a failure there claims nothing
        let keys: std::cell::RefCell<Option<CardKeys>> = std::cell::RefCell::new(None);
        let claimed = self.journal.claim_and_new_card(
            batch,
            prefer,
            &|holder| {
                if holder.own_pin && pin_of(&holder.ssn).is_none() {
                    return Err(InputError::PinNeeded { line: holder.line as i64 }.into());
                }
                let k = self.keys.card_keys(&holder.region, &chip, alg)?;
                k.check(self.profile, s.generation)?;
                *keys.borrow_mut() = Some(k);
                Ok(crate::journal::NewCardOwned {
                    batch: Some(batch),
                    holder_line: holder.line,
                    ssn: holder.ssn.clone(),
                    region: holder.region.clone(),
                    generation: s.generation.number(),
                    chip: chip_hex.clone(),
                    atr: atr.clone(),
                    reader: reader.clone(),
                })
            },
            &|holder, seq| assigned_for_holder(holder, s, seq),
        )?;
        let Some(claimed) = claimed else { return Ok(None) };
        let keys = keys.into_inner().ok_or(Defect::ClaimWithoutKeys)?;
        let pin = if claimed.holder.own_pin {
            pin_of(&claimed.holder.ssn).ok_or(InputError::PinNeeded { line: claimed.holder.line as i64 })?
        } else {
            Pin::default_initial()
        };
        let row = self.journal.card(claimed.card)?;
        let costs = self.run_card(t, &row, &claimed.holder, pin, &keys, probe)?;
        Ok(Some((claimed.holder, claimed.card, costs)))
    }

    /// Continues the unfinished card in `t` (found by its chip serial). `pin_of` gives a holder's own
    /// initial PIN by SSN (from the holders file); `None` if there is no unfinished card of this chip.
    pub fn resume<'p>(
        &self,
        t: &mut dyn Transport,
        pin_of: &dyn Fn(&str) -> Option<&'p Pin>,
    ) -> Result<Option<(i64, Costs)>, Error> {
        let chip = hex::encode_upper(chip_of(t)?);
        let Some(row) = self.journal.open_card_of_chip(&chip)? else { return Ok(None) };
        let batch = row.batch.ok_or(JournalError::NoBatch { row: Row::Card(row.id) })?;
        let holder = self.journal.holder(batch, row.holder_line)?;
        let pin = if holder.own_pin {
            pin_of(&holder.ssn).ok_or(InputError::PinNeeded { line: row.holder_line })?
        } else {
            Pin::default_initial()
        };
        let g = generation_of(&row)?;
        let keys = self.keys.card_keys(&row.region, &chip_of(t)?, algorithm_of(g))?;
        // a card that already holds its MF key must be this row's card before its keys or its PIN are tried
        let mut probe = Costs::default();
        if self.mf_key_version(t, keys.transport.0.algorithm(), &mut probe)? != Some(TRANSPORT_VERSION) {
            self.check_card_id(t, &row, &mut probe)?;
        }
        let costs = self.run_card(t, &row, &holder, pin, &keys, probe)?;
        Ok(Some((row.id, costs)))
    }

    /// Verifies the card in `t` again against the journal (read back, key info, authentications;
    /// not the PIN). Returns the card row; the journal is not changed.
    pub fn verify_card(&self, t: &mut dyn Transport) -> Result<(CardRow, Costs), Error> {
        let chip = chip_of(t)?;
        let row = self.journal.last_card_of_chip(&hex::encode_upper(chip))?.ok_or(InputError::UnknownCard)?;
        let batch = row.batch.ok_or(JournalError::NoBatch { row: Row::Card(row.id) })?;
        let holder = self.journal.holder(batch, row.holder_line)?;
        let g = generation_of(&row)?;
        let keys = self.keys.card_keys(&row.region, &chip, algorithm_of(g))?;
        let plan = self.plan_for(&row, &holder, &keys)?;
        let mut costs = Costs::default();
        {
            let tx = t.transaction().map_err(card_core::Error::from)?;
            let mut tx = Counting { inner: tx, costs: &mut costs, cos: self.cos, alg: algorithm_of(g) };
            // a card verified on its own: nothing proven by a run before, every key is authenticated
            verify::verify(&mut tx, self.cos, self.profile, &plan, &keys, None, &verify::Proven::new())?;
        }
        Ok((row, costs))
    }

    /// The version of the MF master key of the card in `t` (`00`: the transport key of a blank card), from GET DATA
    /// key info after SELECT MF: neither writes nor counts a try. `None`: the MF has no master key.
    fn mf_key_version(&self, t: &mut dyn Transport, alg: Algorithm, costs: &mut Costs) -> Result<Option<u8>, Error> {
        let tx = t.transaction().map_err(card_core::Error::from)?;
        let mut tx = Counting { inner: tx, costs, cos: self.cos, alg };
        select_mf(&mut tx)?;
        let info = self.cos.key_info(&mut tx)?;
        Ok(info.iter().find(|i| i[0] == 0).map(|i| i[1]))
    }

    /// Checks that the card in `t` holds `row`'s card identifier (SELECT SSSE, READ RECORD EF05 1: free, no try
    /// counted), so that nothing of this row — its keys, its PIN — is tried on another card.
    fn check_card_id(&self, t: &mut dyn Transport, row: &CardRow, costs: &mut Costs) -> Result<(), Error> {
        let g = generation_of(row)?;
        let tx = t.transaction().map_err(card_core::Error::from)?;
        let mut tx = Counting { inner: tx, costs, cos: self.cos, alg: algorithm_of(g) };
        verify::ensure_card_id(&mut tx, self.profile, g, row)
    }

    fn prepared(&self, row: &CardRow, holder: &Holder) -> Result<Prepared, Error> {
        let g = generation_of(row)?;
        let seq =
            u64::try_from(row.seq).map_err(|_| JournalError::Sequence { row: Row::Card(row.id), seq: row.seq })?;
        let mut s = self.settings.clone();
        s.generation = g;
        let mut p = prepare::prepare(holder, seq, &s)?;
        // dates and type as first recorded: a resumed card is the same card
        p.issue_date = row.issue_date.clone();
        p.expiry_date = row.expiry_date.clone();
        p.card_type = row.card_type.clone();
        if hex::encode_upper(p.card_id) != row.card_id || p.card_number != row.card_number {
            return Err(JournalError::Differs { row: Row::Card(row.id) }.into());
        }
        Ok(p)
    }

    /// The plan of a journalled card (for `plan` and tests).
    pub fn plan_for(&self, row: &CardRow, holder: &Holder, keys: &CardKeys) -> Result<Plan, Error> {
        let p = self.prepared(row, holder)?;
        let photo = match &holder.photo {
            Some(path) => {
                Some(crate::files::read_limited(path, crate::files::MAX_PHOTO_FILE).map_err(|e| HolderFault {
                    line: holder.line,
                    field: "photo",
                    problem: HolderProblem::Photo { path: path.clone(), source: std::io::Error::other(e) },
                })?)
            }
            None => None,
        };
        plan::build(self.profile, &p, keys, photo.as_deref())
    }

    /// Runs and verifies `row`'s card; `costs` holds what was already sent to it (the probe).
    fn run_card(
        &self,
        t: &mut dyn Transport,
        row: &CardRow,
        holder: &Holder,
        pin: &Pin,
        keys: &CardKeys,
        costs: Costs,
    ) -> Result<Costs, Error> {
        let plan = self.plan_for(row, holder, keys)?;
        let versions = serde_json::to_string(&keys.versions()).map_err(Defect::Json)?;
        let mut costs = costs;
        let mut proven = verify::Proven::new();
        let result = self.personalize(t, row, &plan, keys, pin, &versions, &mut costs, &mut proven);
        let j = self.journal;
        let spent = |costs: &Costs, state: &str, error: Option<&str>| {
            j.set_state_and_costs(row.id, state, error, costs.apdus, costs.bytes, Some(costs.modeled_us()))
        };
        match result {
            Ok(()) => spent(&costs, state::WRITTEN, None)?,
            Err(e) => {
                spent(&costs, state::FAILED, Some(&e.to_string()))?;
                return Err(e);
            }
        }
        let before = costs.apdus;
        let verified = {
            let tx = t.transaction().map_err(card_core::Error::from)?;
            let mut tx = Counting { inner: tx, costs: &mut costs, cos: self.cos, alg: keys.transport.0.algorithm() };
            verify::verify(&mut tx, self.cos, self.profile, &plan, keys, Some(pin), &proven)
        };
        costs.verification_apdus = costs.apdus - before;
        match verified {
            Ok(()) => spent(&costs, state::VERIFIED, None)?,
            Err(e @ Error::Card(card_core::Error::Transport(_))) => {
                // torn during verification: written but not verified; resume verifies again
                spent(&costs, state::FAILED, Some(&e.to_string()))?;
                return Err(e);
            }
            Err(e) => {
                // the card does not hold what was written, or refuses its own keys
                spent(&costs, state::REJECTED, Some(&e.to_string()))?;
                return Err(e);
            }
        }
        j.set_state(row.id, state::ISSUED, None)?;
        Ok(costs)
    }

    /// Probes the card, then erases and runs the plan, or only finishes it (see the module docs). `proven` gets the
    /// keys this run proved by authenticating with them after writing them: the plan's
    /// [`Plan::proven_keys`] when the whole plan ran, the MF MK alone when only END PERSONALIZATION was left.
    #[allow(clippy::too_many_arguments)]
    fn personalize(
        &self,
        t: &mut dyn Transport,
        row: &CardRow,
        plan: &Plan,
        keys: &CardKeys,
        pin: &Pin,
        versions: &str,
        costs: &mut Costs,
        proven: &mut verify::Proven,
    ) -> Result<(), Error> {
        let j = self.journal;
        let attempt = j.begin_attempt(row.id, versions)?;
        let tx = t.transaction().map_err(card_core::Error::from)?;
        let mut tx = Counting { inner: tx, costs, cos: self.cos, alg: keys.transport.0.algorithm() };
        let tx: &mut dyn CardTransaction = &mut tx;
        let transport = &keys.transport.0;
        let (mf_mk, mf_v) = keys.get("MK_MF").ok_or_else(|| KeyError::NotInSet { name: "MK_MF".into() })?;
        let mut steps = Ahead::new(&**j, row.id, attempt);
        let mut mf_version = None;
        if attempt > 1 {
            steps.one("probe MF key info", &mut || {
                select_mf(tx)?;
                let info = self.cos.key_info(tx)?;
                mf_version = info.iter().find(|i| i[0] == 0).map(|i| i[1]);
                Ok(())
            })?;
        }
        match mf_version {
            Some(v) if v == mf_v && v != TRANSPORT_VERSION => {
                steps.one("authenticate MF MK_MF", &mut || authenticate(tx, 0, mf_mk))?;
                // the MF MK (its version checked by the probe above) answered this EXTERNAL AUTHENTICATE
                proven.insert(("MF".into(), 0));
                steps.one("END PERSONALIZATION (if not done)", &mut || {
                    let r = tx.exchange(&card_core::reference_cos::end_personalization())?;
                    match r.sw() {
                        StatusWord::OK | StatusWord::CONDITIONS_NOT_SATISFIED => Ok(()),
                        sw => Err(card_core::Error::from_status(sw).into()),
                    }
                })?;
                return steps.finish();
            }
            Some(TRANSPORT_VERSION) => {
                steps.one("erase MF", &mut || {
                    authenticate(tx, 0, transport)?;
                    self.cos.erase_df(tx)
                })?;
            }
            Some(found) => {
                steps.finish()?;
                return Err(Mismatch::MfKeyVersion { found, transport: TRANSPORT_VERSION, mk_mf: mf_v }.into());
            }
            None => {}
        }
        for group in plan.groups() {
            let labels: Vec<String> = group.iter().map(plan::Step::label).collect();
            steps.group(&labels, &mut |i| self.cos.execute(tx, &group[i], keys, pin))?;
        }
        // every step answered 9000 in this attempt: the plan's authentications after its key writes proved those keys
        *proven = plan.proven_keys();
        steps.finish()
    }
}
