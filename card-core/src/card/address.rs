//! The national file address syntax (CARD-PROFILE §7 `iReadCard`/`iWriteCard`) and item values.
//!
//! An address is a list of segments, each `FILE|tag|tag|…|$`, e.g.
//! `SSSEEF05|05|06|07|$SSSEEF06|08|09|$DF01EF06|23|28|$`: `FILE` is the DF's profile name followed by the EF's
//! (`SSSEEF05`, `DF01EF06`), tags are two hex digits.
//!
//! Values mirror the address \[P\]: each tag is replaced by the item's value, the file names stay, e.g.
//! `SSSEEF05|20200101|20300101|A0000001X|$SSSEEF06|371702198001010019|张三|$`. The text form of a value is
//! its format's (`an` text, `gb18030` text — tag 4E, see `basic` —, `cn` digits, `b`/`hex` uppercase hex,
//! `dec` decimal; a constructed item as the uppercase hex of its value). A value may not contain `|` or `$`.
//! The same layout is the data of a write.

use std::fmt;
use std::str::FromStr;

use super::records::{read_tags, write_tag};
use super::session::Session;
use crate::codec::{self, hex_upper, parse_hex};
use crate::profile::{Item, ItemFormat};
use crate::Error;

/// One segment of an address: a file and the tags of its items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAddress {
    /// The file, `DF` name ‖ `EF` name, e.g. `SSSEEF05`.
    pub file: String,
    /// The items' tags, in the caller's order.
    pub tags: Vec<u8>,
}

/// A national file address, e.g. `SSSEEF05|05|06|07|$SSSEEF06|08|09|$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address(pub Vec<FileAddress>);

fn bad(msg: String) -> Error {
    Error::BadParameter(msg)
}

/// Splits `A|B|…|$A|…|$` into segments of fields; every field ends with `|`, every segment with `$`.
fn segments(text: &str, what: &str) -> Result<Vec<Vec<String>>, Error> {
    let body = text.strip_suffix('$').ok_or_else(|| bad(format!("{what} must end with $")))?;
    body.split('$')
        .map(|seg| {
            let fields =
                seg.strip_suffix('|').ok_or_else(|| bad(format!("{what}: segment {seg:?} must end with |")))?;
            Ok(fields.split('|').map(str::to_owned).collect())
        })
        .collect()
}

impl FromStr for Address {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        let mut out = Vec::new();
        for seg in segments(text, "file address")? {
            let (file, tags) = seg.split_first().ok_or_else(|| bad("empty segment".into()))?;
            if file.is_empty() || tags.is_empty() {
                return Err(bad(format!("segment {file:?} names no file or no item")));
            }
            let tags = tags
                .iter()
                .map(|t| match (t.len(), u8::from_str_radix(t, 16)) {
                    (2, Ok(v)) => Ok(v),
                    _ => Err(bad(format!("{t:?} is not a two-digit hex tag"))),
                })
                .collect::<Result<Vec<u8>, Error>>()?;
            out.push(FileAddress { file: file.to_ascii_uppercase(), tags });
        }
        Ok(Address(out))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.0 {
            write!(f, "{}|", seg.file)?;
            for t in &seg.tags {
                write!(f, "{t:02X}|")?;
            }
            write!(f, "$")?;
        }
        Ok(())
    }
}

/// Values for an address, segment by segment, in the address's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemValues {
    /// The address.
    pub address: Address,
    /// One text value per tag of each segment (empty for an item the card has not written).
    pub values: Vec<Vec<String>>,
}

impl ItemValues {
    /// Parses write data that mirrors `address`.
    pub fn parse(address: &Address, data: &str) -> Result<ItemValues, Error> {
        let segs = segments(data, "data")?;
        if segs.len() != address.0.len() {
            return Err(bad(format!("data has {} segments, the address {}", segs.len(), address.0.len())));
        }
        let mut values = Vec::new();
        for (seg, addr) in segs.into_iter().zip(&address.0) {
            let (file, vals) = seg.split_first().ok_or_else(|| bad("empty segment".into()))?;
            if !file.eq_ignore_ascii_case(&addr.file) || vals.len() != addr.tags.len() {
                return Err(bad(format!("data segment {file:?} does not mirror {}", addr.file)));
            }
            values.push(vals.to_vec());
        }
        Ok(ItemValues { address: address.clone(), values })
    }

    /// The national output: the address with each tag replaced by its value.
    pub fn to_national(&self) -> String {
        let mut out = String::new();
        for (seg, vals) in self.address.0.iter().zip(&self.values) {
            out.push_str(&seg.file);
            out.push('|');
            for v in vals {
                out.push_str(v);
                out.push('|');
            }
            out.push('$');
        }
        out
    }

    /// The value of `tag` in `file`, if addressed.
    pub fn get(&self, file: &str, tag: u8) -> Option<&str> {
        let (i, seg) = self.address.0.iter().enumerate().find(|(_, s)| s.file.eq_ignore_ascii_case(file))?;
        let j = seg.tags.iter().position(|t| *t == tag)?;
        self.values.get(i)?.get(j).map(String::as_str)
    }
}

/// A value read from the card as text; bytes that do not decode are the card's fault ([`Error::CardData`]).
fn to_text(item: &Item, bytes: &[u8]) -> Result<String, Error> {
    Ok(match &item.format {
        ItemFormat::Simple(f) => codec::decode(*f, bytes).map_err(Error::CardData)?,
        ItemFormat::Constructed(_) => hex_upper(bytes),
    })
}

fn from_text(item: &Item, text: &str) -> Result<Vec<u8>, Error> {
    if let Some(position) = text.chars().position(|c| c == '|' || c == '$') {
        let ch = text.chars().nth(position).unwrap_or('|');
        return Err(codec::CodecError::InvalidChar { ch, position, allowed: "anything but | and $" }.into());
    }
    Ok(match &item.format {
        ItemFormat::Simple(f) => codec::encode(*f, text, item.len)?,
        ItemFormat::Constructed(_) => {
            let b = parse_hex(text)?;
            if b.len() > item.len {
                return Err(codec::CodecError::TooLong { len: b.len(), max: item.len }.into());
            }
            b
        }
    })
}

/// Resolves a segment's file for the card's generation and selects its DF.
fn file<'p>(s: &mut Session<'p>, seg: &FileAddress) -> Result<(&'p crate::profile::Df, &'p crate::profile::Ef), Error> {
    let profile = s.profile();
    let (df, ef) = profile.file(&seg.file).ok_or_else(|| bad(format!("no file {}", seg.file)))?;
    if !df.generations.contains(s.generation()) || !ef.generations.contains(s.generation()) {
        return Err(bad(format!("no file {} on a generation {} card", seg.file, s.generation())));
    }
    s.select_df(&df.name)?;
    Ok((df, ef))
}

pub(crate) fn read(s: &mut Session<'_>, address: &Address) -> Result<ItemValues, Error> {
    let mut values = Vec::new();
    for seg in &address.0 {
        let (df, ef) = file(s, seg)?;
        let found = read_tags(s, df, ef, &seg.tags)?;
        let mut vals = Vec::new();
        for tag in &seg.tags {
            let (_, item) = ef.record_of(s.generation(), *tag).ok_or_else(|| bad(format!("no item {tag:02X}")))?;
            vals.push(match found.get(tag) {
                Some(bytes) => to_text(item, bytes)?,
                None => String::new(),
            });
        }
        values.push(vals);
    }
    Ok(ItemValues { address: address.clone(), values })
}

/// One item of a write, encoded: its file, tag and value bytes.
pub(crate) type EncodedItem<'v> = (&'v FileAddress, u8, Vec<u8>);

/// Encodes every value of a write for the card's generation: a bad value is refused before anything is written.
pub(crate) fn encode<'v>(s: &Session<'_>, values: &'v ItemValues) -> Result<Vec<EncodedItem<'v>>, Error> {
    let mut plan = Vec::new();
    for (seg, vals) in values.address.0.iter().zip(&values.values) {
        let profile = s.profile();
        let (_, ef) = profile.file(&seg.file).ok_or_else(|| bad(format!("no file {}", seg.file)))?;
        for (tag, text) in seg.tags.iter().zip(vals) {
            let (_, item) = ef.record_of(s.generation(), *tag).ok_or_else(|| bad(format!("no item {tag:02X}")))?;
            plan.push((seg, *tag, from_text(item, text)?));
        }
    }
    Ok(plan)
}

pub(crate) fn write(s: &mut Session<'_>, values: &ItemValues) -> Result<(), Error> {
    // encode everything before the first write: a bad value never leaves a half-written card
    let plan = encode(s, values)?;
    for (seg, tag, bytes) in plan {
        let (df, ef) = file(s, seg)?;
        write_tag(s, df, ef, tag, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let text = "SSSEEF05|05|06|07|$SSSEEF06|08|09|$DF01EF06|23|28|$";
        let a: Address = text.parse().unwrap();
        assert_eq!(a.0.len(), 3);
        assert_eq!(a.0[2], FileAddress { file: "DF01EF06".into(), tags: vec![0x23, 0x28] });
        assert_eq!(a.to_string(), text);
        for (bad, says) in [
            ("SSSEEF05|05|", "file address must end with $"),
            ("SSSEEF05|5|$", "\"5\" is not a two-digit hex tag"),
            ("SSSEEF05|$", "segment \"SSSEEF05\" names no file or no item"),
            ("|05|$", "segment \"\" names no file or no item"),
            ("SSSEEF05|05$", "segment \"SSSEEF05|05\" must end with |"),
            ("SSSEEF05|0G|$", "\"0G\" is not a two-digit hex tag"),
        ] {
            match bad.parse::<Address>() {
                Err(Error::BadParameter(m)) => assert!(m.contains(says), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let v = ItemValues::parse(&a, "SSSEEF05|a|b|c|$SSSEEF06|d|e|$DF01EF06|f|g|$").unwrap();
        assert_eq!(v.get("DF01EF06", 0x28), Some("g"));
        assert_eq!(v.to_national(), "SSSEEF05|a|b|c|$SSSEEF06|d|e|$DF01EF06|f|g|$");
        assert!(matches!(
            ItemValues::parse(&a, "SSSEEF05|a|b|$SSSEEF06|d|e|$DF01EF06|f|g|$"),
            Err(Error::BadParameter(m)) if m.contains("does not mirror SSSEEF05")
        ));
    }
}
