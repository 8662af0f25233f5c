//! Record reads with the read-all probe, record writes, and transparent files in chunks.

use std::collections::BTreeMap;

use super::session::Session;
use crate::apdu::StatusWord;
use crate::command;
use crate::profile::{Df, Ef, EfKind};
use crate::tlv::RecordTlv;
use crate::Error;

/// Bytes per READ BINARY (Le `00`).
pub(crate) const READ_CHUNK: usize = 256;
/// Bytes per UPDATE BINARY (short Lc, room for a MAC).
pub(crate) const WRITE_CHUNK: usize = 248;

/// The values of `tags` in a linear EF of the current DF (which must be `df`), access conditions met first.
///
/// Records the card has not written (`6A83`) are left out. Uses READ RECORD "all from the first wanted
/// record" when every record from there to the end is readable and the card supports it.
pub(crate) fn read_tags(s: &mut Session<'_>, df: &Df, ef: &Ef, tags: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, Error> {
    let g = s.generation();
    let mut records = Vec::new();
    for &tag in tags {
        let (n, item) = ef
            .record_of(g, tag)
            .ok_or_else(|| Error::BadParameter(format!("no item {tag:02X} in {}{}", df.name, ef.name)))?;
        records.push(n);
        if let Some(rule) = &item.read {
            s.meet(rule.for_generation(g))?;
        }
    }
    s.meet(ef.read.for_generation(g))?;
    let (Some(&from), Some(&to)) = (records.iter().min(), records.iter().max()) else {
        return Ok(BTreeMap::new());
    };
    let count = ef.record_count(g).unwrap_or(0);
    let tail_readable =
        ef.items(g).skip(usize::from(from) - 1).all(|i| i.read.as_ref().is_none_or(|r| s.is_met(r.for_generation(g))));
    let mut found = BTreeMap::new();
    let mut done = false;
    if tail_readable && s.facts().read_all != Some(false) && to > from && usize::from(from) <= count {
        let resp = s.send_raw(&command::read_records_from(from, ef.sfi)?)?;
        match resp.sw() {
            StatusWord::OK => {
                s.facts().read_all = Some(true);
                for r in RecordTlv::parse_all(resp.data())? {
                    found.insert(r.tag, r.value);
                }
                done = true;
            }
            StatusWord::WRONG_P1P2 | StatusWord::INS_NOT_SUPPORTED | StatusWord::FUNCTION_NOT_SUPPORTED
                if s.facts().read_all != Some(true) =>
            {
                s.facts().read_all = Some(false);
            }
            sw => return Err(Error::from_status(sw)),
        }
    }
    if !done {
        let mut wanted = records.clone();
        wanted.sort_unstable();
        wanted.dedup();
        for n in wanted {
            let resp = s.send_raw(&command::read_record(n, ef.sfi)?)?;
            match resp.sw() {
                StatusWord::OK => {
                    let r = RecordTlv::parse(resp.data())?;
                    found.insert(r.tag, r.value);
                }
                StatusWord::RECORD_NOT_FOUND => {}
                sw => return Err(Error::from_status(sw)),
            }
        }
    }
    found.retain(|tag, _| tags.contains(tag));
    Ok(found)
}

/// UPDATE RECORD of one item (`00 DC rr SFI<<3|4 TLV`), the update condition met first.
pub(crate) fn write_tag(s: &mut Session<'_>, df: &Df, ef: &Ef, tag: u8, value: Vec<u8>) -> Result<(), Error> {
    let g = s.generation();
    let (n, _) = ef
        .record_of(g, tag)
        .ok_or_else(|| Error::BadParameter(format!("no item {tag:02X} in {}{}", df.name, ef.name)))?;
    s.meet(ef.update.for_generation(g))?;
    let tlv = RecordTlv { tag, value }.encode()?;
    s.send(&command::update_record(n, ef.sfi, tlv)?)?;
    Ok(())
}

/// Resolves `DFxxEFyy` to a transparent EF of the card's generation and makes its DF current.
fn transparent<'p>(s: &mut Session<'p>, file: &str) -> Result<(&'p Df, &'p Ef, usize), Error> {
    let profile = s.profile();
    let (df, ef) = profile.file(file).ok_or_else(|| Error::BadParameter(format!("no file {file}")))?;
    let g = s.generation();
    if !ef.generations.contains(g) || !df.generations.contains(g) {
        return Err(Error::BadParameter(format!("no file {file} on a generation {g} card")));
    }
    let size = match (&ef.kind, ef.size(g)) {
        (EfKind::Transparent { .. }, Some(size)) => size,
        _ => return Err(Error::BadParameter(format!("{file} is not a transparent file"))),
    };
    s.select_df(&df.name)?;
    Ok((df, ef, size))
}

fn select_ef(s: &mut Session<'_>, ef: &Ef) -> Result<(), Error> {
    s.send(&command::select_ef(ef.fid)?)?;
    Ok(())
}

/// The whole transparent EF, in [`READ_CHUNK`]-byte READ BINARY commands.
pub(crate) fn read_file_binary(s: &mut Session<'_>, file: &str) -> Result<Vec<u8>, Error> {
    let (_, ef, size) = transparent(s, file)?;
    s.meet(ef.read.for_generation(s.generation()))?;
    select_ef(s, ef)?;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let n = (size - out.len()).min(READ_CHUNK);
        let offset = u16::try_from(out.len()).map_err(|_| Error::BadParameter("offset".into()))?;
        let part = s.send(&command::read_binary(offset, n as u32)?)?;
        if part.is_empty() {
            return Err(crate::apdu::ProtocolError::Unexpected("empty READ BINARY answer").into());
        }
        out.extend_from_slice(&part);
    }
    out.truncate(size);
    Ok(out)
}

/// Writes `data` from offset 0 in [`WRITE_CHUNK`]-byte UPDATE BINARY commands.
pub(crate) fn write_file_binary(s: &mut Session<'_>, file: &str, data: &[u8]) -> Result<(), Error> {
    let (_, ef, size) = transparent(s, file)?;
    if data.len() > size {
        return Err(Error::Codec(crate::codec::CodecError::TooLong { len: data.len(), max: size }));
    }
    s.meet(ef.update.for_generation(s.generation()))?;
    select_ef(s, ef)?;
    for (i, chunk) in data.chunks(WRITE_CHUNK).enumerate() {
        let offset = u16::try_from(i * WRITE_CHUNK).map_err(|_| Error::BadParameter("offset".into()))?;
        s.send(&command::update_binary(offset, chunk.to_vec())?)?;
    }
    Ok(())
}
