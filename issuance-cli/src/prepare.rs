//! Data preparation (CARD-PROFILE §2.1, §5.2): card identifier, card number, dates, card type, spec
//! version, and the card's keys from a [`KeySource`] for the card factor read from the ATR.

use std::collections::BTreeMap;
use std::sync::Mutex;

use card_core::codec::{CardNumber, Date, RegionCode};
use card_core::crypto::{Algorithm, CardKey};
use card_core::profile::Generation;
use key_mgmt::{KeyStore, VersionSelect};

use crate::holders::Holder;
use crate::Error;

/// RID of the MOHRSS, bytes 3–7 of the card identifier.
pub const RID: [u8; 5] = [0xD1, 0x56, 0x00, 0x00, 0x05];

/// The card algorithm of a generation (CARD-PROFILE §1).
pub fn algorithm_of(g: Generation) -> Algorithm {
    if g == Generation::THREE {
        Algorithm::Sm4
    } else {
        Algorithm::Tdes
    }
}

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
#[derive(Clone, Debug)]
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
    let region = RegionCode::parse(&holder.region).map_err(|e| Error::Input(format!("region: {e}")))?;
    let mut card_id = [0u8; 16];
    card_id[..3].copy_from_slice(&region.to_bcd());
    card_id[3..8].copy_from_slice(&RID);
    card_id[8..].copy_from_slice(&seq.to_be_bytes());
    if seq >= 100_000_000 {
        return Err(Error::Input(format!("region {} has used up its card numbers", holder.region)));
    }
    let card_number = CardNumber::with_check(&format!("{seq:08}")).map_err(|e| Error::Input(e.to_string()))?;
    let d = s.issue_date;
    let year = d.year().saturating_add(s.validity_years);
    let expiry = Date::new(year, d.month(), d.day())
        .or_else(|_| Date::new(year, d.month(), 28))
        .map_err(|e| Error::Input(format!("expiry date: {e}")))?;
    Ok(Prepared {
        holder: holder.clone(),
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
}

impl CardKeys {
    /// A set from parts.
    pub fn new(keys: BTreeMap<String, (CardKey, u8)>, transport: (CardKey, u8)) -> CardKeys {
        CardKeys { keys, transport }
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
        Err(Error::Keys("this key source gives no key versions but the active ones".into()))
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
        Err(Error::Keys("this key source gives no region keys".into()))
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
        let store = self.store.lock().map_err(|_| Error::Internal("key store lock poisoned".into()))?;
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
        let store = self.store.lock().map_err(|_| Error::Internal("key store lock poisoned".into()))?;
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
        Ok(CardKeys { keys, transport: (transport, rec.version) })
    }
}
