//! Test cards: a blank card personalized through APDUs from the card profile and documented test keys.
//!
//! This makes the fixture images under `fixtures/cards/` (`card-sim fixtures`) and fresh personalized
//! cards for tests. It is a faithful but minimal personalization — CARD-PROFILE §8 steps 1–6 over the
//! reference COS, with every key diversified per §5.2 — not the issuance program, which adds data
//! preparation, a journal, resume and read-back verification.
//!
//! Everything is sent as APDUs through [`SimTransport`] and card-core's APDU engine, so the fixture
//! cards are built by the same commands a host would send.

use std::collections::BTreeMap;

use card_core::apdu::Command;
use card_core::card::NameItems;
use card_core::codec::{self, CardNumber, CitizenId, Date, Format};
use card_core::command;
use card_core::crypto::{process_key, region_factor, Algorithm, CardKey};
use card_core::profile::{Df, EfKind, Generation, ItemField, ItemFormat, KeyUsage, Profile};
use card_core::reference_cos::{self, EfSpec, FileSpec, KeyRecord};
use card_core::tlv::RecordTlv;
use card_core::transport::{historical_bytes, CardTransaction, CardTransactionExt, Transport};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{BlankParams, Card, KeyAlgorithm, SimTransport};

/// A fixture personalization that cannot be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The spec or key file is not what it should be.
    #[error("fixture spec: {0}")]
    Spec(String),
    /// The card refused a step (the step is named).
    #[error("step {step}: {source}")]
    Card {
        /// What was being done.
        step: String,
        /// The card's answer.
        #[source]
        source: card_core::Error,
    },
    /// A value does not fit its field.
    #[error("value of {item}: {source}")]
    Value {
        /// Which item.
        item: String,
        /// Why.
        #[source]
        source: codec::CodecError,
    },
    /// The blank card cannot be made.
    #[error(transparent)]
    Sim(#[from] crate::Error),
}

fn spec(msg: impl Into<String>) -> FixtureError {
    FixtureError::Spec(msg.into())
}

/// Issuer master keys of the test cards (`fixtures/cards/test-keys.toml`). TEST MATERIAL ONLY.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestKeys {
    format: String,
    version: u32,
    /// The chip maker's transport key of the blank cards (not diversified).
    transport: String,
    /// Issuer master keys by algorithm (`3des`, `sm4`) and inventory name (`MK_MF`, `MK`, `IRK`, `UK_DF01`, …).
    issuer: BTreeMap<String, BTreeMap<String, String>>,
}

impl TestKeys {
    /// Parses the key file.
    pub fn from_toml(text: &str) -> Result<TestKeys, FixtureError> {
        let k: TestKeys = toml::from_str(text).map_err(|e| spec(format!("test keys: {e}")))?;
        if k.format != "sscard-test-keys" || k.version != 1 {
            return Err(spec("test keys: not sscard-test-keys version 1"));
        }
        Ok(k)
    }

    /// The transport key.
    pub fn transport(&self) -> Result<[u8; 16], FixtureError> {
        key16(&self.transport, "transport")
    }

    /// The names of the issuer master keys for `alg`, in order (none if the file has no table for it).
    pub fn names(&self, alg: Algorithm) -> Vec<&str> {
        self.issuer.get(alg_name(alg)).map(|t| t.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// The issuer master key `name` for `alg`.
    pub fn issuer(&self, alg: Algorithm, name: &str) -> Result<CardKey, FixtureError> {
        let table = self.issuer.get(alg_name(alg)).ok_or_else(|| spec(format!("no {} issuer keys", alg_name(alg))))?;
        let hex = table.get(name).ok_or_else(|| spec(format!("no {} issuer key {name}", alg_name(alg))))?;
        let bytes = Zeroizing::new(key16(hex, name)?);
        CardKey::new(alg, &*bytes).map_err(|e| spec(format!("{name}: {e}")))
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Tdes => "3des",
        Algorithm::Sm4 => "sm4",
        Algorithm::Aes128 => "aes",
    }
}

fn key16(hex: &str, what: &str) -> Result<[u8; 16], FixtureError> {
    let v = Zeroizing::new(hex::decode(hex).map_err(|_| spec(format!("key {what} is not hex")))?);
    <[u8; 16]>::try_from(v.as_slice()).map_err(|_| spec(format!("key {what} is not 16 bytes")))
}

/// The key-store name of a profile key (key-mgmt's inventory): `MK_MF` for the MF's MK, the bare name in
/// SSSE, `NAME_DFxx` in an application.
pub fn inventory_name(df: &str, key: &str) -> String {
    match df {
        "MF" => format!("{key}_MF"),
        "SSSE" => key.to_owned(),
        app => format!("{key}_{app}"),
    }
}

/// One card of `fixtures/cards/fixtures.toml`.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// Image file name.
    pub file: String,
    /// Generation 1, 2 or 3 (3DES for 1 and 2, SM4 for 3).
    pub generation: u8,
    /// Issuing region code.
    pub region: String,
    /// Chip serial (hex, 8 bytes): the card factor.
    pub serial: String,
    /// Personalize, or leave blank.
    #[serde(default)]
    pub personalize: bool,
    /// Card data (EF05).
    pub card: Option<CardData>,
    /// Holder data (EF06).
    pub holder: Option<HolderData>,
}

/// EF05 content.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct CardData {
    /// Card type (`1` standard).
    pub card_type: String,
    /// The 8 characters of the card number; the check character is computed (MOD 37-2).
    pub card_number: String,
    /// Issue date YYYYMMDD.
    pub issue_date: String,
    /// Expiry date YYYYMMDD.
    pub expiry_date: String,
    /// The PIN set at personalization (digits). Test material.
    pub pin: String,
}

/// EF06 content: card-core's holder record, the one issuance reads holders files into.
pub use card_core::card::HolderText as HolderData;

/// `fixtures/cards/fixtures.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSpecs {
    /// The cards.
    pub card: Vec<CardSpec>,
}

impl FixtureSpecs {
    /// Parses the spec file.
    pub fn from_toml(text: &str) -> Result<FixtureSpecs, FixtureError> {
        toml::from_str(text).map_err(|e| spec(format!("fixtures.toml: {e}")))
    }
}

/// The card algorithm of a generation (CARD-PROFILE §1): card-core's.
pub use card_core::security::algorithm_of;

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::Tdes => KeyAlgorithm::Tdes,
        Algorithm::Sm4 => KeyAlgorithm::Sm4,
        Algorithm::Aes128 => KeyAlgorithm::Aes128,
    }
}

/// Makes the card of `spec`: blank, or personalized from `profile` with `keys`.
pub fn make_card(spec_: &CardSpec, profile: &Profile, keys: &TestKeys) -> Result<Card, FixtureError> {
    let generation = Generation::new(spec_.generation).ok_or_else(|| spec("generation must be 1, 2 or 3"))?;
    let alg = algorithm_of(generation);
    let serial = u64::from_str_radix(&spec_.serial, 16).map_err(|_| spec("serial must be 16 hex digits"))?;
    let card = Card::new_blank(BlankParams {
        generation: spec_.generation,
        region: spec_.region.clone(),
        serial,
        transport_key: keys.transport()?,
        algorithm: key_algorithm(alg),
    })?;
    if !spec_.personalize {
        return Ok(card);
    }
    let (Some(data), Some(holder)) = (&spec_.card, &spec_.holder) else {
        return Err(spec(format!("{}: a personalized card needs [card] and [holder]", spec_.file)));
    };
    check_holder(holder)?;
    check_name(holder, profile, generation)?;
    let region_bcd = codec::RegionCode::parse(&spec_.region).map_err(|e| spec(format!("region: {e}")))?.to_bcd();
    let mut card_id = [0u8; 16];
    card_id[..3].copy_from_slice(&region_bcd);
    card_id[3..8].copy_from_slice(&[0xD1, 0x56, 0x00, 0x00, 0x05]);
    card_id[8..].copy_from_slice(&serial.to_be_bytes());
    let mut sim = SimTransport::new(card);
    let p = Personalizer { profile, keys, generation, alg, region: spec_.region.clone(), card_id };
    p.run(&mut sim, data, holder)?;
    let mut card = sim.into_card();
    card.power_off();
    Ok(card)
}

struct Personalizer<'a> {
    profile: &'a Profile,
    keys: &'a TestKeys,
    generation: Generation,
    alg: Algorithm,
    region: String,
    /// EF05 tag 01: region (BCD) ‖ `D156000005` ‖ the chip serial (CARD-PROFILE §2.1).
    card_id: [u8; 16],
}

type Tx<'t> = dyn CardTransaction + 't;

fn step<T>(name: impl Into<String>, r: Result<T, card_core::Error>) -> Result<T, FixtureError> {
    r.map_err(|source| FixtureError::Card { step: name.into(), source })
}

impl Personalizer<'_> {
    fn run(&self, sim: &mut SimTransport, data: &CardData, holder: &HolderData) -> Result<(), FixtureError> {
        let hist = historical_bytes(sim.atr()).ok_or_else(|| spec("ATR without historical bytes"))?.to_vec();
        let card_factor = card_core::crypto::card_factor(&hist).map_err(|e| spec(e.to_string()))?;
        let region = region_factor(&self.region).map_err(|e| spec(e.to_string()))?;
        let card_key = |df: &str, name: &str| -> Result<CardKey, FixtureError> {
            Ok(self.keys.issuer(self.alg, &inventory_name(df, name))?.div_path(&[region, card_factor]))
        };
        let mut tx = step("begin", sim.transaction().map_err(card_core::Error::from))?;
        let transport = CardKey::new(self.alg, &self.keys.transport()?).map_err(|e| spec(e.to_string()))?;
        self.ext_auth(&mut *tx, 0x00, &transport, "MF transport key")?;
        for df in self.profile.dfs_for(self.generation) {
            let aid = df.aid.clone().ok_or_else(|| spec(format!("{} has no AID", df.name)))?;
            if df.name != "SSSE" {
                // applications sit under SSSE; creating one needs SSSE's MK
                self.select(&mut *tx, "SSSE")?;
                self.ext_auth(&mut *tx, 0x00, &card_key("SSSE", "MK")?, "SSSE MK")?;
            }
            let create_df = reference_cos::create_file(df.fid, &FileSpec::Df { aid: Some(aid) });
            self.send(&mut *tx, &format!("create {}", df.name), create_df)?;
            self.select(&mut *tx, &df.name)?;
            let mk = df.key("MK").ok_or_else(|| spec(format!("{} has no MK", df.name)))?;
            let mk_value = card_key(&df.name, "MK")?;
            self.write_key(&mut *tx, df, mk.kid, mk.usage, mk.max_tries, &mk_value)?;
            self.ext_auth(&mut *tx, mk.kid, &mk_value, &format!("{} MK", df.name))?;
            for k in df.keys_for(self.generation).filter(|k| k.name != "MK") {
                self.write_key(&mut *tx, df, k.kid, k.usage, k.max_tries, &card_key(&df.name, &k.name)?)?;
            }
            if df.pin {
                self.write_pin(&mut *tx, &data.pin)?;
            }
            for ef in df.efs_for(self.generation) {
                let what = format!("create {} {}", df.name, ef.name);
                let spec = step(&what, EfSpec::from_profile(df, ef, self.generation))?;
                self.send(&mut *tx, &what, reference_cos::create_file(ef.fid, &FileSpec::Ef(spec)))?;
            }
            self.fill(&mut *tx, df, data, holder, &card_key)?;
        }
        // MF: replace the transport key by the card's MF MK, then end personalization (§8 step 6).
        self.send(&mut *tx, "select MF", command::select_by_fid(0x3F00).map_err(card_core::Error::from))?;
        self.ext_auth(&mut *tx, 0x00, &transport, "MF transport key")?;
        let mf_mk = card_key("MF", "MK")?;
        let mf_key = self.profile.mf.key("MK").ok_or_else(|| spec("MF has no MK"))?;
        self.write_key(&mut *tx, &self.profile.mf, 0x00, KeyUsage::Master, mf_key.max_tries, &mf_mk)?;
        self.ext_auth(&mut *tx, 0x00, &mf_mk, "MF MK")?;
        self.send(&mut *tx, "END PERSONALIZATION", Ok(reference_cos::end_personalization()))?;
        Ok(())
    }

    /// Writes every record of the DF's linear EFs: EF05/EF06 from the card and holder data, application
    /// items with synthetic values (`fill_value`). Authenticates with each EF's update key first.
    fn fill(
        &self,
        tx: &mut Tx<'_>,
        df: &Df,
        data: &CardData,
        holder: &HolderData,
        card_key: &dyn Fn(&str, &str) -> Result<CardKey, FixtureError>,
    ) -> Result<(), FixtureError> {
        let g = self.generation;
        for ef in df.efs_for(g) {
            if !matches!(ef.kind, EfKind::Linear { .. }) {
                continue;
            }
            if let Some(k) = ef.update.for_generation(g).key() {
                let kid = df.key(k).map(|s| s.kid).ok_or_else(|| spec(format!("{}: no key {k}", df.name)))?;
                self.ext_auth(tx, kid, &card_key(&df.name, k)?, &format!("{} {k}", df.name))?;
            }
            for (n, item) in ef.items(g).enumerate() {
                let what = format!("{} {} item {:02X}", df.name, ef.name, item.tag);
                // the card and holder data by the item's profile field, in the item's format (4E: gb18030)
                let value = match (item.field, &item.format) {
                    (Some(field), ItemFormat::Simple(_)) => self.field_value(field, data, holder)?,
                    _ => None,
                };
                let bytes = match (value, &item.format) {
                    (Some(text), ItemFormat::Simple(f)) => codec::encode(*f, &text, item.len)
                        .map_err(|source| FixtureError::Value { item: what.clone(), source })?,
                    (_, format) => fill_value(format, item.len, item.tag)
                        .map_err(|source| FixtureError::Value { item: what.clone(), source })?,
                };
                let tlv =
                    RecordTlv { tag: item.tag, value: bytes }.encode().map_err(|e| spec(format!("{what}: {e}")))?;
                let rec = u8::try_from(n + 1).map_err(|_| spec(format!("{what}: record number")))?;
                let cmd = command::update_record(rec, ef.sfi, tlv).map_err(card_core::Error::from);
                self.send(tx, &format!("write {what}"), cmd)?;
            }
        }
        Ok(())
    }

    /// The value of a basic-information field (CARD-PROFILE §2.1) as text of its format: card data from
    /// `d`, holder data from `h`. The name items follow card-core's one rule ([`NameItems`]): the `name`
    /// item holds 〓 for a character GBK lacks, `name_ext` the explicit extension or else the full name.
    fn field_value(&self, field: ItemField, d: &CardData, h: &HolderData) -> Result<Option<String>, FixtureError> {
        let names = || {
            let format =
                self.profile.field(self.generation, ItemField::Name).and_then(|f| f.format()).unwrap_or(Format::An);
            NameItems::new(&h.name, &h.name_ext, format)
        };
        Ok(Some(match field {
            ItemField::CardId => codec::hex_upper(&self.card_id),
            ItemField::CardType => d.card_type.clone(),
            ItemField::SpecVersion => self.generation.spec_version().to_owned(),
            ItemField::InitOrg => format!("{}{:0>6}", self.region, 1),
            ItemField::IssueDate => {
                Date::parse(&d.issue_date).map_err(|e| spec(format!("issue_date: {e}")))?.to_string()
            }
            ItemField::ExpiryDate => {
                Date::parse(&d.expiry_date).map_err(|e| spec(format!("expiry_date: {e}")))?.to_string()
            }
            ItemField::CardNumber => CardNumber::with_check(&d.card_number)
                .map_err(|e| spec(format!("card_number: {e}")))?
                .as_str()
                .to_owned(),
            ItemField::Ssn => h.ssn.clone(),
            ItemField::Name => names().name,
            ItemField::NameExt => names().name_ext,
            ItemField::Sex => h.sex.clone(),
            ItemField::Ethnicity => h.ethnicity.clone(),
            ItemField::Birthplace => h.birthplace.clone(),
            ItemField::BirthDate => h.birth_date.clone(),
        }))
    }

    fn send(
        &self,
        tx: &mut Tx<'_>,
        what: &str,
        cmd: Result<Command, card_core::Error>,
    ) -> Result<Vec<u8>, FixtureError> {
        let cmd = step(what, cmd)?;
        step(what, tx.exchange_ok(&cmd))
    }

    fn select(&self, tx: &mut Tx<'_>, df: &str) -> Result<(), FixtureError> {
        let aid = self.profile.df(df).and_then(|d| d.aid.clone()).ok_or_else(|| spec(format!("no DF {df}")))?;
        self.send(tx, &format!("select {df}"), command::select_by_name_no_fci(&aid).map_err(card_core::Error::from))?;
        Ok(())
    }

    /// CARD-PROFILE §6.2 external authentication.
    fn ext_auth(&self, tx: &mut Tx<'_>, kid: u8, key: &CardKey, what: &str) -> Result<(), FixtureError> {
        let what = format!("authenticate {what}");
        let answer = command::authenticate(tx, kid, |r, x| Ok(process_key(key, r).cryptogram(x)));
        step(&what, answer.and_then(|r| r.ok()))?;
        Ok(())
    }

    /// Plain WRITE KEY (personalization state): `type ‖ version ‖ alg ‖ tries ‖ key`, version 1.
    fn write_key(
        &self,
        tx: &mut Tx<'_>,
        df: &Df,
        kid: u8,
        usage: KeyUsage,
        tries: u8,
        key: &CardKey,
    ) -> Result<(), FixtureError> {
        let record = KeyRecord::key(usage, 0x01, tries, key);
        let cmd = reference_cos::write_key(kid, &record).map_err(card_core::Error::from);
        self.send(tx, &format!("write key {:02X} of {}", kid, df.name), cmd)?;
        Ok(())
    }

    /// The PIN record (type `0F`, card-sim COS.md): BCD, `FF`-padded.
    fn write_pin(&self, tx: &mut Tx<'_>, pin: &str) -> Result<(), FixtureError> {
        let len = self.profile.pin.length;
        let bcd = Zeroizing::new(
            codec::encode_cn(pin, len).map_err(|source| FixtureError::Value { item: "PIN".into(), source })?,
        );
        let record = KeyRecord::Pin { max_tries: self.profile.pin.max_tries, bcd };
        self.send(tx, "set PIN", reference_cos::write_key(0x00, &record).map_err(card_core::Error::from))?;
        Ok(())
    }
}

/// A synthetic value for an item the fixture does not define: `an` "T" + tag, `cn` digits, binary zeros.
fn fill_value(format: &ItemFormat, len: usize, tag: u8) -> Result<Vec<u8>, codec::CodecError> {
    match format {
        ItemFormat::Simple(Format::An) => {
            let text: String = format!("T{tag:02X}").chars().take(len).collect();
            codec::encode(Format::An, &text, len)
        }
        ItemFormat::Simple(Format::Cn) => codec::encode(Format::Cn, &"1".repeat(len * 2), len),
        ItemFormat::Simple(_) => Ok(vec![0; len]),
        ItemFormat::Constructed(subs) => {
            let mut out = Vec::new();
            for s in subs {
                let v = fill_value(&s.format, s.len, s.tag)?;
                out.push(s.tag);
                out.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(&v);
            }
            Ok(out)
        }
    }
}

/// A card without a `name_ext` item (generation 1) holds only names its `name` item holds whole: a character
/// GBK lacks would be lost to the placeholder, so such a name is refused (as issuance refuses it).
fn check_name(h: &HolderData, profile: &Profile, g: Generation) -> Result<(), FixtureError> {
    if profile.field(g, ItemField::NameExt).is_some() {
        return Ok(());
    }
    let format = profile.field(g, ItemField::Name).and_then(|f| f.format()).unwrap_or(Format::An);
    if NameItems::new(&h.name, &h.name_ext, format).needs_ext() {
        return Err(spec(format!(
            "name {:?}: generation {g} cards have no name extension (4E) to hold it whole",
            if h.name_ext.is_empty() { &h.name } else { &h.name_ext }
        )));
    }
    Ok(())
}

/// Validates holder data the way issuance will (citizen id check digit, dates).
pub fn check_holder(h: &HolderData) -> Result<(), FixtureError> {
    CitizenId::parse(&h.ssn).map_err(|e| spec(format!("ssn {}: {e}", h.ssn)))?;
    Date::parse(&h.birth_date).map_err(|e| spec(format!("birth_date: {e}")))?;
    Ok(())
}
