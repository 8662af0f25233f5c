//! Shared test material: a key store made in the test, blank cards, the sample holders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use card_core::crypto::Algorithm;
use card_core::profile::{Generation, Profile};
use card_sim::{BlankParams, Card, KeyAlgorithm};
use issuance::holders::{self, Context, Holder};
use key_mgmt::KeyStore;

/// The blank cards' transport key. TEST MATERIAL. Every byte has odd parity, so the store (which
/// parity-adjusts 3DES keys) keeps it as is and it serves SM4 cards too.
pub const TRANSPORT: [u8; 16] =
    [0x01, 0x02, 0x04, 0x07, 0x08, 0x0B, 0x0D, 0x0E, 0x10, 0x13, 0x15, 0x16, 0x19, 0x1A, 0x1C, 0x1F];
/// The store passphrase. TEST MATERIAL.
pub const PASSPHRASE: &str = "issuance test passphrase";

/// A key store with every profile key in 3DES (version 1) and SM4 (version 2), and TRANSPORT.
pub fn make_store(path: &Path) {
    let c1 = zeroize::Zeroizing::new((1u8..=32).collect::<Vec<u8>>());
    let c2 = zeroize::Zeroizing::new((0u8..32).map(|i| i.wrapping_mul(7) ^ 0xA5).collect::<Vec<u8>>());
    let (store, _) = KeyStore::init(path, &[c1, c2], Some(PASSPHRASE.as_bytes())).unwrap();
    store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap();
    for def in key_mgmt::inventory::key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
        store.generate(&def.name, 2, Algorithm::Sm4, None, true).unwrap();
    }
    // two components whose XOR is the transport key
    let mask: Vec<u8> = (0u8..16).map(|i| i.wrapping_mul(13) ^ 0x5C).collect();
    let a = zeroize::Zeroizing::new(mask.clone());
    let b = zeroize::Zeroizing::new(TRANSPORT.iter().zip(&mask).map(|(x, m)| x ^ m).collect::<Vec<u8>>());
    store.import_components("TRANSPORT", 1, Algorithm::Tdes, &[a, b], true).unwrap();
}

/// A store, unlocked, as a key source.
pub fn key_source(path: &Path) -> issuance::prepare::StoreKeySource {
    let mut store = KeyStore::open(path).unwrap();
    store.unlock_with_passphrase(PASSPHRASE.as_bytes()).unwrap();
    issuance::prepare::StoreKeySource::new(store)
}

/// A blank card of generation `g` with chip serial `serial`.
pub fn blank(g: u8, serial: u64) -> Card {
    Card::new_blank(BlankParams {
        generation: g,
        region: "371700".into(),
        serial,
        transport_key: TRANSPORT,
        algorithm: if g == 3 { KeyAlgorithm::Sm4 } else { KeyAlgorithm::Tdes },
    })
    .unwrap()
}

/// A repository fixture.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(rel)
}

/// The valid holders of `fixtures/holders/sample.csv` for generation `g`.
pub fn sample(g: Generation) -> Vec<Holder> {
    let no = |_: &str| false;
    let ctx = Context { generation: g, base: fixture("holders"), issued: &no };
    let p = holders::read_file(&fixture("holders/sample.csv"), &ctx).unwrap();
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    p.valid
}
