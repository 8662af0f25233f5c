//! Personalization lifecycle, APPLICATION BLOCK/UNBLOCK, CARD BLOCK, ERASE DF, secure WRITE KEY.

use super::host::*;
use card_sim::{KeyAlgorithm, Lifecycle};

#[test]
fn blank_card_needs_the_transport_key() {
    for alg in [KeyAlgorithm::Tdes, KeyAlgorithm::Sm4] {
        let mut c = blank(alg, gen_of(alg));
        assert_eq!(c.card.lifecycle(), Lifecycle::Blank);
        assert_eq!(c.create(0xDDF1, &h("38")), 0x6982);
        assert_eq!(c.write_key(MK, T_MK, 1, 15, &key_value(0, MK)), 0x6982);
        assert_eq!(c.sw("80EA000000"), 0x6985); // nothing to end yet
        assert_eq!(c.ext_auth(MK, &key_value(0, 0)), 0x63CE);
        assert_eq!(c.ext_auth(MK, &TRANSPORT_KEY), 0x9000);
        assert_eq!(c.create(0xDDF1, &h("38")), 0x9000);
        assert_eq!(c.card.lifecycle(), Lifecycle::Personalizing);
        // CREATE FILE errors
        assert_eq!(c.create(0xDDF1, &h("38")), 0x6A89);
        assert_eq!(c.create(0x3F00, &h("38")), 0x6A80);
        assert_eq!(c.create(0xEF01, &h("0501000000 10")), 0x6A80); // unknown type
        assert_eq!(c.create(0xEF01, &h("0120000000 10")), 0x6A80); // SFI 32
        assert_eq!(c.create(0xEF01, &h("0101000000 10")), 0x9000);
        assert_eq!(c.create(0xEF02, &h("0101000000 10")), 0x6A89); // SFI 1 again
        assert_eq!(c.create(0xEF03, &h("0103000080 00")), 0x6A80); // 32 KiB: over 7FFF
        assert_eq!(c.create(0xEF03, &h("0103000070 00")), 0x9000);
        assert_eq!(c.create(0xEF04, &h("0104000070 00")), 0x9000);
        assert_eq!(c.create(0xEF05, &h("0105000070 00")), 0x6A84); // EEPROM full
        assert_eq!(c.sw("80E0EF0600"), 0x6700);
        assert_eq!(c.sw("00E0EF060138"), 0x6E00);
        // WRITE KEY errors
        assert_eq!(c.sw("80D4020014 0101010F00000000000000000000000000000000"), 0x6A86);
        assert_eq!(c.sw("80D4010013 0101010F000000000000000000000000000000"), 0x6700);
        assert_eq!(c.sw("80D4010014 0901010F00000000000000000000000000000000"), 0x6A80); // type
        assert_eq!(c.sw("80D4010014 0101020F00000000000000000000000000000000"), 0x6A80); // SSF33
        assert_eq!(c.sw("80D4010014 01010110 00000000000000000000000000000000"), 0x6A80); // 16 tries
                                                                                          // ERASE DF (MF, MK authenticated): files go, the MK stays
        assert_eq!(c.sw("800E000000"), 0x9000);
        assert_eq!(c.select_fid(0xDDF1), 0x6A82);
        assert_eq!(c.create(0xDDF1, &h("38")), 0x9000);
        // END PERSONALIZATION: only in the MF, with its MK authenticated
        assert_eq!(c.select_fid(0xDDF1), 0x9000);
        assert_eq!(c.sw("80EA000000"), 0x6985);
        assert_eq!(c.select_fid(0x3F00), 0x9000);
        assert_eq!(c.sw("80EA000000"), 0x6982);
        assert_eq!(c.ext_auth(MK, &TRANSPORT_KEY), 0x9000);
        assert_eq!(c.sw("80EA010000"), 0x6A86);
        assert_eq!(c.sw("80EA000000"), 0x9000);
        assert_eq!(c.card.lifecycle(), Lifecycle::Personalized);
        assert_eq!(c.sw("80EA000000"), 0x6985);
    }
}

#[test]
fn after_end_personalization() {
    for mut c in both() {
        assert_eq!(c.card.lifecycle(), Lifecycle::Personalized);
        assert_eq!(c.ext_auth(MK, &key_value(0, MK)), 0x9000);
        assert_eq!(c.create(0xDDF2, &h("38")), 0x6985);
        assert_eq!(c.write_key(STK, T_STK, 1, 3, &key_value(0, STK)), 0x6985);
        // secure WRITE KEY under the DF's MK rotates a key (version 2) in SSSE
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let mk = key_value(1, MK);
        let new_ukmf = key_value(7, UKMF);
        let rec = [&[T_EXT, 0x02, c.alg.id(), 0x03][..], &new_ukmf].concat();
        let apdu = c.enc_mac_apdu([0x84, 0xD4, 0x01, UKMF], &rec, &mk);
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.ext_auth(UKMF, &key_value(1, UKMF)), 0x63C2);
        assert_eq!(c.ext_auth(UKMF, &new_ukmf), 0x9000);
        let info = c.send(h("80CA00C100")).0;
        assert!(info.chunks(4).any(|k| k == [UKMF, 2, c.alg.id(), 3]));
        // wrong MAC: 9302 and the MK's tries go down; replay: 6984
        assert_eq!(c.send(&apdu).1, 0x6984);
        let bad = c.enc_mac_apdu([0x84, 0xD4, 0x01, UKMF], &rec, &key_value(1, STK));
        assert_eq!(c.send(&bad).1, 0x9302);
        let info = c.send(h("80CA00C100")).0;
        assert!(info.chunks(4).any(|k| k == [MK, 1, c.alg.id(), 14]));
        // a record that decrypts wrong
        let apdu = c.mac_apdu([0x84, 0xD4, 0x01, UKMF], &vec![0x33; 2 * c.alg.block_len()], &mk);
        assert_eq!(c.send(&apdu).1, 0x6988);
        // ERASE DF after perso needs the MK
        assert_eq!(c.sw("800E000000"), 0x6982);
    }
}

#[test]
fn application_block_and_unblock() {
    for mut c in both() {
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        let stk = key_value(2, STK);
        let apdu = c.mac_apdu([0x84, 0x1E, 0x00, 0x00], &[], &stk);
        assert_eq!(c.send(&apdu).1, 0x9000);
        // in the blocked DF: everything but GET CHALLENGE and UNBLOCK answers 6A81
        assert_eq!(c.read_record(5, 1).1, 0x6A81);
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        assert_eq!(c.select_aid(DF01_AID), 0x6A81);
        assert_eq!(c.read_record(5, 1).1, 0x6A81);
        assert_eq!(c.select_fid(0xDF01), 0x6A81);
        c.card.reset();
        assert_eq!(c.select_aid(DF01_AID), 0x6A81);
        // unblock with a wrong MAC, then the right one
        let bad = c.mac_apdu([0x84, 0x18, 0x00, 0x00], &[], &key_value(2, MK));
        assert_eq!(c.send(&bad).1, 0x9302);
        let apdu = c.mac_apdu([0x84, 0x18, 0x00, 0x00], &[], &stk);
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert_eq!(c.read_record(5, 1).0, tlv(0x20, b"01"));
        assert_eq!(c.select_aid(DF01_AID), 0x9000);
        // errors
        assert_eq!(c.sw("841E000104 11223344"), 0x6A86);
        assert_eq!(c.sw("841E000005 1122334455"), 0x6700);
        assert_eq!(c.sw("841E000004 11223344"), 0x6984);
        assert_eq!(c.sw("041E000004 11223344"), 0x6E00);
        // DF02 has no... all DFs have an STK; MF has none: 9403
        assert_eq!(c.select_fid(0x3F00), 0x9000);
        let apdu = c.mac_apdu([0x84, 0x1E, 0x00, 0x00], &[], &stk);
        assert_eq!(c.send(&apdu).1, 0x9403);
    }
}

#[test]
fn blocking_ssse_blocks_its_applications() {
    let mut c = personalized(KeyAlgorithm::Sm4);
    assert_eq!(c.select_aid(SSSE_AID), 0x9000);
    let apdu = c.mac_apdu([0x84, 0x1E, 0x00, 0x00], &[], &key_value(1, STK));
    assert_eq!(c.send(&apdu).1, 0x9000);
    assert_eq!(c.select_aid(DF01_AID), 0x6A81);
    assert_eq!(c.select_aid(SSSE_AID), 0x6A81);
    let apdu = c.mac_apdu([0x84, 0x18, 0x00, 0x00], &[], &key_value(1, STK));
    assert_eq!(c.send(&apdu).1, 0x9000);
    assert_eq!(c.select_aid(DF01_AID), 0x9000);
}

#[test]
fn card_block_is_permanent() {
    for mut c in both() {
        assert_eq!(c.select_aid(SSSE_AID), 0x9000);
        let apdu = c.mac_apdu([0x84, 0x16, 0x00, 0x00], &[], &key_value(1, STK));
        assert_eq!(c.send(&apdu).1, 0x9000);
        assert!(c.card.is_card_blocked());
        assert_eq!(c.select_aid(SSSE_AID), 0x6A81);
        assert_eq!(c.sw("0084000008"), 0x6A81);
        c.card.power_off();
        c.card.power_on();
        assert_eq!(c.select_fid(0x3F00), 0x6A81);
        let image = c.card.to_image();
        let mut back = Host { card: card_sim::Card::from_image(&image).unwrap(), alg: c.alg };
        assert_eq!(back.select_fid(0x3F00), 0x6A81);
    }
}
