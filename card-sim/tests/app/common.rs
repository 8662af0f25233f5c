//! Shared helpers: fixture cards, the published test keys as region-level keys, terminal ids.

use std::path::{Path, PathBuf};

use card_core::card::{SocialSecurityCard, TerminalIds};
use card_core::codec::RegionCode;
use card_core::crypto::{Algorithm, CardKey};
use card_core::security::LocalKeys;
use card_core::transport::RecordingTransport;
use card_sim::fixture::TestKeys;
use card_sim::{Card, SimTransport};

pub type SimCard = SocialSecurityCard<RecordingTransport<SimTransport>>;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

pub fn terminal() -> TerminalIds {
    TerminalIds { terminal_no: "371700000001".into(), device_no: "SIM-READER-01".into() }
}

/// A fixture card in process, behind a counting transport.
pub fn card(gen: u8, read_all: bool) -> SimCard {
    let mut c = Card::load(repo(&format!("fixtures/cards/gen{gen}-personalized.json"))).unwrap();
    c.set_read_all(read_all);
    SocialSecurityCard::new(RecordingTransport::counting(SimTransport::new(c))).with_terminal(terminal())
}

pub fn national(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("fixtures/national/{name}"))).unwrap()
}

pub const KEY_NAMES: &[&str] = &[
    "MK", "IRK", "UKMF", "PUK", "STK", "RLK", "RKSSSE", "UK_DF01", "RK_DF01", "STK_DF01", "UK_DF02", "RK_DF02",
    "STK_DF02",
];

fn issuer(alg: Algorithm, names: &[&str]) -> Vec<(String, CardKey)> {
    let keys = TestKeys::from_toml(&std::fs::read_to_string(repo("fixtures/cards/test-keys.toml")).unwrap()).unwrap();
    names.iter().map(|n| (n.to_string(), keys.issuer(alg, n).unwrap())).collect()
}

/// The region-level keys of region 371700 for both algorithms, from the published test issuer keys.
pub fn keys() -> LocalKeys {
    keys_without(&[])
}

/// [`keys`] without some names.
pub fn keys_without(skip: &[&str]) -> LocalKeys {
    let names: Vec<&str> = KEY_NAMES.iter().copied().filter(|n| !skip.contains(n)).collect();
    let region = RegionCode::parse("371700").unwrap();
    let mut all = issuer(Algorithm::Tdes, &names);
    all.extend(issuer(Algorithm::Sm4, &names));
    LocalKeys::from_issuer_keys(region, all).unwrap()
}

/// APDUs of `op` on `card`.
pub fn apdus<R>(card: &mut SimCard, op: impl FnOnce(&mut SimCard) -> R) -> (R, u64) {
    let before = card.transport().counters();
    let r = op(card);
    (r, (card.transport().counters() - before).apdus)
}
