//! [`LocalKeys`]: region-level keys in this process; card keys `Div(region key, card factor)` (CARD-PROFILE §5.2).

use std::collections::BTreeMap;
use std::fmt;

use super::{CardContext, SecurityModule};
use crate::codec::RegionCode;
use crate::crypto::{self, ct_eq, process_key, region_factor, Algorithm, CardKey};
use crate::Error;

/// Region-level keys of one region (what a city's PSAM or HSM holds), by inventory name and algorithm.
///
/// Keys are [`CardKey`]s: zeroized on drop, never printed (`Debug` lists names only). Each computation derives
/// the card key from the card factor and drops it afterwards.
pub struct LocalKeys {
    region: RegionCode,
    keys: BTreeMap<(String, u8), CardKey>,
}

impl fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.keys.iter().map(|((n, _), k)| format!("{n}/{}", k.algorithm())).collect();
        f.debug_struct("LocalKeys").field("region", &self.region.as_str()).field("keys", &names).finish()
    }
}

impl LocalKeys {
    /// An empty set for `region`.
    pub fn new(region: RegionCode) -> Self {
        LocalKeys { region, keys: BTreeMap::new() }
    }

    /// Adds (or replaces) the region-level key `name` (inventory name; its algorithm is the key's).
    pub fn insert(&mut self, name: impl Into<String>, region_key: CardKey) {
        self.keys.insert((name.into(), region_key.algorithm().id()), region_key);
    }

    /// [`LocalKeys::insert`], chained.
    pub fn with_key(mut self, name: impl Into<String>, region_key: CardKey) -> Self {
        self.insert(name, region_key);
        self
    }

    /// From issuer master keys (e.g. the published test keys of `fixtures/cards/test-keys.toml`): each is
    /// diversified with the region factor first (CARD-PROFILE §5.2). For tests and demos; production
    /// region keys come from key-mgmt's `region_keys`.
    pub fn from_issuer_keys(
        region: RegionCode,
        issuer_keys: impl IntoIterator<Item = (String, CardKey)>,
    ) -> Result<Self, Error> {
        let factor = region_factor(region.as_str())?;
        let mut out = LocalKeys::new(region);
        for (name, key) in issuer_keys {
            out.insert(name, key.div(&factor));
        }
        Ok(out)
    }

    /// The region these keys belong to.
    pub fn region(&self) -> RegionCode {
        self.region
    }

    /// Names of the keys held for `algorithm`.
    pub fn names(&self, algorithm: Algorithm) -> Vec<&str> {
        self.keys.keys().filter(|(_, a)| *a == algorithm.id()).map(|(n, _)| n.as_str()).collect()
    }

    fn region_key(&self, card: &CardContext, name: &str) -> Option<&CardKey> {
        if card.region.is_some_and(|r| r != self.region) {
            return None;
        }
        self.keys.get(&(name.to_owned(), card.algorithm.id()))
    }

    fn card_key(&self, card: &CardContext, name: &str) -> Result<CardKey, Error> {
        self.region_key(card, name)
            .map(|k| k.div(&card.card_factor))
            .ok_or_else(|| Error::MissingKey { key: name.to_owned() })
    }

    /// CARD-PROFILE §6.3: the answer a genuine card gives to INTERNAL AUTHENTICATE `R1 ‖ R2` (IRK).
    /// The back end of the two-step exchange sends it to the terminal.
    pub fn internal_auth_answer(&self, card: &CardContext, r1: &[u8; 8], r2: &[u8; 8]) -> Result<[u8; 8], Error> {
        Ok(process_key(&self.card_key(card, "IRK")?, r1).cryptogram(r2))
    }
}

impl SecurityModule for LocalKeys {
    fn has_key(&self, card: &CardContext, key: &str) -> bool {
        self.region_key(card, key).is_some()
    }

    fn external_auth(&self, card: &CardContext, key: &str, challenge: &[u8; 8], x: &[u8; 8]) -> Result<[u8; 8], Error> {
        Ok(process_key(&self.card_key(card, key)?, challenge).cryptogram(x))
    }

    fn check_internal_auth(&self, card: &CardContext, r1: &[u8; 8], r2: &[u8; 8], answer: &[u8]) -> Result<(), Error> {
        let expected = self.internal_auth_answer(card, r1, r2)?;
        if ct_eq(&expected, answer) {
            Ok(())
        } else {
            Err(Error::InternalAuthFailed)
        }
    }

    fn line_mac(&self, card: &CardContext, key: &str, challenge: &[u8], input: &[u8]) -> Result<[u8; 4], Error> {
        Ok(crypto::line_mac(&self.card_key(card, key)?, challenge, input)?)
    }

    fn line_mac_zero_iv(&self, card: &CardContext, key: &str, input: &[u8]) -> Result<[u8; 4], Error> {
        Ok(crypto::line_mac_zero_iv(&self.card_key(card, key)?, input))
    }

    fn secure_data(&self, card: &CardContext, key: &str, data: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(crypto::secure_data_encrypt(&self.card_key(card, key)?, data)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(alg: Algorithm) -> CardContext {
        CardContext { region: None, card_factor: [0, 0, 0, 0, 0, 0, 0, 0xA2], algorithm: alg }
    }

    #[test]
    fn derives_card_keys_and_checks_region() {
        let region = RegionCode::parse("371700").unwrap();
        let issuer = CardKey::new(Algorithm::Tdes, &[0x11; 16]).unwrap();
        let keys = LocalKeys::from_issuer_keys(region, [("IRK".to_owned(), issuer.try_clone())]).unwrap();
        let card = ctx(Algorithm::Tdes);
        let expected_key = issuer.div_path(&[region_factor("371700").unwrap(), card.card_factor]);
        let (r1, r2) = ([1u8; 8], [2u8; 8]);
        let answer = process_key(&expected_key, &r1).cryptogram(&r2);
        keys.check_internal_auth(&card, &r1, &r2, &answer).unwrap();
        assert!(matches!(keys.check_internal_auth(&card, &r1, &r2, &[0; 8]), Err(Error::InternalAuthFailed)));
        assert!(!keys.has_key(&ctx(Algorithm::Sm4), "IRK"));
        let other = CardContext { region: Some(RegionCode::parse("110100").unwrap()), ..card.clone() };
        assert!(matches!(keys.external_auth(&other, "IRK", &r1, &r2), Err(Error::MissingKey { .. })));
        assert!(!format!("{keys:?}").contains("11111111"));
    }
}
