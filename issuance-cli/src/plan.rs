//! The personalization plan: abstract steps built from the card profile (CARD-PROFILE §8), in the
//! profile's words. A plan holds no key and no PIN: keys are named by their store name and version,
//! the PIN as "initial PIN of holder line N", so `issuance plan --json` can be shown to anyone.
//!
//! Order: authenticate in the MF with the transport key; create SSSE, select it, write its MK, authenticate
//! with it, write its other keys and the PIN, create its EFs and the application DFs of the generation
//! (while SSSE's MK is authenticated: no second visit), authenticate with UKMF and write EF05, EF06 (each item
//! found by its profile field: tag, record, length and format are the profile's) and the photo; then for every
//! application DF: select it, write its MK, authenticate with it, write its other keys, create its EFs;
//! finally replace the MF's transport key by the card's MF MK and END PERSONALIZATION. The application
//! DFs' records are left for the services that own them.
//!
//! [`Plan::floor`] is what no personalization of the plan can do without: its writes alone.

use card_core::codec;
use card_core::profile::{Df, Ef, EfKind, Generation, ItemField, ItemFormat, Profile};
use card_core::reference_cos::EfSpec;
use serde::Serialize;

use crate::prepare::{CardKeys, Prepared};
use crate::{Error, HolderFault, HolderProblem, ProfileError};

/// A key as the plan names it: store name and version (never the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// Store name (`TRANSPORT`, `MK_MF`, `MK`, `UKMF`, `UK_DF01`, …).
    pub name: String,
    /// Version.
    pub version: u8,
}

/// An access condition with the key id resolved (CARD-PROFILE §3): card-core's reference COS type.
pub use card_core::reference_cos::Access as Ac;
/// The layout of a new EF: card-core's reference COS type.
pub use card_core::reference_cos::Layout;

/// Where a DF to select stands from the DF current before the SELECT ([`Step::Select`]). The plan knows it: it
/// creates SSSE in the MF and the application DFs in SSSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kin {
    /// A DF of the current DF (SSSE from the MF, the first application DF from SSSE).
    Child,
    /// A DF of the current DF's parent (an application DF from the one before it).
    Sibling,
}

/// One abstract personalization step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Select the MF.
    SelectMf,
    /// Select a DF this plan created. The COS adapter chooses how: the reference COS finds a child and a sibling
    /// of the current DF by file id and selects by FID; an adapter for a COS that does not would select by the AID.
    Select {
        /// DF name.
        df: String,
        /// File id.
        fid: u16,
        /// AID (hex).
        #[serde(with = "hex::serde")]
        aid: Vec<u8>,
        /// Where the DF stands from the DF current before this step.
        kin: Kin,
    },
    /// External authentication with a key of the current DF.
    Authenticate {
        /// DF name.
        df: String,
        /// Key id.
        kid: u8,
        /// Which key.
        key: KeyRef,
    },
    /// Create a DF in the current DF.
    CreateDf {
        /// DF name.
        df: String,
        /// File id.
        fid: u16,
        /// AID (hex).
        #[serde(with = "hex::serde")]
        aid: Vec<u8>,
    },
    /// Create an EF in the current DF.
    CreateEf {
        /// DF name.
        df: String,
        /// EF name.
        ef: String,
        /// File id.
        fid: u16,
        /// Short file id.
        sfi: u8,
        /// Read condition.
        read: Ac,
        /// Update condition.
        update: Ac,
        /// Layout.
        layout: Layout,
    },
    /// Write a key into the current DF.
    WriteKey {
        /// DF name.
        df: String,
        /// Key id.
        kid: u8,
        /// What it is for.
        usage: String,
        /// Try limit.
        max_tries: u8,
        /// Which key.
        key: KeyRef,
    },
    /// Set the PIN of the current DF.
    SetPin {
        /// DF name.
        df: String,
        /// Whose PIN (never the PIN).
        pin: String,
        /// Try limit.
        max_tries: u8,
        /// PIN length in BCD bytes.
        length: usize,
    },
    /// Write one TLV record of a linear EF.
    WriteRecord {
        /// DF name.
        df: String,
        /// EF name.
        ef: String,
        /// Short file id.
        sfi: u8,
        /// Record number.
        record: u8,
        /// Tag.
        tag: u8,
        /// Value (hex), full field length.
        #[serde(with = "hex::serde")]
        value: Vec<u8>,
    },
    /// Write a transparent EF.
    WriteBinary {
        /// DF name.
        df: String,
        /// EF name.
        ef: String,
        /// Short file id.
        sfi: u8,
        /// What is written.
        source: String,
        /// The bytes (not shown).
        #[serde(skip)]
        data: Vec<u8>,
        /// Length.
        len: usize,
    },
    /// END PERSONALIZATION (in the MF).
    EndPersonalization,
}

impl Step {
    /// A short label for journals and errors.
    pub fn label(&self) -> String {
        match self {
            Step::SelectMf => "select MF".into(),
            Step::Select { df, .. } => format!("select {df}"),
            Step::Authenticate { df, key, .. } => format!("authenticate {df} {} v{}", key.name, key.version),
            Step::CreateDf { df, .. } => format!("create {df}"),
            Step::CreateEf { df, ef, .. } => format!("create {df} {ef}"),
            Step::WriteKey { df, key, .. } => format!("write key {df} {} v{}", key.name, key.version),
            Step::SetPin { df, .. } => format!("set PIN {df}"),
            Step::WriteRecord { df, ef, record, tag, .. } => format!("write {df} {ef} #{record} tag {tag:02X}"),
            Step::WriteBinary { df, ef, len, .. } => format!("write {df} {ef} ({len} bytes)"),
            Step::EndPersonalization => "END PERSONALIZATION".into(),
        }
    }

    /// Whether the step begins a group journalled ahead together ([`crate::journal::ahead`]): each selection of
    /// the MF or a DF begins the group of that DF's steps.
    pub fn starts_group(&self) -> bool {
        matches!(self, Step::SelectMf | Step::Select { .. })
    }

    /// Whether the step changes the card.
    pub fn writes(&self) -> bool {
        !matches!(self, Step::SelectMf | Step::Select { .. } | Step::Authenticate { .. })
    }
}

/// A plan: the steps for one card.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Generation.
    pub generation: u8,
    /// Holder line.
    pub holder_line: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The steps in the groups they are journalled ahead in: a new group at each step that
    /// [starts one](Step::starts_group).
    pub fn groups(&self) -> Vec<&[Step]> {
        let mut groups = Vec::new();
        let mut start = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if step.starts_group() && i > start {
                groups.push(&self.steps[start..i]);
                start = i;
            }
        }
        if start < self.steps.len() {
            groups.push(&self.steps[start..]);
        }
        groups
    }
}

impl Plan {
    /// The keys that running this plan proves by itself: `(DF, kid)` of each EXTERNAL AUTHENTICATE step that comes
    /// after the WRITE KEY of that same key (same name and version) in that DF, with no later WRITE KEY of the
    /// kid there. The card answered `9000` to a cryptogram computed here from the key written, so it holds that
    /// key (a wrong or missing key answers `63Cx`/`6A88`, and the run stops); read-back verification after such a
    /// run need not authenticate with it again ([`crate::verify::verify`]). With the built-in profile: each DF's
    /// MK (the MF's included, authenticated for END PERSONALIZATION) and SSSE's UKMF.
    pub fn proven_keys(&self) -> std::collections::BTreeSet<(String, u8)> {
        let mut written = std::collections::BTreeMap::new();
        let mut proven = std::collections::BTreeSet::new();
        for s in &self.steps {
            match s {
                Step::WriteKey { df, kid, key, .. } => {
                    written.insert((df.clone(), *kid), key);
                    proven.remove(&(df.clone(), *kid));
                }
                Step::Authenticate { df, kid, key } if written.get(&(df.clone(), *kid)) == Some(&key) => {
                    proven.insert((df.clone(), *kid));
                }
                _ => {}
            }
        }
        proven
    }
}

/// The store name of a profile key (key-mgmt inventory): `MK_MF`, SSSE's bare names, `UK_DF01`.
pub fn store_name(df: &str, key: &str) -> String {
    if df == "SSSE" {
        key.to_owned()
    } else {
        format!("{key}_{df}")
    }
}

/// Builds the plan of `card` from `profile`; `keys` gives the key versions; `photo` the photo bytes.
pub fn build(profile: &Profile, card: &Prepared, keys: &CardKeys, photo: Option<&[u8]>) -> Result<Plan, Error> {
    let g = card.generation;
    let key = |df: &str, name: &str| -> Result<KeyRef, Error> {
        let n = store_name(df, name);
        let (_, version) = keys.require(&n, g)?;
        Ok(KeyRef { name: n, version })
    };
    let transport = KeyRef { name: "TRANSPORT".into(), version: keys.transport.1 };
    let ssse = profile.df("SSSE").ok_or_else(|| ProfileError::NoDf { df: "SSSE".into() })?;
    if !profile.dfs_for(g).any(|d| d.name == "SSSE") {
        return Err(ProfileError::NoDf { df: "SSSE".into() }.into());
    }
    let mut s = vec![Step::SelectMf, Step::Authenticate { df: "MF".into(), kid: 0, key: transport.clone() }];
    // SSSE first (created in the MF), then the application DFs (created in SSSE, see below)
    let dfs: Vec<&Df> = std::iter::once(ssse).chain(profile.dfs_for(g).filter(|d| d.name != "SSSE")).collect();
    for (i, df) in dfs.into_iter().enumerate() {
        let aid = df.aid.clone().ok_or_else(|| ProfileError::NoAid { df: df.name.clone() })?;
        if df.name == "SSSE" {
            s.push(Step::CreateDf { df: df.name.clone(), fid: df.fid, aid: aid.clone() });
        }
        // before it: the MF (SSSE, created there just now), SSSE (the first application DF, created in SSSE below)
        // or the application DF before it
        let kin = if i <= 1 { Kin::Child } else { Kin::Sibling };
        s.push(Step::Select { df: df.name.clone(), fid: df.fid, aid, kin });
        let mk = df.key("MK").ok_or_else(|| ProfileError::NoKey { df: df.name.clone(), key: "MK".into() })?;
        let write_key = |k: &card_core::profile::KeySpec| -> Result<Step, Error> {
            Ok(Step::WriteKey {
                df: df.name.clone(),
                kid: k.kid,
                usage: k.usage.name().into(),
                max_tries: k.max_tries,
                key: key(&df.name, &k.name)?,
            })
        };
        s.push(write_key(mk)?);
        s.push(Step::Authenticate { df: df.name.clone(), kid: mk.kid, key: key(&df.name, "MK")? });
        for k in df.keys_for(g).filter(|k| k.name != "MK") {
            s.push(write_key(k)?);
        }
        if df.pin {
            s.push(Step::SetPin {
                df: df.name.clone(),
                pin: format!("initial PIN of holder line {}", card.holder.line),
                max_tries: profile.pin.max_tries,
                length: profile.pin.length,
            });
        }
        for ef in df.efs_for(g) {
            s.push(create_ef(df, ef, g)?);
        }
        if df.name == "SSSE" {
            // The application DFs are created here, while SSSE is current and its MK authenticated: creating each
            // one later would cost a SELECT of SSSE and a GET CHALLENGE + EXTERNAL AUTHENTICATE with SSSE's MK
            // per DF (selecting a DF clears the security state), three APDUs that change nothing on the card.
            for app in profile.dfs_for(g).filter(|d| d.name != "SSSE") {
                let app_aid = app.aid.clone().ok_or_else(|| ProfileError::NoAid { df: app.name.clone() })?;
                s.push(Step::CreateDf { df: app.name.clone(), fid: app.fid, aid: app_aid });
            }
            fill_ssse(&mut s, df, card, photo, &key)?;
        }
    }
    let mf_mk = profile.mf.key("MK").ok_or_else(|| ProfileError::NoKey { df: "MF".into(), key: "MK".into() })?;
    s.push(Step::SelectMf);
    s.push(Step::Authenticate { df: "MF".into(), kid: 0, key: transport });
    s.push(Step::WriteKey {
        df: "MF".into(),
        kid: mf_mk.kid,
        usage: mf_mk.usage.name().into(),
        max_tries: mf_mk.max_tries,
        key: key("MF", "MK")?,
    });
    s.push(Step::Authenticate { df: "MF".into(), kid: mf_mk.kid, key: key("MF", "MK")? });
    s.push(Step::EndPersonalization);
    Ok(Plan { generation: g.number(), holder_line: card.holder.line, steps: s })
}

fn create_ef(df: &Df, ef: &Ef, g: Generation) -> Result<Step, Error> {
    let spec = EfSpec::from_profile(df, ef, g).map_err(|source| ProfileError::Ef {
        df: df.name.clone(),
        ef: ef.name.clone(),
        source,
    })?;
    Ok(Step::CreateEf {
        df: df.name.clone(),
        ef: ef.name.clone(),
        fid: ef.fid,
        sfi: spec.sfi,
        read: spec.read,
        update: spec.update,
        layout: spec.layout,
    })
}

/// The value of a basic-information field (CARD-PROFILE §2.1) as text of its format; the profile says which
/// item (tag, record, length, format) holds it. The name items are the holder's, as validation made them by
/// card-core's rule ([`card_core::card::NameItems`]).
fn field_value(field: ItemField, c: &Prepared) -> String {
    let h = &c.holder;
    match field {
        ItemField::CardId => codec::hex_upper(&c.card_id),
        ItemField::CardType => c.card_type.clone(),
        ItemField::SpecVersion => c.generation.spec_version().to_owned(),
        ItemField::InitOrg => c.organisation.clone(),
        ItemField::IssueDate => c.issue_date.clone(),
        ItemField::ExpiryDate => c.expiry_date.clone(),
        ItemField::CardNumber => c.card_number.clone(),
        ItemField::Ssn => h.ssn.clone(),
        ItemField::Name => h.name.clone(),
        ItemField::NameExt => h.name_ext.clone(),
        ItemField::Sex => h.sex.clone(),
        ItemField::Ethnicity => h.ethnicity.clone(),
        ItemField::Birthplace => h.birthplace.clone(),
        ItemField::BirthDate => h.birth_date.clone(),
    }
}

fn fill_ssse(
    s: &mut Vec<Step>,
    df: &Df,
    card: &Prepared,
    photo: Option<&[u8]>,
    key: &dyn Fn(&str, &str) -> Result<KeyRef, Error>,
) -> Result<(), Error> {
    let g = card.generation;
    let ukmf = df.key("UKMF").ok_or_else(|| ProfileError::NoKey { df: df.name.clone(), key: "UKMF".into() })?;
    s.push(Step::Authenticate { df: df.name.clone(), kid: ukmf.kid, key: key("SSSE", "UKMF")? });
    // every item of SSSE's linear EFs (EF05, EF06) that names a field, in record order
    for ef in df.efs_for(g).filter(|e| matches!(e.kind, EfKind::Linear { .. })) {
        for (n, item) in ef.items(g).enumerate() {
            let (Some(field), ItemFormat::Simple(f)) = (item.field, &item.format) else { continue };
            let value = codec::encode(*f, &field_value(field, card), item.len).map_err(|source| HolderFault {
                line: card.holder.line,
                field: field.as_str(),
                problem: HolderProblem::DoesNotFit {
                    ef: ef.name.clone(),
                    tag: item.tag,
                    format: *f,
                    len: item.len,
                    source,
                },
            })?;
            s.push(Step::WriteRecord {
                df: df.name.clone(),
                ef: ef.name.clone(),
                sfi: ef.sfi,
                record: u8::try_from(n + 1)
                    .map_err(|_| ProfileError::RecordNumber { ef: ef.name.clone(), record: n + 1 })?,
                tag: item.tag,
                value,
            });
        }
    }
    if let (Some(data), Some(ef)) = (photo, df.ef("EF08").filter(|e| e.generations.contains(g))) {
        s.push(Step::WriteBinary {
            df: df.name.clone(),
            ef: "EF08".into(),
            sfi: ef.sfi,
            source: format!("photo of holder line {}", card.holder.line),
            len: data.len(),
            data: data.to_vec(),
        });
    }
    Ok(())
}
