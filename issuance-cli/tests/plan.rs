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
        assert!(p.steps.len() > 100, "{} steps", p.steps.len());
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
