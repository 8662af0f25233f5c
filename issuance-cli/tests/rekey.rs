//! In-process `rekey` on card-sim: issued cards get the store's new UKMF and SSSE MK versions with secure
//! WRITE KEY under the old MK; GET DATA shows them, the new UKMF authenticates, the journal records them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use card_core::crypto::Algorithm;
use card_core::profile::{Generation, Profile};
use card_core::transport::Transport;
use card_sim::SimTransport;
use issuance::cos::{authenticate, select_aid, CosAdapter, ReferenceCos};
use issuance::prepare::{KeySource, Settings};
use issuance::rekey::Rekeyed;
use issuance::run::{chip_of, Issuer};
use key_mgmt::KeyStore;

fn rekey_one(g: u8) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    common::make_store(&path);
    let keys = common::key_source(&path);
    let journal = common::fresh_journal();
    let gen = Generation::new(g).unwrap();
    let holders = common::sample(gen);
    let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
    let issuer = Issuer::reference(&keys, &journal, Settings::new(gen));
    let mut sim = SimTransport::new(common::blank(g, 0x1122_3344_5566_7788));
    let (id, _) = issuer.issue(&mut sim, &holders[0], Some(batch)).unwrap();
    let (_, none) = issuer.rekey_card(&mut sim).unwrap();
    assert!(none.is_empty(), "an up-to-date card is left alone");

    // new versions in the store: SM4 keys rotate (v2 → v3); the 3DES card's keys get a 3DES v3
    let mut store = KeyStore::open(&path).unwrap();
    store.unlock_with_passphrase(common::PASSPHRASE.as_bytes()).unwrap();
    for name in ["UKMF", "MK"] {
        if g == 3 {
            assert_eq!(store.rotate(name).unwrap().version, 3);
        } else {
            store.generate(name, 3, Algorithm::Tdes, None, true).unwrap();
        }
    }
    let old = if g == 3 { 2 } else { 1 };

    let (row, done) = issuer.rekey_card(&mut sim).unwrap();
    let r = |name: &str| Rekeyed { df: "SSSE".into(), name: name.into(), from: old, to: 3 };
    assert_eq!(done, vec![r("UKMF"), r("MK")], "MK last");
    let versions: BTreeMap<String, u8> = serde_json::from_str(&row.key_versions).unwrap();
    assert_eq!((versions["UKMF"], versions["MK"], versions["IRK"]), (3, 3, old));
    assert_eq!(journal.card(id).unwrap().key_versions, row.key_versions);

    // the card: GET DATA key info shows the new versions, the new card keys authenticate
    let chip = chip_of(&sim).unwrap();
    let new = keys.card_keys(&row.region, &chip, issuance::prepare::algorithm_of(gen)).unwrap();
    let ssse = Profile::builtin().df("SSSE").unwrap().aid.clone().unwrap();
    {
        let mut tx = sim.transaction().unwrap();
        select_aid(&mut *tx, &ssse).unwrap();
        let info = ReferenceCos.key_info(&mut *tx).unwrap();
        let version = |kid: u8| info.iter().find(|i| i[0] == kid).unwrap()[1];
        assert_eq!((version(0x00), version(0x04), version(0x01)), (3, 3, old));
        authenticate(&mut *tx, 0x04, new.get("UKMF").unwrap().0).unwrap();
        authenticate(&mut *tx, 0x00, new.get("MK").unwrap().0).unwrap();
    }
    // and the card still verifies against the journal with the new keys
    issuer.verify_card(&mut sim).unwrap();
    let (_, again) = issuer.rekey_card(&mut sim).unwrap();
    assert!(again.is_empty());
}

#[test]
fn gen2_card_is_rekeyed() {
    rekey_one(2);
}

#[test]
fn gen3_card_is_rekeyed() {
    rekey_one(3);
}

/// `issuance rekey --reader R` through pcscd: the issued card in the reader gets the rotated keys; `--json`
/// names each key replaced (MK last) and the journal's versions; a second run has nothing to do; the card
/// verifies with the new keys; a card that is not issued is refused (exit 2).
#[test]
fn cli_rekeys_the_card_in_the_reader() {
    use testkit::{vpcd_lock, Reader0, READER};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    common::setup(dir.path());
    let keys = common::key_source(&path);
    let journal = common::journal(dir.path());
    let holders = common::sample(Generation::THREE);
    let batch = journal.new_batch("sample.csv", 3, &holders).unwrap();
    let issuer = Issuer::reference(&keys, &journal, Settings::new(Generation::THREE));
    let mut sim = SimTransport::new(common::blank(3, 0x0C11_0000));
    let (id, _) = issuer.issue(&mut sim, &holders[2], Some(batch)).unwrap();
    drop(keys);
    let mut store = KeyStore::open(&path).unwrap();
    store.unlock_with_passphrase(common::PASSPHRASE.as_bytes()).unwrap();
    for name in ["UKMF", "MK"] {
        assert_eq!(store.rotate(name).unwrap().version, 3);
    }
    drop(store);

    let cli = |args: &[&str]| common::issuance(dir.path()).args(args).output().unwrap();
    let _lock = vpcd_lock();
    let card = Reader0::insert(sim);
    let o = cli(&["--json", "rekey", "--reader", READER]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let done: Vec<(String, String, u64, u64)> = v["rekeyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            (s("df"), s("name"), r["from"].as_u64().unwrap(), r["to"].as_u64().unwrap())
        })
        .collect();
    let r = |n: &str| ("SSSE".to_owned(), n.to_owned(), 2, 3);
    assert_eq!(done, vec![r("UKMF"), r("MK")], "MK last");
    let versions: BTreeMap<String, u8> = serde_json::from_str(&journal.card(id).unwrap().key_versions).unwrap();
    assert_eq!((versions["UKMF"], versions["MK"], versions["IRK"]), (3, 3, 2));

    // again: nothing to do (text output says so)
    let o = cli(&["rekey", "--reader", READER]);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("already at the active versions"), "{o:?}");
    // the card verifies against the journal with its new keys
    let o = cli(&["--json", "verify", "--reader", READER]);
    assert!(o.status.success(), "{o:?}");

    // a cancelled card is not rekeyed
    journal.set_state(id, "cancelled", Some("test")).unwrap();
    assert_eq!(cli(&["rekey", "--reader", READER]).status.code(), Some(2));
    drop(card.remove());
}
