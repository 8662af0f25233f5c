//! Key sets for issuance and the terminal agent (CARD-PROFILE §5.2).
//!
//! A [`RegionKeySet`] holds the region-level keys `Div(issuer key, region factor)` of every card
//! key of the profile — what a city's local security module holds. From it, a [`CardKeySet`] for
//! one card is `Div(region key, card factor)` per key. Both are maps of [`CardKey`]s, which are
//! zeroized on drop, and print no key in `Debug`.

use std::collections::BTreeMap;

use card_core::crypto::{card_factor, Algorithm, CardKey};

use crate::error::Result;

/// One key of a set, with its version and algorithm.
#[derive(Debug)]
pub struct KeyEntry {
    /// The key (zeroized on drop).
    pub key: CardKey,
    /// Its version.
    pub version: u8,
}

impl KeyEntry {
    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

macro_rules! key_set {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            pub(crate) keys: BTreeMap<String, KeyEntry>,
            pub(crate) missing: Vec<String>,
        }

        impl $name {
            /// The key named `name` (store name: `MK_MF`, `UKMF`, `UK_DF01`, …).
            pub fn get(&self, name: &str) -> Option<&KeyEntry> {
                self.keys.get(name)
            }

            /// Every key, by name.
            pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyEntry)> {
                self.keys.iter().map(|(k, v)| (k.as_str(), v))
            }

            /// Number of keys.
            pub fn len(&self) -> usize {
                self.keys.len()
            }

            /// Whether the set is empty.
            pub fn is_empty(&self) -> bool {
                self.keys.is_empty()
            }

            /// Profile keys for which the store has no usable version (not active, or not held).
            pub fn missing(&self) -> &[String] {
                &self.missing
            }
        }
    };
}

key_set!(
    /// Region-level keys: profile key name → `Div(issuer key, region factor)`.
    RegionKeySet
);
key_set!(
    /// The keys of one card: profile key name → `Div(Div(issuer key, region), card factor)`.
    CardKeySet
);

impl RegionKeySet {
    /// A set from region-level keys held elsewhere (e.g. unwrapped from exported key blocks).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, KeyEntry)>) -> Self {
        RegionKeySet { keys: entries.into_iter().collect(), missing: Vec::new() }
    }

    /// The card keys for a card whose factor is `card_factor` (8 bytes; longer input such as
    /// the ATR historical bytes gives its last 8, CARD-PROFILE §5.2).
    pub fn card_keys(&self, card_factor_bytes: &[u8]) -> Result<CardKeySet> {
        let f = card_factor(card_factor_bytes)?;
        let keys =
            self.keys.iter().map(|(n, e)| (n.clone(), KeyEntry { key: e.key.div(&f), version: e.version })).collect();
        Ok(CardKeySet { keys, missing: self.missing.clone() })
    }
}

/// Which key versions a set uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VersionSelect {
    /// The highest active version of each key.
    #[default]
    Active,
    /// The given versions; keys not in the map use their highest active version.
    Exact(BTreeMap<String, u8>),
}

/// The region-level key sets of one batch, unwrapped once and kept for the batch's cards (CARD-PROFILE §5.2):
/// [`crate::KeyStore::card_keys`] checks every row, unwraps every key block and derives the region level on
/// each call; a batch that issues many cards of few regions does that once per region, and each card's set is
/// then `Div(cached region key, card factor)` only.
///
/// # Per batch, per version selection, never stale
///
/// - A cache is made for one [`VersionSelect`] ([`crate::KeyStore::region_cache`]) and resolves versions with it
///   only; another selection needs another cache.
/// - It remembers the store's key stamp ([`crate::KeyStore::keys_stamp`]) of the moment it loaded. Before each
///   key set it serves, it reads the stamp again (one indexed read, no unwrap); any change of any key row since
///   then — a rotation, an activation, a deactivation or destruction, a region key derived, in this process or
///   another — changes the stamp, and the cache then drops every region set (zeroized) and loads again with
///   its selection. So it never gives a key that [`crate::KeyStore::card_keys`] with the same selection
///   would not give at that moment.
/// - The keys are [`CardKey`]s, zeroized on drop: when the batch ends ([`RegionCache::end`]), when the cache is
///   dropped, and when it is [cleared](RegionCache::clear) or invalidated. `Debug` names regions and versions,
///   never a key.
pub struct RegionCache {
    select: VersionSelect,
    stamp: String,
    regions: BTreeMap<String, RegionKeySet>,
    loads: u64,
}

impl crate::KeyStore {
    /// A cache of region key sets for one batch at the versions `select` picks ([`RegionCache`]).
    pub fn region_cache(&self, select: VersionSelect) -> Result<RegionCache> {
        Ok(RegionCache { select, stamp: self.keys_stamp()?, regions: BTreeMap::new(), loads: 0 })
    }
}

impl RegionCache {
    /// The region-level keys of `region` from `store` (the store the cache was made for), loaded on first use and
    /// after any change of the store's key rows.
    pub fn region(&mut self, store: &crate::KeyStore, region: &str) -> Result<&RegionKeySet> {
        let stamp = store.keys_stamp()?;
        self.region_at(store, &stamp, region)
    }

    /// [`RegionCache::region`] for a caller that has just read the store's key stamp (`stamp`,
    /// [`crate::KeyStore::keys_stamp`]) itself: the same, with one read fewer.
    pub fn region_at(&mut self, store: &crate::KeyStore, stamp: &str, region: &str) -> Result<&RegionKeySet> {
        if stamp != self.stamp {
            // a key row changed since the sets were loaded: none of them is served again
            self.regions.clear();
            stamp.clone_into(&mut self.stamp);
        }
        if !self.regions.contains_key(region) {
            let set = store.region_keys_with(region, &self.select)?;
            self.loads += 1;
            self.regions.insert(region.to_owned(), set);
        }
        self.regions.get(region).ok_or_else(|| crate::Error::InvalidInput(format!("region {region} not cached")))
    }

    /// The card keys of one card of `region` with card factor `card_factor` ([`RegionKeySet::card_keys`]) from the
    /// cached region set.
    pub fn card_keys(&mut self, store: &crate::KeyStore, region: &str, card_factor_bytes: &[u8]) -> Result<CardKeySet> {
        self.region(store, region)?.card_keys(card_factor_bytes)
    }

    /// [`RegionCache::card_keys`] with the store's key stamp just read by the caller ([`RegionCache::region_at`]).
    pub fn card_keys_at(
        &mut self,
        store: &crate::KeyStore,
        stamp: &str,
        region: &str,
        card_factor_bytes: &[u8],
    ) -> Result<CardKeySet> {
        self.region_at(store, stamp, region)?.card_keys(card_factor_bytes)
    }

    /// The version selection the cache serves.
    pub fn select(&self) -> &VersionSelect {
        &self.select
    }

    /// The store's key stamp of the cached sets.
    pub fn stamp(&self) -> &str {
        &self.stamp
    }

    /// Region sets held now.
    pub fn cached_regions(&self) -> usize {
        self.regions.len()
    }

    /// Region sets loaded (rows checked, blocks unwrapped) since the cache was made.
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// Drops every cached region set (its keys zeroized).
    pub fn clear(&mut self) {
        self.regions.clear();
    }

    /// Ends the batch: the cache and every key in it are dropped and zeroized.
    pub fn end(self) {
        drop(self);
    }
}

impl std::fmt::Debug for RegionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regions: BTreeMap<&str, BTreeMap<&str, u8>> = self
            .regions
            .iter()
            .map(|(r, set)| (r.as_str(), set.iter().map(|(n, e)| (n, e.version)).collect()))
            .collect();
        f.debug_struct("RegionCache")
            .field("select", &self.select)
            .field("regions", &regions)
            .field("loads", &self.loads)
            .field("keys", &"<redacted>")
            .finish()
    }
}
