//! Library tests: the store, derivation known answers, refusals and tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use card_core::crypto::{region_factor, Algorithm, CardKey, KcvMethod};
use key_mgmt::components::Secret;
use key_mgmt::inventory::{key_defs, KeyState};
use key_mgmt::{Error, ErrorKind, KeyEntry, KeyStore, RegionKeySet, VersionSelect};
use zeroize::Zeroizing;

const PASS: &[u8] = b"correct horse battery staple";

fn s(hex_text: &str) -> Secret {
    Zeroizing::new(hex::decode(hex_text).unwrap())
}

fn kbpk_components() -> Vec<Secret> {
    vec![s("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"), s(&"3C5A".repeat(16))]
}

fn new_store(dir: &Path) -> (KeyStore, PathBuf) {
    let path = dir.join("keys.db");
    let (store, report) = KeyStore::init(&path, &kbpk_components(), Some(PASS)).unwrap();
    assert_eq!(report.component_kcvs.len(), 2);
    (store, path)
}

/// Splits `key` into two components (key ⊕ r, r) as custodians would hold them.
fn two_components(key: &str) -> Vec<Secret> {
    let k = hex::decode(key).unwrap();
    let r: Vec<u8> = (0..k.len() as u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    vec![Zeroizing::new(k.iter().zip(&r).map(|(a, b)| a ^ b).collect()), Zeroizing::new(r)]
}

fn reopen(path: &Path) -> KeyStore {
    let mut s = KeyStore::open(path).unwrap();
    s.unlock_with_passphrase(PASS).unwrap();
    s
}

/// The witness beside a store (`Outside::beside`).
fn witness(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.witness", path.display()))
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// test-vectors/diversification.json: EMV Book 2 A1.4.1 option A (CARD-PROFILE §9), through a
/// region key set: the card-level step of key-mgmt's derivation.
#[test]
fn diversification_vectors_through_key_sets() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../test-vectors/diversification.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for vec in v["vectors"].as_array().unwrap() {
        let alg = match vec["card_algorithm"].as_str().unwrap() {
            "3DES" => Algorithm::Tdes,
            "SM4" => Algorithm::Sm4,
            _ => Algorithm::Aes128,
        };
        let factors = vec["factors"].as_array().unwrap();
        if factors.len() != 1 {
            continue;
        }
        let key = CardKey::new(alg, &hex::decode(vec["key"].as_str().unwrap()).unwrap()).unwrap();
        let set = RegionKeySet::from_entries([("UKMF".to_string(), KeyEntry { key, version: 1 })]);
        let card = set.card_keys(&hex::decode(factors[0].as_str().unwrap()).unwrap()).unwrap();
        let got = card.get("UKMF").unwrap();
        assert_eq!(hex::encode_upper(got.key.expose_secret()), vec["expected"].as_str().unwrap());
        assert_eq!(got.version, 1);
    }
}

/// CARD-PROFILE §5.2 SM4 Div with D = 0123456789ABCDEF: D ‖ ~D is the GB/T 32907 example
/// plaintext, so Div(K, D) is the standard's example ciphertext (CARD-PROFILE §9).
#[test]
fn sm4_div_is_the_gbt32907_example() {
    let key = CardKey::new(Algorithm::Sm4, &hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap();
    let set = RegionKeySet::from_entries([("IRK".to_string(), KeyEntry { key, version: 3 })]);
    let card = set.card_keys(&hex::decode("0123456789ABCDEF").unwrap()).unwrap();
    assert_eq!(hex::encode_upper(card.get("IRK").unwrap().key.expose_secret()), "681EDF34D206965E86B3E94F536E4246");
}

/// The full path through the store: import from components, region key, card key, KCV.
#[test]
fn card_keys_from_the_store_match_the_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let imk = "0123456789ABCDEFFEDCBA9876543210";
    let c = store.import_components("UKMF", 1, Algorithm::Sm4, &two_components(imk), true).unwrap();
    assert_eq!(c.component_kcvs.len(), 2);
    let k = CardKey::new(Algorithm::Sm4, &hex::decode(imk).unwrap()).unwrap();
    assert_eq!(c.record.kcv, k.kcv(KcvMethod::Zeros).to_string());
    let cf = hex::decode("1122334455667788").unwrap();
    let expected = k.div(&region_factor("371700").unwrap()).div(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    let set = store.card_keys("371700", &cf, &VersionSelect::Active).unwrap();
    assert_eq!(set.get("UKMF").unwrap().key.expose_secret(), expected.expose_secret());
    assert_eq!(set.get("UKMF").unwrap().algorithm(), Algorithm::Sm4);
    assert!(set.missing().contains(&"MK_MF".to_string()));
    assert_eq!(store.derive_kcv("UKMF", 1, "371700", &cf).unwrap(), expected.kcv(KcvMethod::Zeros));
    // A stored region key gives the same card keys.
    let r = store.derive_region("UKMF", 1, "371700").unwrap();
    assert_eq!(r.parent.as_deref(), Some("UKMF v1"));
    assert_eq!(r.state, KeyState::Active);
    let p = store.derive_region("UKMF", 1, "370000").unwrap();
    assert_eq!(p.level, key_mgmt::inventory::Level::Province);
    let set2 = store.region_keys("371700").unwrap().card_keys(&cf).unwrap();
    assert_eq!(set2.get("UKMF").unwrap().key.expose_secret(), expected.expose_secret());
}

#[test]
fn profile_keys_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let made = store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap();
    let card_names: Vec<String> = key_defs(card_core::profile::Profile::builtin())
        .into_iter()
        .filter(|d| d.is_card_key())
        .map(|d| d.name)
        .collect();
    assert_eq!(made.len(), card_names.len());
    for n in ["MK_MF", "MK", "IRK", "UKMF", "PUK", "STK", "RLK", "RKSSSE", "MK_DF01", "UK_DF01", "RK_DF01", "STK_DF07"]
    {
        assert!(card_names.iter().any(|c| c == n), "{n} missing from the inventory");
    }
    assert!(store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap().is_empty());
    let cf = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let v1 = store.card_keys("371700", &cf, &VersionSelect::Active).unwrap();
    assert_eq!(v1.len(), card_names.len());
    assert!(v1.missing().is_empty());
    // Rotation: v2 active, v1 still active until retired; Active picks v2, Exact can pick v1.
    let r = store.rotate("UKMF").unwrap();
    assert_eq!((r.version, r.state), (2, KeyState::Active));
    assert_eq!(store.record("UKMF", 1, "").unwrap().state, KeyState::Active);
    let v2 = store.card_keys("371700", &cf, &VersionSelect::Active).unwrap();
    assert_eq!(v2.get("UKMF").unwrap().version, 2);
    assert_ne!(v2.get("UKMF").unwrap().key.expose_secret(), v1.get("UKMF").unwrap().key.expose_secret());
    let old = store.card_keys("371700", &cf, &VersionSelect::Exact(BTreeMap::from([("UKMF".to_string(), 1)]))).unwrap();
    assert_eq!(old.get("UKMF").unwrap().key.expose_secret(), v1.get("UKMF").unwrap().key.expose_secret());
    // 3DES keys keep odd parity.
    assert!(v1.get("MK").unwrap().key.expose_secret().iter().all(|b| b.count_ones() % 2 == 1));
}

/// Issue 17: a store holding the 3DES v1 profile keys (generation 1–2 cards) gets the SM4 set at version 2
/// (generation 3 cards) from `generate_profile_keys`; the same name then holds versions of both algorithms.
/// What is left out says why; rotating such a name needs the algorithm.
#[test]
fn profile_keys_of_a_second_algorithm_beside_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let n = store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap().len();
    let sm4 = store.generate_profile_keys_explained(Algorithm::Sm4, 2, true).unwrap();
    assert_eq!(sm4.generated.len(), n, "{:?}", sm4.skipped);
    assert!(sm4.skipped.is_empty());
    assert!(sm4.generated.iter().all(|r| r.algorithm == "SM4" && r.version == 2 && r.state == KeyState::Active));
    let mk: Vec<(u8, String)> =
        store.versions("MK", "").unwrap().into_iter().map(|r| (r.version, r.algorithm)).collect();
    assert_eq!(mk, vec![(1, "3DES".to_string()), (2, "SM4".to_string())]);

    // again: nothing to do, and each name says what it holds
    let again = store.generate_profile_keys_explained(Algorithm::Sm4, 3, true).unwrap();
    assert!(again.generated.is_empty());
    assert_eq!(again.skipped.len(), n);
    let mk = again.skipped.iter().find(|s| s.name == "MK").unwrap();
    assert!(mk.reason.contains("already holds SM4 v2 (active)"), "{}", mk.reason);
    assert_eq!(mk.held.len(), 2);
    // a version taken by the other algorithm is left out, not overwritten or refused for the whole set
    let taken = store.generate_profile_keys_explained(Algorithm::Aes128, 1, false).unwrap();
    assert!(taken.generated.is_empty());
    assert!(
        taken.skipped.iter().all(|s| s.reason.contains("version 1 is taken by its 3DES v1")),
        "{:?}",
        taken.skipped[0].reason
    );

    // rotating a name that holds two algorithms: the algorithm asked for, at the next version; without one,
    // the algorithm of the highest version
    let r = store.rotate_alg("UKMF", Some(Algorithm::Tdes)).unwrap();
    assert_eq!((r.version, r.algorithm.as_str(), r.state), (3, "3DES", KeyState::Active));
    let r = store.rotate("UKMF").unwrap();
    assert_eq!((r.version, r.algorithm.as_str()), (4, "3DES"));
    let r = store.rotate_alg("UKMF", Some(Algorithm::Sm4)).unwrap();
    assert_eq!((r.version, r.algorithm.as_str()), (5, "SM4"));
    let e = store.rotate_alg("UKMF", Some(Algorithm::Aes128)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
}

#[test]
fn component_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let good = s(&"3C5A".repeat(16));
    let cases: Vec<(Vec<Secret>, &str)> = vec![
        (vec![good.clone(), s(&"00".repeat(32))], "trivial"),
        (vec![good.clone(), s(&"A7".repeat(32))], "trivial"),
        (vec![good.clone(), good.clone()], "same as component 1"),
        (vec![good.clone(), s(&"0102".repeat(8))], "wrong length"),
        (vec![good.clone()], "components given"),
    ];
    for (comps, msg) in cases {
        let e = KeyStore::init(&path, &comps, None).err().unwrap();
        assert!(e.to_string().contains(msg), "{e} does not say {msg}");
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(!path.exists(), "a refused ceremony must not leave a store");
    }
    let (store, path) = new_store(dir.path());
    assert!(matches!(KeyStore::init(&path, &kbpk_components(), None), Err(Error::AlreadyInitialised)));
    let e = store
        .import_components("UKMF", 1, Algorithm::Tdes, &[s(&"11".repeat(16)), s(&"0102".repeat(8))], false)
        .err()
        .unwrap();
    assert!(matches!(e, Error::BadComponent { index: 1, .. }), "{e}");
    let e = store
        .import_components("UKMF", 1, Algorithm::Tdes, &[s(&"0102".repeat(8)), s(&"0102".repeat(8))], false)
        .err()
        .unwrap();
    assert!(matches!(e, Error::BadComponent { index: 2, .. }), "{e}");
}

#[test]
fn unlock_refusals_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = new_store(dir.path());
    let mut st = KeyStore::open(&path).unwrap();
    assert!(matches!(st.unlock_with_passphrase(b"wrong passphrase"), Err(Error::WrongPassphrase)));
    let wrong = vec![s(&"1234".repeat(16)), s(&"3C5A".repeat(16))];
    let e = st.unlock_with_components(&wrong).err().unwrap();
    assert!(matches!(e, Error::WrongComponents));
    assert_eq!(e.kind().exit_code(), 3);
    assert!(matches!(st.list(), Err(Error::Locked)));
    st.unlock_with_components(&kbpk_components()).unwrap();
    let fails: Vec<_> = st.audit_entries().unwrap().into_iter().filter(|e| e.outcome == "fail").collect();
    assert_eq!(fails.len(), 2);
    assert!(fails[0].detail.contains("wrong passphrase"));
    assert_eq!(st.audit_verify().unwrap().unsealed, 0);
}

#[test]
fn lifecycle_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    store.generate("STK_DF01", 1, Algorithm::Sm4, None, false).unwrap();
    let illegal = [(KeyState::Retired), (KeyState::PreActive)];
    for to in illegal {
        let e = store.set_state("STK_DF01", 1, "", to).err().unwrap();
        assert!(matches!(e, Error::IllegalTransition { .. }), "{e}");
    }
    store.set_state("STK_DF01", 1, "", KeyState::Active).unwrap();
    assert!(matches!(
        store.set_state("STK_DF01", 1, "", KeyState::Destroyed),
        Err(Error::IllegalTransition { from: KeyState::Active, to: KeyState::Destroyed, .. })
    ));
    store.set_state("STK_DF01", 1, "", KeyState::Retired).unwrap();
    assert!(store.set_state("STK_DF01", 1, "", KeyState::Active).is_err());
    store.set_state("STK_DF01", 1, "", KeyState::Destroyed).unwrap();
    assert!(matches!(store.derive_kcv("STK_DF01", 1, "371700", &[0; 8]), Err(Error::WrongState { .. })));
    assert_eq!(store.record("STK_DF01", 1, "").unwrap().state, KeyState::Destroyed);
    for bad in ["UK", "ukmf", "STK_DF09", "MK_SSSE", ""] {
        let e = store.generate(bad, 1, Algorithm::Sm4, None, false).err().unwrap();
        assert!(matches!(e, Error::UnknownKeyName(_)), "{bad}: {e}");
    }
    assert!(matches!(store.generate("STK_DF01", 1, Algorithm::Sm4, None, false), Err(Error::KeyExists { .. })));
}

#[test]
fn destroy_overwrites_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = new_store(dir.path());
    store.generate("RLK", 1, Algorithm::Sm4, None, false).unwrap();
    let block: String = raw(&path).query_row("SELECT block FROM keys WHERE name = 'RLK'", [], |r| r.get(0)).unwrap();
    assert!(block.starts_with('D'));
    store.set_state("RLK", 1, "", KeyState::Destroyed).unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    let needle = &block.as_bytes()[16..80];
    assert!(!bytes.windows(needle.len()).any(|w| w == needle), "the destroyed key block is still in the file");
}

#[test]
fn a_changed_row_or_block_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = new_store(dir.path());
    store.generate("PUK", 1, Algorithm::Sm4, None, true).unwrap();
    store.set_state("PUK", 1, "", KeyState::Retired).unwrap();
    drop(store);
    // Reactivate a retired key behind the program's back.
    raw(&path).execute("UPDATE keys SET state = 'active' WHERE name = 'PUK'", []).unwrap();
    let e = reopen(&path).list().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    raw(&path).execute("UPDATE keys SET state = 'retired' WHERE name = 'PUK'", []).unwrap();
    reopen(&path).list().unwrap();
    // Change one character of the key block (to another character: a random block may hold an 'F' there).
    raw(&path)
        .execute(
            "UPDATE keys SET block = substr(block, 1, 40) || (CASE substr(block, 41, 1) WHEN 'F' THEN 'E' ELSE 'F' END) \
             || substr(block, 42) WHERE name = 'PUK'",
            [],
        )
        .unwrap();
    let st = reopen(&path);
    let e = st.derive_kcv("PUK", 1, "371700", &[0; 8]).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
}

#[test]
fn a_removed_or_replayed_row_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = new_store(dir.path());
    store.generate("PUK", 1, Algorithm::Sm4, None, true).unwrap();
    store.generate("RLK", 1, Algorithm::Sm4, None, true).unwrap();
    store.set_state("PUK", 1, "", KeyState::Retired).unwrap();
    drop(store);
    let backup = dir.path().join("backup.db");
    std::fs::copy(&path, &backup).unwrap();
    // The witness is backed up and restored with the store (else the unlock refuses the
    // restored copy as a rollback: `witness_refuses_a_rolled_back_store`).
    std::fs::copy(witness(&path), witness(&backup)).unwrap();
    reopen(&path).set_state("PUK", 1, "", KeyState::Destroyed).unwrap();
    // Replay the retired row (with its key block) over the destroyed one.
    let c = raw(&path);
    c.execute("ATTACH DATABASE ?1 AS old", [backup.to_str().unwrap()]).unwrap();
    c.execute("INSERT OR REPLACE INTO keys SELECT * FROM old.keys WHERE name = 'PUK'", []).unwrap();
    drop(c);
    let e = reopen(&path).list().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    // Removing a row is detected too.
    std::fs::copy(&backup, &path).unwrap();
    std::fs::copy(witness(&backup), witness(&path)).unwrap();
    raw(&path).execute("DELETE FROM keys WHERE name = 'RLK'", []).unwrap();
    let e = reopen(&path).record("PUK", 1, "").err().unwrap();
    assert!(e.to_string().contains("removed"), "{e}");
}

fn audit_tamper(sql: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = new_store(dir.path());
    for n in ["PUK", "RLK", "STK"] {
        store.generate(n, 1, Algorithm::Sm4, None, true).unwrap();
    }
    store.audit_verify().unwrap();
    drop(store);
    raw(&path).execute_batch(sql).unwrap();
    // The witness removed too (an attacker who can also write it): the log's own checks find the
    // tampering. With the witness, the unlock itself refuses (`witness_*` tests).
    std::fs::remove_file(witness(&path)).unwrap();
    let st = reopen(&path);
    let e = st.audit_verify().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(e.to_string().contains(expect), "{e} does not say {expect}");
}

#[test]
fn audit_changed_entry() {
    audit_tamper("UPDATE audit SET detail = replace(detail, 'PUK', 'RLK') WHERE seq = 3", "entry 3 was changed");
}

#[test]
fn audit_removed_entry() {
    audit_tamper("DELETE FROM audit WHERE seq = 4", "entry 4 is missing");
}

#[test]
fn audit_reordered_entries() {
    audit_tamper(
        "UPDATE audit SET seq = 100 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 100;",
        "does not follow",
    );
}

#[test]
fn audit_cut_tail() {
    audit_tamper("DELETE FROM audit WHERE seq >= 6", "cut");
}

#[test]
fn audit_forged_head() {
    audit_tamper("UPDATE meta SET v = '3|' || substr(v, instr(v, '|') + 1) WHERE k = 'audit_head'", "sealed head");
}

#[test]
fn export_and_import_between_stores() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (sa, _) = new_store(a.path());
    let (sb, _) = new_store(b.path());
    let kek = two_components("000102030405060708090A0B0C0D0E0F");
    sa.import_components("KEK", 1, Algorithm::Aes128, &kek, true).unwrap();
    sb.import_components("KEK", 1, Algorithm::Aes128, &kek, true).unwrap();
    let made = sa.generate("MK_DF02", 4, Algorithm::Sm4, None, true).unwrap();
    let block = sa.export("MK_DF02", 4, "", "KEK", None).unwrap();
    assert!(block.starts_with("D") && &block[5..12] == "E53X04E", "{block}");
    // The usage must fit the name.
    assert!(matches!(sb.import_block("UKMF", &block, "KEK", None, false), Err(Error::InvalidInput(_))));
    let rec = sb.import_block("MK_DF02", &block, "KEK", None, true).unwrap();
    assert_eq!((rec.version, rec.kcv.as_str(), rec.state), (4, made.record.kcv.as_str(), KeyState::Active));
    // A 3DES key cannot be a version D KEK; a pre-active KEK is refused.
    sa.generate("KEK", 2, Algorithm::Aes128, None, false).unwrap();
    assert!(matches!(sa.export("MK_DF02", 4, "", "KEK", Some(2)), Err(Error::WrongState { .. })));
}

/// The store format of this release (`keymgmt-store/1`), made by the README's commands with its
/// example files plus `derive-region --name UKMF --version 1 --region 371700`: later releases
/// must still open it.
#[test]
fn store_format_v1_fixture_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.db"), &path).unwrap();
    let mut st = KeyStore::open(&path).unwrap();
    st.unlock_with_components(&kbpk_components()).unwrap();
    assert_eq!(st.kbpk_kcv().unwrap(), "7672FC");
    let recs = st.list().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].kcv.as_str(), recs[1].region.as_str()), ("2677F4", "371700"));
    let f = hex::decode("0123456789ABCDEF").unwrap();
    assert_eq!(st.derive_kcv("UKMF", 1, "371700", &f).unwrap().to_string(), "32CC68");
    assert_eq!(st.audit_verify().unwrap().unsealed, 0);
    drop(st);
    reopen(&path).audit_verify().unwrap();
}

/// Issue 15 §4: a batch's region cache gives the same card keys as the store per call, unwraps each region once,
/// redacts its keys in `Debug`, and never serves a key the store no longer selects: a rotation between batches,
/// and one in the middle of a batch, is picked up.
#[test]
fn region_cache_serves_per_batch_and_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    store.generate_profile_keys(Algorithm::Sm4, 1, true).unwrap();
    let cf = |i: u8| [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, i];
    let same = |a: &key_mgmt::CardKeySet, b: &key_mgmt::CardKeySet| {
        assert_eq!(a.len(), b.len());
        for (name, e) in a.iter() {
            let f = b.get(name).unwrap();
            assert_eq!((e.version, e.key.expose_secret()), (f.version, f.key.expose_secret()), "{name}");
        }
    };

    // batch 1: three cards of one region, one of another: two region sets unwrapped
    let mut batch = store.region_cache(VersionSelect::Active).unwrap();
    for i in 0..3 {
        same(
            &batch.card_keys(&store, "371700", &cf(i)).unwrap(),
            &store.card_keys("371700", &cf(i), &VersionSelect::Active).unwrap(),
        );
    }
    batch.card_keys(&store, "110100", &cf(9)).unwrap();
    assert_eq!((batch.loads(), batch.cached_regions()), (2, 2));
    // Debug names regions and versions, never a key
    let shown = format!("{batch:?}");
    let region_ukmf = store.region_keys("371700").unwrap();
    let secret = hex::encode_upper(region_ukmf.get("UKMF").unwrap().key.expose_secret());
    assert!(shown.contains("371700") && shown.contains("<redacted>"), "{shown}");
    assert!(!shown.to_uppercase().contains(&secret), "a key in Debug: {shown}");
    assert_eq!(batch.card_keys(&store, "371700", &cf(0)).unwrap().get("UKMF").unwrap().version, 1);
    // the batch ends: the handle is consumed, its keys dropped (CardKey zeroizes on drop)
    batch.end();

    // between batches UKMF rotates to version 2: the next batch picks it up
    assert_eq!(store.rotate("UKMF").unwrap().version, 2);
    let mut batch = store.region_cache(VersionSelect::Active).unwrap();
    let k = batch.card_keys(&store, "371700", &cf(0)).unwrap();
    assert_eq!(k.get("UKMF").unwrap().version, 2);
    same(&k, &store.card_keys("371700", &cf(0), &VersionSelect::Active).unwrap());
    assert_eq!(batch.loads(), 1);

    // in the middle of a batch: STK_DF01 rotates; the stamp changed, so the cache drops its sets and loads again
    let stamp = batch.stamp().to_owned();
    assert_eq!(store.rotate("STK_DF01").unwrap().version, 2);
    let k = batch.card_keys(&store, "371700", &cf(1)).unwrap();
    assert_ne!(batch.stamp(), stamp);
    assert_eq!((k.get("STK_DF01").unwrap().version, k.get("UKMF").unwrap().version), (2, 2));
    same(&k, &store.card_keys("371700", &cf(1), &VersionSelect::Active).unwrap());
    assert_eq!(batch.loads(), 2);

    // a cache of another selection serves that selection only
    let pinned = VersionSelect::Exact(BTreeMap::from([("UKMF".to_string(), 1)]));
    let mut old = store.region_cache(pinned.clone()).unwrap();
    assert_eq!(old.card_keys(&store, "371700", &cf(2)).unwrap().get("UKMF").unwrap().version, 1);
    assert_eq!(old.select(), &pinned);
    old.clear();
    assert_eq!(old.cached_regions(), 0);
}
