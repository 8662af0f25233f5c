//! Read-back verification (CARD-PROFILE §8 step 7): after a reset, every written record and binary is
//! read back with plain READ RECORD / READ BINARY (after RKSSSE on generation 3) and compared; every DF's
//! key info (GET DATA) must list each written key at its version and algorithm; every MK and external
//! authentication key is used in an EXTERNAL AUTHENTICATE; IRK answers an INTERNAL AUTHENTICATE as
//! computed here; the initial PIN verifies. Only then may the card be recorded as issued.

use std::collections::BTreeMap;

use card_core::command;
use card_core::crypto::{ct_eq, process_key};
use card_core::profile::{Generation, Profile};
use card_core::transport::CardTransactionExt;

use crate::cos::{authenticate, select_aid, select_mf, CosAdapter, Tx, BINARY_CHUNK};
use crate::pin::Pin;
use crate::plan::{Plan, Step};
use crate::prepare::CardKeys;
use crate::{Defect, Error, InputError, KeyError, Mismatch, ProfileError};

/// The card identifier (hex) the card in `tx` holds: SELECT SSSE, READ RECORD of the profile's `card_id` item
/// (free; no try counted). `None`: no SSSE application, or no such record.
pub fn card_id_of(tx: &mut Tx<'_>, profile: &Profile, g: Generation) -> Result<Option<String>, Error> {
    use card_core::apdu::StatusWord;
    use card_core::profile::ItemField;
    let Some(ssse) = profile.df("SSSE") else { return Ok(None) };
    let Some(aid) = ssse.aid.as_deref() else { return Ok(None) };
    if tx.exchange(&command::select_by_name_no_fci(aid)?)?.sw() != StatusWord::OK {
        return Ok(None);
    }
    let Some((ef, record, _)) = ssse.field(g, ItemField::CardId) else { return Ok(None) };
    let r = tx.exchange(&command::read_record(record, ef.sfi)?)?;
    if r.sw() != StatusWord::OK {
        return Ok(None);
    }
    Ok(card_core::tlv::RecordTlv::parse(r.data()).ok().map(|t| hex::encode_upper(t.value)))
}

/// Refuses the card in `tx` unless it holds `row`'s card identifier ([`card_id_of`]): nothing of the row — its
/// keys, its PIN — is tried on another card.
pub fn ensure_card_id(
    tx: &mut Tx<'_>,
    profile: &Profile,
    g: Generation,
    row: &crate::journal::CardRow,
) -> Result<(), Error> {
    let found = card_id_of(tx, profile, g)?;
    if !found.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(&row.card_id)) {
        return Err(InputError::NotThisCard {
            found: found.unwrap_or_else(|| "none (no application or no card identifier)".into()),
            expected: row.card_id.clone(),
            card_number: row.card_number.clone(),
        }
        .into());
    }
    Ok(())
}

/// Verifies a written card against its plan; `pin`, the initial PIN, is checked when given (not on a
/// card in circulation, whose holder may have changed it).
pub fn verify(
    tx: &mut Tx<'_>,
    cos: &dyn CosAdapter,
    profile: &Profile,
    plan: &Plan,
    keys: &CardKeys,
    pin: Option<&Pin>,
) -> Result<(), Error> {
    tx.reset()?;
    let g = Generation::new(plan.generation).ok_or(Defect::Generation(plan.generation))?;
    // per DF: keys written (kid, usage, name) and data written
    let mut written_keys: BTreeMap<String, Vec<(u8, String, String, u8)>> = BTreeMap::new();
    let mut records: BTreeMap<String, Vec<&Step>> = BTreeMap::new();
    for s in &plan.steps {
        match s {
            Step::WriteKey { df, kid, usage, key, .. } => {
                written_keys.entry(df.clone()).or_default().push((*kid, usage.clone(), key.name.clone(), key.version))
            }
            Step::WriteRecord { df, .. } | Step::WriteBinary { df, .. } => {
                records.entry(df.clone()).or_default().push(s)
            }
            _ => {}
        }
    }
    for (df, ks) in &written_keys {
        if df == "MF" {
            select_mf(tx)?;
        } else {
            let aid =
                profile.df(df).and_then(|d| d.aid.clone()).ok_or_else(|| ProfileError::NoDf { df: df.clone() })?;
            select_aid(tx, &aid)?;
        }
        let info = cos.key_info(tx)?;
        for (kid, usage, name, version) in ks {
            let (key, _) = keys.get(name).ok_or_else(|| KeyError::NotInSet { name: name.clone() })?;
            let found = info.iter().find(|i| i[0] == *kid);
            if found.map(|i| (i[1], i[2])) != Some((*version, key.algorithm().id())) {
                return Err(Mismatch::KeyVersion {
                    df: df.clone(),
                    kid: *kid,
                    name: name.clone(),
                    found: found.copied(),
                    expected: *version,
                    after_rekey: false,
                }
                .into());
            }
            match usage.as_str() {
                "master" | "external-auth" => authenticate(tx, *kid, key)?,
                "internal-auth" => internal_auth(tx, key, df)?,
                _ => {}
            }
        }
        if df == "SSSE" {
            if g == Generation::THREE {
                let rk = keys.get("RKSSSE").ok_or_else(|| KeyError::NotInSet { name: "RKSSSE".into() })?.0;
                let kid = profile.df("SSSE").and_then(|d| d.key("RKSSSE")).map(|k| k.kid).unwrap_or(0x0A);
                authenticate(tx, kid, rk)?;
            }
            if let Some(pin) = pin {
                verify_pin(tx, profile, pin)?;
            }
        }
        for s in records.get(df).into_iter().flatten() {
            read_back(tx, s)?;
        }
    }
    Ok(())
}

fn internal_auth(tx: &mut Tx<'_>, irk: &card_core::crypto::CardKey, df: &str) -> Result<(), Error> {
    let r1: [u8; 8] = rand::random();
    let r2: [u8; 8] = rand::random();
    let answer = tx.exchange_ok(&command::internal_authenticate(&r1, &r2)?)?;
    let expected = process_key(irk, &r1).cryptogram(&r2);
    if !ct_eq(&answer, &expected) {
        return Err(Mismatch::InternalAuth { df: df.to_owned() }.into());
    }
    Ok(())
}

/// CARD-PROFILE §4 VERIFY PIN with the initial PIN (BCD, `F`-padded).
fn verify_pin(tx: &mut Tx<'_>, profile: &Profile, pin: &Pin) -> Result<(), Error> {
    let bcd = pin.bcd(profile.pin.length).ok_or(InputError::PinTooLong { bytes: profile.pin.length })?;
    match tx.exchange_ok(&command::verify_pin(&bcd)?) {
        Ok(_) => Ok(()),
        Err(e @ card_core::Error::Transport(_)) => Err(e.into()),
        Err(e) => Err(Mismatch::Pin(e).into()),
    }
}

fn read_back(tx: &mut Tx<'_>, s: &Step) -> Result<(), Error> {
    match s {
        Step::WriteRecord { ef, sfi, record, tag, value, .. } => {
            let got = tx.exchange_ok(&command::read_record(*record, *sfi)?)?;
            let want = [vec![*tag, u8::try_from(value.len()).unwrap_or(0)], value.clone()].concat();
            if got != want {
                return Err(Mismatch::Record { ef: ef.clone(), record: *record, tag: *tag }.into());
            }
        }
        Step::WriteBinary { ef, sfi, data, .. } => {
            let mut got = Vec::with_capacity(data.len());
            while got.len() < data.len() {
                let want = (data.len() - got.len()).min(BINARY_CHUNK);
                let off = u16::try_from(got.len()).map_err(|_| Defect::BinaryTooLong { len: data.len() })?;
                let le = u32::try_from(want).unwrap_or(0);
                let cmd = if off == 0 { command::read_binary_sfi(*sfi, le) } else { command::read_binary(off, le) };
                let chunk = tx.exchange_ok(&cmd?)?;
                if chunk.is_empty() {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            if got != *data {
                return Err(Mismatch::Binary { ef: ef.clone() }.into());
            }
        }
        _ => {}
    }
    Ok(())
}
