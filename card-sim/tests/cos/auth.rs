//! GET CHALLENGE, EXTERNAL and INTERNAL AUTHENTICATE, GET DATA key info.

use super::host::*;
use card_core::crypto::process_key;
use card_sim::KeyAlgorithm;

#[test]
fn get_challenge() {
    for mut c in both() {
        let (r1, sw) = c.send(h("0084000008"));
        assert_eq!((r1.len(), sw), (8, 0x9000));
        let (r2, _) = c.send(h("0084000008"));
        assert_ne!(r1, r2);
        assert_eq!(c.send(h("0084000004")).0.len(), 4);
        assert_eq!(c.sw("0084000010"), 0x6700);
        assert_eq!(c.sw("00840000"), 0x6700);
        assert_eq!(c.sw("0084010008"), 0x6A86);
        assert_eq!(c.sw("8084000008"), 0x6E00);
    }
}

#[test]
fn external_authenticate() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let ukmf = key_value(1, UKMF);
        assert_eq!(c.ext_auth(UKMF, &ukmf), 0x9000);
        // replayed: the challenge is single use
        let apdu = c.ext_auth_apdu(UKMF, &ukmf);
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.send(&apdu).1, 0x6984);
        // no challenge
        assert_eq!(c.send(&apdu).1, 0x6984);
        // a challenge consumed by another command in between
        let apdu = c.ext_auth_apdu(UKMF, &ukmf);
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.send(&apdu).1, 0x6984);
        // wrong length, P1, CLA, unknown key, a key that cannot authenticate (IRK)
        assert_eq!(c.sw("008200040811223344556677 88"), 0x6700);
        assert_eq!(c.sw("0082010410 00000000000000000000000000000000"), 0x6A86);
        assert_eq!(c.sw("8082000410 00000000000000000000000000000000"), 0x6E00);
        assert_eq!(c.ext_auth(0x0E, &ukmf), 0x6A88);
        assert_eq!(c.ext_auth(IRK, &key_value(1, IRK)), 0x6A88);
        // wrong key: 63C2, 63C1, 63C0, then blocked
        let wrong = key_value(9, 9);
        assert_eq!(c.ext_auth(UKMF, &wrong), 0x63C2);
        assert_eq!(c.ext_auth(UKMF, &wrong), 0x63C1);
        assert_eq!(c.ext_auth(UKMF, &wrong), 0x63C0);
        assert_eq!(c.ext_auth(UKMF, &ukmf), 0x6983);
        assert_eq!(c.ext_auth(UKMF, &wrong), 0x6983);
        // blocked survives reset
        c.card.reset();
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.ext_auth(UKMF, &ukmf), 0x6983);
        // 4-byte challenge is not enough
        c.challenge(4);
        assert_eq!(c.sw("0082000010 00000000000000000000000000000000"), 0x6984);
        assert_eq!(c.ext_auth(STK, &key_value(1, STK)), 0x6A88); // STK is not an authentication key
    }
}

#[test]
fn success_restores_key_tries() {
    let mut c = personalized(KeyAlgorithm::Sm4);
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    assert_eq!(c.ext_auth(UKMF, &key_value(9, 9)), 0x63C2);
    assert_eq!(c.ext_auth(UKMF, &key_value(1, UKMF)), 0x9000);
    assert_eq!(c.ext_auth(UKMF, &key_value(9, 9)), 0x63C2);
}

#[test]
fn internal_authenticate() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let r1 = [1, 2, 3, 4, 5, 6, 7, 8];
        let r2 = [9, 10, 11, 12, 13, 14, 15, 16];
        let expected = process_key(&c.key(&key_value(1, IRK)), &r1).cryptogram(&r2);
        let apdu = [&h("0088000010")[..], &r1, &r2, &[0x00]].concat();
        assert_eq!(c.send(&apdu), (expected.to_vec(), 0x9000));
        let apdu01 = [&h("0088000110")[..], &r1, &r2].concat();
        assert_eq!(c.send(&apdu01), (expected.to_vec(), 0x9000));
        assert_eq!(c.send([&h("0088000408")[..], &r1].concat()).1, 0x6700);
        assert_eq!(c.send([&h("0088010010")[..], &r1, &r2].concat()).1, 0x6A86);
        assert_eq!(c.send([&h("0088000410")[..], &r1, &r2].concat()).1, 0x6A88); // UKMF is not an IRK
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.send(&apdu).1, 0x6A88); // no IRK in DF01
    }
}

#[test]
fn get_data_key_info() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let alg = c.alg.id();
        assert_eq!(c.ext_auth(UKMF, &key_value(9, 9)), 0x63C2);
        let (d, sw) = c.send(h("80CA00C100"));
        assert_eq!(sw, 0x9000);
        let mut expected = vec![
            [MK, 1, alg, 15],
            [IRK, 1, alg, 3],
            [UKMF, 1, alg, 2],
            [PUK, 1, alg, 3],
            [STK, 1, alg, 3],
            [RLK, 1, alg, 3],
        ];
        if c.card.generation() == 3 {
            expected.push([RKSSSE, 1, alg, 3]);
        }
        assert_eq!(d, expected.concat());
        assert_eq!(c.sw("80CA00C200"), 0x6A88);
        assert_eq!(c.sw("00CA00C100"), 0x6E00);
    }
}
