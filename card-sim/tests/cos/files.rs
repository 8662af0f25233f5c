//! SELECT, READ/UPDATE RECORD, APPEND RECORD, READ/UPDATE BINARY.

use super::host::*;
use card_sim::KeyAlgorithm;

#[test]
fn select_by_name_fid_and_fci() {
    for (mut c, g) in both().into_iter().zip([2, 3]) {
        let (fci, sw) = c.send(h(&format!("00A404000F{SSSE_AID}00")));
        assert_eq!(sw, 0x9000);
        // as a real card (byte for byte the public trace's 6F1C… on an SM4 card):
        // 6F 1C 84 0F AID A5 09 88 01 1E 9F0C 03 86 01 <algorithm> (CARD-PROFILE §4.2)
        let alg = if g == 3 { "03" } else { "01" };
        assert_eq!(fci, h(&format!("6F1C840F{SSSE_AID}A509 88011E 9F0C03 8601{alg}")));
        c.card.set_fci_spec_version(true);
        let (fci, _) = c.send(h(&format!("00A404000F{SSSE_AID}00")));
        assert_eq!(fci, h(&format!("6F21840F{SSSE_AID}A50E 88011E 9F0802 0{g}00 9F0C03 8601{alg}")));
        c.card.set_fci_algorithm(false);
        let (fci, _) = c.send(h(&format!("00A404000F{SSSE_AID}00")));
        assert_eq!(fci, h(&format!("6F1B840F{SSSE_AID}A508 88011E 9F0802 0{g}00")));
        c.card.set_fci_spec_version(false);
        let (fci, _) = c.send(h(&format!("00A404000F{SSSE_AID}00")));
        assert_eq!(fci, h(&format!("6F16840F{SSSE_AID}A503 88011E")));
        // an application DF (no DFs under it): no 88
        c.card.set_fci_algorithm(true);
        let (fci, _) = c.send(h("00A4040006D15600000500"));
        assert_eq!(fci, h(&format!("6F10 8406D15600000500 A506 9F0C03 8601{alg}")));
        c.card.set_fci_algorithm(true);
        assert_eq!(c.select_fid(0x3F00), 0x9000);
        // the MF, which has no AID: FID and life cycle
        let (fci, _) = c.send(h("00A40000023F00"));
        assert_eq!(fci, h("6F09A507 83023F00 8A0105"));
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.select_fid(0xDF01), 0x9000); // child of SSSE
        assert_eq!(c.select_fid(0xDF02), 0x9000); // sibling
        assert_eq!(c.select_fid(0xDDF1), 0x9000); // parent
        assert_eq!(c.sw("00A4020002EF05"), 0x9000); // EF under the current DF
        assert_eq!(c.sw("00A4020002DF01"), 0x6A82); // P1 02 is for EFs
        assert_eq!(c.select_fid(0x3F00), 0x9000);
        assert_eq!(c.select_fid(0xEF05), 0x6A82);
        assert_eq!(c.select_aid("D156000005FF"), 0x6A82);
        assert_eq!(c.sw("00A4000C023F00"), 0x9000);
        // wrong P1/P2, length, CLA
        assert_eq!(c.sw("00A4080002 3F00"), 0x6A86);
        assert_eq!(c.sw("00A4000402 3F00"), 0x6A86);
        assert_eq!(c.sw("00A40000033F0000"), 0x6700);
        assert_eq!(c.sw("00A4040004D1560000"), 0x6700);
        assert_eq!(c.sw("80A40000023F00"), 0x6E00);
        assert_eq!(c.sw("FFA40000023F00"), 0x6E00);
        assert_eq!(c.sw("0077000000"), 0x6D00);
        assert_eq!(c.sw("00A4"), 0x6700);
        assert_eq!(c.sw("00A4000005 3F00"), 0x6700); // Lc does not match
    }
}

#[test]
fn read_record_by_number_tag_and_all() {
    for mut c in both() {
        let g = c.card.generation();
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let recs = ef05_records(g);
        let (d, sw) = c.read_record(5, 3);
        assert_eq!((d, sw), (recs[2].clone(), 0x9000));
        // by tag: P2 = SFI<<3, P1 = tag
        let (d, sw) = c.send([0x00, 0xB2, 0x05, 0x05 << 3, 0x00]);
        assert_eq!((d, sw), (recs[4].clone(), 0x9000));
        assert_eq!(c.send([0x00, 0xB2, 0x55, 0x05 << 3, 0x00]).1, 0x6A83);
        // all from record 4 (P2 low bits 101), up to 6 on gen 3 (record 7 needs RKSSSE)
        if g == 3 {
            assert_eq!(c.send([0x00, 0xB2, 0x04, 0x05 << 3 | 5, 0x00]).1, 0x6982);
            assert_eq!(c.read_record(5, 7).1, 0x6982);
            assert_eq!(c.read_record(6, 1).1, 0x6982);
            assert_eq!(c.ext_auth(RKSSSE, &key_value(1, RKSSSE)), 0x9000);
            assert_eq!(c.read_record(6, 1).0, ef06_records()[0]);
        }
        let (d, sw) = c.send([0x00, 0xB2, 0x04, 0x05 << 3 | 5, 0x00]);
        assert_eq!((d, sw), (recs[3..].concat(), 0x9000));
        // a COS without "all from P1": 6A86, the other modes unchanged
        c.card.set_read_all(false);
        assert_eq!(c.send([0x00, 0xB2, 0x04, 0x05 << 3 | 5, 0x00]).1, 0x6A86);
        assert_eq!(c.read_record(5, 3).1, 0x9000);
        c.card.set_read_all(true);
        // the current EF (SFI 0) after the SFI read
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x04, 0x00]).0, recs[0]);
        // Le shorter than the record: truncated (T=1 behaviour)
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x2C, 0x04]).0, recs[0][..4].to_vec());
        // errors
        assert_eq!(c.read_record(5, 8).1, 0x6A83);
        assert_eq!(c.read_record(9, 1).1, 0x6A82);
        assert_eq!(c.send([0x00, 0xB2, 0x00, 0x2C, 0x00]).1, 0x6A86);
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x2E, 0x00]).1, 0x6A86);
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0xFC, 0x00]).1, 0x6A86); // SFI 31
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x2C, 0x01, 0xAA]).1, 0x6700);
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x3C, 0x00]).1, 0x6981); // EF07 is transparent
        assert_eq!(c.send([0x84, 0xB2, 0x01, 0x2C, 0x00]).1, 0x6E00);
    }
}

#[test]
fn no_current_ef() {
    let mut c = personalized(KeyAlgorithm::Tdes);
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    assert_eq!(c.send([0x00, 0xB2, 0x01, 0x04, 0x00]).1, 0x6A82);
    assert_eq!(c.send([0x00, 0xB0, 0x00, 0x00, 0x10]).1, 0x6A82);
}

#[test]
fn update_record_plain_needs_the_key() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let new = tlv(0x07, b"B00000027");
        assert_eq!(c.update_record(5, 7, &new), 0x6982);
        assert_eq!(c.ext_auth(UKMF, &key_value(1, UKMF)), 0x9000);
        assert_eq!(c.update_record(5, 7, &new), 0x9000);
        if c.card.generation() == 3 {
            assert_eq!(c.ext_auth(RKSSSE, &key_value(1, RKSSSE)), 0x9000);
        }
        assert_eq!(c.read_record(5, 7).0, new);
        // errors: record out of range, too long, not a TLV, wrong mode, wrong CLA
        assert_eq!(c.update_record(5, 8, &new), 0x6A83);
        assert_eq!(c.update_record(5, 0, &new), 0x6A83);
        assert_eq!(c.update_record(5, 7, &tlv(0x07, &[0x41; 19])), 0x6700);
        assert_eq!(c.update_record(5, 7, &[0x07, 0x05, 0x41]), 0x6A80);
        assert_eq!(c.send(h("00DC072C050701")).1, 0x6700); // Lc/data mismatch
        assert_eq!(c.send(h("00DC072A03070141")).1, 0x6A86);
        assert_eq!(c.send(h("80DC072C03070141")).1, 0x6E00);
        assert_eq!(c.send(h("00DC072C")).1, 0x6700);
    }
}

#[test]
fn update_record_line_protected() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let new = tlv(0x02, b"2");
        let stk = key_value(1, STK);
        let apdu = c.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &stk);
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.read_record(5, 2).0, new);
        // replayed: the challenge was used
        assert_eq!(c.send(&apdu).1, 0x6984);
        // no challenge at all
        assert_eq!(c.send(h("04DC022C07020132AABBCCDD")).1, 0x6984);
        // wrong MAC: 9302, STK tries go down (3 → 2 → 1 → 0, then blocked)
        let mut bad = c.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &stk);
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(c.send(&bad).1, 0x9302);
        let good = c.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &stk);
        assert_eq!(c.send(&good).1, 0x9000); // success restores the tries
        for _ in 0..3 {
            let mut bad = c.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &stk);
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(c.send(&bad).1, 0x9302);
        }
        let good = c.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &stk);
        assert_eq!(c.send(&good).1, 0x6983);
        // a MAC under the wrong key
        let mut d = personalized(c.alg);
        assert_eq!(d.select_aid(SSSE_AID), 0x9000);
        let wrong = d.mac_apdu([0x04, 0xDC, 0x02, 0x2C], &new, &key_value(1, UKMF));
        assert_eq!(d.send(&wrong).1, 0x9302);
    }
}

#[test]
fn pin_protected_ef_in_df01() {
    for mut c in both() {
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.read_record(5, 1).0, tlv(0x20, b"01"));
        assert_eq!(c.read_record(6, 1).1, 0x6982);
        assert_eq!(c.verify(PIN), 0x9000); // the PIN of SSSE
        assert_eq!(c.read_record(6, 1).0, tlv(0x23, b"secret"));
        // DF change clears the security state
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.read_record(6, 1).1, 0x6982);
        // reset clears it too
        assert_eq!(c.verify(PIN), 0x9000);
        c.card.reset();
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.read_record(6, 1).1, 0x6982);
        // and power-off
        assert_eq!(c.verify(PIN), 0x9000);
        c.card.power_off();
        c.card.power_on();
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.read_record(6, 1).1, 0x6982);
        // selecting an EF keeps the state
        assert_eq!(c.verify(PIN), 0x9000);
        assert_eq!(c.sw("00A4020002EF05"), 0x9000);
        assert_eq!(c.read_record(6, 1).1, 0x9000);
    }
}

#[test]
fn binary_read_and_update() {
    for mut c in both() {
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        assert_eq!(c.send(h("00B0960010")), (vec![0; 16], 0x9000)); // SFI 16, offset 0
        assert_eq!(c.sw("00D6960003010203"), 0x6982);
        assert_eq!(c.ext_auth(UKMF, &key_value(2, UKMF)), 0x9000);
        assert_eq!(c.sw("00D6960103010203"), 0x9000);
        assert_eq!(c.send(h("00B0000004")).0, h("00010203")); // current EF, offset 0
        assert_eq!(c.send(h("00B0012600")).0, h("0000")); // last 2 bytes (size 0x128)
        assert_eq!(c.sw("00B0012800"), 0x6B00);
        assert_eq!(c.sw("00D601270200FF"), 0x6700);
        assert_eq!(c.sw("00D601280100"), 0x6B00);
        assert_eq!(c.sw("00B0E00000"), 0x6A86); // SFI byte with bits 7-6 set
        assert_eq!(c.sw("00B0850000"), 0x6981); // SFI 5: DF01 EF05 is a record EF
        assert_eq!(c.sw("00B0800000"), 0x6A86);
        // line-protected
        let apdu = c.mac_apdu([0x04, 0xD6, 0x00, 0x10], &[9, 9], &key_value(2, STK));
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.send(h("00B0001002")).0, vec![9, 9]);
        // record command on a transparent EF, binary on a record EF
        assert_eq!(c.send([0x00, 0xB2, 0x01, 0x16 << 3 | 4, 0x00]).1, 0x6981);
        assert_eq!(c.sw("00A4020002EF05"), 0x9000);
        assert_eq!(c.sw("00B0000000"), 0x6981);
    }
}

#[test]
fn cyclic_records_newest_first() {
    for mut c in both() {
        assert_eq!(c.select_aid(DF02_AID), 0x9000);
        assert_eq!(c.read_record(7, 1).1, 0x6A83);
        assert_eq!(c.ext_auth(UKMF, &key_value(3, UKMF)), 0x9000);
        for i in 1..=5u8 {
            let rec = [&[0x00, 0xE2, 0x00, 0x38, 0x10][..], &[i; 16]].concat();
            assert_eq!(c.send(rec).1, 0x9000);
        }
        assert_eq!(c.read_record(7, 1).0, vec![5; 16]);
        assert_eq!(c.read_record(7, 4).0, vec![2; 16]);
        assert_eq!(c.read_record(7, 5).1, 0x6A83);
        let (all, _) = c.send([0x00, 0xB2, 0x01, 0x07 << 3 | 5, 0x00]);
        assert_eq!(all, [[5u8; 16], [4; 16], [3; 16], [2; 16]].concat());
        // UPDATE RECORD P1 00 appends, P1 n rewrites in place
        assert_eq!(c.send([&[0x00, 0xDC, 0x00, 0x3C, 0x10][..], &[6; 16]].concat()).1, 0x9000);
        assert_eq!(c.send([&[0x00, 0xDC, 0x02, 0x3C, 0x10][..], &[7; 16]].concat()).1, 0x9000);
        assert_eq!(c.read_record(7, 1).0, vec![6; 16]);
        assert_eq!(c.read_record(7, 2).0, vec![7; 16]);
        // fixed length
        assert_eq!(c.send([&[0x00, 0xE2, 0x00, 0x38, 0x0F][..], &[1; 15]].concat()).1, 0x6700);
        assert_eq!(c.send([&[0x00, 0xE2, 0x01, 0x38, 0x10][..], &[1; 16]].concat()).1, 0x6A86);
        // by tag makes no sense in a cyclic EF
        assert_eq!(c.send([0x00, 0xB2, 0x06, 0x07 << 3, 0x00]).1, 0x6A86);
    }
}

#[test]
fn mac_challenge_length_must_fit_the_algorithm() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let wrong_len = if c.alg == KeyAlgorithm::Tdes { 8 } else { 4 };
        c.challenge(wrong_len);
        assert_eq!(c.sw("04DC022C07020132AABBCCDD"), 0x6984);
    }
}

#[test]
fn extended_length_read_binary() {
    let mut c = personalized(KeyAlgorithm::Tdes);
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    // EF07 (SFI 7) is 0x400 bytes, free to read on a gen 2 card: one extended READ BINARY gets it all
    let (d, sw) = c.send(h("00B08700000400"));
    assert_eq!((d.len(), sw), (0x400, 0x9000));
    let (d, sw) = c.send(h("00B0010000 0000")); // Le 0000 = 65536: the rest from offset 0x100
    assert_eq!((d.len(), sw), (0x300, 0x9000));
}
