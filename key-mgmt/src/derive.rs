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
