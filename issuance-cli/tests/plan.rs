//! Plans from the built-in profile, generation 2 and 3: content, order, and no secrets in the JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use card_core::crypto::CardKey;
use card_core::profile::{Generation, Profile};
use issuance::plan::{self, Step};
use issuance::prepare::{algorithm_of, prepare, CardKeys, Settings};

fn plan_of(g: Generation) -> plan::Plan {
    let alg = algorithm_of(g);
    let mut keys = BTreeMap::new();
    for d in key_mgmt::inventory::key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
        keys.insert(d.name, (CardKey::from_array(alg, [0x3C; 16]), 7));
    }
    let keys = CardKeys::new(keys, (CardKey::from_array(alg, [0x3C; 16]), 1));
    let holders = common::sample(g);
    let card = prepare(&holders[3], 42, &Settings::new(g)).unwrap();
    plan::build(Profile::builtin(), &card, &keys, None).unwrap()
}

fn has_key(p: &plan::Plan, name: &str) -> bool {
    p.steps.iter().any(|s| matches!(s, Step::WriteKey { key, .. } if key.name == name))
}

#[test]
fn generation_2_and_3_plans_follow_the_profile() {
    for g in [Generation::TWO, Generation::THREE] {
        let p = plan_of(g);
        assert_eq!(p.steps.first(), Some(&Step::SelectMf));
        assert_eq!(p.steps.last(), Some(&Step::EndPersonalization));
        assert!(has_key(&p, "MK_MF") && has_key(&p, "IRK") && has_key(&p, "UK_DF01"));
        assert_eq!(has_key(&p, "RKSSSE"), g == Generation::THREE);
        // EF06 record 3 is the name extension (4E) on generation 2 and later
        assert!(p
            .steps
            .iter()
            .any(|s| matches!(s, Step::WriteRecord { ef, record: 3, tag: 0x4E, .. } if ef == "EF06")));
        // the MF's MK is the last key written, after every DF
        let mf = p.steps.iter().position(|s| matches!(s, Step::WriteKey { key, .. } if key.name == "MK_MF")).unwrap();
        assert!(p.steps[..mf].iter().all(|s| !matches!(s, Step::WriteKey { df, .. } if df == "MF")));
        assert!(p.steps.len() > 90, "{} steps", p.steps.len());
        // each DF is selected once: the application DFs are created in SSSE while its MK is authenticated
        let selects: Vec<_> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Select { df, fid, kin, .. } => Some((df.as_str(), *fid, *kin)),
                _ => None,
            })
            .collect();
        // SSSE from the MF and DF01 from SSSE are children, each later DF a sibling of the one before: the
        // reference COS selects them all by FID
        let (c, s) = (plan::Kin::Child, plan::Kin::Sibling);
        let expected = [
            ("SSSE", 0xDDF1, c),
            ("DF01", 0xDF01, c),
            ("DF02", 0xDF02, s),
            ("DF03", 0xDF03, s),
            ("DF04", 0xDF04, s),
            ("DF07", 0xDF07, s),
        ];
        assert_eq!(selects, expected, "SSSE and the 5 application DFs");
        // what the run proves by itself (an authentication after the key's write): each DF's MK and SSSE's UKMF
        let proven = p.proven_keys();
        for (df, kid) in [("MF", 0), ("SSSE", 0), ("SSSE", 4), ("DF01", 0), ("DF07", 0)] {
            assert!(proven.contains(&(df.to_owned(), kid)), "{df} {kid:02X}");
        }
        assert_eq!(proven.len(), 8, "{proven:?}");
        // the floor: one APDU per writing step (no photo: no chunks)
        let floor = p.floor().unwrap();
        assert_eq!(floor.apdus as usize, p.steps.iter().filter(|s| s.writes()).count());
        assert_eq!(floor.apdus, if g == Generation::TWO { 76 } else { 77 });
    }
}

#[test]
fn plan_json_names_keys_and_pin_but_holds_neither() {
    let p = plan_of(Generation::THREE);
    let text = serde_json::to_string(&p).unwrap();
    assert!(!text.contains("3C3C3C3C") && !text.contains("3c3c3c3c"), "no key bytes");
    assert!(!text.contains("135790"), "no PIN");
    assert!(text.contains(r#""pin":"initial PIN of holder line 5""#));
    assert!(text.contains(r#""key":{"name":"UKMF","version":7}"#));
}

/// A key store as the README makes it: KBPK, the profile keys in 3DES v1 only, TRANSPORT. Returns its key
/// source; the passphrase is in `dir/pass.txt` for the CLI.
fn tdes_only_store(dir: &std::path::Path) -> issuance::prepare::StoreKeySource {
    use card_core::crypto::Algorithm;
    let c1 = zeroize::Zeroizing::new((1u8..=32).collect::<Vec<u8>>());
    let c2 = zeroize::Zeroizing::new((0u8..32).map(|i| i.wrapping_mul(7) ^ 0xA5).collect::<Vec<u8>>());
    let path = dir.join("keys.db");
    let (store, _) = key_mgmt::KeyStore::init(&path, &[c1, c2], Some(common::PASSPHRASE.as_bytes())).unwrap();
    store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap();
    let mask: Vec<u8> = (0u8..16).map(|i| i.wrapping_mul(13) ^ 0x5C).collect();
    let b = common::TRANSPORT.iter().zip(&mask).map(|(x, m)| x ^ m).collect::<Vec<u8>>();
    store
        .import_components(
            "TRANSPORT",
            1,
            Algorithm::Tdes,
            &[zeroize::Zeroizing::new(mask), zeroize::Zeroizing::new(b)],
            true,
        )
        .unwrap();
    std::fs::write(dir.join("pass.txt"), format!("{}\n", common::PASSPHRASE)).unwrap();
    common::key_source(&path)
}

/// Issue 17: generation 3 cards (SM4) from a store that holds only the 3DES v1 profile keys: refused before
/// anything is journalled or sent, with what the store holds and what to do; generation 2 works; once the SM4
/// set is generated at version 2 (beside the 3DES one), generation 3 works and uses it.
#[test]
fn generation_3_from_a_3des_store_says_what_to_do() {
    use card_core::crypto::Algorithm;
    use issuance::prepare::KeySource;
    use issuance::run::Issuer;

    let dir = tempfile::tempdir().unwrap();
    let keys = tdes_only_store(dir.path());
    let g3 = Generation::THREE;
    let holders = common::sample(g3);
    let set = keys.card_keys("371700", &[0; 8], Algorithm::Sm4).unwrap();
    let e = set.check(Profile::builtin(), g3).unwrap_err().to_string();
    assert!(
        e.contains("no active SM4 MK_MF in the key store (generation 3 cards use SM4; the store has MK_MF as 3DES v1, \
                    for generations 1–2): generate them with `keymgmt --store ")
            && e.contains(" generate-profile-keys --alg sm4 --version 2 --activate`, or issue generation 2 cards with `--generation 2`"),
        "{e}"
    );
    let card = prepare(&holders[0], 1, &Settings::new(g3)).unwrap();
    let e = plan::build(Profile::builtin(), &card, &set, None).err().unwrap().to_string();
    assert!(e.contains("no active SM4 ") && e.contains("--version 2 --activate"), "{e}");

    // issuing: refused before a card row is made or an APDU sent
    let journal = common::fresh_journal();
    let batch = journal.new_batch("sample.csv", 3, &holders).unwrap();
    let mut sim = card_sim::SimTransport::new(common::blank(3, 0x4242));
    let issuer = Issuer::reference(&keys, &journal, Settings::new(g3));
    let e = issuer.issue(&mut sim, &holders[0], Some(batch)).err().unwrap();
    assert!(matches!(e, issuance::Error::Keys(_)), "{e}");
    assert!(journal.cards().unwrap().is_empty());
    assert_eq!(sim.apdu_count(), 0);

    // generation 2 cards: the 3DES keys
    assert!(keys
        .card_keys("371700", &[0; 8], Algorithm::Tdes)
        .unwrap()
        .check(Profile::builtin(), Generation::TWO)
        .is_ok());

    // the CLI: `plan` with the default generation 3 says what to do (exit 6, key store); `--generation 2` works
    let plan_cli = |extra: &[&str]| {
        common::issuance(dir.path())
            .args(["plan", "--holder-line", "2", "--holders"])
            .arg(common::fixture("holders/sample.csv"))
            .args(extra)
            .output()
            .unwrap()
    };
    let o = plan_cli(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("no active SM4 MK in the key store (generation 3 cards use SM4; the store has MK as 3DES v1, for generations 1–2)"), "{err}");
    assert!(err.contains("generate-profile-keys --alg sm4 --version 2 --activate"), "{err}");
    assert!(err.contains("--generation 2"), "{err}");
    assert!(!err.contains(common::PASSPHRASE), "{err}");
    let o = plan_cli(&["--generation", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the plan's floor after its steps (issue 15 §4)
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("\nfloor: 76 state-changing APDUs, 1459 bytes, 76 EEPROM pages, 2.17 s modeled card time"),
        "{text}"
    );
    // `personalize` refuses before it makes a batch or waits for a card
    let o = common::issuance(dir.path())
        .args(["personalize", "--reader", "no such reader", "--holders"])
        .arg(common::fixture("holders/sample.csv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--version 2 --activate"));
    assert_eq!(common::journal(dir.path()).last_batch().unwrap(), None);

    // the SM4 set at version 2, beside the 3DES v1 set: generation 3 plans use it, generation 2 the 3DES v1
    let mut store = key_mgmt::KeyStore::open(&dir.path().join("keys.db")).unwrap();
    store.unlock_with_passphrase(common::PASSPHRASE.as_bytes()).unwrap();
    assert_eq!(store.generate_profile_keys(Algorithm::Sm4, 2, true).unwrap().len(), 28);
    drop(store);
    let o = plan_cli(&["--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(r#""name": "MK_MF","#));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let versions: Vec<u64> = v["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["key"]["name"] != "TRANSPORT")
        .filter_map(|s| s["key"]["version"].as_u64())
        .collect();
    assert!(!versions.is_empty() && versions.iter().all(|v| *v == 2), "{versions:?}");
    assert_eq!(
        (&v["floor"]["apdus"], &v["floor"]["bytes"], &v["floor"]["eeprom_pages"], &v["floor"]["modeled_us"]),
        (&serde_json::json!(77), &serde_json::json!(1486), &serde_json::json!(77), &serde_json::json!(2_206_600))
    );
    let o = plan_cli(&["--json", "--generation", "2"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["plan"]["steps"].as_array().unwrap().iter().filter_map(|s| s["key"]["version"].as_u64()).all(|v| v == 1));
}
