//! A key store holding the published test issuer keys (`fixtures/cards/test-keys.toml`), so that the fixture
//! cards (personalized by card-sim under exactly those keys) are cards of the store: what the key service
//! (`keymgmt serve`) serves in tests and demos. TEST MATERIAL ONLY.
//!
//! Each issuer key is imported as two XOR components: 3DES as version 1, SM4 as version 2, all active.

use std::path::{Path, PathBuf};

use card_core::crypto::Algorithm;
use card_sim::fixture::TestKeys;
use key_mgmt::{components, KeyStore};

/// The passphrase of [`issuer_store`]'s store (also written to `pass.txt` beside it).
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The test key file's issuer keys.
pub fn test_keys() -> TestKeys {
    let text = std::fs::read_to_string(crate::fixture("cards/test-keys.toml")).expect("read test-keys.toml");
    TestKeys::from_toml(&text).expect("test-keys.toml")
}

/// The names of the test key file's issuer keys (both algorithms hold the same names).
pub fn names() -> Vec<String> {
    test_keys().names(Algorithm::Sm4).into_iter().map(str::to_owned).collect()
}

/// `dir/keys.db` holding the test issuer keys (3DES v1, SM4 v2, active), unlocked by [`PASSPHRASE`], which is
/// also written to `dir/pass.txt`. Returns the store's path.
pub fn issuer_store(dir: &Path) -> PathBuf {
    let path = dir.join("keys.db");
    let c1 = components::parse_hex(&"0123456789ABCDEF".repeat(4), 1, 32).expect("component 1");
    let c2 = components::parse_hex(&"3C5A3C5A1E2D4B69".repeat(4), 2, 32).expect("component 2");
    let (store, _) = KeyStore::init(&path, &[c1, c2], Some(PASSPHRASE.as_bytes())).expect("init the store");
    let keys = test_keys();
    for (alg, version) in [(Algorithm::Tdes, 1), (Algorithm::Sm4, 2)] {
        for name in names() {
            let key = keys.issuer(alg, &name).expect("test key");
            let parts = components::split(key.expose_secret(), 2).expect("split");
            store.import_components(&name, version, alg, &parts, true).expect("import");
        }
    }
    std::fs::write(dir.join("pass.txt"), format!("{PASSPHRASE}\n")).expect("write pass.txt");
    path
}

/// The test keys as a security module of region 371700 (the fixture cards' region).
pub fn local_keys() -> card_core::security::LocalKeys {
    let region = card_core::codec::RegionCode::parse("371700").expect("region");
    card_core::security::key_file::load(&crate::fixture("cards/test-keys.toml"), region).expect("test-keys.toml")
}
