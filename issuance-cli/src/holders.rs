//! Holder records: CSV (UTF-8, header [`HEADER`]) or JSON lines with the same fields, validated
//! before any card is touched. Every refusal names the line and the field.
//!
//! Rules (CARD-PROFILE §2.1, §2.3): `ssn` a citizen id with a valid MOD 11-2 check digit, whose birth
//! date and sex agree with `birth_date` and `sex`; `name` whole on the card, never cut: the profile's
//! `name` item (tag 09, 30 bytes of GBK) holds it with card-core's placeholder `〓` for each character GBK
//! cannot encode (生僻字, e.g. 𠮷 U+20BB7), and the `name_ext` item (tag 4E, 20 bytes of GB 18030,
//! generation 2 and later) then holds the full name — or the `name_ext` column when it is given
//! ([`card_core::card::NameItems`]); `ethnicity` a GB/T 3304 code (01–56, 97, 98); `birthplace` and
//! `region_code` region codes;
//! `initial_pin` empty (the default PIN) or 4–6 digits; `photo` empty or a JPEG file (path relative to
//! the holders file) no larger than EF08; an SSN at most once per batch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use card_core::card::{HolderText, NameItems};
use card_core::codec::{self, CitizenId, Date, Format, RegionCode, Sex};
use card_core::profile::{Generation, ItemField, Profile};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use crate::pin::Pin;
pub use crate::pin::DEFAULT_PIN;

/// The CSV header, in order.
pub const HEADER: [&str; 10] =
    ["ssn", "name", "name_ext", "sex", "ethnicity", "birthplace", "birth_date", "region_code", "initial_pin", "photo"];

/// The lengths of an initial PIN in the holders file.
pub const PIN_LENGTHS: std::ops::RangeInclusive<usize> = 4..=6;

/// One holder row as read, before validation (text fields). Its `Debug` shows `REDACTED` for a PIN; it is not
/// `Clone`: the PIN is not copied.
#[derive(Default, Deserialize, Serialize)]
pub struct RawHolder {
    /// The holder's data (card-core's record of the EF06 items, shared with card-sim's test cards).
    #[serde(flatten)]
    pub holder: HolderText,
    /// Issuing region.
    pub region_code: String,
    /// Initial PIN (digits), may be empty. Never logged, never journalled, never in `Debug`.
    #[serde(default, skip_serializing, deserialize_with = "secret_text")]
    pub initial_pin: SecretString,
    /// Photo file, may be empty.
    #[serde(default)]
    pub photo: String,
}

/// A validated holder: what is written to EF06 (and EF08), and the initial PIN. Its `Debug` shows the PIN as
/// `Pin(REDACTED)`; it is not `Clone` ([`Holder::without_pin`] copies the rest).
#[derive(Debug, Serialize, Deserialize)]
pub struct Holder {
    /// Line of the input file (1-based; CSV: the header is line 1).
    pub line: u64,
    /// SSN (valid citizen id).
    pub ssn: String,
    /// The profile's `name` item (tag 09): the name as written, with card-core's placeholder `〓` for each
    /// character GBK cannot encode (the whole name is then in `name_ext`). What the card holds, not what to
    /// show: see [`Holder::display_name`].
    pub name: String,
    /// The name as written in the holders file (UTF-8; may hold characters GBK cannot encode). Empty in the
    /// holders of journals written before it was kept.
    #[serde(default)]
    pub written_name: String,
    /// The profile's `name_ext` item (tag 4E): the `name_ext` column when given, else the full name when tag 09
    /// cannot hold it whole, else empty.
    pub name_ext: String,
    /// Sex code.
    pub sex: String,
    /// Ethnicity, two digits.
    pub ethnicity: String,
    /// Birthplace region code.
    pub birthplace: String,
    /// Birth date YYYYMMDD.
    pub birth_date: String,
    /// Issuing region code.
    pub region: String,
    /// Photo file (resolved path), if any.
    pub photo: Option<PathBuf>,
    /// Whether the holder has an initial PIN of their own (else [`DEFAULT_PIN`]).
    pub own_pin: bool,
    /// The holder's own initial PIN. Not serialized.
    #[serde(skip)]
    pub pin: Option<Pin>,
}

/// A PIN field of JSON lines, read into a secret.
fn secret_text<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl std::fmt::Debug for RawHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pin = if self.initial_pin.expose_secret().is_empty() { "" } else { "REDACTED" };
        f.debug_struct("RawHolder")
            .field("holder", &self.holder)
            .field("region_code", &self.region_code)
            .field("initial_pin", &pin)
            .field("photo", &self.photo)
            .finish()
    }
}

impl Holder {
    /// The holder's name to show people (prompts, messages): as written in the holders file, in UTF-8 —
    /// `陈𠮷`, not the tag 09 form `陈〓`.
    pub fn display_name(&self) -> &str {
        if self.written_name.is_empty() {
            &self.name
        } else {
            &self.written_name
        }
    }

    /// The initial PIN (the holder's, else [`DEFAULT_PIN`]).
    pub fn initial_pin(&self) -> &Pin {
        self.pin.as_ref().unwrap_or(Pin::default_initial())
    }

    /// A copy of the holder's data without the PIN (`own_pin` still says whether there is one).
    pub fn without_pin(&self) -> Holder {
        Holder {
            line: self.line,
            ssn: self.ssn.clone(),
            name: self.name.clone(),
            written_name: self.written_name.clone(),
            name_ext: self.name_ext.clone(),
            sex: self.sex.clone(),
            ethnicity: self.ethnicity.clone(),
            birthplace: self.birthplace.clone(),
            birth_date: self.birth_date.clone(),
            region: self.region.clone(),
            photo: self.photo.clone(),
            own_pin: self.own_pin,
            pin: None,
        }
    }
}

/// A refused row: line, field, reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, field {field}: {reason}")]
pub struct HolderError {
    /// Line of the input file.
    pub line: u64,
    /// Field name (`ssn`, `name`, …; `row` for the row's shape).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// A row that failed, with its raw content (for `--skip-invalid`).
#[derive(Debug)]
pub struct Rejected {
    /// The raw fields.
    pub raw: RawHolder,
    /// The reasons (at least one).
    pub errors: Vec<HolderError>,
}

/// The outcome of reading a holders file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Valid holders, in file order.
    pub valid: Vec<Holder>,
    /// Invalid rows.
    pub rejected: Vec<Rejected>,
}

/// Validation context: card generation and SSNs already issued (from the journal).
pub struct Context<'a> {
    /// Generation of the cards to issue.
    pub generation: Generation,
    /// Directory that photo paths are relative to.
    pub base: PathBuf,
    /// SSNs that already have a card in circulation.
    pub issued: &'a dyn Fn(&str) -> bool,
}

/// The text encoding of a holders file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-8 (a byte-order mark is skipped).
    #[default]
    #[value(name = "utf-8")]
    Utf8,
    /// GBK, as many Windows tools export.
    Gbk,
}

/// A holders file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read (missing, not a regular file, too large).
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// Not UTF-8 from this line on.
    #[error(
        "line {line} is not UTF-8 text: a holders file exported from Windows tools is often GBK — give --encoding gbk, \
         or save the file as UTF-8"
    )]
    NotUtf8 {
        /// The line (1-based).
        line: u64,
    },
    /// Not GBK from this line on.
    #[error("line {line} is not GBK text (--encoding gbk): check the file's encoding")]
    NotGbk {
        /// The line (1-based).
        line: u64,
    },
    /// A header and no rows: an empty batch.
    #[error("no holders in the file (a header and no rows): an empty batch is not issued")]
    Empty,
}

/// The text of a holders file in `encoding`; errors name the first line that is not text of it.
fn decode(bytes: &[u8], encoding: Encoding) -> Result<zeroize::Zeroizing<String>, ReadError> {
    let line_at = |offset: usize| bytes[..offset.min(bytes.len())].iter().filter(|b| **b == b'\n').count() as u64 + 1;
    match encoding {
        Encoding::Utf8 => {
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            let skipped = bytes.len() - body.len();
            match std::str::from_utf8(body) {
                Ok(text) => Ok(zeroize::Zeroizing::new(text.to_owned())),
                Err(e) => Err(ReadError::NotUtf8 { line: line_at(skipped + e.valid_up_to()) }),
            }
        }
        Encoding::Gbk => {
            let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(bytes);
            if had_errors {
                // the first replacement character marks the first byte sequence GBK does not have
                let bad = text.find('\u{FFFD}').unwrap_or(0);
                let line = text[..bad].matches('\n').count() as u64 + 1;
                return Err(ReadError::NotGbk { line });
            }
            Ok(zeroize::Zeroizing::new(text.into_owned()))
        }
    }
}

/// Reads and validates a holders file: CSV, or JSON lines when the name ends in `.jsonl`/`.ndjson`
/// or the first non-blank character is `{`. The file is read with a bound ([`crate::files::MAX_HOLDERS_FILE`]);
/// a file with no holder row is refused ([`ReadError::Empty`]).
pub fn read_file(path: &Path, ctx: &Context<'_>, encoding: Encoding) -> Result<Parsed, ReadError> {
    // the file holds PINs: its bytes and text are wiped when read
    let bytes = zeroize::Zeroizing::new(crate::files::read_limited(path, crate::files::MAX_HOLDERS_FILE)?);
    let text = decode(&bytes, encoding)?;
    let json = path.extension().is_some_and(|e| e == "jsonl" || e == "ndjson") || text.trim_start().starts_with('{');
    let parsed = if json { parse_jsonl(&text, ctx) } else { parse_csv(&text, ctx) };
    if parsed.valid.is_empty() && parsed.rejected.is_empty() {
        return Err(ReadError::Empty);
    }
    Ok(parsed)
}

/// Whether a character of a name can go onto the card and through the national strings (CARD-PROFILE §7): no
/// control characters (TAB, newline, ESC …), no field or segment separators of the national formats (`|`, `$`),
/// no invisible format characters (zero-width, byte-order mark, line and paragraph separators).
fn national_text(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '|' | '$' | '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{FEFF}'))
}

/// Longest reason shown: a value echoed in a refusal is cut (a 1 MB name is not printed whole).
const MAX_REASON: usize = 200;

fn err(line: u64, field: &str, reason: impl Into<String>) -> HolderError {
    let mut reason: String = reason.into();
    if reason.chars().count() > MAX_REASON {
        reason = reason.chars().take(MAX_REASON).collect::<String>() + "… (cut)";
    }
    HolderError { line, field: field.to_owned(), reason }
}

/// Parses CSV text (header required, exactly [`HEADER`]).
pub fn parse_csv(text: &str, ctx: &Context<'_>) -> Parsed {
    let mut out = Parsed::default();
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_owned()).collect(),
        Err(e) => {
            out.rejected.push(Rejected { raw: RawHolder::default(), errors: vec![err(1, "header", e.to_string())] });
            return out;
        }
    };
    if header != HEADER {
        let reason = format!("expected {}", HEADER.join(","));
        out.rejected.push(Rejected { raw: RawHolder::default(), errors: vec![err(1, "header", reason)] });
        return out;
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(0);
                if r.len() != HEADER.len() {
                    let reason = format!("{} fields, expected {}", r.len(), HEADER.len());
                    out.rejected.push(Rejected { raw: RawHolder::default(), errors: vec![err(line, "row", reason)] });
                    continue;
                }
                let f = |i: usize| r.get(i).unwrap_or_default().trim().to_owned();
                let raw = RawHolder {
                    holder: HolderText {
                        ssn: f(0),
                        name: f(1),
                        name_ext: f(2),
                        sex: f(3),
                        ethnicity: f(4),
                        birthplace: f(5),
                        birth_date: f(6),
                    },
                    region_code: f(7),
                    initial_pin: SecretString::from(f(8)),
                    photo: f(9),
                };
                rows.push((line, raw));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                out.rejected
                    .push(Rejected { raw: RawHolder::default(), errors: vec![err(line, "row", e.to_string())] });
            }
        }
    }
    check_rows(rows, ctx, &mut out);
    out
}

/// Parses JSON lines (one object per line with the fields of [`HEADER`]; blank lines skipped).
pub fn parse_jsonl(text: &str, ctx: &Context<'_>) -> Parsed {
    let mut out = Parsed::default();
    let mut rows = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).map_err(|e| e.to_string()).and_then(
            |object| match object.keys().find(|k| !HEADER.contains(&k.as_str())) {
                Some(k) => Err(format!("unknown field `{k}`, expected one of {}", HEADER.join(", "))),
                None => {
                    serde_json::from_value::<RawHolder>(serde_json::Value::Object(object)).map_err(|e| e.to_string())
                }
            },
        ) {
            Ok(raw) => rows.push((line, raw)),
            Err(e) => out.rejected.push(Rejected { raw: RawHolder::default(), errors: vec![err(line, "row", e)] }),
        }
    }
    check_rows(rows, ctx, &mut out);
    out
}

fn check_rows(rows: Vec<(u64, RawHolder)>, ctx: &Context<'_>, out: &mut Parsed) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (line, raw) in rows {
        let mut errors = Vec::new();
        match validate(line, &raw, ctx) {
            Ok(h) => {
                if let Some(first) = seen.get(&h.ssn) {
                    errors.push(err(line, "ssn", format!("duplicate in the batch (first on line {first})")));
                } else if (ctx.issued)(&h.ssn) {
                    errors.push(err(line, "ssn", "already has a card in circulation"));
                } else {
                    seen.insert(h.ssn.clone(), line);
                    out.valid.push(h);
                    continue;
                }
            }
            Err(e) => errors = e,
        }
        out.rejected.push(Rejected { raw, errors });
    }
}

/// Validates one row; every field error is reported.
pub fn validate(line: u64, r: &RawHolder, ctx: &Context<'_>) -> Result<Holder, Vec<HolderError>> {
    let mut errs = Vec::new();
    let mut e = |field: &str, reason: String| errs.push(err(line, field, reason));
    let id = CitizenId::parse(&r.holder.ssn).map_err(|x| e("ssn", x.to_string())).ok();
    let birth = Date::parse(&r.holder.birth_date).map_err(|x| e("birth_date", x.to_string())).ok();
    if let (Some(id), Some(b)) = (&id, birth) {
        if id.birth_date() != b {
            e("birth_date", format!("{} does not match the SSN's birth date {}", r.holder.birth_date, id.birth_date()));
        }
    }
    match (r.holder.sex.as_str(), &id) {
        ("1", Some(id)) if id.sex() != Sex::Male => e("sex", "1 (male) but the SSN is a woman's".into()),
        ("2", Some(id)) if id.sex() != Sex::Female => e("sex", "2 (female) but the SSN is a man's".into()),
        ("0" | "1" | "2" | "9", _) => {}
        (s, _) => e("sex", format!("{s:?} is not a GB/T 2261.1 code (0, 1, 2, 9)")),
    }
    let eth_ok = r.holder.ethnicity.len() == 2
        && r.holder.ethnicity.parse::<u8>().is_ok_and(|n| (1..=56).contains(&n) || n == 97 || n == 98);
    if !eth_ok {
        e("ethnicity", format!("{:?} is not a GB/T 3304 code (01–56, 97, 98)", r.holder.ethnicity));
    }
    if let Err(x) = RegionCode::parse(&r.holder.birthplace) {
        e("birthplace", x.to_string());
    }
    if let Err(x) = RegionCode::parse(&r.region_code) {
        e("region_code", x.to_string());
    }
    for (field, text) in [("name", &r.holder.name), ("name_ext", &r.holder.name_ext)] {
        if let Some(c) = text.chars().find(|c| !national_text(*c)) {
            e(
                field,
                format!(
                    "the character U+{:04X} cannot be written on the card or carried by the national strings",
                    u32::from(c)
                ),
            );
        }
    }
    let names = match name_items(&r.holder.name, &r.holder.name_ext, ctx.generation) {
        Ok(n) => Some(n),
        Err(x) => {
            for (field, reason) in x {
                e(field, reason);
            }
            None
        }
    };
    let pin_text = r.initial_pin.expose_secret();
    let pin = if pin_text.is_empty() {
        None
    } else {
        match Pin::parse(pin_text, PIN_LENGTHS) {
            Ok(p) => Some(p),
            Err(_) => {
                e("initial_pin", "must be empty or 4 to 6 digits".into());
                None
            }
        }
    };
    let photo = if r.photo.is_empty() {
        None
    } else {
        check_photo(&ctx.base.join(&r.photo), ctx.generation).map_err(|x| e("photo", x)).ok()
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(id), Some(names)) = (id, names) else { return Err(vec![err(line, "row", "invalid")]) };
    Ok(Holder {
        line,
        ssn: id.as_str().to_owned(),
        name: names.name,
        written_name: r.holder.name.clone(),
        name_ext: names.name_ext,
        sex: r.holder.sex.clone(),
        ethnicity: r.holder.ethnicity.clone(),
        birthplace: r.holder.birthplace.clone(),
        birth_date: r.holder.birth_date.clone(),
        region: r.region_code.clone(),
        photo,
        own_pin: pin.is_some(),
        pin,
    })
}

/// The two name items of a holder by card-core's rule ([`NameItems`]), each checked against its profile item:
/// tag 09 (`name`) must hold its form whole, tag 4E (`name_ext`) the explicit extension or else the full name
/// (GB 18030, four-byte sequences included). Never cut: what does not fit is refused, naming the field — the
/// `name` column for what the name needs, `name_ext` for the column. A card without 4E (generation 1) takes
/// no name with a character GBK lacks and no `name_ext`.
fn name_items(name: &str, ext: &str, g: Generation) -> Result<NameItems, Vec<(&'static str, String)>> {
    if name.is_empty() {
        return Err(vec![("name", "empty".into())]);
    }
    let profile = Profile::builtin();
    let Some(name_item) = profile.field(g, ItemField::Name) else {
        return Err(vec![("name", format!("the card profile has no name item on generation {g}"))]);
    };
    let format = name_item.format().unwrap_or(Format::An);
    let items = NameItems::new(name, ext, format);
    let mut errs = Vec::new();
    if let Err(x) = codec::encode(format, &items.name, name_item.item.len) {
        let (tag, len) = (name_item.item.tag, name_item.item.len);
        errs.push(("name", format!("{name:?} does not fit tag {tag:02X} ({format}, {len} bytes): {x}")));
    }
    match profile.field(g, ItemField::NameExt) {
        None => {
            if let Err(x) = codec::encode(format, name, name_item.item.len) {
                if items.name != name {
                    let why = format!("generation {g} cards have no name extension (4E) to hold {name:?} whole");
                    errs.push(("name", format!("{x}; {why}: issue a generation 2 or 3 card")));
                }
            }
            if !ext.is_empty() {
                errs.push(("name_ext", format!("generation {g} cards have no name extension (4E)")));
            }
        }
        Some(ext_item) => {
            let ext_format = ext_item.format().unwrap_or(Format::Gb18030);
            if let Err(x) = codec::encode(ext_format, &items.name_ext, ext_item.item.len) {
                let (field, what) = if ext.is_empty() {
                    ("name", format!("{name:?} needs the name extension (a character GBK cannot encode) but"))
                } else {
                    ("name_ext", format!("{ext:?}"))
                };
                let (tag, len) = (ext_item.item.tag, ext_item.item.len);
                errs.push((field, format!("{what} does not fit tag {tag:02X} ({ext_format}, {len} bytes): {x}")));
            }
        }
    }
    if errs.is_empty() {
        Ok(items)
    } else {
        Err(errs)
    }
}

fn check_photo(path: &Path, g: Generation) -> Result<PathBuf, String> {
    let max = Profile::builtin()
        .df("SSSE")
        .and_then(|d| d.ef("EF08"))
        .filter(|ef| ef.generations.contains(g))
        .and_then(|ef| ef.size(g))
        .ok_or_else(|| format!("generation {g} cards have no photo file (EF08)"))?;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > max as u64 {
        return Err(format!("{} is {} bytes, EF08 holds {max}", path.display(), meta.len()));
    }
    let head = crate::files::read_limited(path, crate::files::MAX_PHOTO_FILE).map_err(|e| e.to_string())?;
    if !head.starts_with(&[0xFF, 0xD8]) {
        return Err(format!("{} is not a JPEG file", path.display()));
    }
    Ok(path.to_path_buf())
}

/// Writes rejected rows as CSV: the header, an `error` column with every reason.
pub fn write_rejected(path: &Path, rejected: &[Rejected]) -> Result<(), std::io::Error> {
    let mut w = csv::Writer::from_path(path)?;
    let mut header: Vec<&str> = HEADER.to_vec();
    header.push("error");
    w.write_record(&header)?;
    for r in rejected {
        let x = &r.raw;
        let reasons: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        let pin = if x.initial_pin.expose_secret().is_empty() { "" } else { "REDACTED" };
        let h = &x.holder;
        w.write_record([
            &h.ssn,
            &h.name,
            &h.name_ext,
            &h.sex,
            &h.ethnicity,
            &h.birthplace,
            &h.birth_date,
            &x.region_code,
            pin,
            &x.photo,
            &reasons.join("; "),
        ])?;
    }
    w.flush()
}
