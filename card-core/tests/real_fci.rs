//! Reading a card that answers SELECT as a real card does (CARD-PROFILE §4.2): the algorithm in the FCI
//! (`9F0C` → `86`), no spec version. The card side is a hand-written transcript (`fixtures/transcripts/`) played by
//! the replay transport, which fails on the first command the host sends that the card would not have answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::card::{SocialSecurityCard, TerminalIds};
use card_core::codec::RegionCode;
use card_core::crypto::{Algorithm, CardKey};
use card_core::security::{LocalKeys, NoKeys};
use card_core::transport::{RecordingTransport, ReplayTransport};

fn transcript(name: &str) -> ReplayTransport {
    let path = format!("{}/../fixtures/transcripts/{name}", env!("CARGO_MANIFEST_DIR"));
    ReplayTransport::from_transcript(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const NATIONAL: &str = "519900|51170219900101001X|X00000019|519900D15600000510000B26FFFFFFFF|张三|\
                        00814A444686605199000001AC|3.00|20200101|20300101|||";

#[test]
fn an_sm4_card_with_rkssse_is_read_in_5_apdus() {
    // the replayed card accepts any cryptogram: the key only has to be held
    let region = RegionCode::parse("519900").unwrap();
    let keys = LocalKeys::new(region).with_key("RKSSSE", CardKey::new(Algorithm::Sm4, &[7; 16]).unwrap());
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(transcript("gen3-real-fci-rkssse.txt")));
    let info = card.read_basic(&keys).unwrap();
    assert_eq!(info.generation.number(), 3, "SM4 in the FCI: generation 3");
    assert_eq!(info.algorithm, Algorithm::Sm4);
    assert_eq!(info.national(&TerminalIds::default()).to_string(), NATIONAL);
    assert_eq!(info.national_code(), 0);
    assert_eq!(card.transport().counters().apdus, 5, "SELECT, EF05, GET CHALLENGE, EXTERNAL AUTHENTICATE, EF06");
    card.transport().inner().finish().unwrap();
}

#[test]
fn an_sm4_card_without_keys_gives_every_ef05_field_in_2_apdus() {
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(transcript("gen3-real-fci-nokeys.txt")));
    let info = card.read_basic(&NoKeys).unwrap();
    assert_eq!(info.card_number.as_deref(), Some("X00000019"));
    assert_eq!(info.ssn, None);
    assert_eq!(info.national_code(), -2203);
    assert_eq!(
        info.national(&TerminalIds::default()).to_string(),
        "519900||X00000019|519900D15600000510000B26FFFFFFFF||00814A444686605199000001AC|3.00|20200101|20300101|||"
    );
    assert_eq!(card.transport().counters().apdus, 2, "SELECT, EF05");
    card.transport().inner().finish().unwrap();
}
