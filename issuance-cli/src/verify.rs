//! Read-back verification (CARD-PROFILE §8 step 7): after a reset, every written record and binary is
//! read back (READ RECORD "all" per EF where the card has it, else record by record; READ BINARY; after RKSSSE
//! on generation 3) and compared; every DF's key info (GET DATA) must list each written key at its version and
//! algorithm; every MK and external authentication key is used in one EXTERNAL AUTHENTICATE — unless the
//! personalization run just before proved it by authenticating with it after writing it ([`Proven`]); IRK
//! answers an INTERNAL AUTHENTICATE as computed here; the initial PIN verifies. Only then may the card be
//! recorded as issued.

use std::collections::{BTreeMap, BTreeSet};

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

/// Keys proven by the personalization run just before the verification: `(DF, kid)`, [`Plan::proven_keys`].
pub type Proven = BTreeSet<(String, u8)>;

/// Verifies a written card against its plan; `pin`, the initial PIN, is checked when given (not on a
/// card in circulation, whose holder may have changed it). `proven`: the keys the personalization run that
/// precedes this verification proved by authenticating with them right after writing them
/// ([`Plan::proven_keys`]); empty for a card verified on its own (`verify_card`, a resumed card).
///
/// What each DF costs, and why nothing that proves something is left out:
/// - SELECT and GET DATA key info: the version and algorithm of every key written in the DF, in one APDU.
/// - EXTERNAL AUTHENTICATE with each MK and external-authentication key **not in `proven`**, once: a key in
///   `proven` was used successfully after it was written and nothing wrote its kid since, so a second
///   authentication would prove what is proven. Each other key gets exactly one authentication; the security
///   state then holds in the DF (no SELECT in between), so RKSSSE, authenticated in the key loop on
///   generation 3, is not authenticated again before EF06 is read.
/// - INTERNAL AUTHENTICATE with IRK; VERIFY of the initial PIN.
/// - Records: one READ RECORD "all records from 1" (`P2 = SFI<<3 | 101`, CARD-PROFILE §4) per linear EF whose
///   written records are 1…n, compared with the records written, in order; a card that answers `6A86` to it
///   (the mode is optional on real cards) is read record by record, as is an EF written with gaps. A
///   transparent EF is read whole, in chunks.
pub fn verify(
    tx: &mut Tx<'_>,
    cos: &dyn CosAdapter,
    profile: &Profile,
    plan: &Plan,
    keys: &CardKeys,
    pin: Option<&Pin>,
    proven: &Proven,
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
    let mut read_all = true;
    for (df, ks) in &written_keys {
        if df == "MF" {
            select_mf(tx)?;
        } else {
            let aid =
                profile.df(df).and_then(|d| d.aid.clone()).ok_or_else(|| ProfileError::NoDf { df: df.clone() })?;
            select_aid(tx, &aid)?;
        }
        let info = cos.key_info(tx)?;
        // kids authenticated since this DF was selected (the security state holds until the next SELECT)
        let mut authenticated = BTreeSet::new();
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
                "master" | "external-auth" if !proven.contains(&(df.clone(), *kid)) => {
                    authenticate(tx, *kid, key)?;
                    authenticated.insert(*kid);
                }
                "internal-auth" => internal_auth(tx, key, df)?,
                _ => {}
            }
        }
        if df == "SSSE" {
            if g == Generation::THREE {
                let rk = keys.get("RKSSSE").ok_or_else(|| KeyError::NotInSet { name: "RKSSSE".into() })?.0;
                let kid = profile.df("SSSE").and_then(|d| d.key("RKSSSE")).map(|k| k.kid).unwrap_or(0x0A);
                if !authenticated.contains(&kid) {
                    authenticate(tx, kid, rk)?;
                }
            }
            if let Some(pin) = pin {
                verify_pin(tx, profile, pin)?;
            }
        }
        let written: Vec<&Step> = records.get(df).into_iter().flatten().copied().collect();
        read_back_df(tx, &written, &mut read_all)?;
    }
    Ok(())
}

/// The records of one linear EF as written, if they are records 1…n in order: what READ RECORD "all from 1"
/// answers (the card concatenates its written records in record order).
pub(crate) fn whole_ef(writes: &[&Step]) -> Option<(String, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut first = None;
    for (i, s) in writes.iter().enumerate() {
        let Step::WriteRecord { ef, sfi, record, tag, value, .. } = s else { return None };
        if usize::from(*record) != i + 1 {
            return None;
        }
        first.get_or_insert((ef.clone(), *sfi));
        out.extend([*tag, u8::try_from(value.len()).ok()?]);
        out.extend_from_slice(value);
    }
    // a short Le (00 = 256) must hold the answer
    let (ef, sfi) = first?;
    (out.len() <= 256).then_some((ef, sfi, out))
}

/// Reads back what the plan wrote in the current DF: linear EFs whole where possible ([`whole_ef`]; `read_all`
/// is cleared by the first card that refuses the mode), else record by record; transparent EFs in chunks.
fn read_back_df(tx: &mut Tx<'_>, written: &[&Step], read_all: &mut bool) -> Result<(), Error> {
    use card_core::apdu::StatusWord;
    for s in written.iter().filter(|s| !matches!(s, Step::WriteRecord { .. })) {
        read_back(tx, s)?;
    }
    for writes in records_by_ef(written.iter().copied()) {
        if *read_all {
            if let Some((ef, sfi, want)) = whole_ef(&writes) {
                let r = tx.exchange(&command::read_records_from(1, sfi)?)?;
                if r.sw() == StatusWord::OK {
                    if r.data() != want.as_slice() {
                        let (record, tag) = first_difference(r.data(), &writes);
                        return Err(Mismatch::Record { ef, record, tag }.into());
                    }
                    continue;
                }
                if r.sw() != StatusWord::WRONG_P1P2 {
                    return Err(card_core::Error::from_status(r.sw()).into());
                }
                // 6A86: this card reads record by record
                *read_all = false;
            }
        }
        for s in writes {
            read_back(tx, s)?;
        }
    }
    Ok(())
}

/// The record writes among `steps`, one group per EF (DF and EF name) in the order the EFs first appear, each in
/// record order: what one READ RECORD "all" of the EF answers ([`whole_ef`]).
pub(crate) fn records_by_ef<'a>(steps: impl IntoIterator<Item = &'a Step>) -> Vec<Vec<&'a Step>> {
    let mut by_ef: Vec<((&str, &str), Vec<&Step>)> = Vec::new();
    for s in steps {
        if let Step::WriteRecord { df, ef, .. } = s {
            match by_ef.iter_mut().find(|(k, _)| *k == (df.as_str(), ef.as_str())) {
                Some((_, v)) => v.push(s),
                None => by_ef.push(((df, ef), vec![s])),
            }
        }
    }
    by_ef
        .into_iter()
        .map(|(_, mut writes)| {
            writes.sort_by_key(|s| match s {
                Step::WriteRecord { record, .. } => *record,
                _ => 0,
            });
            writes
        })
        .collect()
}

/// READ BINARY of `le` bytes at `offset` of the transparent EF `sfi`: by its short file id for the first chunk
/// (which also selects it), in the current EF after.
pub(crate) fn read_binary_chunk(
    sfi: u8,
    offset: usize,
    le: u32,
    len: usize,
) -> Result<card_core::apdu::Command, Error> {
    let off = u16::try_from(offset).map_err(|_| Defect::BinaryTooLong { len })?;
    Ok(if off == 0 { command::read_binary_sfi(sfi, le) } else { command::read_binary(off, le) }?)
}

/// The number and tag of the first record of `writes` that `got` (the records concatenated) does not hold.
fn first_difference(got: &[u8], writes: &[&Step]) -> (u8, u8) {
    let mut at = 0;
    for s in writes {
        if let Step::WriteRecord { record, tag, value, .. } = s {
            let want = [&[*tag, u8::try_from(value.len()).unwrap_or(0)][..], value].concat();
            if got.get(at..at + want.len()) != Some(&want[..]) {
                return (*record, *tag);
            }
            at += want.len();
        }
    }
    (0, 0)
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
                let le = u32::try_from(want).unwrap_or(0);
                let chunk = tx.exchange_ok(&read_binary_chunk(*sfi, got.len(), le, data.len())?)?;
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
