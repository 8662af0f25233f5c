//! The basic information (EF05 + EF06, CARD-PROFILE §2.1) and the national `iReadCardBas` string (§7).
//!
//! # Names outside GBK \[P\]
//!
//! Tag `09` (姓名, `an`, GBK) cannot hold a character outside GBK (e.g. 𠮷 U+20BB7). Profile decision:
//! `09` holds the name with each such character replaced by the placeholder `〓` (U+3013, GBK `A1FE`, the
//! typesetter's mark for a missing glyph), and `4E` (姓名扩展) holds the **full name in GB 18030** (which
//! covers all of Unicode with its four-byte sequences), `00`-padded. Reading, [`BasicInfo::name`] is `4E`
//! when it is not empty, else `09`; both raw fields stay available. The national string's 姓名 field carries
//! the full name; its GB 18030 bytes ([`NationalBasic::to_gb18030`]) are what the C interface hands out.
//!
//! Every item is found by its profile field ([`ItemField`]), not by its tag: `name_ext` is tag `4E` of format
//! `gb18030` in the built-in profile, and read by whatever tag, length and format a deployment's profile
//! gives it. [`NameItems`] is the one rule for what the two name items hold when writing.

use std::collections::BTreeMap;
use std::fmt;

use super::records::read_tags;
use super::session::{Session, SSSE};
use crate::codec::{decode, gb18030_encode, hex_upper, parse_hex, Date, Format, RegionCode};
use crate::crypto::Algorithm;
use crate::profile::{Df, Ef, Generation, Item, ItemField, ItemFormat};
use crate::Error;

/// The placeholder for a character outside GBK in EF06 tag 09.
pub const NAME_PLACEHOLDER: char = '〓';

/// The terminal's identifiers, last two fields of the national string (configuration, not card data).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TerminalIds {
    /// 终端机编号, the terminal number.
    pub terminal_no: String,
    /// 终端设备号, the device number.
    pub device_no: String,
}

/// The basic information of a card (EF05, EF06), typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicInfo {
    /// Generation, from the spec version.
    pub generation: Generation,
    /// The generation's algorithm.
    pub algorithm: Algorithm,
    /// ATR historical bytes (卡复位信息).
    pub historical_bytes: Vec<u8>,
    /// EF05 01 卡识别码, 16 bytes.
    pub card_id: Vec<u8>,
    /// Issuing region: card identifier bytes 0–2.
    pub region: RegionCode,
    /// EF05 02 卡的类别.
    pub card_type: String,
    /// EF05 03 规范版本, e.g. `2.00`.
    pub spec_version: String,
    /// EF05 04 初始化机构编号 (digits).
    pub init_org: String,
    /// EF05 05 发卡日期.
    pub issue_date: Date,
    /// EF05 06 卡有效期.
    pub expiry_date: Date,
    /// EF05 07 卡号; `None` when withheld (gen 3 without RKSSSE).
    pub card_number: Option<String>,
    /// EF06 08 社会保障号码.
    pub ssn: Option<String>,
    /// The full name: tag 4E when not empty, else tag 09.
    pub name: Option<String>,
    /// EF06 09 姓名 as stored (GBK, placeholders for characters outside GBK).
    pub name_09: Option<String>,
    /// EF06 4E 姓名扩展 as stored (GB 18030), `None` on generation 1 or when withheld; may be empty.
    pub name_ext: Option<String>,
    /// EF06 0A 性别 code.
    pub sex: Option<String>,
    /// EF06 0B 民族 code (two digits).
    pub ethnicity: Option<String>,
    /// EF06 0C 出生地 region code.
    pub birthplace: Option<String>,
    /// EF06 0D 出生日期.
    pub birth_date: Option<Date>,
    /// The key whose absence withheld the card number and holder data (`RKSSSE`), if any: the national
    /// interface then answers −2203 with those fields empty.
    pub withheld: Option<String>,
}

impl BasicInfo {
    /// The national `iReadCardBas` output for this card at `terminal`.
    pub fn national(&self, terminal: &TerminalIds) -> NationalBasic {
        let fields = [
            self.region.as_str().to_owned(),
            self.ssn.clone().unwrap_or_default(),
            self.card_number.clone().unwrap_or_default(),
            hex_upper(&self.card_id),
            self.name.clone().unwrap_or_default(),
            hex_upper(&self.historical_bytes),
            self.spec_version.clone(),
            self.issue_date.to_string(),
            self.expiry_date.to_string(),
            terminal.terminal_no.clone(),
            terminal.device_no.clone(),
        ];
        NationalBasic { text: fields.iter().map(|f| format!("{f}|")).collect() }
    }

    /// Checks the national `pCardInfo` (`卡识别码|卡号|`, CARD-PROFILE §7) against this card: the card
    /// identifier must match (hex, any case); the card number too when both are known. [`Error::CardMismatch`]
    /// otherwise, [`Error::BadParameter`] for a malformed string.
    pub fn check_card_info(&self, card_info: &str) -> Result<(), Error> {
        let body =
            card_info.strip_suffix('|').ok_or_else(|| Error::BadParameter("card info must end with |".into()))?;
        let (id, number) = body.split_once('|').unwrap_or((body, ""));
        if !id.eq_ignore_ascii_case(&hex_upper(&self.card_id)) {
            return Err(Error::CardMismatch);
        }
        match &self.card_number {
            Some(n) if !number.is_empty() && n != number => Err(Error::CardMismatch),
            _ => Ok(()),
        }
    }

    /// The national return code of the read: 0, or −2203 when the holder data was withheld.
    pub fn national_code(&self) -> i32 {
        match &self.withheld {
            Some(key) => crate::national::code(&Error::MissingKey { key: key.clone() }),
            None => crate::national::OK,
        }
    }
}

/// The `iReadCardBas` string (CARD-PROFILE §7): 11 fields, each terminated by `|`:
/// `发卡地区行政区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|`.
/// Region as 6 digits, card identifier and historical bytes as uppercase hex, dates `YYYYMMDD`;
/// withheld fields are empty. No trailing newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NationalBasic {
    text: String,
}

impl NationalBasic {
    /// The string (UTF-8).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The bytes for the C interface: GB 18030 (GBK for every name GBK can write).
    pub fn to_gb18030(&self) -> Result<Vec<u8>, Error> {
        Ok(gb18030_encode(&self.text)?)
    }
}

impl fmt::Display for NationalBasic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Tag 09's stored form of a full name: characters outside GBK replaced by [`NAME_PLACEHOLDER`].
pub fn name_for_tag_09(full: &str) -> String {
    full.chars()
        .map(|c| if crate::codec::gbk_encode(c.encode_utf8(&mut [0u8; 4])).is_ok() { c } else { NAME_PLACEHOLDER })
        .collect()
}

/// A holder's data as text, as a holders file or a test card's specification gives it (the EF06 items by field,
/// CARD-PROFILE §2.1): one record type for issuance and for card-sim's fixtures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HolderText {
    /// Social security number (citizen id).
    pub ssn: String,
    /// Name as written (UTF-8). The `name` item (tag 09, GBK) holds it with the placeholder 〓 for each character
    /// GBK lacks; the full name then goes to `name_ext` unless that is given ([`NameItems`]).
    pub name: String,
    /// Name extension (v2+), may be empty; written in the `name_ext` item's format (GB 18030).
    #[serde(default)]
    pub name_ext: String,
    /// Sex code.
    pub sex: String,
    /// Ethnicity, two digits.
    pub ethnicity: String,
    /// Birthplace region code.
    pub birthplace: String,
    /// Birth date YYYYMMDD.
    pub birth_date: String,
}

/// The texts of the two name items of a holder (the profile's `name` and `name_ext` fields), the one rule that
/// issuance and the test-card personalizer share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameItems {
    /// The `name` item (tag 09): in an `an` (GBK) item, the name with [`NAME_PLACEHOLDER`] for each character
    /// GBK lacks ([`name_for_tag_09`]); in a `gb18030` item, the name as written.
    pub name: String,
    /// The `name_ext` item (tag 4E): an explicit name extension; else the full name when the `name` item does
    /// not hold it whole; else empty.
    pub name_ext: String,
}

impl NameItems {
    /// For a name as written and an explicit name extension (empty if none), with the `name` item in `format`.
    ///
    /// ```
    /// # use card_core::card::NameItems;
    /// # use card_core::codec::Format;
    /// let n = NameItems::new("张𠮷", "", Format::An);
    /// assert_eq!((n.name.as_str(), n.name_ext.as_str()), ("张〓", "张𠮷"));
    /// let n = NameItems::new("张三", "", Format::An);
    /// assert_eq!((n.name.as_str(), n.name_ext.as_str()), ("张三", ""));
    /// ```
    pub fn new(name: &str, name_ext: &str, format: Format) -> NameItems {
        let stored = match format {
            Format::An => name_for_tag_09(name),
            _ => name.to_owned(),
        };
        let ext = if !name_ext.is_empty() {
            name_ext.to_owned()
        } else if stored != name {
            name.to_owned()
        } else {
            String::new()
        };
        NameItems { name: stored, name_ext: ext }
    }

    /// Whether the name needs the `name_ext` item (it has characters the `name` item cannot hold).
    pub fn needs_ext(&self) -> bool {
        !self.name_ext.is_empty()
    }
}

/// The items of one linear EF as read, found by their profile field (CARD-PROFILE §2.1).
struct Read<'p> {
    ef: &'p Ef,
    g: Generation,
    values: BTreeMap<u8, Vec<u8>>,
}

impl Read<'_> {
    /// The item holding `field` and its value, if the profile has it and the card returned it.
    fn get(&self, field: ItemField) -> Option<(&Item, &[u8])> {
        let (_, item) = self.ef.record_of_field(self.g, field)?;
        self.values.get(&item.tag).map(|v| (item, v.as_slice()))
    }

    fn need(&self, field: ItemField) -> Result<(&Item, &[u8]), Error> {
        self.get(field).ok_or_else(|| Error::UnknownCard(format!("{} item {field} missing", self.ef.name)))
    }

    /// The value as text of the item's format.
    fn text(&self, field: ItemField) -> Result<Option<String>, Error> {
        self.get(field).map(|(item, v)| text(item, v)).transpose()
    }

    fn need_text(&self, field: ItemField) -> Result<String, Error> {
        let (item, v) = self.need(field)?;
        text(item, v)
    }

    fn date(&self, field: ItemField) -> Result<Option<Date>, Error> {
        self.get(field).map(|(item, v)| date(item, v)).transpose()
    }

    fn need_date(&self, field: ItemField) -> Result<Date, Error> {
        let (item, v) = self.need(field)?;
        date(item, v)
    }
}

/// The card's value as text of the item's format; bytes that do not decode are the card's fault
/// ([`Error::CardData`]).
fn text(item: &Item, bytes: &[u8]) -> Result<String, Error> {
    match &item.format {
        ItemFormat::Simple(f) => decode(*f, bytes).map_err(Error::CardData),
        ItemFormat::Constructed(_) => Ok(hex_upper(bytes)),
    }
}

/// A date item: `cn` as the profile has it, or the `YYYYMMDD` text of another format.
fn date(item: &Item, bytes: &[u8]) -> Result<Date, Error> {
    match &item.format {
        ItemFormat::Simple(Format::Cn) => Date::from_cn(bytes).map_err(Error::CardData),
        _ => Date::parse(&text(item, bytes)?).map_err(Error::CardData),
    }
}

/// The linear EF of SSSE that holds `field` on generation `g`.
fn ef_of(ssse: &Df, g: Generation, field: ItemField) -> Result<&Ef, Error> {
    ssse.field(g, field)
        .map(|(ef, _, _)| ef)
        .ok_or_else(|| Error::UnknownCard(format!("the profile has no {field} item in {SSSE}")))
}

/// The read behind [`super::SocialSecurityCard::read_basic`]: the card's EF (EF05, the one holding the spec
/// version) and the holder's (EF06, the one holding the name), each item found by its profile field.
pub(crate) fn read(s: &mut Session<'_>) -> Result<BasicInfo, Error> {
    let g = s.generation();
    let ssse = s.df_spec(SSSE)?;
    let ef05 = ef_of(ssse, g, ItemField::SpecVersion)?;
    let ef06 = ef_of(ssse, g, ItemField::Name)?;
    let card_no = ef05.record_of_field(g, ItemField::CardNumber).map(|(_, i)| i);
    let card_no_ok = card_no.and_then(|i| i.read.as_ref()).is_none_or(|r| s.can_meet(r.for_generation(g)));
    let holder_ok = s.can_meet(ef06.read.for_generation(g));
    let mut withheld = None;
    let mut tags05: Vec<u8> = ef05.items(g).map(|i| i.tag).collect();
    if !card_no_ok {
        tags05.retain(|t| Some(*t) != card_no.map(|i| i.tag));
    }
    if !card_no_ok || !holder_ok {
        withheld = Some(
            ef06.read
                .for_generation(g)
                .key()
                .map_or_else(|| "RKSSSE".to_owned(), |k| crate::security::key_name(SSSE, k)),
        );
    }
    let card = Read { ef: ef05, g, values: read_tags(s, ssse, ef05, &tags05)? };
    s.learn_spec_version(card.need(ItemField::SpecVersion)?.1)?;
    let g = s.generation();
    let (card_id_item, card_id) = card.need(ItemField::CardId)?;
    let card_id = match &card_id_item.format {
        ItemFormat::Simple(Format::B | Format::Hex) => card_id.to_vec(),
        _ => parse_hex(&text(card_id_item, card_id)?).map_err(Error::CardData)?,
    };
    let region = RegionCode::from_bcd(card_id.get(..3).unwrap_or_default()).map_err(Error::CardData)?;
    s.learn_region(region);
    let mut info = BasicInfo {
        generation: g,
        algorithm: s.ctx().algorithm,
        historical_bytes: s.historical_bytes().to_vec(),
        card_id,
        region,
        card_type: card.need_text(ItemField::CardType)?,
        spec_version: card.need_text(ItemField::SpecVersion)?,
        init_org: card.need_text(ItemField::InitOrg)?,
        issue_date: card.need_date(ItemField::IssueDate)?,
        expiry_date: card.need_date(ItemField::ExpiryDate)?,
        card_number: card.text(ItemField::CardNumber)?,
        ssn: None,
        name: None,
        name_09: None,
        name_ext: None,
        sex: None,
        ethnicity: None,
        birthplace: None,
        birth_date: None,
        withheld,
    };
    if info.withheld.is_some() {
        return Ok(info);
    }
    let ef06 = ef_of(ssse, g, ItemField::Name)?;
    let tags06: Vec<u8> = ef06.items(g).map(|i| i.tag).collect();
    let holder = Read { ef: ef06, g, values: read_tags(s, ssse, ef06, &tags06)? };
    info.ssn = holder.text(ItemField::Ssn)?;
    info.name_09 = holder.text(ItemField::Name)?;
    // decoded by the item's format (gb18030 in the built-in profile), wherever the profile puts it
    info.name_ext = holder.text(ItemField::NameExt)?;
    info.name = match &info.name_ext {
        Some(ext) if !ext.is_empty() => Some(ext.clone()),
        _ => info.name_09.clone(),
    };
    info.sex = holder.text(ItemField::Sex)?;
    info.ethnicity = holder.text(ItemField::Ethnicity)?;
    info.birthplace = holder.text(ItemField::Birthplace)?;
    info.birth_date = holder.date(ItemField::BirthDate)?;
    Ok(info)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn card_info_check() {
        let info = BasicInfo {
            generation: Generation::TWO,
            algorithm: Algorithm::Tdes,
            historical_bytes: vec![],
            card_id: vec![0x37, 0x17, 0x00, 0xD1],
            region: RegionCode::parse("371700").unwrap(),
            card_type: "1".into(),
            spec_version: "2.00".into(),
            init_org: String::new(),
            issue_date: Date::parse("20200101").unwrap(),
            expiry_date: Date::parse("20300101").unwrap(),
            card_number: Some("A0000001T".into()),
            ssn: None,
            name: None,
            name_09: None,
            name_ext: None,
            sex: None,
            ethnicity: None,
            birthplace: None,
            birth_date: None,
            withheld: None,
        };
        assert!(info.check_card_info("371700d1|A0000001T|").is_ok());
        assert!(info.check_card_info("371700D1||").is_ok());
        assert!(matches!(info.check_card_info("371700D2|A0000001T|"), Err(Error::CardMismatch)));
        assert!(matches!(info.check_card_info("371700D1|B0000001T|"), Err(Error::CardMismatch)));
        assert!(matches!(info.check_card_info("371700D1"), Err(Error::BadParameter(_))));
    }

    #[test]
    fn placeholder_for_characters_outside_gbk() {
        assert_eq!(name_for_tag_09("欧阳𠮷娜"), "欧阳〓娜");
        assert_eq!(name_for_tag_09("张三"), "张三");
    }
}
