//! Replacing a card (issue 6 §6): a new card for a holder who already has an issued card — card type
//! `2` (replacement, CARD-PROFILE §2.1 tag 02 [P]), a new card identifier and card number, the same holder
//! data (from the journal). The old card is retired first:
//!
//! - **presented** in a reader: its chip must be the journal's; APPLICATION BLOCK of SSSE with the card's
//!   STK (at the version the journal says the card holds), confirmed by SELECT SSSE answering `6A81`
//!   (the DFs below SSSE are blocked with it, card-sim COS.md). A card already blocked (an earlier replace
//!   that stopped before the journal was written) is taken as blocked.
//! - **absent** (lost, stolen, not brought): nothing is sent; the journal says its application was *not*
//!   blocked.
//!
//! Then, in one journal transaction, the old card becomes `replaced` (with the replacements record) and a
//! one-holder batch is made for the successor, which is then issued like any card (journalled, verified,
//! resumable with `issuance resume`).

use std::collections::BTreeMap;

use crate::holders::Holder;
use crate::journal::{state, CardRow};
use crate::pin::Pin;
use crate::prepare::algorithm_of;
use crate::run::{chip_of, generation_of, Costs, Issuer};
use crate::{Error, InputError, JournalError, Mismatch, ProfileError, Row};
use card_core::apdu::StatusWord;
use card_core::card::SocialSecurityCard;
use card_core::transport::{CardTransaction, CardTransactionExt, Transport, TransportError};

/// The card type of a replacement card (EF05 tag 02) [P].
pub const REPLACEMENT_CARD_TYPE: &str = "2";

/// A borrowed transport as a [`Transport`] (for [`SocialSecurityCard`], which owns its transport).
struct Borrowed<'a>(&'a mut dyn Transport);

impl Transport for Borrowed<'_> {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        self.0.transaction()
    }
    fn atr(&self) -> &[u8] {
        self.0.atr()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
}

/// The old card of a replacement.
pub enum OldCard<'a> {
    /// In a reader: its application is blocked.
    Presented(&'a mut dyn Transport),
    /// Not at the desk: marked replaced in the journal only.
    Absent,
}

/// The old card retired: the batch of its successor and the holder to issue it to.
pub struct Retired {
    /// The one-holder batch of the successor.
    pub batch: i64,
    /// The holder (journal data; the PIN as given, else the default).
    pub holder: Holder,
    /// Whether the old card's application was blocked.
    pub blocked: bool,
}

impl Issuer<'_> {
    /// Retires the issued card `old`: blocks its application if it is presented, then marks it replaced and
    /// records the successor's batch (see the module docs). `pin` is the new card's initial PIN (`None`:
    /// the default PIN). Nothing is journalled if blocking fails.
    pub fn retire(&self, old: &CardRow, card: OldCard<'_>, pin: Option<Pin>, reason: &str) -> Result<Retired, Error> {
        if old.state != state::ISSUED {
            return Err(
                InputError::NotReplaceable { card_number: old.card_number.clone(), state: old.state.clone() }.into()
            );
        }
        let batch = old.batch.ok_or(JournalError::NoBatch { row: Row::Card(old.id) })?;
        let mut holder = self.journal.holder(batch, old.holder_line)?;
        holder.own_pin = pin.is_some();
        holder.pin = pin;
        let blocked = match card {
            OldCard::Presented(t) => {
                self.block_application(t, old)?;
                true
            }
            OldCard::Absent => false,
        };
        let batch = self.journal.replace_card(old.id, blocked, reason, &holder)?;
        Ok(Retired { batch, holder, blocked })
    }

    /// Issues the successor of a retired card to the blank card in `t`: card type replacement, the next card
    /// identifier and number of the region. Returns the card row id and the costs.
    pub fn issue_replacement(&self, t: &mut dyn Transport, retired: &Retired) -> Result<(i64, Costs), Error> {
        let mut settings = self.settings.clone();
        settings.card_type = REPLACEMENT_CARD_TYPE.into();
        let issuer = Issuer { profile: self.profile, cos: self.cos, keys: self.keys, journal: self.journal, settings };
        issuer.issue(t, &retired.holder, Some(retired.batch))
    }

    /// APPLICATION BLOCK of SSSE on the card `old` in `t`, confirmed by SELECT SSSE answering `6A81`.
    fn block_application(&self, t: &mut dyn Transport, old: &CardRow) -> Result<(), Error> {
        let chip = hex::encode_upper(chip_of(t)?);
        if chip != old.chip {
            return Err(InputError::WrongCard {
                chip,
                card_number: old.card_number.clone(),
                expected_chip: old.chip.clone(),
            }
            .into());
        }
        let g = generation_of(old)?;
        let versions: BTreeMap<String, u8> = serde_json::from_str(&old.key_versions)
            .map_err(|source| JournalError::KeyVersions { row: Row::Card(old.id), source })?;
        let module = self.keys.region_module_at(&old.region, algorithm_of(g), &versions)?;
        if self.ssse_blocked(t)? {
            return Ok(());
        }
        SocialSecurityCard::with_profile(Borrowed(t), std::sync::Arc::new(self.profile.clone()))
            .block_application(&module, "SSSE")?;
        if !self.ssse_blocked(t)? {
            return Err(Mismatch::NotBlocked { df: "SSSE".into() }.into());
        }
        Ok(())
    }

    /// SELECT SSSE by name: `9000` open, `6A81` blocked.
    fn ssse_blocked(&self, t: &mut dyn Transport) -> Result<bool, Error> {
        let aid = self
            .profile
            .df("SSSE")
            .and_then(|d| d.aid.clone())
            .ok_or_else(|| ProfileError::NoAid { df: "SSSE".into() })?;
        let mut tx = t.transaction().map_err(card_core::Error::from)?;
        let r = tx.exchange(&card_core::command::select_by_name(&aid)?)?;
        match r.sw() {
            StatusWord::OK => Ok(false),
            StatusWord::FUNCTION_NOT_SUPPORTED => Ok(true),
            sw => Err(card_core::Error::from_status(sw).into()),
        }
    }
}
