//! The COS adapter: abstract [`Step`]s into APDUs. Personalization commands are not standard; each chip
//! family needs its own adapter. [`ReferenceCos`] speaks the reference COS of card-sim
//! (`card-sim/COS.md`, CARD-PROFILE §4 personalization commands).
//!
//! Also the ordinary commands every step needs (SELECT, GET CHALLENGE + EXTERNAL AUTHENTICATE,
//! UPDATE RECORD/BINARY), which are CARD-PROFILE §4 and common to all adapters.

use card_core::apdu::{Command, Ins};
use card_core::codec;
use card_core::crypto::{line_mac, process_key, secure_data_encrypt, Algorithm, CardKey};
use card_core::timing::CardWork;
use card_core::transport::{CardTransaction, CardTransactionExt};
use zeroize::Zeroizing;

use crate::plan::{Ac, Layout, Step};
use crate::prepare::CardKeys;
use crate::Error;

/// A card transaction.
pub type Tx<'t> = dyn CardTransaction + 't;

/// Largest data field sent in one UPDATE BINARY.
pub const BINARY_CHUNK: usize = 0xF0;

/// Turns steps into APDUs for one chip family.
pub trait CosAdapter: Send + Sync {
    /// Runs one step. `pin` is the initial PIN (for [`Step::SetPin`]).
    fn execute(&self, tx: &mut Tx<'_>, step: &Step, keys: &CardKeys, pin: &str) -> Result<(), Error>;
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
    let cmd = Command::new(0x00, Ins::SELECT, 0x00, 0x00).with_data(vec![0x3F, 0x00])?;
    tx.exchange_ok(&cmd)?;
    Ok(())
}

/// CARD-PROFILE §4 SELECT by name.
pub fn select_aid(tx: &mut Tx<'_>, aid: &[u8]) -> Result<(), Error> {
    let cmd = Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid.to_vec())?;
    tx.exchange_ok(&cmd)?;
    Ok(())
}

/// CARD-PROFILE §6.2 external authentication with `key` as kid `kid` of the current DF.
pub fn authenticate(tx: &mut Tx<'_>, kid: u8, key: &CardKey) -> Result<(), Error> {
    let challenge = tx.exchange_ok(&Command::new(0x00, Ins::GET_CHALLENGE, 0, 0).with_le(8)?)?;
    let r: [u8; 8] =
        challenge.as_slice().try_into().map_err(|_| Error::Malformed("challenge is not 8 bytes".into()))?;
    let x: [u8; 8] = rand::random();
    let c = process_key(key, &r).cryptogram(&x);
    let cmd = Command::new(0x00, Ins::EXTERNAL_AUTHENTICATE, 0x00, kid).with_data([c, x].concat())?.sensitive();
    tx.exchange_ok(&cmd)?;
    Ok(())
}

/// Secure WRITE KEY (reference COS `84 D4 01 kid Lc ENC_MK(Ld‖record‖pad) MAC4`): the key record
/// `type ‖ version ‖ algorithm ‖ max tries ‖ key` encrypted and MACed (CARD-PROFILE §6.4, after GET
/// CHALLENGE) under `mk`, the MK the current DF holds now.
pub fn secure_write_key(
    tx: &mut Tx<'_>,
    mk: &CardKey,
    kid: u8,
    usage: &str,
    max_tries: u8,
    key: (&CardKey, u8),
) -> Result<(), Error> {
    let (k, version) = key;
    let mut rec = Zeroizing::new(vec![key_type(usage)?, version, k.algorithm().id(), max_tries]);
    rec.extend_from_slice(k.expose_secret());
    let enc = secure_data_encrypt(mk, &rec).map_err(card_core::Error::from)?;
    let lc = u8::try_from(enc.len() + 4).map_err(|_| Error::Internal("key record too long".into()))?;
    let le = if mk.algorithm() == Algorithm::Tdes { 4 } else { 8 };
    let challenge = tx.exchange_ok(&Command::new(0x00, Ins::GET_CHALLENGE, 0, 0).with_le(le)?)?;
    let header = [0x84, Ins::WRITE_KEY.0, 0x01, kid, lc];
    let mac = line_mac(mk, &challenge, &[&header[..], &enc].concat()).map_err(card_core::Error::from)?;
    let cmd = Command::new(0x84, Ins::WRITE_KEY, 0x01, kid).with_data([enc, mac.to_vec()].concat())?.sensitive();
    tx.exchange_ok(&cmd)?;
    Ok(())
}

/// COS access-condition byte (card-sim `access.rs`).
pub fn ac_byte(ac: Ac) -> u8 {
    match ac {
        Ac::Free => 0x00,
        Ac::Pin => 0x10,
        Ac::Key(k) => 0x20 | (k & 0x0F),
        Ac::PinOrKey(k) => 0x30 | (k & 0x0F),
        Ac::PinAndKey(k) => 0x40 | (k & 0x0F),
        Ac::Never => 0xFF,
    }
}

/// COS key type of a plan usage (card-sim `keys.rs`).
fn key_type(usage: &str) -> Result<u8, Error> {
    Ok(match usage {
        "master" => 0x01,
        "internal-auth" => 0x02,
        "external-auth" => 0x03,
        "pin-unblock" => 0x04,
        "maintenance" => 0x05,
        "pin-reload" => 0x06,
        other => return Err(Error::Profile(format!("key usage {other} unknown to the reference COS"))),
    })
}

fn create(fid: u16, data: Vec<u8>) -> Result<Command, Error> {
    let [hi, lo] = fid.to_be_bytes();
    Ok(Command::new(0x80, Ins::CREATE_FILE, hi, lo).with_data(data)?)
}

/// CREATE FILE data of an EF (card-sim COS.md).
fn ef_data(sfi: u8, read: Ac, update: Ac, layout: &Layout) -> Vec<u8> {
    let (r, u) = (ac_byte(read), ac_byte(update));
    match layout {
        Layout::Linear { records, record_len, record_read } => {
            let mut v = vec![0x04, sfi, r, u, *records, *record_len];
            for (n, a) in record_read {
                v.extend_from_slice(&[*n, ac_byte(*a)]);
            }
            v
        }
        Layout::Cyclic { records, record_len } => vec![0x06, sfi, r, u, *records, *record_len],
        Layout::Transparent { size } => {
            let [hi, lo] = size.to_be_bytes();
            vec![0x01, sfi, r, u, hi, lo]
        }
    }
}

fn key_of<'k>(keys: &'k CardKeys, name: &str) -> Result<&'k CardKey, Error> {
    keys.get(name).map(|(k, _)| k).ok_or_else(|| Error::Keys(format!("no key {name}")))
}

impl CosAdapter for ReferenceCos {
    fn execute(&self, tx: &mut Tx<'_>, step: &Step, keys: &CardKeys, pin: &str) -> Result<(), Error> {
        match step {
            Step::SelectMf => select_mf(tx),
            Step::Select { aid, .. } => select_aid(tx, aid),
            Step::Authenticate { kid, key, .. } => authenticate(tx, *kid, key_of(keys, &key.name)?),
            Step::CreateDf { fid, aid, .. } => {
                tx.exchange_ok(&create(*fid, [vec![0x38], aid.clone()].concat())?)?;
                Ok(())
            }
            Step::CreateEf { fid, sfi, read, update, layout, .. } => {
                tx.exchange_ok(&create(*fid, ef_data(*sfi, *read, *update, layout))?)?;
                Ok(())
            }
            Step::WriteKey { kid, usage, max_tries, key, .. } => {
                let (k, version) = keys.get(&key.name).ok_or_else(|| Error::Keys(format!("no key {}", key.name)))?;
                let mut rec = Zeroizing::new(vec![key_type(usage)?, version, k.algorithm().id(), *max_tries]);
                rec.extend_from_slice(k.expose_secret());
                let cmd = Command::new(0x80, Ins::WRITE_KEY, 0x01, *kid).with_data(rec.to_vec())?.sensitive();
                tx.exchange_ok(&cmd)?;
                Ok(())
            }
            Step::SetPin { max_tries, length, .. } => {
                let bcd = Zeroizing::new(codec::encode_cn(pin, *length).map_err(|_| Error::Input("PIN".into()))?);
                let mut rec = Zeroizing::new(vec![0x0F, 0x00, 0x00, *max_tries]);
                rec.extend_from_slice(&bcd);
                rec.resize(20, 0xFF);
                let cmd = Command::new(0x80, Ins::WRITE_KEY, 0x01, 0x00).with_data(rec.to_vec())?.sensitive();
                tx.exchange_ok(&cmd)?;
                Ok(())
            }
            Step::WriteRecord { sfi, record, tag, value, .. } => {
                let len = u8::try_from(value.len()).map_err(|_| Error::Input(format!("tag {tag:02X} too long")))?;
                let tlv = [vec![*tag, len], value.clone()].concat();
                let cmd = Command::new(0x00, Ins::UPDATE_RECORD, *record, (sfi << 3) | 4).with_data(tlv)?;
                tx.exchange_ok(&cmd)?;
                Ok(())
            }
            Step::WriteBinary { sfi, data, .. } => {
                for (i, chunk) in data.chunks(BINARY_CHUNK).enumerate() {
                    let off = i * BINARY_CHUNK;
                    let [hi, lo] =
                        u16::try_from(off).map_err(|_| Error::Input("binary too long".into()))?.to_be_bytes();
                    // first chunk selects the EF by SFI (P1 = 80 | SFI, P2 = offset)
                    let cmd = if off == 0 {
                        Command::new(0x00, Ins::UPDATE_BINARY, 0x80 | sfi, 0)
                    } else {
                        Command::new(0x00, Ins::UPDATE_BINARY, hi, lo)
                    };
                    tx.exchange_ok(&cmd.with_data(chunk.to_vec())?)?;
                }
                Ok(())
            }
            Step::EndPersonalization => {
                tx.exchange_ok(&Command::new(0x80, Ins::END_PERSONALIZATION, 0, 0))?;
                Ok(())
            }
        }
    }

    fn erase_df(&self, tx: &mut Tx<'_>) -> Result<(), Error> {
        tx.exchange_ok(&Command::new(0x80, Ins::ERASE_DF, 0, 0))?;
        Ok(())
    }

    fn modeled_work(&self, command: &[u8], response: &[u8], alg: Algorithm) -> CardWork {
        crate::timing::reference_work(command, response, alg)
    }

    fn key_info(&self, tx: &mut Tx<'_>) -> Result<Vec<[u8; 4]>, Error> {
        let data = tx.exchange_ok(&Command::new(0x80, Ins::GET_DATA, 0x00, 0xC1).with_le(256)?)?;
        if data.len() % 4 != 0 {
            return Err(Error::Malformed(format!("key info of {} bytes", data.len())));
        }
        Ok(data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect())
    }
}
