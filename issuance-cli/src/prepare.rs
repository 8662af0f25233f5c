//! Data preparation (CARD-PROFILE §2.1, §5.2): card identifier, card number, dates, card type, spec
//! version, and the card's keys from a [`KeySource`] for the card factor read from the ATR.

use std::collections::BTreeMap;
use std::sync::Mutex;

use card_core::codec::{CardNumber, Date, RegionCode};
use card_core::crypto::{Algorithm, CardKey};
use card_core::profile::Generation;
use key_mgmt::{KeyStore, VersionSelect};

use crate::holders::Holder;
use crate::{Defect, Error, HolderFault, HolderProblem, InputError, KeyError};

/// RID of the MOHRSS, bytes 3–7 of the card identifier.
pub const RID: [u8; 5] = [0xD1, 0x56, 0x00, 0x00, 0x05];

/// The card algorithm of a generation (CARD-PROFILE §1): card-core's.
pub use card_core::security::algorithm_of;

/// Issuance settings of a batch.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Card generation.
    pub generation: Generation,
    /// Card type (EF05 tag 02): `1` standard, `2` replacement, `3` temporary [P].
    pub card_type: String,
    /// Validity in years.
    pub validity_years: u16,
    /// Issue date.
    pub issue_date: Date,
    /// Initialising organisation sequence (6 digits after the region code, EF05 tag 04).
    pub organisation: String,
}

impl Settings {
    /// Generation `g`, standard cards, 10 years from today, organisation `000001`.
    pub fn new(g: Generation) -> Settings {
        Settings {
            generation: g,
            card_type: "1".into(),
            validity_years: 10,
            issue_date: Date::today(),
            organisation: "000001".into(),
        }
    }
}

/// Everything written to one card except keys and PIN.
#[derive(Debug)]
pub struct Prepared {
    /// The holder.
    pub holder: Holder,
    /// Generation.
    pub generation: Generation,
    /// Issuing region (the holder's).
    pub region: String,
    /// Per-region sequence number of the card.
    pub seq: u64,
    /// EF05 tag 01: region BCD ‖ `D156000005` ‖ seq (8 bytes, big-endian).
    pub card_id: [u8; 16],
    /// EF05 tag 07.
    pub card_number: String,
    /// EF05 tag 02.
    pub card_type: String,
    /// EF05 tag 04 (12 digits).
    pub organisation: String,
    /// EF05 tag 05.
    pub issue_date: String,
    /// EF05 tag 06.
    pub expiry_date: String,
}

/// Card identifier, card number (8 digits of the per-region sequence + MOD 37-2 check) and dates.
pub fn prepare(holder: &Holder, seq: u64, s: &Settings) -> Result<Prepared, Error> {
    let region = RegionCode::parse(&holder.region).map_err(|e| HolderFault {
        line: holder.line,
        field: "region_code",
        problem: HolderProblem::Region(e),
    })?;
    let mut card_id = [0u8; 16];
    card_id[..3].copy_from_slice(&region.to_bcd());
    card_id[3..8].copy_from_slice(&RID);
    card_id[8..].copy_from_slice(&seq.to_be_bytes());
    if seq >= 100_000_000 {
        return Err(InputError::RegionExhausted { region: holder.region.clone() }.into());
    }
    let card_number =
        CardNumber::with_check(&format!("{seq:08}")).map_err(|source| Defect::CardNumber { seq, source })?;
    let d = s.issue_date;
    let year = d.year().saturating_add(s.validity_years);
    let expiry = Date::new(year, d.month(), d.day())
        .or_else(|_| Date::new(year, d.month(), 28))
        .map_err(|source| InputError::Expiry { issue_date: d.to_string(), validity_years: s.validity_years, source })?;
    Ok(Prepared {
        holder: holder.without_pin(),
        generation: s.generation,
        region: region.as_str().to_owned(),
        seq,
        card_id,
        card_number: card_number.as_str().to_owned(),
        card_type: s.card_type.clone(),
        organisation: format!("{}{}", region.as_str(), s.organisation),
        issue_date: d.to_string(),
        expiry_date: expiry.to_string(),
    })
}

/// The keys of one card: store name → (key, version), and the transport key.
pub struct CardKeys {
    keys: BTreeMap<String, (CardKey, u8)>,
    /// The blank card's transport key and its version.
    pub transport: (CardKey, u8),
    /// What the key source holds of the profile keys it could not give, to say what to do.
    absent: BTreeMap<String, Absent>,
}

/// What a key source holds of a key it could not give at the card's algorithm (no secret in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Absent {
    /// The versions held of the key: algorithm, version, state (`active`, `pre-active`, …).
    pub held: Vec<(Algorithm, u8, String)>,
    /// The version a new set of profile keys would take: one above every version held of any key.
    pub next_version: u8,
    /// The key store's file, for the command to run.
    pub store: Option<String>,
}

impl CardKeys {
    /// A set from parts.
    pub fn new(keys: BTreeMap<String, (CardKey, u8)>, transport: (CardKey, u8)) -> CardKeys {
        CardKeys { keys, transport, absent: BTreeMap::new() }
    }

    /// The set, with what the key source holds of the keys it lacks (see [`CardKeys::require`]).
    pub fn with_absent(mut self, absent: BTreeMap<String, Absent>) -> CardKeys {
        self.absent = absent;
        self
    }

    /// The key named `name` for a card of generation `g`, or an error that says what the key store holds of
    /// it and what to do: generate the generation's algorithm's keys, activate them, or issue cards of the
    /// generation whose algorithm the store has.
    pub fn require(&self, name: &str, g: Generation) -> Result<(&CardKey, u8), Error> {
        self.get(name).ok_or_else(|| self.missing(name, g))
    }

    /// Checks that the set has every key that cards of generation `g` of `profile` need ([`CardKeys::require`]).
    pub fn check(&self, profile: &card_core::profile::Profile, g: Generation) -> Result<(), Error> {
        for df in std::iter::once(&profile.mf).chain(profile.dfs_for(g)) {
            for k in df.keys_for(g) {
                self.require(&crate::plan::store_name(&df.name, &k.name), g)?;
            }
        }
        Ok(())
    }

    fn missing(&self, name: &str, g: Generation) -> Error {
        let absent = self.absent.get(name).cloned().unwrap_or_default();
        KeyError::Missing { name: name.to_owned(), generation: g, absent }.into()
    }

    /// The key named `name` (`TRANSPORT` or a store name) with its version.
    pub fn get(&self, name: &str) -> Option<(&CardKey, u8)> {
        if name == "TRANSPORT" {
            return Some((&self.transport.0, self.transport.1));
        }
        self.keys.get(name).map(|(k, v)| (k, *v))
    }

    /// The version of each key (for the journal).
    pub fn versions(&self) -> BTreeMap<String, u8> {
        let mut m: BTreeMap<String, u8> = self.keys.iter().map(|(n, (_, v))| (n.clone(), *v)).collect();
        m.insert("TRANSPORT".into(), self.transport.1);
        m
    }
}

/// Where card keys come from: a key store, a security module.
pub trait KeySource: Send + Sync {
    /// The card keys for `region` and `card_factor` in `alg`, at the active versions, and the
    /// transport key (re-typed to `alg`: the chip maker's key serves the card's algorithm).
    fn card_keys(&self, region: &str, card_factor: &[u8; 8], alg: Algorithm) -> Result<CardKeys, Error>;

    /// As [`KeySource::card_keys`], but the keys named in `versions` at those versions (the keys a card
    /// holds now, for rekeying it).
    fn card_keys_at(
        &self,
        region: &str,
        card_factor: &[u8; 8],
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<CardKeys, Error> {
        let _ = (region, card_factor, alg, versions);
        Err(KeyError::NoVersions.into())
    }

    /// The region keys of `region` for cards of algorithm `alg` as a local security module (desk services:
    /// PIN unblock and reload, application block): the keys named in `versions` at those versions (what a
    /// card holds), the others at their highest active version.
    fn region_module_at(
        &self,
        region: &str,
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<card_core::security::LocalKeys, Error> {
        let _ = (region, alg, versions);
        Err(KeyError::NoRegionKeys.into())
    }
}

/// [`KeySource`] over a key-mgmt store (unlocked).
pub struct StoreKeySource {
    store: Mutex<KeyStore>,
}

impl StoreKeySource {
    /// Wraps an unlocked store.
    pub fn new(store: KeyStore) -> Self {
        StoreKeySource { store: Mutex::new(store) }
    }

    /// The region keys of `region` for cards of algorithm `alg` (the highest active version of each key with
    /// that algorithm), as a local security module for desk services (PIN unblock and reload).
    pub fn region_module(&self, region: &str, alg: Algorithm) -> Result<card_core::security::LocalKeys, Error> {
        self.region_module_at(region, alg, &BTreeMap::new())
    }

    fn region_module_with(
        &self,
        region: &str,
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<card_core::security::LocalKeys, Error> {
        let store = self.store.lock().map_err(|_| Defect::KeyStoreLock)?;
        let mut exact = active_versions(&store, alg)?;
        exact.extend(versions.iter().map(|(n, v)| (n.clone(), *v)));
        let set = store.region_keys_with(region, &VersionSelect::Exact(exact))?;
        let region = RegionCode::parse(region).map_err(card_core::Error::from)?;
        let mut local = card_core::security::LocalKeys::new(region);
        for (name, entry) in set.iter() {
            local.insert(name, entry.key.try_clone());
        }
        Ok(local)
    }
}

/// The highest active issuer-level version of each key whose algorithm is `alg`.
fn active_versions(store: &KeyStore, alg: Algorithm) -> Result<BTreeMap<String, u8>, Error> {
    let mut exact = BTreeMap::new();
    for rec in store.list()? {
        if rec.region.is_empty()
            && rec.state == key_mgmt::inventory::KeyState::Active
            && rec.alg().ok() == Some(alg)
            && exact.get(&rec.name).is_none_or(|v| *v < rec.version)
        {
            exact.insert(rec.name.clone(), rec.version);
        }
    }
    Ok(exact)
}

/// What the store holds (issuer level, not destroyed) of each profile card key that `keys` lacks.
fn absent_keys(store: &KeyStore, keys: &BTreeMap<String, (CardKey, u8)>) -> Result<BTreeMap<String, Absent>, Error> {
    use key_mgmt::inventory::KeyState;
    let all: Vec<_> = store.list()?.into_iter().filter(|r| r.region.is_empty()).collect();
    let defs: Vec<_> = key_mgmt::inventory::key_defs(card_core::profile::Profile::builtin())
        .into_iter()
        .filter(|d| d.is_card_key())
        .collect();
    let top = all.iter().filter(|r| defs.iter().any(|d| d.name == r.name)).map(|r| r.version).max().unwrap_or(0);
    let store_path = store.path().display().to_string();
    let mut out = BTreeMap::new();
    for d in defs.into_iter().filter(|d| !keys.contains_key(&d.name)) {
        let held = all
            .iter()
            .filter(|r| r.name == d.name && r.state != KeyState::Destroyed)
            .filter_map(|r| r.alg().ok().map(|a| (a, r.version, r.state.as_str().to_owned())))
            .collect();
        out.insert(d.name, Absent { held, next_version: top.saturating_add(1), store: Some(store_path.clone()) });
    }
    Ok(out)
}

impl KeySource for StoreKeySource {
    fn region_module_at(
        &self,
        region: &str,
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<card_core::security::LocalKeys, Error> {
        self.region_module_with(region, alg, versions)
    }

    fn card_keys(&self, region: &str, card_factor: &[u8; 8], alg: Algorithm) -> Result<CardKeys, Error> {
        self.card_keys_at(region, card_factor, alg, &BTreeMap::new())
    }

    fn card_keys_at(
        &self,
        region: &str,
        card_factor: &[u8; 8],
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<CardKeys, Error> {
        let store = self.store.lock().map_err(|_| Defect::KeyStoreLock)?;
        // the highest active version of each key whose algorithm is the card's, but those given
        let mut exact = active_versions(&store, alg)?;
        exact.extend(versions.iter().map(|(n, v)| (n.clone(), *v)));
        let set = store.card_keys(region, card_factor, &VersionSelect::Exact(exact))?;
        let mut keys = BTreeMap::new();
        for (name, e) in set.iter() {
            if e.algorithm() == alg {
                keys.insert(name.to_owned(), (e.key.try_clone(), e.version));
            }
        }
        let (rec, t) = store.transport_key(None)?;
        let transport = CardKey::new(alg, t.expose_secret()).map_err(card_core::Error::from)?;
        let absent = absent_keys(&store, &keys)?;
        Ok(CardKeys::new(keys, (transport, rec.version)).with_absent(absent))
    }
}

impl StoreKeySource {
    /// Begins a batch: a [`KeySource`] that serves card keys from region key sets unwrapped once for the batch
    /// ([`BatchKeys`]); the keys are dropped and zeroized when it is.
    pub fn batch(&self) -> BatchKeys<'_> {
        BatchKeys { source: self, cache: Mutex::new(Vec::new()) }
    }
}

/// The store's keys for one batch (issue 15 §4): per card algorithm, the region-level keys of each region met,
/// unwrapped once ([`key_mgmt::derive::RegionCache`], zeroizing), the transport key, and what the store holds of
/// the keys the set lacks. Each card's keys are then `Div(region key, card factor)`, with no row read and no key
/// block unwrapped.
///
/// It cannot serve a stale key: before each card it reads the store's key stamp
/// ([`key_mgmt::KeyStore::keys_stamp`]), which any change of any key row changes (a rotation, an activation, a
/// retirement or destruction, a region key derived — by this process or another on the same store); on a change
/// it drops everything it holds (zeroized) and selects again the highest active version of each key of the
/// card's algorithm, exactly as [`StoreKeySource::card_keys`] does per call. So a card gets the keys a per-call
/// lookup would give at that moment, and the journal records those versions.
///
/// Keys at given versions (rekeying a card, [`KeySource::card_keys_at`] with versions) and region modules come
/// from the store per call, as before.
pub struct BatchKeys<'a> {
    source: &'a StoreKeySource,
    cache: Mutex<Vec<AlgorithmCache>>,
}

/// What a batch holds for one card algorithm, valid while the store's key stamp is `regions.stamp()`.
struct AlgorithmCache {
    alg: Algorithm,
    regions: key_mgmt::derive::RegionCache,
    transport: (CardKey, u8),
    /// Per region: what the store holds of the profile keys its set lacks.
    absent: BTreeMap<String, BTreeMap<String, Absent>>,
}

impl AlgorithmCache {
    fn load(store: &KeyStore, alg: Algorithm) -> Result<AlgorithmCache, Error> {
        let regions = store.region_cache(VersionSelect::Exact(active_versions(store, alg)?))?;
        let (rec, t) = store.transport_key(None)?;
        let transport = (CardKey::new(alg, t.expose_secret()).map_err(card_core::Error::from)?, rec.version);
        Ok(AlgorithmCache { alg, regions, transport, absent: BTreeMap::new() })
    }
}

impl BatchKeys<'_> {
    /// Region key sets unwrapped from the store since the batch began (for tests and reports).
    pub fn loads(&self) -> Result<u64, Error> {
        let cache = self.cache.lock().map_err(|_| Defect::KeyStoreLock)?;
        Ok(cache.iter().map(|c| c.regions.loads()).sum())
    }

    /// Ends the batch: every cached key is dropped and zeroized (as when the value is dropped).
    pub fn end(self) {
        drop(self);
    }
}

impl std::fmt::Debug for BatchKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("BatchKeys");
        if let Ok(cache) = self.cache.lock() {
            for c in cache.iter() {
                d.field(c.alg.name(), &c.regions);
            }
        }
        d.finish_non_exhaustive()
    }
}

impl KeySource for BatchKeys<'_> {
    fn card_keys(&self, region: &str, card_factor: &[u8; 8], alg: Algorithm) -> Result<CardKeys, Error> {
        let store = self.source.store.lock().map_err(|_| Defect::KeyStoreLock)?;
        let mut cache = self.cache.lock().map_err(|_| Defect::KeyStoreLock)?;
        // at most a few rounds: only a key row changed by another process between two reads makes another one
        for _ in 0..4 {
            let stamp = store.keys_stamp()?;
            let i = match cache.iter().position(|c| c.alg == alg) {
                Some(i) if cache[i].regions.stamp() == stamp => i,
                found => {
                    // first card of this algorithm, or a key row changed: select the versions again
                    let fresh = AlgorithmCache::load(&store, alg)?;
                    match found {
                        Some(i) => {
                            cache[i] = fresh;
                            i
                        }
                        None => {
                            cache.push(fresh);
                            cache.len() - 1
                        }
                    }
                }
            };
            let c = &mut cache[i];
            let loads = c.regions.loads();
            let set = c.regions.card_keys_at(&store, &stamp, region, card_factor)?;
            if c.regions.loads() != loads && store.keys_stamp()? != stamp {
                // the store changed while the region was loaded: its versions may no longer be the selection
                continue;
            }
            let mut keys = BTreeMap::new();
            for (name, e) in set.iter() {
                if e.algorithm() == alg {
                    keys.insert(name.to_owned(), (e.key.try_clone(), e.version));
                }
            }
            let absent = match c.absent.get(region) {
                Some(a) => a.clone(),
                None => {
                    let a = absent_keys(&store, &keys)?;
                    c.absent.insert(region.to_owned(), a.clone());
                    a
                }
            };
            return Ok(CardKeys::new(keys, (c.transport.0.try_clone(), c.transport.1)).with_absent(absent));
        }
        // the store keeps changing: serve this card per call
        drop(cache);
        drop(store);
        self.source.card_keys(region, card_factor, alg)
    }

    fn card_keys_at(
        &self,
        region: &str,
        card_factor: &[u8; 8],
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<CardKeys, Error> {
        if versions.is_empty() {
            return self.card_keys(region, card_factor, alg);
        }
        self.source.card_keys_at(region, card_factor, alg, versions)
    }

    fn region_module_at(
        &self,
        region: &str,
        alg: Algorithm,
        versions: &BTreeMap<String, u8>,
    ) -> Result<card_core::security::LocalKeys, Error> {
        self.source.region_module_with(region, alg, versions)
    }
}
