//! The card layout as data (CARD-PROFILE §2, §3, §5.1).
//!
//! The built-in default, `profile/default.toml`, is the layout of `CARD-PROFILE.md`; a deployment whose
//! cards differ loads its own file with [`Profile::from_toml`] or [`Profile::load`]. A file that contradicts
//! itself (duplicate tag, SFI, key id or name; a record longer than a record may be; an access condition
//! naming a key the DF does not hold) is refused with a message naming the entry.
//!
//! Everything is looked up for one card *generation* (1, 2 or 3, from EF05 tag 03): items, files, DFs
//! and keys may exist only on some generations, and access conditions may differ by generation. On a
//! linear EF, the record number of an item is its position among the items of that generation
//! (CARD-PROFILE §2: on a generation 1 card, EF06 record 3 is tag `0A`, since `4E` is absent).

mod load;

use std::fmt;
use std::sync::OnceLock;

use crate::codec::Format;

pub use load::ProfileError;

/// A card generation (CARD-PROFILE §1): 1, 2 or 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(u8);

impl Generation {
    /// Generation 1 (spec version `1.00`, 3DES).
    pub const ONE: Generation = Generation(1);
    /// Generation 2 (spec version `2.00`, 3DES).
    pub const TWO: Generation = Generation(2);
    /// Generation 3 (spec version `3.00`, SM4).
    pub const THREE: Generation = Generation(3);

    /// From 1, 2 or 3.
    pub fn new(n: u8) -> Option<Generation> {
        (1..=3).contains(&n).then_some(Generation(n))
    }

    /// From the spec version of EF05 tag 03 (`1.00`, `2.00`, `3.00`).
    ///
    /// As reader specs read it (CARD-PROFILE §4.2): only the first three characters count (`2.01` is
    /// generation 2), and an empty value means 1.0x.
    pub fn from_spec_version(v: &str) -> Option<Generation> {
        let v = v.trim_end_matches(['\0', ' ']);
        if v.is_empty() {
            return Some(Generation(1));
        }
        match v.get(..3)? {
            "1.0" => Some(Generation(1)),
            "2.0" => Some(Generation(2)),
            "3.0" => Some(Generation(3)),
            _ => None,
        }
    }

    /// The spec version string written to EF05 tag 03.
    pub fn spec_version(self) -> &'static str {
        match self.0 {
            1 => "1.00",
            2 => "2.00",
            _ => "3.00",
        }
    }

    /// 1, 2 or 3.
    pub fn number(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A set of generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Generations(u8);

impl Generations {
    /// All three.
    pub const ALL: Generations = Generations(0b1110);

    /// Whether `g` is in the set.
    pub fn contains(self, g: Generation) -> bool {
        self.0 & (1 << g.0) != 0
    }

    pub(crate) fn from_numbers(ns: &[u8]) -> Option<Generations> {
        let mut bits = 0u8;
        for &n in ns {
            let g = Generation::new(n)?;
            bits |= 1 << g.0;
        }
        (bits != 0).then_some(Generations(bits))
    }
}

/// An access condition (CARD-PROFILE §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Always allowed.
    Free,
    /// After PIN verification in this DF.
    Pin,
    /// After external authentication with the named key of this DF.
    Key(String),
    /// After either PIN verification or external authentication with the key.
    PinOrKey(String),
    /// After both.
    PinAndKey(String),
    /// Never.
    Never,
}

impl Access {
    /// The key this condition names, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Access::Key(k) | Access::PinOrKey(k) | Access::PinAndKey(k) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Free => write!(f, "free"),
            Access::Pin => write!(f, "pin"),
            Access::Key(k) => write!(f, "key {k}"),
            Access::PinOrKey(k) => write!(f, "pin|key {k}"),
            Access::PinAndKey(k) => write!(f, "pin+key {k}"),
            Access::Never => write!(f, "never"),
        }
    }
}

/// An access condition that may differ by generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    default: Access,
    by_generation: Vec<(Generations, Access)>,
}

impl AccessRule {
    /// The condition on cards of generation `g`.
    pub fn for_generation(&self, g: Generation) -> &Access {
        self.by_generation.iter().find(|(gs, _)| gs.contains(g)).map(|(_, a)| a).unwrap_or(&self.default)
    }
}

/// What a key is for (CARD-PROFILE §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// Master key of the DF: create, erase, write keys.
    Master,
    /// Internal authentication (card genuineness).
    InternalAuth,
    /// External authentication (grants access conditions).
    ExternalAuth,
    /// PIN unblock.
    PinUnblock,
    /// PIN reload.
    PinReload,
    /// Maintenance: line protection, application block/unblock.
    Maintenance,
}

impl KeyUsage {
    /// The profile's word for it (`master`, `internal-auth`, `external-auth`, `pin-unblock`, `pin-reload`,
    /// `maintenance`), as profile files and plans write it.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::Master => "master",
            KeyUsage::InternalAuth => "internal-auth",
            KeyUsage::ExternalAuth => "external-auth",
            KeyUsage::PinUnblock => "pin-unblock",
            KeyUsage::PinReload => "pin-reload",
            KeyUsage::Maintenance => "maintenance",
        }
    }

    /// The usage a profile's word names.
    pub fn from_name(s: &str) -> Option<KeyUsage> {
        [
            KeyUsage::Master,
            KeyUsage::InternalAuth,
            KeyUsage::ExternalAuth,
            KeyUsage::PinUnblock,
            KeyUsage::PinReload,
            KeyUsage::Maintenance,
        ]
        .into_iter()
        .find(|u| u.name() == s)
    }
}

/// A key the profile places in a DF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The profile's name (`MK`, `IRK`, `UKMF`, `UK`, …).
    pub name: String,
    /// Key id on the card.
    pub kid: u8,
    /// What it is for.
    pub usage: KeyUsage,
    /// Try limit written with the key.
    pub max_tries: u8,
    /// Generations whose cards hold it.
    pub generations: Generations,
}

/// How an item's value is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemFormat {
    /// A primitive value of a §2.3 format.
    Simple(Format),
    /// A constructed item (`B-TLV`) holding simple TLV sub-items.
    Constructed(Vec<Item>),
}

/// What an item of the basic information holds (the profile's `field`, CARD-PROFILE §2.1): a datum of the
/// card (EF05) or of its holder (EF06).
///
/// Issuance, the test-card personalizer and the basic-information reader find an item by its field — its
/// tag, record, length and format are the profile's, so a deployment changes them without code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemField {
    /// `card_id`: 卡识别码 (`b` or `hex`).
    CardId,
    /// `card_type`: 卡的类别.
    CardType,
    /// `spec_version`: 规范版本, which tells the generation.
    SpecVersion,
    /// `init_org`: 初始化机构编号.
    InitOrg,
    /// `issue_date`: 发卡日期, `YYYYMMDD`.
    IssueDate,
    /// `expiry_date`: 卡有效期, `YYYYMMDD`.
    ExpiryDate,
    /// `card_number`: 卡号.
    CardNumber,
    /// `ssn`: 社会保障号码.
    Ssn,
    /// `name`: 姓名; in an `an` (GBK) item, characters outside GBK are stored as the placeholder
    /// (`card::basic::NAME_PLACEHOLDER`).
    Name,
    /// `name_ext`: 姓名扩展, the full name when the `name` item cannot hold it.
    NameExt,
    /// `sex`: 性别.
    Sex,
    /// `ethnicity`: 民族.
    Ethnicity,
    /// `birthplace`: 出生地.
    Birthplace,
    /// `birth_date`: 出生日期, `YYYYMMDD`.
    BirthDate,
}

impl ItemField {
    /// Every field, card data first.
    pub const ALL: [ItemField; 14] = [
        ItemField::CardId,
        ItemField::CardType,
        ItemField::SpecVersion,
        ItemField::InitOrg,
        ItemField::IssueDate,
        ItemField::ExpiryDate,
        ItemField::CardNumber,
        ItemField::Ssn,
        ItemField::Name,
        ItemField::NameExt,
        ItemField::Sex,
        ItemField::Ethnicity,
        ItemField::Birthplace,
        ItemField::BirthDate,
    ];

    /// The profile's spelling (`card_id`, `name_ext`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemField::CardId => "card_id",
            ItemField::CardType => "card_type",
            ItemField::SpecVersion => "spec_version",
            ItemField::InitOrg => "init_org",
            ItemField::IssueDate => "issue_date",
            ItemField::ExpiryDate => "expiry_date",
            ItemField::CardNumber => "card_number",
            ItemField::Ssn => "ssn",
            ItemField::Name => "name",
            ItemField::NameExt => "name_ext",
            ItemField::Sex => "sex",
            ItemField::Ethnicity => "ethnicity",
            ItemField::Birthplace => "birthplace",
            ItemField::BirthDate => "birth_date",
        }
    }

    /// From the profile's spelling.
    pub fn parse(s: &str) -> Option<ItemField> {
        ItemField::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for ItemField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data item: one TLV record of a linear EF, or a sub-item of a constructed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The tag.
    pub tag: u8,
    /// What the item holds, for the items of the basic information (EF05, EF06).
    pub field: Option<ItemField>,
    /// The profile's (Chinese) name.
    pub name: String,
    /// An English name, if given.
    pub en: Option<String>,
    /// Value format.
    pub format: ItemFormat,
    /// Value length in bytes (for a constructed item: the sum of its sub-items' TLVs).
    pub len: usize,
    /// Generations that have this item.
    pub generations: Generations,
    /// An access condition for reading this item stricter than its file's, if any.
    pub read: Option<AccessRule>,
}

/// One fixed-layout field of a cyclic record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Value format.
    pub format: Format,
    /// Length in bytes.
    pub len: usize,
}

/// What kind of elementary file, with its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EfKind {
    /// Linear file of TLV records, one item per record.
    Linear {
        /// Items in record order (all generations; filter with [`Ef::items`]).
        items: Vec<Item>,
    },
    /// Cyclic file of fixed-layout records without tags.
    Cyclic {
        /// Number of records.
        records: u8,
        /// Fields of each record.
        fields: Vec<Field>,
    },
    /// Transparent (binary) file.
    Transparent {
        /// Size for generations without an override.
        size: usize,
        /// Per-generation sizes.
        by_generation: Vec<(Generation, usize)>,
    },
}

/// An elementary file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ef {
    /// The profile's name, e.g. `EF05`.
    pub name: String,
    /// File id: the profile's `fid`, by default the name (`EF05` → `EF05`, as vendor readers select it).
    pub fid: u16,
    /// Short file id.
    pub sfi: u8,
    /// English description, if given.
    pub en: Option<String>,
    /// Layout.
    pub kind: EfKind,
    /// Read condition.
    pub read: AccessRule,
    /// Update condition.
    pub update: AccessRule,
    /// Generations that have this file.
    pub generations: Generations,
}

impl Ef {
    /// The items of a linear file on a card of generation `g`, in record order (record 1 first).
    pub fn items(&self, g: Generation) -> impl Iterator<Item = &Item> {
        let items: &[Item] = match &self.kind {
            EfKind::Linear { items } => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.generations.contains(g))
    }

    /// Record number (1-based) and item holding `field` on generation `g`.
    pub fn record_of_field(&self, g: Generation, field: ItemField) -> Option<(u8, &Item)> {
        self.items(g)
            .enumerate()
            .find(|(_, i)| i.field == Some(field))
            .and_then(|(n, i)| Some((u8::try_from(n + 1).ok()?, i)))
    }

    /// Record number (1-based) and item for `tag` on generation `g`.
    pub fn record_of(&self, g: Generation, tag: u8) -> Option<(u8, &Item)> {
        self.items(g).enumerate().find(|(_, i)| i.tag == tag).and_then(|(n, i)| Some((u8::try_from(n + 1).ok()?, i)))
    }

    /// Size of a transparent file on generation `g`.
    pub fn size(&self, g: Generation) -> Option<usize> {
        match &self.kind {
            EfKind::Transparent { size, by_generation } => {
                Some(by_generation.iter().find(|(gg, _)| *gg == g).map(|(_, s)| *s).unwrap_or(*size))
            }
            _ => None,
        }
    }

    /// Largest record length (linear: 2 + value length; cyclic: sum of fields).
    pub fn record_len(&self, g: Generation) -> Option<usize> {
        match &self.kind {
            EfKind::Linear { .. } => self.items(g).map(|i| 2 + i.len).max(),
            EfKind::Cyclic { fields, .. } => Some(fields.iter().map(|f| f.len).sum()),
            EfKind::Transparent { .. } => None,
        }
    }

    /// Number of records on generation `g`.
    pub fn record_count(&self, g: Generation) -> Option<usize> {
        match &self.kind {
            EfKind::Linear { .. } => Some(self.items(g).count()),
            EfKind::Cyclic { records, .. } => Some(usize::from(*records)),
            EfKind::Transparent { .. } => None,
        }
    }
}

/// A dedicated file: MF, the SSSE DDF, or an application ADF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Df {
    /// The profile's name (`MF`, `SSSE`, `DF01` …).
    pub name: String,
    /// File id.
    pub fid: u16,
    /// Application id (absent for the MF).
    pub aid: Option<Vec<u8>>,
    /// English description, if given.
    pub en: Option<String>,
    /// Whether the DF holds the card's PIN (CARD-PROFILE §2: SSSE) or one of its own.
    pub pin: bool,
    /// Keys of the DF.
    pub keys: Vec<KeySpec>,
    /// Elementary files.
    pub efs: Vec<Ef>,
    /// Generations that have this DF.
    pub generations: Generations,
}

impl Df {
    /// The EF named `name` (e.g. `EF05`).
    pub fn ef(&self, name: &str) -> Option<&Ef> {
        self.efs.iter().find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// The EFs present on generation `g`.
    pub fn efs_for(&self, g: Generation) -> impl Iterator<Item = &Ef> {
        self.efs.iter().filter(move |e| e.generations.contains(g))
    }

    /// The key named `name`.
    pub fn key(&self, name: &str) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The keys present on generation `g`.
    pub fn keys_for(&self, g: Generation) -> impl Iterator<Item = &KeySpec> {
        self.keys.iter().filter(move |k| k.generations.contains(g))
    }

    /// The EF whose item holds `field` on generation `g`, with the record number and the item.
    pub fn field(&self, g: Generation, field: ItemField) -> Option<(&Ef, u8, &Item)> {
        self.efs_for(g).find_map(|ef| ef.record_of_field(g, field).map(|(n, i)| (ef, n, i)))
    }
}

/// The card's PIN parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinSpec {
    /// PIN length in bytes of BCD.
    pub length: usize,
    /// Try limit.
    pub max_tries: u8,
}

/// A whole card layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Human name of the profile.
    pub name: String,
    /// PIN parameters.
    pub pin: PinSpec,
    /// The master file.
    pub mf: Df,
    /// SSSE and the applications, in file-system order.
    pub dfs: Vec<Df>,
}

/// Where an [`ItemField`] is: see [`Profile::field`].
#[derive(Clone, Copy, Debug)]
pub struct FieldItem<'p> {
    /// The DF.
    pub df: &'p Df,
    /// The linear EF.
    pub ef: &'p Ef,
    /// Record number (1-based) on the generation asked for.
    pub record: u8,
    /// The item: tag, format, length.
    pub item: &'p Item,
}

impl FieldItem<'_> {
    /// The item's value format (`None` for a constructed item).
    pub fn format(&self) -> Option<Format> {
        match &self.item.format {
            ItemFormat::Simple(f) => Some(*f),
            ItemFormat::Constructed(_) => None,
        }
    }
}

const BUILTIN: &str = include_str!("default.toml");

impl Profile {
    /// The built-in profile of CARD-PROFILE.md.
    pub fn builtin() -> &'static Profile {
        static P: OnceLock<Profile> = OnceLock::new();
        P.get_or_init(|| match Profile::from_toml(BUILTIN) {
            Ok(p) => p,
            // The embedded file is tested (tests::builtin_profile_is_valid); failing here is a build defect.
            #[allow(clippy::panic)]
            Err(e) => panic!("built-in profile is invalid: {e}"),
        })
    }

    /// The text of the built-in profile, as a starting point for a deployment's own file.
    pub fn builtin_toml() -> &'static str {
        BUILTIN
    }

    /// Reads a profile file, at most 4 MiB (`/dev/zero`, a FIFO or a larger file is refused:
    /// [`crate::read_limited`]).
    pub fn load(path: &std::path::Path) -> Result<Profile, ProfileError> {
        const MAX_PROFILE_FILE: u64 = 4 * 1024 * 1024;
        let text = crate::read_limited_string(path, MAX_PROFILE_FILE)
            .map_err(|e| ProfileError::Io(path.display().to_string(), e))?;
        Profile::from_toml(&text)
    }

    /// Parses and validates a profile.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        load::parse(text)
    }

    /// The DF named `name` (`MF`, `SSSE`, `DF01`, …).
    pub fn df(&self, name: &str) -> Option<&Df> {
        if name.eq_ignore_ascii_case(&self.mf.name) {
            return Some(&self.mf);
        }
        self.dfs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The DFs (SSSE and applications) present on generation `g`.
    pub fn dfs_for(&self, g: Generation) -> impl Iterator<Item = &Df> {
        self.dfs.iter().filter(move |d| d.generations.contains(g))
    }

    /// Where `field` is on a card of generation `g`: DF, EF, record number and item (CARD-PROFILE §2.1:
    /// SSSE EF05 and EF06 in the built-in profile); `None` where the generation has no such item (the name
    /// extension on generation 1).
    pub fn field(&self, g: Generation, field: ItemField) -> Option<FieldItem<'_>> {
        std::iter::once(&self.mf)
            .chain(self.dfs_for(g))
            .find_map(|df| df.field(g, field).map(|(ef, record, item)| FieldItem { df, ef, record, item }))
    }

    /// Finds the DF and EF of a national file address such as `SSSEEF05` or `DF01EF06`.
    pub fn file(&self, address: &str) -> Option<(&Df, &Ef)> {
        let split = address.len().checked_sub(4)?;
        let (df, ef) = (address.get(..split)?, address.get(split..)?);
        let df = self.df(df)?;
        Some((df, df.ef(ef)?))
    }
}

#[cfg(test)]
mod tests;
