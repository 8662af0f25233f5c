//! Tearing: the card is pulled at every APDU of a full personalization (verification included), before
//! and after that APDU's write, then put back and `resume`d.
//!
//! The expected outcome of each tear point follows from the resume policy (README "How a card is made"):
//! the plan ends with SELECT MF, authenticate with the transport key (GET CHALLENGE, EXTERNAL
//! AUTHENTICATE), WRITE KEY MF MK, authenticate with it, END PERSONALIZATION; verification follows. So,
//! with `P` the APDUs of the personalization and `V` those of the verification (`P + V` of one card):
//!
//! - every torn run fails and leaves the card `failed` (resumable), never `issued`;
//! - the MF still holds the transport key up to the WRITE KEY of the MF MK (APDU `P - 3`, before its
//!   write); from its write on it holds the MF MK: resume then authenticates with it and sends END
//!   PERSONALIZATION only (3 journalled steps), otherwise it erases the MF and runs the whole plan again;
//! - the card is personalized from the write of END PERSONALIZATION (APDU `P`) on;
//! - every resume ends `issued`: a torn card is never rejected, since either path leaves a whole card; it
//!   then verifies again (`verify_card`) and holds the same MF keys as an untorn card.
//!
//! Never two cards with one card id or card number: resume makes no other card.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use card_core::profile::Generation;
use card_sim::{Lifecycle, SimTransport, Tear, TearPoint};
use issuance::journal::Journal;
use issuance::prepare::{KeySource, Settings};
use issuance::run::Issuer;

const SERIAL: u64 = 0x0A0B_0C0D_0E0F_1011;

/// SELECT MF + GET DATA key info: the desk's check that the card is blank, before anything is journalled.
const ISSUE_PROBE: u64 = 2;
/// SELECT MF + GET DATA key info: resume's look at the card before its attempt.
const RESUME_LOOK: u64 = 2;
/// SELECT SSSE + READ RECORD EF05 1: resume's check of the card identifier, when the MF MK is in place.
const CARD_ID_CHECK: u64 = 2;
/// SELECT MF + GET DATA key info: resume's probe, the attempt's first step.
const PROBE_APDUS: u64 = 2;
/// GET CHALLENGE + EXTERNAL AUTHENTICATE.
const AUTH_APDUS: u64 = 2;
/// The transport key's version.
const TRANSPORT_VERSION: u8 = 0x00;

fn issuer<'a>(keys: &'a dyn KeySource, journal: &'a Journal, g: Generation) -> Issuer<'a> {
    let mut settings = Settings::new(g);
    settings.issue_date = card_core::codec::Date::new(2026, 3, 1).unwrap();
    Issuer::reference(keys, journal, settings)
}

/// The untorn card: its APDUs (total, personalization, verification), its plan's step count and its
/// MF key info.
struct Reference {
    total: u64,
    personalize: u64,
    verify: u64,
    full_verify: u64,
    steps: i64,
    mf_keys: Vec<[u8; 4]>,
}

/// Version of the MF MK (kid 00) in `keys`.
fn mf_version(keys: &[[u8; 4]]) -> Option<u8> {
    keys.iter().find(|k| k[0] == 0).map(|k| k[1])
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

    let r = {
        let journal = common::fresh_journal();
        let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
        let mut sim = SimTransport::new(common::blank(g, SERIAL));
        let iss = issuer(&keys, &journal, gen);
        let (id, costs) = iss.issue(&mut sim, holder, Some(batch)).unwrap();
        // the verification after a run of the whole plan (the keys the run proved are not authenticated again)
        let verify = costs.verification_apdus;
        // on its own (`verify`: every key authenticated), plus the VERIFY of the initial PIN
        let full_verify = iss.verify_card(&mut sim).unwrap().1.apdus + 1;
        Reference {
            total: costs.apdus,
            personalize: costs.apdus - verify,
            verify,
            full_verify,
            steps: journal.step_count(id, 1, "done").unwrap(),
            mf_keys: sim.card().mf().key_info(),
        }
    };
    let mk_write = r.personalize - 3;
    let end_perso = r.personalize;
    let mk_version = mf_version(&r.mf_keys).unwrap();
    assert_ne!(mk_version, TRANSPORT_VERSION);

    for when in [TearPoint::BeforeWrite, TearPoint::AfterWrite] {
        // tear point n is "written" when its command ran: at n < point never, at n == point after the write
        let reached = |n: u64, point: u64| n > point || (n == point && when == TearPoint::AfterWrite);
        // on PostgreSQL (a database per journal) every 8th tear point and those around the probe, the MF key and
        // the end; on SQLite every one
        let tried = |n: &u64| {
            !common::on_postgres()
                || n.is_multiple_of(8)
                || *n <= ISSUE_PROBE + 2
                || n.abs_diff(mk_write) <= 2
                || n.abs_diff(end_perso) <= 2
                || *n >= r.total - 2
        };
        for n in (1..=r.total).filter(tried) {
            let at = format!("tear {when:?} at APDU {n} of {}", r.total);
            let journal = common::fresh_journal();
            let batch = journal.new_batch("sample.csv", g, &holders).unwrap();
            let iss = issuer(&keys, &journal, gen);
            let mut sim = SimTransport::new(common::blank(g, SERIAL));
            sim.arm_tear(Tear { after_apdu: n, when });
            let torn = iss.issue(&mut sim, holder, Some(batch));
            assert!(torn.is_err(), "{at}: the run must fail");
            let cards = journal.cards().unwrap();
            if n <= ISSUE_PROBE {
                // torn while the desk checked that the card is blank: nothing journalled, nothing written
                assert!(cards.is_empty(), "{at}: a card journalled before the card was known");
                assert_eq!(mf_version(&sim.card().mf().key_info()), Some(TRANSPORT_VERSION), "{at}");
                sim.reinsert();
                let (id, _) = iss.issue(&mut sim, holder, Some(batch)).unwrap();
                assert_eq!(journal.card(id).unwrap().state, "issued", "{at}");
                continue;
            }
            assert_eq!(cards.len(), 1);
            assert_eq!(cards[0].state, "failed", "{at}: a torn card is left failed (resumable)");
            // the steps, journalled ahead a DF at a time: those that ran are done, the torn one failed, and the
            // rest of its group, which never ran, is not in the journal; none is left `started`
            let count = |state: &str| journal.step_count(cards[0].id, 1, state).unwrap();
            let (done, failed) = (count("done"), count("failed"));
            assert_eq!(count("started"), 0, "{at}: a step left started");
            assert!(failed <= 1, "{at}: {failed} steps failed");
            assert!(done + failed <= r.steps, "{at}: more steps than the plan");
            if done + failed < r.steps {
                assert_eq!(failed, 1, "{at}: the plan stopped short without a failed step");
            }

            // what the card holds after the tear
            let mk_in_place = reached(n, mk_write);
            let expected_version = if mk_in_place { mk_version } else { TRANSPORT_VERSION };
            assert_eq!(mf_version(&sim.card().mf().key_info()), Some(expected_version), "{at}: MF key");
            assert_eq!(
                sim.card().lifecycle() == Lifecycle::Personalized,
                reached(n, end_perso),
                "{at}: lifecycle {:?}",
                sim.card().lifecycle()
            );

            sim.reinsert();
            let resumed = iss.resume(&mut sim, &pin_of);
            let cards = journal.cards().unwrap();
            assert_eq!(cards.len(), 1, "{at}: resume made another card");
            let (id, costs) = match resumed {
                Ok(Some(done)) => done,
                other => panic!("{at}: resume gave {other:?}, state {}", cards[0].state),
            };
            assert_eq!(cards[0].state, "issued", "{at}");
            assert_eq!(cards[0].attempt, 2, "{at}");
            // the path the policy prescribes, and its exact APDU count
            let (steps, apdus) = if mk_in_place {
                // the look and the card identifier; probe; authenticate MF MK; END PERSONALIZATION (6985 when
                // already done); verification of every key but the MF MK, which this attempt authenticated
                (3, RESUME_LOOK + CARD_ID_CHECK + PROBE_APDUS + AUTH_APDUS + 1 + r.full_verify - AUTH_APDUS)
            } else {
                // the look; probe; authenticate with the transport key and ERASE DF; the whole plan (without the
                // desk's blank-card check); verification
                (2 + r.steps, RESUME_LOOK + PROBE_APDUS + AUTH_APDUS + 1 + (r.personalize - ISSUE_PROBE) + r.verify)
            };
            assert_eq!(journal.step_count(id, 2, "done").unwrap(), steps, "{at}: resume steps");
            assert_eq!(journal.step_count(id, 2, "failed").unwrap(), 0, "{at}: resume steps failed");
            assert_eq!(costs.apdus, apdus, "{at}: resume APDUs");

            // the resumed card verifies again and holds what an untorn card holds
            iss.verify_card(&mut sim).unwrap_or_else(|e| panic!("{at}: the resumed card does not verify: {e}"));
            assert_eq!(sim.card().lifecycle(), Lifecycle::Personalized, "{at}");
            assert_eq!(sim.card().mf().key_info(), r.mf_keys, "{at}: MF keys");
        }
    }
    println!(
        "generation {g}: {} APDUs per card ({} personalization, {} verification); MF MK written at APDU {mk_write}, \
         END PERSONALIZATION at {end_perso}; 2 × {} tears, every card resumed and issued",
        r.total, r.personalize, r.verify, r.total
    );
}

#[test]
fn torn_at_every_apdu_gen2_resumes_to_an_issued_card() {
    tear_everywhere(2);
}

#[test]
fn torn_at_every_apdu_gen3_resumes_to_an_issued_card() {
    tear_everywhere(3);
}
