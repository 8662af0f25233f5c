//! No input makes the card panic.

use super::host::*;
use card_sim::KeyAlgorithm;
use proptest::prelude::*;

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn random_apdus_seeded() {
    let mut c = personalized(KeyAlgorithm::Tdes);
    let before = c.card.to_image();
    let mut seed = 7u64;
    let classes = [0x00u8, 0x04, 0x80, 0x84, 0xFF];
    let inss = [
        0xA4u8, 0xB2, 0xB0, 0xDC, 0xD6, 0xE2, 0x84, 0x82, 0x88, 0x20, 0x5E, 0x24, 0x1E, 0x18, 0x16, 0xCA, 0xC0, 0xE0,
        0xD4, 0x0E, 0xEA, 0x00,
    ];
    for i in 0..20_000 {
        let len = (lcg(&mut seed) % 40) as usize;
        let mut apdu: Vec<u8> = (0..len).map(|_| lcg(&mut seed) as u8).collect();
        if apdu.len() >= 2 {
            apdu[0] = classes[(lcg(&mut seed) % 5) as usize];
            apdu[1] = inss[(lcg(&mut seed) % inss.len() as u64) as usize];
        }
        if apdu.len() >= 5 && i % 2 == 0 {
            apdu[4] = (apdu.len() - 5) as u8; // a well-formed Lc half of the time
        }
        let r = c.card.process(&apdu);
        assert!(r.len() >= 2);
        if i % 1000 == 0 {
            c.card.reset();
            // half of the blocks run in SSSE, after one wrong VERIFY there (a try counter that must change)
            if i % 2000 == 0 {
                assert_eq!(c.select_aid(SSSE_AID), 0x9000);
                let r = c.card.process(&[0x00, 0x20, 0x00, 0x00, 0x03, 0x99, 0x99, 0x99]);
                assert_ne!(r[r.len() - 2..], [0x90, 0x00], "a wrong PIN was accepted");
            }
        }
    }
    // random bytes cannot authenticate, so at most try counters changed; the card still answers
    c.card.reset();
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    let after_text = c.card.to_image();
    let after = card_sim::Card::from_image(&after_text).unwrap();
    assert_eq!(after.mf().fid, 0x3F00);
    assert!(before.len() > 1000);
    // the persistent state differs from the start in try counters only: the images compared with every
    // `tries_left` (keys' and PINs') set aside, and the counters that changed can only have gone down
    let (mut counters_before, mut counters_after) = (Vec::new(), Vec::new());
    let before_rest = without_try_counters(image(&before), "", &mut counters_before);
    let after_rest = without_try_counters(image(&after_text), "", &mut counters_after);
    assert_eq!(before_rest, after_rest, "random APDUs changed more than try counters");
    assert_eq!(counters_before.len(), counters_after.len());
    let mut changed = 0;
    for ((path, b), (path_after, a)) in counters_before.iter().zip(&counters_after) {
        assert_eq!(path, path_after);
        assert!(a <= b, "{path}: tries_left went up from {b} to {a}");
        changed += usize::from(a != b);
    }
    // the comparison has something to set aside: the wrong VERIFYs spent the PIN's tries
    assert!(changed > 0, "no try counter changed: the wrong VERIFYs did not reach the PIN");
}

fn image(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// `v` with every `tries_left` removed; the removed ones are appended to `counters` as (path, value).
fn without_try_counters(v: serde_json::Value, path: &str, counters: &mut Vec<(String, u64)>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| {
                    let here = format!("{path}/{k}");
                    if k == "tries_left" {
                        counters.push((here, v.as_u64().unwrap()));
                        None
                    } else {
                        Some((k, without_try_counters(v, &here, counters)))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| without_try_counters(v, &format!("{path}/{i}"), counters))
                .collect(),
        ),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn any_bytes_get_a_status_word(apdu in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut c = blank(KeyAlgorithm::Sm4, 3);
        let r = c.card.process(&apdu);
        prop_assert!(r.len() >= 2);
    }
}
