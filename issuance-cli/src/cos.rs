//! The COS adapter: abstract [`Step`]s into APDUs. Personalization commands are not standard; each chip
//! family needs its own adapter. [`ReferenceCos`] speaks the reference COS of card-sim
//! (`card-sim/COS.md`, CARD-PROFILE §4 personalization commands).
//!
//! Also the ordinary commands every step needs (SELECT, GET CHALLENGE + EXTERNAL AUTHENTICATE,
//! UPDATE RECORD/BINARY), which are CARD-PROFILE §4 and common to all adapters.

use card_core::command;
use card_core::crypto::{process_key, Algorithm, CardKey};
use card_core::profile::KeyUsage;
use card_core::reference_cos::{self, EfSpec, FileSpec, KeyRecord};
use card_core::timing::CardWork;
use card_core::transport::{CardTransaction, CardTransactionExt};

use crate::pin::Pin;
use crate::plan::{Kin, Step};
use crate::prepare::CardKeys;
use crate::{Defect, Error, InputError, KeyError, Malformed, ProfileError};

/// A card transaction.
pub type Tx<'t> = dyn CardTransaction + 't;

/// Largest data field sent in one UPDATE BINARY.
pub const BINARY_CHUNK: usize = 0xF0;

/// Turns steps into APDUs for one chip family.
pub trait CosAdapter: Send + Sync {
    /// Runs one step. `pin` is the initial PIN (for [`Step::SetPin`]).
    fn execute(&self, tx: &mut Tx<'_>, step: &Step, keys: &CardKeys, pin: &Pin) -> Result<(), Error>;
    /// Erases the current DF (its files, child DFs, PIN and keys but its MK); before END PERSONALIZATION.
    fn erase_df(&self, tx: &mut Tx<'_>) -> Result<(), Error>;
    /// Key info of the current DF: (kid, version, algorithm id, tries left) per key.
    fn key_info(&self, tx: &mut Tx<'_>) -> Result<Vec<[u8; 4]>, Error>;
    /// What the chip did for `command` answered with `response` (block cipher operations, EEPROM pages), as
    /// far as the host can tell, on a card whose keys are of `alg`: for the modeled card time
    /// ([`crate::timing`]). An adapter that does not know its chip models transmission and overhead only.
    fn modeled_work(&self, command: &[u8], response: &[u8], alg: Algorithm) -> CardWork {
        let _ = (command, response, alg);
        CardWork::default()
    }
}

/// The reference COS of card-sim.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceCos;

/// CARD-PROFILE §4 SELECT by FID `3F00`.
pub fn select_mf(tx: &mut Tx<'_>) -> Result<(), Error> {
    select_fid(tx, 0x3F00)
}

/// CARD-PROFILE §4 SELECT of the MF or a DF by its FID.
pub fn select_fid(tx: &mut Tx<'_>, fid: u16) -> Result<(), Error> {
    tx.exchange_ok(&command::select_by_fid(fid)?)?;
    Ok(())
}

/// CARD-PROFILE §4 SELECT by name.
pub fn select_aid(tx: &mut Tx<'_>, aid: &[u8]) -> Result<(), Error> {
    tx.exchange_ok(&command::select_by_name_no_fci(aid)?)?;
    Ok(())
}

/// CARD-PROFILE §6.2 external authentication with `key` as kid `kid` of the current DF.
pub fn authenticate(tx: &mut Tx<'_>, kid: u8, key: &CardKey) -> Result<(), Error> {
    command::authenticate(tx, kid, |r, x| Ok(process_key(key, r).cryptogram(x)))?.ok()?;
    Ok(())
}

/// Secure WRITE KEY of the reference COS (`84 D4 01 kid`, [`reference_cos::secure_write_key`]) under `mk`,
/// the MK the current DF holds now: `key` at `version` as a key of `usage`.
pub fn secure_write_key(
    tx: &mut Tx<'_>,
    mk: &CardKey,
    kid: u8,
    usage: KeyUsage,
    max_tries: u8,
    key: (&CardKey, u8),
) -> Result<(), Error> {
    let (k, version) = key;
    reference_cos::secure_write_key(tx, mk, kid, &KeyRecord::key(usage, version, max_tries, k))?.ok()?;
    Ok(())
}

fn key_of<'k>(keys: &'k CardKeys, name: &str) -> Result<&'k CardKey, Error> {
    keys.get(name).map(|(k, _)| k).ok_or_else(|| KeyError::NotInSet { name: name.to_owned() }.into())
}

impl CosAdapter for ReferenceCos {
    fn execute(&self, tx: &mut Tx<'_>, step: &Step, keys: &CardKeys, pin: &Pin) -> Result<(), Error> {
        match step {
            Step::SelectMf => select_mf(tx),
            // the reference COS finds by file id the MF, the current DF, its children, its parent and the parent's
            // children (card-sim/COS.md): a child or a sibling is selected by its FID, 4 to 13 bytes shorter than
            // its AID (CARD-PROFILE §2; Part 3 §5.2.2 of the card spec has any ADF or DDF found by its FID)
            Step::Select { fid, kin: Kin::Child | Kin::Sibling, .. } => select_fid(tx, *fid),
            Step::Authenticate { kid, key, .. } => authenticate(tx, *kid, key_of(keys, &key.name)?),
            Step::CreateDf { fid, aid, .. } => {
                tx.exchange_ok(&reference_cos::create_file(*fid, &FileSpec::Df { aid: Some(aid.clone()) })?)?;
                Ok(())
            }
            Step::CreateEf { fid, sfi, read, update, layout, .. } => {
                let spec = FileSpec::Ef(EfSpec { sfi: *sfi, read: *read, update: *update, layout: layout.clone() });
                tx.exchange_ok(&reference_cos::create_file(*fid, &spec)?)?;
                Ok(())
            }
            Step::WriteKey { kid, usage, max_tries, key, .. } => {
                let (k, version) = keys.get(&key.name).ok_or_else(|| KeyError::NotInSet { name: key.name.clone() })?;
                let usage =
                    KeyUsage::from_name(usage).ok_or_else(|| ProfileError::KeyUsage { usage: usage.clone() })?;
                tx.exchange_ok(&reference_cos::write_key(*kid, &KeyRecord::key(usage, version, *max_tries, k))?)?;
                Ok(())
            }
            Step::SetPin { max_tries, length, .. } => {
                let bcd = pin.bcd(*length).ok_or(InputError::PinTooLong { bytes: *length })?;
                let record = KeyRecord::Pin { max_tries: *max_tries, bcd };
                tx.exchange_ok(&reference_cos::write_key(0x00, &record)?)?;
                Ok(())
            }
            Step::WriteRecord { sfi, record, tag, value, .. } => {
                let len =
                    u8::try_from(value.len()).map_err(|_| Defect::ValueTooLong { tag: *tag, len: value.len() })?;
                let tlv = [vec![*tag, len], value.clone()].concat();
                tx.exchange_ok(&command::update_record(*record, *sfi, tlv)?)?;
                Ok(())
            }
            Step::WriteBinary { sfi, data, .. } => {
                for (i, chunk) in data.chunks(BINARY_CHUNK).enumerate() {
                    let off = u16::try_from(i * BINARY_CHUNK).map_err(|_| Defect::BinaryTooLong { len: data.len() })?;
                    // the first chunk selects the EF by SFI (P1 = 80 | SFI, offset 0)
                    let cmd = if off == 0 {
                        command::update_binary_sfi(*sfi, chunk.to_vec())
                    } else {
                        command::update_binary(off, chunk.to_vec())
                    };
                    tx.exchange_ok(&cmd?)?;
                }
                Ok(())
            }
            Step::EndPersonalization => {
                tx.exchange_ok(&reference_cos::end_personalization())?;
                Ok(())
            }
        }
    }

    fn erase_df(&self, tx: &mut Tx<'_>) -> Result<(), Error> {
        tx.exchange_ok(&reference_cos::erase_df())?;
        Ok(())
    }

    fn modeled_work(&self, command: &[u8], response: &[u8], alg: Algorithm) -> CardWork {
        crate::timing::reference_work(command, response, alg)
    }

    fn key_info(&self, tx: &mut Tx<'_>) -> Result<Vec<[u8; 4]>, Error> {
        let data = tx.exchange_ok(&command::get_key_info()?)?;
        command::parse_key_info(&data).map_err(|source| Malformed::KeyInfo { len: data.len(), source }.into())
    }
}
