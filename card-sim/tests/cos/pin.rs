//! VERIFY, CHANGE, RELOAD, UNBLOCK PIN.

use super::host::*;
use card_core::crypto::line_mac_zero_iv;

#[test]
fn verify_counts_down_and_blocks() {
    for mut c in both() {
        assert_eq!(c.sw("0020000000"), 0x6A88); // MF: no PIN
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.sw("00200000"), 0x63C3); // tries left
        assert_eq!(c.verify("654321"), 0x63C2);
        assert_eq!(c.verify(PIN), 0x9000); // restores the tries
        assert_eq!(c.sw("00200000"), 0x9000); // verified
        assert_eq!(c.verify("000000"), 0x63C2);
        assert_eq!(c.verify("000000"), 0x63C1);
        assert_eq!(c.verify("000000"), 0x63C0);
        assert_eq!(c.verify(PIN), 0x6983);
        assert_eq!(c.sw("00200000"), 0x6983);
        assert_eq!(c.sw("0020000009 112233445566778899"), 0x6700);
        assert_eq!(c.sw("0020000103 123456"), 0x6A86);
        assert_eq!(c.sw("8020000003 123456"), 0x6E00);
    }
}

#[test]
fn change_pin() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.sw(&format!("805E010007{PIN}FF111111")), 0x9000);
        assert_eq!(c.verify(PIN), 0x63C2);
        assert_eq!(c.verify("111111"), 0x9000);
        assert_eq!(c.sw("805E010007999999FF222222"), 0x63C2); // wrong old PIN
        assert_eq!(c.sw("805E010006111111222222"), 0x6A80); // no separator
        assert_eq!(c.sw("805E010002 1111"), 0x6700);
        assert_eq!(c.sw("805E020007111111FF222222"), 0x6A86);
        assert_eq!(c.sw("805E010107111111FF222222"), 0x6A86);
        assert_eq!(c.sw("005E010007111111FF222222"), 0x6E00);
    }
}

#[test]
fn reload_pin() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        for _ in 0..3 {
            c.verify("000000");
        }
        assert_eq!(c.verify(PIN), 0x6983);
        let new = h("888888");
        let mac = line_mac_zero_iv(&c.key(&key_value(1, RLK)), &new);
        let apdu = [&h("805E000007")[..], &new, &mac].concat();
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.verify("888888"), 0x9000);
        let mut bad = apdu.clone();
        *bad.last_mut().unwrap() ^= 0xFF;
        assert_eq!(c.send(&bad).1, 0x9302);
        assert_eq!(c.sw("805E000004 11223344"), 0x6700);
    }
}

#[test]
fn unblock_pin() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        for _ in 0..3 {
            c.verify("000000");
        }
        assert_eq!(c.verify(PIN), 0x6983);
        let puk = key_value(1, PUK);
        let apdu = c.enc_mac_apdu([0x84, 0x24, 0x00, 0x00], &h(PIN), &puk);
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.verify(PIN), 0x9000);
        // replay
        assert_eq!(c.send(&apdu).1, 0x6984);
        // wrong MAC (under STK instead of PUK)
        let bad = c.enc_mac_apdu([0x84, 0x24, 0x00, 0x00], &h(PIN), &key_value(1, STK));
        assert_eq!(c.send(&bad).1, 0x9302);
        // right MAC over garbage that does not decrypt to Ld ‖ PIN ‖ pad
        let garbage = vec![0x5A; c.alg.block_len()];
        let apdu = c.mac_apdu([0x84, 0x24, 0x00, 0x00], &garbage, &puk);
        assert_eq!(c.send(&apdu).1, 0x6988);
        assert_eq!(c.sw("8424000004 11223344"), 0x6700);
        assert_eq!(c.sw("8424000104 11223344"), 0x6A86);
        assert_eq!(c.sw("0424000010 11223344112233441122334411223344"), 0x6E00);
    }
}
