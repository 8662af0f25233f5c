//! PIN verify / change / reload / unblock, application block / unblock: every failure.

use card_core::national;
use card_core::security::NoKeys;
use card_core::Error;
use secrecy::SecretString;

use super::common::*;

fn pin(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[test]
fn verify_wrong_tries_then_blocked_then_reload() {
    for (gen, right) in [(2, "123456"), (3, "654321")] {
        let mut c = card(gen, true);
        c.verify_pin(&pin(right)).unwrap();
        for left in [2u8, 1, 0] {
            let err = c.verify_pin(&pin("000000")).unwrap_err();
            assert!(matches!(err, Error::WrongPin { tries_left } if tries_left == left), "{err:?}");
            assert_eq!(national::code(&err), -51);
        }
        let err = c.verify_pin(&pin(right)).unwrap_err();
        assert!(matches!(err, Error::PinBlocked), "{err:?}");
        assert_eq!(national::code(&err), -52);
        // reload needs RLK
        assert!(matches!(c.reload_pin(&NoKeys, &pin("111111")), Err(Error::MissingKey { key }) if key == "RLK"));
        c.reload_pin(&keys(), &pin("111111")).unwrap();
        c.verify_pin(&pin("111111")).unwrap();
    }
}

#[test]
fn change_with_wrong_old_pin_then_right() {
    let mut c = card(2, true);
    let err = c.change_pin(&pin("999999"), &pin("222222")).unwrap_err();
    assert!(matches!(err, Error::WrongPin { tries_left: 2 }), "{err:?}");
    c.change_pin(&pin("123456"), &pin("222222")).unwrap();
    assert!(matches!(c.verify_pin(&pin("123456")), Err(Error::WrongPin { tries_left: 2 })));
    c.verify_pin(&pin("222222")).unwrap();
    assert!(matches!(c.verify_pin(&pin("12a456")), Err(Error::BadParameter(_))));
    assert!(matches!(c.verify_pin(&pin("12")), Err(Error::BadParameter(_))));
}

#[test]
fn unblock_with_puk() {
    for (gen, right) in [(2, "123456"), (3, "654321")] {
        let mut c = card(gen, true);
        for _ in 0..3 {
            let _ = c.verify_pin(&pin("000000"));
        }
        assert!(matches!(c.verify_pin(&pin(right)), Err(Error::PinBlocked)));
        assert!(matches!(c.unblock_pin(&NoKeys, &pin("333333")), Err(Error::MissingKey { key }) if key == "PUK"));
        c.unblock_pin(&keys(), &pin("333333")).unwrap();
        c.verify_pin(&pin("333333")).unwrap();
    }
}

#[test]
fn wrong_puk_is_a_mac_error() {
    let mut c = card(2, true);
    let region = card_core::codec::RegionCode::parse("371700").unwrap();
    let wrong = card_core::security::LocalKeys::new(region)
        .with_key("PUK", card_core::crypto::CardKey::new(card_core::crypto::Algorithm::Tdes, &[3; 16]).unwrap());
    let err = c.unblock_pin(&wrong, &pin("333333")).unwrap_err();
    assert!(matches!(err, Error::Card(sw) if sw.0 == 0x9302), "{err:?}");
    assert_eq!(national::code(&err), -0x9302);
}

#[test]
fn application_block_and_unblock() {
    for gen in [2, 3] {
        let mut c = card(gen, true);
        let addr = "DF01EF05|20|$".parse().unwrap();
        c.read_items(&NoKeys, &addr, None).unwrap();
        c.block_application(&keys(), "DF01").unwrap();
        let err = c.read_items(&NoKeys, &addr, None).unwrap_err();
        assert_eq!(national::code(&err), -0x6A81, "{err:?}");
        assert!(matches!(c.unblock_application(&NoKeys, "DF01"), Err(Error::MissingKey { key }) if key == "STK_DF01"));
        c.unblock_application(&keys(), "DF01").unwrap();
        c.read_items(&NoKeys, &addr, None).unwrap();
    }
}
