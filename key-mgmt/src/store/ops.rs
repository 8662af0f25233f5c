//! Operations on the unlocked store: create keys (import, generate, rotate, derive, import a
//! block), change their state, export them, and build key sets.

use card_core::crypto::{adjust_parity, region_factor, AesKey, Algorithm, CardKey, Kcv};
use card_core::profile::Profile;
use serde_json::json;
use zeroize::Zeroizing;

use super::keys::{card_alg, header_for};
use super::KeyStore;
use crate::audit;
use crate::components::{self, Secret};
use crate::derive::{KeyEntry, RegionKeySet};
use crate::error::{Error, Result};
use crate::inventory::{kcv_method, kcv_method_name, key_def, key_defs, KeyRecord, KeyState, Level, Role};
use crate::tr31::{self, Exportability};

pub use crate::derive::VersionSelect;

/// What [`KeyStore::generate_profile_keys_explained`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProfileKeys {
    /// The keys generated.
    pub generated: Vec<KeyRecord>,
    /// The profile keys left out, each with the reason.
    pub skipped: Vec<Skipped>,
}

/// A profile key that `generate-profile-keys` left out.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// Its store name.
    pub name: String,
    /// Why it was not generated.
    pub reason: String,
    /// The versions the store holds of it (issuer level).
    pub held: Vec<KeyRecord>,
}

/// A key just created, with the KCVs of its components (import) or the components themselves
/// (generate with components, for the custodians).
pub struct Created {
    /// Its metadata.
    pub record: KeyRecord,
    /// KCV of each component, in order (same method as the key's KCV).
    pub component_kcvs: Vec<String>,
    /// The components of a generated key (empty unless asked for); zeroized on drop.
    pub components: Vec<Secret>,
}

fn random_key(alg: Algorithm) -> CardKey {
    let mut b = Zeroizing::new([0u8; 16]);
    loop {
        rand::fill(&mut b[..]);
        if alg == Algorithm::Tdes {
            adjust_parity(&mut b[..]);
        }
        if !components::is_trivial(&b[..]) && b[..8] != b[8..] {
            return CardKey::from_array(alg, *b);
        }
    }
}

fn check_key_shape(alg: Algorithm, bytes: &[u8]) -> Result<()> {
    if alg == Algorithm::Tdes && bytes.get(..8) == bytes.get(8..) {
        return Err(Error::InvalidInput("a 3DES key with equal halves is single DES: refused".into()));
    }
    Ok(())
}

fn kcv_hex(key: &CardKey) -> String {
    key.kcv(kcv_method(key.algorithm())).to_string()
}

impl KeyStore {
    fn new_record(
        &self,
        name: &str,
        version: u8,
        region: &str,
        key: &CardKey,
        parent: Option<String>,
        ceremony: &str,
    ) -> KeyRecord {
        let now = audit::now();
        let alg = key.algorithm();
        KeyRecord {
            name: name.to_string(),
            version,
            level: if region.is_empty() { Level::Issuer } else { Level::for_region(region) },
            region: region.to_string(),
            algorithm: alg.name().to_string(),
            state: KeyState::PreActive,
            kcv: kcv_hex(key),
            kcv_method: kcv_method_name(kcv_method(alg)).to_string(),
            created: now.clone(),
            updated: now,
            parent,
            ceremony: Some(ceremony.to_string()),
        }
    }

    /// Stores a new key version in one transaction with its audit event.
    fn insert_new(&self, rec: &KeyRecord, key: &CardKey, event: &str, mut detail: serde_json::Value) -> Result<()> {
        key_def(Profile::builtin(), &rec.name)?;
        if self.record(&rec.name, rec.version, &rec.region).is_ok() {
            return Err(Error::KeyExists { name: rec.name.clone(), version: rec.version, region: rec.region.clone() });
        }
        let tx = self.conn.unchecked_transaction()?;
        self.write_row(&tx, rec, Some(key), false)?;
        detail["name"] = json!(rec.name);
        detail["version"] = json!(rec.version);
        detail["region"] = json!(rec.region);
        detail["algorithm"] = json!(rec.algorithm);
        detail["kcv"] = json!(rec.kcv);
        let head = self.log_ok(&tx, event, &detail, true)?;
        tx.commit()?;
        self.witness(head)
    }

    /// Imports a key from 2 or 3 XOR components (16 bytes each); 3DES results are parity-adjusted.
    pub fn import_components(
        &self,
        name: &str,
        version: u8,
        alg: Algorithm,
        comps: &[Secret],
        activate: bool,
    ) -> Result<Created> {
        self.keys()?;
        key_def(Profile::builtin(), name)?;
        let mut bytes = components::combine(comps, 16, 2, 3, "2 or 3 are required")?;
        if alg == Algorithm::Tdes {
            adjust_parity(&mut bytes[..]);
        }
        check_key_shape(alg, &bytes)?;
        let key = CardKey::new(alg, &bytes)?;
        let component_kcvs =
            comps.iter().map(|c| CardKey::new(alg, c).map(|k| kcv_hex(&k))).collect::<Result<Vec<_>, _>>()?;
        let mut record = self.new_record(name, version, "", &key, None, &format!("import:{}-components", comps.len()));
        self.insert_new(&record, &key, "import", json!({ "component_kcvs": component_kcvs }))?;
        if activate {
            record = self.set_state(name, version, "", KeyState::Active)?;
        }
        Ok(Created { record, component_kcvs, components: Vec::new() })
    }

    /// Generates a random key; with `components` = Some(2 | 3) also returns it split into components.
    pub fn generate(
        &self,
        name: &str,
        version: u8,
        alg: Algorithm,
        components: Option<usize>,
        activate: bool,
    ) -> Result<Created> {
        self.keys()?;
        key_def(Profile::builtin(), name)?;
        let key = random_key(alg);
        let comps = match components {
            Some(n) => components::split(key.expose_secret(), n)?,
            None => Vec::new(),
        };
        let component_kcvs =
            comps.iter().map(|c| CardKey::new(alg, c).map(|k| kcv_hex(&k))).collect::<Result<Vec<_>, _>>()?;
        let mut record = self.new_record(name, version, "", &key, None, "generate");
        self.insert_new(
            &record,
            &key,
            "generate",
            json!({ "components": comps.len(), "component_kcvs": component_kcvs }),
        )?;
        if activate {
            record = self.set_state(name, version, "", KeyState::Active)?;
        }
        Ok(Created { record, component_kcvs, components: comps })
    }

    /// Generates every profile card key that the store holds in no version of `alg` yet, at `version`
    /// (the generated records; [`KeyStore::generate_profile_keys_explained`] also says why a name was left out).
    pub fn generate_profile_keys(&self, alg: Algorithm, version: u8, activate: bool) -> Result<Vec<KeyRecord>> {
        Ok(self.generate_profile_keys_explained(alg, version, activate)?.generated)
    }

    /// Generates every profile card key that the store holds in no version of `alg` yet, at `version`.
    ///
    /// A key name may hold versions of different algorithms (generation 1–2 cards use the highest active
    /// 3DES version, generation 3 cards the highest active SM4 version), so a 3DES set does not stop an SM4
    /// set from being generated. A name is left out, with the reason, when it already holds a version of
    /// `alg` that is not destroyed (a new version of it comes from [`KeyStore::rotate`]) or when `version` is
    /// taken by another of its versions.
    pub fn generate_profile_keys_explained(&self, alg: Algorithm, version: u8, activate: bool) -> Result<ProfileKeys> {
        self.keys()?;
        let all = self.list()?;
        let mut out = ProfileKeys::default();
        for def in key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
            let held: Vec<KeyRecord> =
                all.iter().filter(|r| r.name == def.name && r.region.is_empty()).cloned().collect();
            let same_alg: Vec<&KeyRecord> =
                held.iter().filter(|r| r.alg().ok() == Some(alg) && r.state != KeyState::Destroyed).collect();
            let reason = if let Some(r) = same_alg.iter().max_by_key(|r| r.version) {
                let cli_alg = match alg {
                    Algorithm::Tdes => "3des",
                    Algorithm::Sm4 => "sm4",
                    Algorithm::Aes128 => "aes",
                };
                Some(format!(
                    "already holds {} v{} ({}); a new version of it comes from `keymgmt rotate --name {} --alg {cli_alg}`",
                    r.algorithm, r.version, r.state, def.name
                ))
            } else {
                held.iter().find(|r| r.version == version).map(|r| {
                    format!(
                        "version {version} is taken by its {} v{} ({}): choose another --version",
                        r.algorithm, r.version, r.state
                    )
                })
            };
            match reason {
                Some(reason) => out.skipped.push(Skipped { name: def.name, reason, held }),
                None => out.generated.push(self.generate(&def.name, version, alg, None, activate)?.record),
            }
        }
        Ok(out)
    }

    /// Moves a key version to `to` if the transition is legal (pre-active → active → retired →
    /// destroyed, pre-active → destroyed); `destroyed` overwrites the key block.
    pub fn set_state(&self, name: &str, version: u8, region: &str, to: KeyState) -> Result<KeyRecord> {
        let mut rec = self.record(name, version, region)?;
        if !rec.state.can_become(to) {
            return Err(Error::IllegalTransition { name: name.to_string(), version, from: rec.state, to });
        }
        let key = if to == KeyState::Destroyed { None } else { Some(self.load_key(name, version, region)?.1) };
        let from = rec.state;
        rec.state = to;
        rec.updated = audit::now();
        let tx = self.conn.unchecked_transaction()?;
        self.write_row(&tx, &rec, key.as_ref(), true)?;
        let event = match to {
            KeyState::Active => "activate",
            KeyState::Retired => "retire",
            KeyState::Destroyed => "destroy",
            KeyState::PreActive => "state",
        };
        let head = self.log_ok(
            &tx,
            event,
            &json!({"name": name, "version": version, "region": region, "from": from.as_str(), "to": to.as_str()}),
            true,
        )?;
        tx.commit()?;
        self.witness(head)?;
        Ok(rec)
    }

    /// The highest version of `name` at `region` in state `state`.
    fn highest(&self, name: &str, region: &str, state: Option<KeyState>) -> Result<Option<KeyRecord>> {
        Ok(self
            .versions(name, region)?
            .into_iter()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .max_by_key(|r| r.version))
    }

    /// A new version of an issuer key: random, same algorithm, created pre-active then activated.
    /// The previous versions stay active until retired.
    pub fn rotate(&self, name: &str) -> Result<KeyRecord> {
        self.rotate_alg(name, None)
    }

    /// [`KeyStore::rotate`] of the versions of `name` in algorithm `alg` (its highest version that is not
    /// destroyed): for a name that holds 3DES versions (generation 1–2 cards) and SM4 versions (generation
    /// 3), `alg` says which to rotate. Without `alg`, as [`KeyStore::rotate`]: the algorithm of the name's
    /// highest version. The new version follows the highest version of the name, whatever its algorithm.
    pub fn rotate_alg(&self, name: &str, alg: Option<Algorithm>) -> Result<KeyRecord> {
        key_def(Profile::builtin(), name)?;
        let not_found = || Error::KeyNotFound { name: name.to_string(), version: 0, region: String::new() };
        let all = self.versions(name, "")?;
        let highest = all.iter().max_by_key(|r| r.version).ok_or_else(not_found)?;
        let last = match alg {
            Some(a) => all
                .iter()
                .filter(|r| r.state != KeyState::Destroyed && r.alg().ok() == Some(a))
                .max_by_key(|r| r.version)
                .ok_or_else(|| Error::InvalidInput(format!("{name} has no {} version to rotate", a.name())))?,
            None => highest,
        };
        let top = highest.version;
        let version =
            top.checked_add(1).ok_or_else(|| Error::InvalidInput(format!("{name} has reached version 255")))?;
        let key = random_key(last.alg()?);
        let rec = self.new_record(name, version, "", &key, None, &format!("rotate:from-v{}", last.version));
        self.insert_new(&rec, &key, "rotate", json!({ "previous": last.version }))?;
        self.set_state(name, version, "", KeyState::Active)
    }

    /// Stores the region-level key `Div(issuer key, region factor)` (CARD-PROFILE §5.2); it takes
    /// the issuer key's state (which must be pre-active or active).
    pub fn derive_region(&self, name: &str, version: u8, region: &str) -> Result<KeyRecord> {
        let factor = region_factor(region)?;
        let (parent, key) = self.load_key(name, version, "")?;
        if !matches!(parent.state, KeyState::PreActive | KeyState::Active) {
            return Err(Error::WrongState {
                name: name.to_string(),
                version,
                state: parent.state,
                what: "derive from it",
            });
        }
        let child = key.div(&factor);
        let mut rec =
            self.new_record(name, version, region, &child, Some(format!("{name} v{version}")), "derive-region");
        rec.state = parent.state;
        self.insert_new(&rec, &child, "derive-region", json!({ "parent_kcv": parent.kcv }))?;
        Ok(rec)
    }

    /// Loads the region-level key of `name` version `version`: the stored one, else derived
    /// from the issuer key.
    fn region_key(&self, name: &str, version: u8, region: &str) -> Result<CardKey> {
        let factor = region_factor(region)?;
        match self.load_key(name, version, region) {
            Ok((_, k)) => Ok(k),
            Err(Error::KeyNotFound { .. }) => Ok(self.load_key(name, version, "")?.1.div(&factor)),
            Err(e) => Err(e),
        }
    }

    /// KCV of the card key `Div(Div(K, region), card factor)`; never the key.
    pub fn derive_kcv(&self, name: &str, version: u8, region: &str, card_factor: &[u8]) -> Result<Kcv> {
        let f = card_core::crypto::card_factor(card_factor)?;
        let card = self.region_key(name, version, region)?.div(&f);
        let kcv = card.kcv(kcv_method(card.algorithm()));
        self.audit_ok("derive-kcv", json!({"name": name, "version": version, "region": region, "card_factor": hex::encode_upper(f), "kcv": kcv.to_string()}))?;
        Ok(kcv)
    }

    /// The version of `name` that `select` picks at `region` (falling back to the issuer level).
    fn selected_version(&self, name: &str, region: &str, select: &VersionSelect) -> Result<Option<u8>> {
        if let VersionSelect::Exact(m) = select {
            if let Some(v) = m.get(name) {
                return Ok(Some(*v));
            }
        }
        let issuer = self.highest(name, "", Some(KeyState::Active))?;
        let local = self.highest(name, region, Some(KeyState::Active))?;
        Ok(issuer.into_iter().chain(local).map(|r| r.version).max())
    }

    /// The region-level keys of every profile card key for `region`, at the versions `select` picks.
    pub fn region_keys_with(&self, region: &str, select: &VersionSelect) -> Result<RegionKeySet> {
        let mut set = RegionKeySet::default();
        for def in key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
            match self.selected_version(&def.name, region, select)? {
                Some(v) => {
                    let key = self.region_key(&def.name, v, region)?;
                    set.keys.insert(def.name, KeyEntry { key, version: v });
                }
                None => set.missing.push(def.name),
            }
        }
        Ok(set)
    }

    /// The region-level keys (active versions) for a local security module.
    pub fn region_keys(&self, region: &str) -> Result<RegionKeySet> {
        self.region_keys_with(region, &VersionSelect::Active)
    }

    /// The card keys of one card: `Div(Div(K, region factor), card factor)` for every profile key.
    pub fn card_keys(
        &self,
        region: &str,
        card_factor: &[u8],
        select: &VersionSelect,
    ) -> Result<crate::derive::CardKeySet> {
        self.region_keys_with(region, select)?.card_keys(card_factor)
    }

    fn kek(&self, kek: &str, kek_version: Option<u8>) -> Result<AesKey> {
        let def = key_def(Profile::builtin(), kek)?;
        if def.role != Role::Kek {
            return Err(Error::InvalidInput(format!("{kek} is not a key-encryption key (use KEK)")));
        }
        let v = match kek_version {
            Some(v) => v,
            None => self
                .highest(kek, "", Some(KeyState::Active))?
                .map(|r| r.version)
                .ok_or_else(|| Error::KeyNotFound { name: kek.to_string(), version: 0, region: String::new() })?,
        };
        let (rec, key) = self.load_key(kek, v, "")?;
        if rec.state != KeyState::Active {
            return Err(Error::WrongState {
                name: kek.to_string(),
                version: v,
                state: rec.state,
                what: "only an active KEK wraps or unwraps",
            });
        }
        if key.algorithm() != Algorithm::Aes128 {
            return Err(Error::InvalidInput("a version D key block needs an AES KEK".into()));
        }
        Ok(AesKey::new(key.expose_secret())?)
    }

    /// Exports a key (issuer level, or `region`) as a TR-31 version D block under an AES KEK.
    pub fn export(&self, name: &str, version: u8, region: &str, kek: &str, kek_version: Option<u8>) -> Result<String> {
        let (rec, key) = self.load_key(name, version, region)?;
        if rec.state == KeyState::Destroyed {
            return Err(Error::WrongState { name: name.into(), version, state: rec.state, what: "export" });
        }
        let header = header_for(name, key.algorithm(), version)?;
        if header.exportability != Exportability::E {
            return Err(Error::InvalidInput(format!("{name} is not exportable")));
        }
        let block = tr31::wrap(&self.kek(kek, kek_version)?, &header, key.expose_secret(), None)?;
        self.audit_ok(
            "export",
            json!({"name": name, "version": version, "region": region, "kek": kek, "kcv": rec.kcv}),
        )?;
        Ok(block)
    }

    /// Imports a TR-31 version D block under an AES KEK as key `name` (pre-active unless
    /// `activate`); the version comes from the block header, which must carry `name`'s usage.
    pub fn import_block(
        &self,
        name: &str,
        block: &str,
        kek: &str,
        kek_version: Option<u8>,
        activate: bool,
    ) -> Result<KeyRecord> {
        let (header, bytes) = tr31::unwrap(&self.kek(kek, kek_version)?, block.trim())?;
        let alg = card_alg(header.algorithm)?;
        let version = header
            .key_version_number()
            .ok_or_else(|| Error::InvalidInput("the block's key version is not 2 hex digits".into()))?;
        let expected = header_for(name, alg, version)?;
        if (header.usage, header.mode) != (expected.usage, expected.mode) {
            return Err(Error::InvalidInput(format!(
                "the block is {}/{} but {name} is {}/{} (usage/mode of use)",
                header.usage, header.mode, expected.usage, expected.mode
            )));
        }
        let key = CardKey::new(alg, &bytes)?;
        check_key_shape(alg, &bytes)?;
        let rec = self.new_record(name, version, "", &key, None, &format!("import-block:{kek}"));
        self.insert_new(&rec, &key, "import-block", json!({ "kek": kek }))?;
        if activate {
            return self.set_state(name, version, "", KeyState::Active);
        }
        Ok(rec)
    }
}
