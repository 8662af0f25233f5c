//! The social security application through the real PC/SC stack: card-sim (the binary) in `Virtual PCD 00 00`,
//! card-core's `SocialSecurityCard` over `PcscTransport`. Takes `/tmp/sscard-vpcd.lock` like `e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::card::{SocialSecurityCard, TerminalIds};
use card_core::codec::RegionCode;
use card_core::crypto::Algorithm;
use card_core::security::{LocalKeys, NoKeys};
use card_core::transport::{PcscTransport, RecordingTransport};

mod common;

use common::{reader, repo, vpcd_lock, Sim};

fn terminal() -> TerminalIds {
    TerminalIds { terminal_no: "371700000001".into(), device_no: "SIM-READER-01".into() }
}

/// The acceptance check for the library: the gen 2 fixture's national string in 3 APDUs through pcscd,
/// and 16 (then 15) on a card without READ RECORD "all".
#[test]
fn read_basic_through_pcscd_with_and_without_read_all() {
    let _lock = vpcd_lock();
    let expected = std::fs::read_to_string(repo("fixtures/national/gen2-basic.txt")).unwrap();
    for (args, counts) in [(&[][..], [3, 3]), (&["--no-read-all"][..], [16, 15])] {
        let _sim = Sim::start("gen2-personalized.json", args);
        let transport = RecordingTransport::counting(PcscTransport::connect(&reader()).unwrap());
        let mut card = SocialSecurityCard::new(transport).with_terminal(terminal());
        for n in counts {
            let before = card.transport().counters();
            let info = card.read_basic(&NoKeys).unwrap();
            assert_eq!(info.national(&terminal()).to_string(), expected);
            assert_eq!((card.transport().counters() - before).apdus, n, "{args:?}");
        }
    }
}

/// Gen 3 through pcscd: with the region's RKSSSE in 5 APDUs; without keys the holder fields empty, −2203.
#[test]
fn gen3_with_and_without_keys_through_pcscd() {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen3-personalized.json", &[]);
    let transport = RecordingTransport::counting(PcscTransport::connect(&reader()).unwrap());
    let mut card = SocialSecurityCard::new(transport).with_terminal(terminal());
    let test_keys = std::fs::read_to_string(repo("fixtures/cards/test-keys.toml")).unwrap();
    let test_keys = card_sim::fixture::TestKeys::from_toml(&test_keys).unwrap();
    let keys = LocalKeys::from_issuer_keys(
        RegionCode::parse("371700").unwrap(),
        [("RKSSSE".to_owned(), test_keys.issuer(Algorithm::Sm4, "RKSSSE").unwrap())],
    )
    .unwrap();
    let before = card.transport().counters();
    let info = card.read_basic(&keys).unwrap();
    assert_eq!((card.transport().counters() - before).apdus, 5);
    let expected = std::fs::read_to_string(repo("fixtures/national/gen3-basic.txt")).unwrap();
    assert_eq!(info.national(&terminal()).to_string(), expected);

    let info = card.read_basic(&NoKeys).unwrap();
    assert_eq!(info.national_code(), -2203);
    let expected = std::fs::read_to_string(repo("fixtures/national/gen3-basic-nokeys.txt")).unwrap();
    assert_eq!(info.national(&terminal()).to_string(), expected);
}
