//! A wrong card at the desk is refused before anything that writes or counts a try is sent, and nothing is
//! journalled against it: an issued card given to `issue` (personalize), a blank card to `resume`, another card with
//! the same chip serial to `resume` and `rekey`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_core::profile::Generation;
use card_sim::{Card, SimTransport};
use issuance::journal::Journal;
use issuance::prepare::Settings;
use issuance::run::Issuer;
use issuance::Error;

/// The card's persistent state (keys and their tries, PIN tries, files), as its image holds it.
fn image(card: &Card) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("card.json");
    card.save(&p).unwrap();
    std::fs::read_to_string(p).unwrap()
}

struct Desk {
    _dir: tempfile::TempDir,
    keys: issuance::prepare::StoreKeySource,
    journal: Journal,
    holders: Vec<issuance::holders::Holder>,
    batch: i64,
}

fn desk(g: Generation) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    common::make_store(&store);
    let keys = common::key_source(&store);
    let journal = common::fresh_journal();
    let holders = common::sample(g);
    let batch = journal.new_batch("sample.csv", g.number(), &holders).unwrap();
    Desk { _dir: dir, keys, journal, holders, batch }
}

fn issuer(d: &Desk, g: Generation) -> Issuer<'_> {
    Issuer::reference(&d.keys, &d.journal, Settings::new(g))
}

#[test]
fn an_issued_card_given_for_a_blank_one_is_not_touched() {
    let g = Generation::THREE;
    let d = desk(g);
    let mut sim = SimTransport::new(common::blank(3, 0x0A0B));
    issuer(&d, g).issue(&mut sim, &d.holders[0], Some(d.batch)).unwrap();
    let before = image(sim.card());
    let rows = d.journal.cards().unwrap().len();
    let apdus = sim.apdu_count();
    let err = issuer(&d, g).issue(&mut sim, &d.holders[1], Some(d.batch)).unwrap_err();
    assert!(
        matches!(&err, Error::Input(issuance::InputError::NotBlank { mf_key_version: Some(v), .. }) if *v != 0),
        "{err}"
    );
    let said = err.to_string();
    assert!(said.contains("not a blank card") && said.contains("issued"), "{said}");
    assert_eq!(image(sim.card()), before, "no key, try counter or file of the issued card changed");
    assert_eq!(d.journal.cards().unwrap().len(), rows, "nothing journalled against its chip");
    assert_eq!(sim.apdu_count() - apdus, 2, "SELECT MF and GET DATA key info only");
}

#[test]
fn a_blank_card_given_to_resume_is_not_touched() {
    let g = Generation::TWO;
    let d = desk(g);
    let mut sim = SimTransport::new(common::blank(2, 0x0C0D));
    let before = image(sim.card());
    assert!(issuer(&d, g).resume(&mut sim, &|_| None).unwrap().is_none());
    assert_eq!(sim.apdu_count(), 0);
    assert_eq!(image(sim.card()), before);
}

#[test]
fn another_card_with_the_same_chip_serial_is_refused_by_resume_and_rekey() {
    let g = Generation::THREE;
    // desk A issues a card on chip 0x0E0F; desk B's journal has an unfinished card of the same chip serial
    let a = desk(g);
    let mut other = SimTransport::new(common::blank(3, 0x0E0F));
    issuer(&a, g).issue(&mut other, &a.holders[2], Some(a.batch)).unwrap();
    let b = desk(g);
    // desk B's journal has issued one card already: its card of chip 0x0E0F gets another card identifier
    let mut first = SimTransport::new(common::blank(3, 0x1111));
    issuer(&b, g).issue(&mut first, &b.holders[1], Some(b.batch)).unwrap();
    let mut torn = SimTransport::new(common::blank(3, 0x0E0F));
    torn.arm_tear(card_sim::Tear { after_apdu: 40, when: card_sim::TearPoint::AfterWrite });
    assert!(issuer(&b, g).issue(&mut torn, &b.holders[0], Some(b.batch)).is_err());
    assert!(b.journal.cards().unwrap().iter().any(|c| c.state == "failed"));
    // desk B is given desk A's issued card: its keys and its PIN must not be tried
    let before = image(other.card());
    let err = issuer(&b, g).resume(&mut other, &|_| None).unwrap_err();
    assert!(matches!(&err, Error::Input(issuance::InputError::NotThisCard { .. })), "{err}");
    assert_eq!(image(other.card()), before, "no try counted on the other card");
    assert!(b.journal.cards().unwrap().iter().all(|c| c.state != "rejected"), "nothing marked rejected");
    // rekey at desk A of a card with A's chip serial but another identifier (desk B's card, finished by resume)
    torn.reinsert();
    issuer(&b, g).resume(&mut torn, &|_| None).unwrap().unwrap();
    let before = image(torn.card());
    let err = issuer(&a, g).rekey_card(&mut torn).unwrap_err();
    assert!(matches!(&err, Error::Input(issuance::InputError::NotThisCard { .. })), "{err}");
    assert_eq!(image(torn.card()), before);
}
