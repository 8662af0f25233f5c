//! In-process `replace` on card-sim: a holder's issued card is replaced by a new card of type replacement
//! (new card id and number, the same holder data); the old card, presented, is application-blocked
//! (SELECT SSSE answers `6A81`) and journalled `replaced`; absent, it is marked replaced only and the
//! journal says it was not blocked. A card that is not issued, or the wrong card in the reader, is refused
//! with the journal unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_core::apdu::{Command, Ins, StatusWord};
use card_core::profile::Generation;
use card_core::transport::{CardTransactionExt, Transport};
use card_sim::SimTransport;
use issuance::holders::Holder;
use issuance::journal::Journal;
use issuance::prepare::{Settings, StoreKeySource};
use issuance::replace::OldCard;
use issuance::run::Issuer;

/// EF05 record 2 (tag 02, card type) as the card holds it.
fn card_type_on_card(t: &mut dyn Transport) -> Vec<u8> {
    let mut tx = t.transaction().unwrap();
    tx.exchange_ok(&common::select_ssse_command()).unwrap();
    tx.exchange_ok(&Command::new(0x00, Ins::READ_RECORD, 0x02, 0x2C).with_le(256).unwrap()).unwrap()
}

struct Desk {
    _dir: tempfile::TempDir,
    keys: StoreKeySource,
    journal: Journal,
    holders: Vec<Holder>,
    batch: i64,
}

fn desk(g: u8) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    common::make_store(&store);
    let keys = common::key_source(&store);
    let journal = common::journal(dir.path());
    let holders = common::sample(Generation::new(g).unwrap());
    let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
    Desk { _dir: dir, keys, journal, holders, batch }
}

fn issuer(d: &Desk, g: u8) -> Issuer<'_> {
    Issuer::reference(&d.keys, &d.journal, Settings::new(Generation::new(g).unwrap()))
}

fn replace_presented(g: u8) {
    let d = desk(g);
    let iss = issuer(&d, g);
    let mut old_card = SimTransport::new(common::blank(g, 0x5100));
    let (old_id, _) = iss.issue(&mut old_card, &d.holders[1], Some(d.batch)).unwrap();
    let old = d.journal.card(old_id).unwrap();
    assert_eq!(common::select_ssse(&mut old_card), StatusWord::OK);

    let retired = iss.retire(&old, OldCard::Presented(&mut old_card), None, "damaged").unwrap();
    assert!(retired.blocked);
    assert_eq!(
        common::select_ssse(&mut old_card),
        StatusWord::FUNCTION_NOT_SUPPORTED,
        "the old card's SSSE is blocked"
    );
    let after = d.journal.card(old_id).unwrap();
    assert_eq!(after.state, "replaced");
    assert!(after.error.as_deref().unwrap().contains("application blocked"), "{:?}", after.error);
    let rec = d.journal.replacement(old_id).unwrap().unwrap();
    assert!(rec.old_blocked);
    assert_eq!((rec.batch, rec.reason.as_str()), (retired.batch, "damaged"));

    let mut new_card = SimTransport::new(common::blank(g, 0x5101));
    let (new_id, _) = iss.issue_replacement(&mut new_card, &retired).unwrap();
    let new = d.journal.card(new_id).unwrap();
    assert_eq!(new.state, "issued");
    assert_eq!(new.card_type, "2");
    assert_eq!(new.ssn, old.ssn);
    assert_eq!(new.batch, Some(retired.batch));
    assert_ne!(new.card_id, old.card_id);
    assert_ne!(new.card_number, old.card_number);
    assert_eq!(card_type_on_card(&mut new_card), vec![0x02, 0x01, b'2'], "EF05 tag 02 = replacement");
    // the same holder data: the new card verifies against the holder of the old card's batch
    assert_eq!(d.journal.holder(retired.batch, new.holder_line).unwrap().name, d.holders[1].name);
    iss.verify_card(&mut new_card).unwrap();

    // the old card is not usable as issued: no rekey, no second replacement, no verification
    assert!(matches!(
        iss.rekey_card(&mut old_card),
        Err(issuance::Error::Input(issuance::InputError::NotIssued { ref state, .. })) if state == "replaced"
    ));
    let old_again = d.journal.card(old_id).unwrap();
    assert!(matches!(iss.retire(&old_again, OldCard::Absent, None, "again"), Err(issuance::Error::Input(_))));
    // its SSSE is application-blocked: SELECT answers 6A81
    assert!(matches!(
        iss.verify_card(&mut old_card),
        Err(issuance::Error::Card(card_core::Error::Card(StatusWord::FUNCTION_NOT_SUPPORTED)))
    ));
    assert_eq!(d.journal.cards().unwrap().iter().filter(|c| c.state == "issued").count(), 1);
}

#[test]
fn gen2_replacement_blocks_the_presented_old_card() {
    replace_presented(2);
}

#[test]
fn gen3_replacement_blocks_the_presented_old_card() {
    replace_presented(3);
}

#[test]
fn absent_old_card_is_marked_replaced_but_not_blocked() {
    let d = desk(3);
    let iss = issuer(&d, 3);
    let mut old_card = SimTransport::new(common::blank(3, 0x5200));
    let (old_id, _) = iss.issue(&mut old_card, &d.holders[0], Some(d.batch)).unwrap();
    let old = d.journal.card(old_id).unwrap();
    let sent = old_card.apdu_count();

    let retired = iss.retire(&old, OldCard::Absent, None, "reported lost").unwrap();
    assert!(!retired.blocked);
    assert_eq!(old_card.apdu_count(), sent, "nothing is sent to an absent card");
    let after = d.journal.card(old_id).unwrap();
    assert_eq!(after.state, "replaced");
    assert!(after.error.as_deref().unwrap().contains("NOT blocked"), "{:?}", after.error);
    assert!(!d.journal.replacement(old_id).unwrap().unwrap().old_blocked);
    assert_eq!(common::select_ssse(&mut old_card), StatusWord::OK, "the absent card was not touched");

    let mut new_card = SimTransport::new(common::blank(3, 0x5201));
    let (new_id, _) = iss.issue_replacement(&mut new_card, &retired).unwrap();
    let new = d.journal.card(new_id).unwrap();
    assert_eq!((new.state.as_str(), new.card_type.as_str()), ("issued", "2"));
}

#[test]
fn wrong_or_unissued_cards_are_refused_and_the_journal_is_unchanged() {
    let d = desk(2);
    let iss = issuer(&d, 2);
    let mut a = SimTransport::new(common::blank(2, 0x5300));
    let (a_id, _) = iss.issue(&mut a, &d.holders[0], Some(d.batch)).unwrap();
    let mut b = SimTransport::new(common::blank(2, 0x5301));
    iss.issue(&mut b, &d.holders[1], Some(d.batch)).unwrap();
    let before = d.journal.cards().unwrap();

    // card b presented as card a: refused before anything is sent that blocks
    let row_a = d.journal.card(a_id).unwrap();
    assert!(matches!(iss.retire(&row_a, OldCard::Presented(&mut b), None, "x"), Err(issuance::Error::Input(_))));
    assert_eq!(common::select_ssse(&mut b), StatusWord::OK, "the wrong card is not blocked");

    // a cancelled card is not replaced (the holder gets a new card with `personalize`)
    d.journal.set_state(a_id, "cancelled", Some("test")).unwrap();
    let row_a = d.journal.card(a_id).unwrap();
    assert!(matches!(iss.retire(&row_a, OldCard::Absent, None, "x"), Err(issuance::Error::Input(_))));
    let after = d.journal.cards().unwrap();
    assert_eq!(after.len(), before.len());
    assert!(d.journal.replacement(a_id).unwrap().is_none());
}
