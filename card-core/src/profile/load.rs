//! Reading a profile file: TOML → raw structures → a validated [`Profile`].

use std::collections::HashMap;

use serde::Deserialize;

use super::{
    Access, AccessRule, Df, Ef, EfKind, Field, Generation, Generations, Item, ItemField, ItemFormat, KeySpec, KeyUsage,
    PinSpec, Profile,
};
use crate::codec::Format;

/// A profile file that cannot be used; the message names the entry at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("cannot read profile {0}")]
    Io(String, #[source] std::io::Error),
    /// Not TOML, or not of the profile's shape.
    #[error("profile is not well formed: {0}")]
    Syntax(String),
    /// The profile contradicts itself or the card's limits.
    #[error("profile entry {entry}: {problem}")]
    Invalid {
        /// Where, e.g. `DF01 EF05 item 20`.
        entry: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(entry: impl Into<String>, problem: impl Into<String>) -> ProfileError {
    ProfileError::Invalid { entry: entry.into(), problem: problem.into() }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    format: String,
    version: u32,
    name: String,
    pin: RawPin,
    mf: RawDf,
    #[serde(default)]
    df: Vec<RawDf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    length: usize,
    max_tries: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDf {
    name: String,
    fid: String,
    aid: Option<String>,
    en: Option<String>,
    #[serde(default)]
    pin: bool,
    generations: Option<Vec<u8>>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    ef: Vec<RawEf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    kid: String,
    usage: String,
    max_tries: u8,
    generations: Option<Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEf {
    name: String,
    /// File id; default: the name's (`EF05` → `EF05`).
    fid: Option<String>,
    sfi: u8,
    #[serde(rename = "type")]
    kind: String,
    en: Option<String>,
    read: String,
    update: String,
    generations: Option<Vec<u8>>,
    #[serde(default)]
    items: Vec<RawItem>,
    records: Option<u8>,
    #[serde(default)]
    fields: Vec<RawField>,
    size: Option<usize>,
    #[serde(default)]
    size_by_generation: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    tag: String,
    /// What the item holds (`card_id`, `name`, `name_ext`, …): see [`ItemField`].
    field: Option<String>,
    name: String,
    en: Option<String>,
    format: String,
    len: Option<usize>,
    generations: Option<Vec<u8>>,
    read: Option<String>,
    #[serde(default)]
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    format: String,
    len: usize,
}

fn hex_u8(entry: &str, what: &str, s: &str) -> Result<u8, ProfileError> {
    match hex::decode(s).as_deref() {
        Ok([b]) => Ok(*b),
        _ => Err(invalid(entry, format!("{what} {s:?} is not one hex byte"))),
    }
}

fn hex_u16(entry: &str, what: &str, s: &str) -> Result<u16, ProfileError> {
    match hex::decode(s).as_deref() {
        Ok([a, b]) => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(invalid(entry, format!("{what} {s:?} is not two hex bytes"))),
    }
}

fn generations(entry: &str, g: &Option<Vec<u8>>) -> Result<Generations, ProfileError> {
    match g {
        None => Ok(Generations::ALL),
        Some(ns) => Generations::from_numbers(ns)
            .ok_or_else(|| invalid(entry, format!("generations {ns:?} must be a non-empty list of 1, 2, 3"))),
    }
}

fn access(entry: &str, s: &str) -> Result<Access, ProfileError> {
    let s = s.trim();
    let key = |rest: &str| {
        let k = rest.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err(invalid(entry, format!("access condition {s:?} needs one key name")))
        } else {
            Ok(k.to_owned())
        }
    };
    if let Some(rest) = s.strip_prefix("pin|key ") {
        return Ok(Access::PinOrKey(key(rest)?));
    }
    if let Some(rest) = s.strip_prefix("pin+key ") {
        return Ok(Access::PinAndKey(key(rest)?));
    }
    if let Some(rest) = s.strip_prefix("key ") {
        return Ok(Access::Key(key(rest)?));
    }
    match s {
        "free" => Ok(Access::Free),
        "pin" => Ok(Access::Pin),
        "never" => Ok(Access::Never),
        _ => Err(invalid(
            entry,
            format!("unknown access condition {s:?} (free, pin, key K, pin|key K, pin+key K, never)"),
        )),
    }
}

/// `"free; 3: key RKSSSE; 1,2: never"`.
fn access_rule(entry: &str, s: &str) -> Result<AccessRule, ProfileError> {
    let mut parts = s.split(';');
    let default = access(entry, parts.next().unwrap_or(""))?;
    let mut by_generation = Vec::new();
    for part in parts {
        let (gens, ac) = part
            .split_once(':')
            .ok_or_else(|| invalid(entry, format!("{part:?}: a generation override reads \"2,3: condition\"")))?;
        let ns: Result<Vec<u8>, _> = gens.split(',').map(|n| n.trim().parse::<u8>()).collect();
        let ns = ns.map_err(|_| invalid(entry, format!("{gens:?} is not a list of generations")))?;
        by_generation.push((generations(entry, &Some(ns))?, access(entry, ac)?));
    }
    Ok(AccessRule { default, by_generation })
}

fn usage(entry: &str, s: &str) -> Result<KeyUsage, ProfileError> {
    KeyUsage::from_name(s).ok_or_else(|| invalid(entry, format!("unknown key usage {s:?}")))
}

fn format(entry: &str, s: &str) -> Result<Format, ProfileError> {
    s.parse::<Format>()
        .map_err(|_| invalid(entry, format!("unknown format {s:?} (cn, an, gb18030, b, dec, hex, B-TLV)")))
}

fn item(parent: &str, raw: &RawItem, depth: u8) -> Result<Item, ProfileError> {
    let tag = hex_u8(parent, "tag", &raw.tag)?;
    let entry = format!("{parent} item {tag:02X}");
    let (fmt, len) = if raw.format == "B-TLV" {
        if depth > 0 {
            return Err(invalid(&entry, "a constructed item cannot hold another constructed item"));
        }
        if raw.items.is_empty() {
            return Err(invalid(&entry, "a B-TLV item needs sub-items"));
        }
        let subs = raw.items.iter().map(|r| item(&entry, r, depth + 1)).collect::<Result<Vec<_>, _>>()?;
        unique(&entry, "tag", subs.iter().map(|s| (format!("{:02X}", s.tag), Generations::ALL)))?;
        let sum: usize = subs.iter().map(|s| 2 + s.len).sum();
        if let Some(declared) = raw.len {
            if declared != sum {
                return Err(invalid(&entry, format!("len {declared} differs from its sub-items' total {sum}")));
            }
        }
        (ItemFormat::Constructed(subs), sum)
    } else {
        if !raw.items.is_empty() {
            return Err(invalid(&entry, "only a B-TLV item has sub-items"));
        }
        let len = raw.len.ok_or_else(|| invalid(&entry, "len is missing"))?;
        (ItemFormat::Simple(format(&entry, &raw.format)?), len)
    };
    if len == 0 || len > 253 {
        return Err(invalid(&entry, format!("len {len}: a record holds 1 to 253 value bytes after tag and length")));
    }
    let field = match &raw.field {
        None => None,
        Some(f) => Some(item_field(&entry, f, &fmt, depth)?),
    };
    Ok(Item {
        tag,
        field,
        name: raw.name.clone(),
        en: raw.en.clone(),
        format: fmt,
        len,
        generations: generations(&entry, &raw.generations)?,
        read: raw.read.as_deref().map(|r| access_rule(&entry, r)).transpose()?,
    })
}

/// The `field` of an item: a known name, on a record's simple item, of a format that can carry it (the card
/// identifier is binary, every other field text).
fn item_field(entry: &str, name: &str, fmt: &ItemFormat, depth: u8) -> Result<ItemField, ProfileError> {
    let field = ItemField::parse(name).ok_or_else(|| {
        let all: Vec<&str> = ItemField::ALL.iter().map(|f| f.as_str()).collect();
        invalid(entry, format!("unknown field {name:?} ({})", all.join(", ")))
    })?;
    let ItemFormat::Simple(f) = fmt else {
        return Err(invalid(entry, format!("field {field}: a constructed item holds no single field")));
    };
    if depth > 0 {
        return Err(invalid(entry, format!("field {field}: only a record's item names a field")));
    }
    let fits = match field {
        ItemField::CardId => matches!(f, Format::B | Format::Hex),
        _ => matches!(f, Format::Cn | Format::An | Format::Gb18030),
    };
    if !fits {
        return Err(invalid(entry, format!("field {field} cannot be held in format {f}")));
    }
    Ok(field)
}

/// Fails on the first name seen twice among entries whose generations overlap.
fn unique(entry: &str, what: &str, names: impl Iterator<Item = (String, Generations)>) -> Result<(), ProfileError> {
    let mut seen: Vec<(String, Generations)> = Vec::new();
    for (n, g) in names {
        if seen.iter().any(|(m, h)| *m == n && (h.0 & g.0) != 0) {
            return Err(invalid(entry, format!("duplicate {what} {n}")));
        }
        seen.push((n, g));
    }
    Ok(())
}

fn ef(df: &str, raw: &RawEf) -> Result<Ef, ProfileError> {
    let entry = format!("{df} {}", raw.name);
    if raw.name.len() != 4 || raw.name.strip_prefix("EF").and_then(|h| u8::from_str_radix(h, 16).ok()).is_none() {
        return Err(invalid(&entry, "an EF is named EFxx with xx in hex"));
    }
    // vendor reader software selects EF05/EF06 by these FIDs (`00 A4 02 00 02 EF05`, CARD-PROFILE §2)
    let fid = match &raw.fid {
        Some(f) => hex_u16(&entry, "fid", f)?,
        None => hex_u16(&entry, "fid", &raw.name)?,
    };
    if !(1..=30).contains(&raw.sfi) {
        return Err(invalid(&entry, format!("SFI {} outside 1..=30", raw.sfi)));
    }
    let kind = match raw.kind.as_str() {
        "linear" => {
            if raw.items.is_empty() {
                return Err(invalid(&entry, "a linear EF needs items"));
            }
            let items = raw.items.iter().map(|r| item(&entry, r, 0)).collect::<Result<Vec<_>, _>>()?;
            unique(&entry, "tag", items.iter().map(|i| (format!("{:02X}", i.tag), i.generations)))?;
            EfKind::Linear { items }
        }
        "cyclic" => {
            let records =
                raw.records.filter(|r| *r > 0).ok_or_else(|| invalid(&entry, "a cyclic EF needs records > 0"))?;
            if raw.fields.is_empty() {
                return Err(invalid(&entry, "a cyclic EF needs fields"));
            }
            let fields = raw
                .fields
                .iter()
                .map(|f| Ok(Field { format: format(&entry, &f.format)?, len: f.len }))
                .collect::<Result<Vec<_>, ProfileError>>()?;
            let len: usize = fields.iter().map(|f| f.len).sum();
            if len == 0 || len > 255 {
                return Err(invalid(&entry, format!("record length {len} outside 1..=255")));
            }
            EfKind::Cyclic { records, fields }
        }
        "transparent" => {
            let size = raw.size.ok_or_else(|| invalid(&entry, "a transparent EF needs size"))?;
            let mut by_generation = Vec::new();
            for (g, s) in &raw.size_by_generation {
                let g = g
                    .parse::<u8>()
                    .ok()
                    .and_then(Generation::new)
                    .ok_or_else(|| invalid(&entry, format!("size_by_generation key {g:?} is not 1, 2 or 3")))?;
                by_generation.push((g, *s));
            }
            by_generation.sort();
            for s in std::iter::once(size).chain(by_generation.iter().map(|(_, s)| *s)) {
                if s == 0 || s > 0x7FFF {
                    return Err(invalid(&entry, format!("size {s} outside 1..=32767 (READ BINARY offsets)")));
                }
            }
            EfKind::Transparent { size, by_generation }
        }
        other => return Err(invalid(&entry, format!("unknown type {other:?} (linear, cyclic, transparent)"))),
    };
    if kind_is_not_linear(&kind) && (!raw.items.is_empty()) {
        return Err(invalid(&entry, "only a linear EF has items"));
    }
    Ok(Ef {
        name: raw.name.clone(),
        fid,
        sfi: raw.sfi,
        en: raw.en.clone(),
        kind,
        read: access_rule(&entry, &raw.read)?,
        update: access_rule(&entry, &raw.update)?,
        generations: generations(&entry, &raw.generations)?,
    })
}

fn kind_is_not_linear(k: &EfKind) -> bool {
    !matches!(k, EfKind::Linear { .. })
}

fn df(raw: &RawDf) -> Result<Df, ProfileError> {
    let entry = raw.name.clone();
    let fid = hex_u16(&entry, "fid", &raw.fid)?;
    let aid = match &raw.aid {
        None => None,
        Some(a) => {
            let bytes = hex::decode(a).map_err(|_| invalid(&entry, format!("aid {a:?} is not hex")))?;
            if !(5..=16).contains(&bytes.len()) {
                return Err(invalid(&entry, format!("aid of {} bytes; ISO/IEC 7816-4 allows 5 to 16", bytes.len())));
            }
            Some(bytes)
        }
    };
    let keys = raw
        .keys
        .iter()
        .map(|k| {
            let kentry = format!("{entry} key {}", k.name);
            Ok(KeySpec {
                name: k.name.clone(),
                kid: hex_u8(&kentry, "kid", &k.kid)?,
                usage: usage(&kentry, &k.usage)?,
                max_tries: k.max_tries,
                generations: generations(&kentry, &k.generations)?,
            })
        })
        .collect::<Result<Vec<_>, ProfileError>>()?;
    unique(&entry, "key name", keys.iter().map(|k| (k.name.clone(), k.generations)))?;
    unique(&entry, "key id", keys.iter().map(|k| (format!("{:02X}", k.kid), k.generations)))?;
    let efs = raw.ef.iter().map(|e| ef(&entry, e)).collect::<Result<Vec<_>, _>>()?;
    unique(&entry, "EF", efs.iter().map(|e| (e.name.clone(), e.generations)))?;
    unique(&entry, "SFI", efs.iter().map(|e| (e.sfi.to_string(), e.generations)))?;
    unique(&entry, "EF fid", efs.iter().map(|e| (format!("{:04X}", e.fid), e.generations)))?;
    // Every access condition names a key this DF holds on each generation the condition applies to.
    for e in &efs {
        let item_rules = match &e.kind {
            EfKind::Linear { items } => items.iter().filter_map(|i| i.read.as_ref()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        for rule in [&e.read, &e.update].into_iter().chain(item_rules) {
            for g in [Generation::ONE, Generation::TWO, Generation::THREE] {
                if !e.generations.contains(g) {
                    continue;
                }
                let Some(k) = rule.for_generation(g).key() else { continue };
                if !keys.iter().any(|spec| spec.name == k && spec.generations.contains(g)) {
                    return Err(invalid(
                        format!("{entry} {}", e.name),
                        format!("access condition on generation {g} names key {k}, which {entry} does not hold there"),
                    ));
                }
            }
        }
    }
    Ok(Df {
        name: raw.name.clone(),
        fid,
        aid,
        en: raw.en.clone(),
        pin: raw.pin,
        keys,
        efs,
        generations: generations(&entry, &raw.generations)?,
    })
}

pub(super) fn parse(text: &str) -> Result<Profile, ProfileError> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax(e.to_string()))?;
    if raw.format != "sscard-profile" || raw.version != 1 {
        return Err(invalid(
            "format",
            format!("{} version {} is not sscard-profile version 1", raw.format, raw.version),
        ));
    }
    if raw.pin.length == 0 || raw.pin.length > 8 || raw.pin.max_tries == 0 || raw.pin.max_tries > 15 {
        return Err(invalid("pin", "length must be 1..=8 bytes and max_tries 1..=15"));
    }
    let mf = df(&raw.mf)?;
    let pin_holders = raw.df.iter().filter(|d| d.pin).count() + usize::from(raw.mf.pin);
    let needs_pin = raw.df.iter().flat_map(|d| &d.ef).any(|e| {
        [&e.read, &e.update].iter().any(|r| r.split(';').any(|a| a.contains("pin")))
            || e.items.iter().any(|i| i.read.as_deref().is_some_and(|r| r.contains("pin")))
    });
    if pin_holders > 1 || (needs_pin && pin_holders == 0) {
        return Err(invalid("pin", "exactly one DF holds the card's PIN (pin = true) when any condition needs it"));
    }
    let dfs = raw.df.iter().map(df).collect::<Result<Vec<_>, _>>()?;
    let all = std::iter::once(&mf).chain(dfs.iter());
    unique("profile", "DF name", all.clone().map(|d| (d.name.to_ascii_uppercase(), d.generations)))?;
    unique("profile", "DF fid", all.clone().map(|d| (format!("{:04X}", d.fid), d.generations)))?;
    unique("profile", "AID", all.clone().filter_map(|d| Some((hex::encode_upper(d.aid.as_ref()?), d.generations))))?;
    // a field is held by one item on each generation: issuance, the personalizer and the reader look it up
    let mut fields = Vec::new();
    for d in all {
        for e in &d.efs {
            let EfKind::Linear { items } = &e.kind else { continue };
            for i in items {
                let Some(f) = i.field else { continue };
                let gens = Generations(i.generations.0 & e.generations.0 & d.generations.0);
                if gens.0 != 0 {
                    fields.push((f.as_str().to_owned(), gens));
                }
            }
        }
    }
    unique("profile", "field", fields.into_iter())?;
    Ok(Profile { name: raw.name, pin: PinSpec { length: raw.pin.length, max_tries: raw.pin.max_tries }, mf, dfs })
}
