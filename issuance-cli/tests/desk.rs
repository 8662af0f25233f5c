//! PIN services at the desk, through pcscd: `issuance unblock-pin` and `reload-pin` on the generation 3
//! fixture card, with a key store holding its PUK and RLK (the published SM4 test keys, imported from
//! components).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use card_core::card::SocialSecurityCard;
use card_core::crypto::Algorithm;
use card_core::transport::PcscTransport;
use card_core::Error;
use secrecy::SecretString;
use testkit::{reader, vpcd_lock, Reader0, READER};
use zeroize::Zeroizing;

/// The SM4 issuer test keys of `fixtures/cards/test-keys.toml` that PIN services need.
fn test_key(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(testkit::fixture("cards/test-keys.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    hex::decode(table["issuer"]["sm4"][name].as_str().unwrap()).unwrap()
}

fn store(dir: &Path) {
    let kbpk = [
        Zeroizing::new((0..32u8).map(|i| i ^ 0xA7).collect()),
        Zeroizing::new((0..32u8).map(|i| i.wrapping_mul(3).wrapping_add(1)).collect()),
    ];
    let (store, _) = key_mgmt::KeyStore::init(&dir.join("keys.db"), &kbpk, Some(b"desk pass")).unwrap();
    for name in ["PUK", "RLK"] {
        let comps = key_mgmt::components::split(&test_key(name), 2).unwrap();
        store.import_components(name, 1, Algorithm::Sm4, &comps, true).unwrap();
    }
    std::fs::write(dir.join("pass.txt"), "desk pass\n").unwrap();
}

fn issuance(dir: &Path, args: &[&str]) -> Output {
    common::issuance(dir).args(args).output().unwrap()
}

fn verify(pin: &str) -> Result<(), Error> {
    let mut card = SocialSecurityCard::new(PcscTransport::connect(&reader()).unwrap());
    card.verify_pin(&SecretString::from(pin.to_owned()))
}

/// The generation 3 fixture card's number.
const CARD_NUMBER: &str = "B0000002U";

#[test]
fn unblock_and_reload_a_holders_pin() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    // the holder forgot the PIN: three wrong tries block it
    assert!(matches!(verify("000000"), Err(Error::WrongPin { tries_left: 2 })));
    assert!(matches!(verify("000000"), Err(Error::WrongPin { tries_left: 1 })));
    assert!(matches!(verify("000000"), Err(Error::WrongPin { tries_left: 0 })));
    assert!(matches!(verify("654321"), Err(Error::PinBlocked)), "blocked: even the right PIN is refused");

    std::fs::write(dir.path().join("pin.txt"), "246810\n").unwrap();
    let pin_file = dir.path().join("pin.txt").display().to_string();
    let o = issuance(
        dir.path(),
        &["unblock-pin", "--reader", READER, "--card-number", CARD_NUMBER, "--new-pin-file", &pin_file],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("246810"), "the PIN is never printed");
    verify("246810").unwrap();

    std::fs::write(dir.path().join("pin.txt"), "135790\n").unwrap();
    let o = issuance(
        dir.path(),
        &["--json", "reload-pin", "--reader", READER, "--card-number", CARD_NUMBER, "--new-pin-file", &pin_file],
    );
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "PIN reloaded");
    verify("135790").unwrap();

    // a new PIN that is not digits: refused before the card is touched
    std::fs::write(dir.path().join("pin.txt"), "12ab\n").unwrap();
    assert_eq!(
        issuance(
            dir.path(),
            &["reload-pin", "--reader", READER, "--card-number", CARD_NUMBER, "--new-pin-file", &pin_file]
        )
        .status
        .code(),
        Some(2)
    );
    // a wrong passphrase: the key store says no (exit 6)
    std::fs::write(dir.path().join("pass.txt"), "wrong\n").unwrap();
    std::fs::write(dir.path().join("pin.txt"), "111111\n").unwrap();
    assert_eq!(
        issuance(
            dir.path(),
            &["reload-pin", "--reader", READER, "--card-number", CARD_NUMBER, "--new-pin-file", &pin_file]
        )
        .status
        .code(),
        Some(6)
    );
    verify("135790").unwrap();

    // another holder's card in the reader: refused before any PUK or RLK command, its PIN tries untouched
    std::fs::write(dir.path().join("pass.txt"), "desk pass\n").unwrap();
    let o = issuance(
        dir.path(),
        &["reload-pin", "--reader", READER, "--card-number", "A0000001T", "--new-pin-file", &pin_file],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("is card B0000002U, not card A0000001T"), "{o:?}");
    verify("135790").unwrap();
}
