//! Tearing: the card is pulled at every APDU of a full personalization (verification included), before
//! and after that APDU's write, then put back and `resume`d. Each run must end with a verified, issued
//! card or a cleanly rejected one whose holder can be issued another card; never `issued` while
//! incomplete, never two cards with one card id or card number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use card_core::profile::Generation;
use card_sim::{SimTransport, Tear, TearPoint};

/// The APDUs that establish the card is blank (SELECT MF, GET DATA key info), before anything is journalled.
const PROBE_APDUS: u64 = 2;
use issuance::journal::Journal;
use issuance::prepare::{KeySource, Settings};
use issuance::run::Issuer;

const SERIAL: u64 = 0x0A0B_0C0D_0E0F_1011;

fn issuer<'a>(keys: &'a dyn KeySource, journal: &'a Journal, g: Generation) -> Issuer<'a> {
    let mut settings = Settings::new(g);
    settings.issue_date = card_core::codec::Date::new(2026, 3, 1).unwrap();
    Issuer::reference(keys, journal, settings)
}

fn tear_everywhere(g: u8) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    common::make_store(&store);
    let keys = common::key_source(&store);
    let gen = Generation::new(g).unwrap();
    let holders = common::sample(gen);
    // line 6 has an own initial PIN: resume needs it again from the holders file
    let holder = &holders[4];
    let pin_of = |ssn: &str| holders.iter().find(|h| h.ssn == ssn).and_then(|h| h.pin.as_ref());

    // the length of one untorn personalization
    let total = {
        let journal = Journal::in_memory().unwrap();
        let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
        let mut sim = SimTransport::new(common::blank(g, SERIAL));
        issuer(&keys, &journal, gen).issue(&mut sim, holder, Some(batch)).unwrap().1.apdus
    };
    let (mut issued, mut rejected, mut probed) = (0, 0, 0);
    for when in [TearPoint::BeforeWrite, TearPoint::AfterWrite] {
        for n in 1..=total {
            let journal = Journal::in_memory().unwrap();
            let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
            let iss = issuer(&keys, &journal, gen);
            let mut sim = SimTransport::new(common::blank(g, SERIAL));
            sim.arm_tear(Tear { after_apdu: n, when });
            let torn = iss.issue(&mut sim, holder, Some(batch));
            assert!(torn.is_err(), "tear {when:?} at {n}: the run must fail");
            let cards = journal.cards().unwrap();
            if n <= PROBE_APDUS {
                // torn while the desk was checking that the card is blank: nothing journalled, nothing written
                assert!(cards.is_empty(), "tear {when:?} at {n}: a card journalled before the card was known");
                sim.reinsert();
                let (id, _) = iss.issue(&mut sim, holder, Some(batch)).unwrap();
                assert_eq!(journal.card(id).unwrap().state, "issued");
                probed += 1;
                continue;
            }
            assert_eq!(cards.len(), 1);
            assert_ne!(cards[0].state, "issued", "tear {when:?} at {n}: issued while incomplete");
            sim.reinsert();
            let resumed = iss.resume(&mut sim, &pin_of);
            let cards = journal.cards().unwrap();
            assert_eq!(cards.len(), 1, "tear {when:?} at {n}: resume made another card");
            match (&resumed, cards[0].state.as_str()) {
                (Ok(Some(_)), "issued") => issued += 1,
                (Err(_), "rejected") => {
                    rejected += 1;
                    // the holder can be issued another card, with a new card id and number
                    let mut fresh = SimTransport::new(common::blank(g, SERIAL + 1));
                    iss.issue(&mut fresh, holder, Some(batch)).unwrap();
                    let c = journal.cards().unwrap();
                    assert_ne!(c[0].card_id, c[1].card_id);
                    assert_ne!(c[0].card_number, c[1].card_number);
                }
                (r, s) => panic!("tear {when:?} at {n}: resume gave {r:?} and state {s}"),
            }
        }
    }
    println!(
        "generation {g}: {total} APDUs per card; after 2 × {total} tears: {issued} issued, {rejected} rejected, \
         {probed} torn while probed"
    );
    assert_eq!(probed, 2 * PROBE_APDUS);
    assert_eq!(issued + rejected + probed, 2 * total);
}

#[test]
fn torn_at_every_apdu_gen2_ends_issued_or_rejected() {
    tear_everywhere(2);
}

#[test]
fn torn_at_every_apdu_gen3_ends_issued_or_rejected() {
    tear_everywhere(3);
}
