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
        }
    }
    // random bytes cannot authenticate, so at most try counters changed; the card still answers
    c.card.reset();
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    let after = card_sim::Card::from_image(&c.card.to_image()).unwrap();
    assert_eq!(after.mf().fid, 0x3F00);
    assert!(before.len() > 1000);
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
