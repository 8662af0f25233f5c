//! SimTransport: card-core's engine over the card, tearing, T=0 mode, the timing model.

use std::time::Duration;

use super::host::*;
use card_core::apdu::{Command, Ins, StatusWord};
use card_core::crypto::{card_factor, process_key, CardKey};
use card_core::transport::{historical_bytes, CardTransaction, CardTransactionExt, Transport, TransportError};
use card_core::Error as CoreError;
use card_sim::{KeyAlgorithm, SimTransport, Tear, TearPoint, TimingModel};

fn select_ssse() -> Command {
    Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(h(SSSE_AID)).unwrap().with_le(256).unwrap()
}

/// SELECT SSSE, external authentication with UKMF, then an UPDATE RECORD of EF05 record 2.
fn auth_and_update(tx: &mut dyn CardTransaction, alg: KeyAlgorithm, value: &[u8]) -> Result<(), CoreError> {
    tx.exchange_ok(&select_ssse())?;
    let r = tx.exchange_ok(&Command::new(0, Ins::GET_CHALLENGE, 0, 0).with_le(8)?)?;
    let key = CardKey::new(alg_of(alg), &key_value(1, UKMF)).unwrap();
    let x = [7u8; 8];
    let c = process_key(&key, &r.try_into().unwrap()).cryptogram(&x);
    tx.exchange_ok(&Command::new(0, Ins::EXTERNAL_AUTHENTICATE, 0, UKMF).with_data([c, x].concat())?)?;
    tx.exchange_ok(&Command::new(0, Ins::UPDATE_RECORD, 2, 0x2C).with_data(tlv(0x02, value))?)?;
    Ok(())
}

fn record2(sim: &mut SimTransport) -> Vec<u8> {
    let mut tx = sim.transaction().unwrap();
    tx.exchange_ok(&select_ssse()).unwrap();
    tx.exchange_ok(&Command::new(0, Ins::READ_RECORD, 2, 0x2C).with_le(256).unwrap()).unwrap()
}

#[test]
fn atr_carries_region_and_card_factor() {
    let c = personalized(KeyAlgorithm::Sm4);
    let sim = SimTransport::new(c.card);
    let hist = historical_bytes(sim.atr()).unwrap();
    assert_eq!(&hist[4..7], &h("371700")[..]);
    assert_eq!(card_factor(hist).unwrap(), 0x0011_2233_4455_6677u64.to_be_bytes());
    assert_eq!(sim.atr()[0], 0x3B);
}

#[test]
fn tear_before_write_loses_the_write() {
    let c = personalized(KeyAlgorithm::Tdes);
    let alg = c.alg;
    let mut sim = SimTransport::new(c.card);
    sim.arm_tear(Tear { after_apdu: 4, when: TearPoint::BeforeWrite });
    {
        let mut tx = sim.transaction().unwrap();
        let err = auth_and_update(&mut *tx, alg, b"9").unwrap_err();
        assert!(matches!(err, CoreError::Transport(TransportError::CardRemoved)), "{err}");
        assert!(matches!(tx.transmit(&h("0084000008"), Default::default()), Err(TransportError::CardRemoved)));
    }
    assert!(matches!(sim.transaction(), Err(TransportError::NoCard(_))));
    sim.reinsert();
    assert_eq!(record2(&mut sim), tlv(0x02, b"1"));
}

#[test]
fn tear_after_write_keeps_the_write() {
    let c = personalized(KeyAlgorithm::Sm4);
    let alg = c.alg;
    let mut sim = SimTransport::new(c.card);
    sim.arm_tear(Tear { after_apdu: 4, when: TearPoint::AfterWrite });
    {
        let mut tx = sim.transaction().unwrap();
        let torn = auth_and_update(&mut *tx, alg, b"9");
        assert!(matches!(torn, Err(CoreError::Transport(TransportError::CardRemoved))), "{torn:?}");
    }
    assert!(!sim.is_present());
    sim.reinsert();
    assert_eq!(record2(&mut sim), tlv(0x02, b"9"));
    // the security state did not survive the removal
    let mut tx = sim.transaction().unwrap();
    tx.exchange_ok(&select_ssse()).unwrap();
    let resp = tx.exchange(&Command::new(0, Ins::UPDATE_RECORD, 2, 0x2C).with_data(tlv(0x02, b"8")).unwrap()).unwrap();
    assert_eq!(resp.sw(), StatusWord::SECURITY_NOT_SATISFIED);
}

#[test]
fn tear_at_every_point_leaves_old_or_new() {
    for n in 1..=5 {
        for when in [TearPoint::BeforeWrite, TearPoint::AfterWrite] {
            let c = personalized(KeyAlgorithm::Tdes);
            let mut sim = SimTransport::new(c.card);
            sim.arm_tear(Tear { after_apdu: n, when });
            let done = {
                let mut tx = sim.transaction().unwrap();
                auth_and_update(&mut *tx, KeyAlgorithm::Tdes, b"9").is_ok()
            };
            sim.disarm_tear();
            sim.reinsert();
            let rec = record2(&mut sim);
            let written = rec == tlv(0x02, b"9");
            assert!(written || rec == tlv(0x02, b"1"));
            assert_eq!(written, done || (n == 4 && when == TearPoint::AfterWrite), "tear {n} {when:?}");
        }
    }
}

#[test]
fn t0_mode_61xx_and_6cxx_resolved_by_the_engine() {
    let mut c = personalized(KeyAlgorithm::Sm4);
    c.card.set_t0_mode(true);
    // raw: SELECT answers 61xx (the FCI is 6F1C…: 30 bytes), a wrong Le answers 6Cxx
    assert_eq!(c.send(h(&format!("00A404000F{SSSE_AID}"))), (vec![], 0x611E));
    assert_eq!(c.sw("00C0000010"), 0x610E);
    assert_eq!(c.sw("00C0000010"), 0x6C0E);
    assert_eq!(c.send(h("00C000000E")).1, 0x9000);
    assert_eq!(c.sw("00C000000E"), 0x6985);
    assert_eq!(c.read_record(5, 2).1, 0x6C03);
    assert_eq!(c.send(h("00B2022C03")), (tlv(0x02, b"1"), 0x9000));
    // through card-core's engine
    let mut sim = SimTransport::new(c.card);
    let mut tx = sim.transaction().unwrap();
    let fci = tx.exchange_ok(&select_ssse()).unwrap();
    assert_eq!(fci.len(), 0x1E);
    let rec = tx.exchange_ok(&Command::new(0, Ins::READ_RECORD, 3, 0x2C).with_le(256).unwrap()).unwrap();
    assert_eq!(rec, tlv(0x03, b"3.00"));
    let r1r2 = [1u8; 16];
    let out = tx
        .exchange_ok(&Command::new(0, Ins::INTERNAL_AUTHENTICATE, 0, 0).with_data(r1r2).unwrap().with_le(256).unwrap())
        .unwrap();
    assert_eq!(out.len(), 8);
    drop(tx);
    assert_eq!(sim.apdu_count(), 6);
}

#[test]
fn modeled_time_is_deterministic() {
    let c = personalized(KeyAlgorithm::Tdes);
    let mut sim = SimTransport::new(c.card);
    {
        let mut tx = sim.transaction().unwrap();
        // SELECT: 20 + (30 + 2) + 1 procedure byte = 53 chars (the FCI 6F1C…)
        tx.exchange_ok(&Command::new(0, Ins::SELECT, 4, 0).with_data(h(SSSE_AID)).unwrap()).unwrap();
        // READ RECORD: 5 + (6 + 2) + 1 = 14 chars
        tx.exchange_ok(&Command::new(0, Ins::READ_RECORD, 3, 0x2C).with_le(256).unwrap()).unwrap();
        // VERIFY, wrong: 8 + 2 + 1 = 11 chars, one EEPROM page (the try counter)
        let r = tx.exchange(&Command::new(0, Ins::VERIFY, 0, 0).with_data(h("000000")).unwrap()).unwrap();
        assert_eq!(r.sw(), StatusWord(0x63C2));
    }
    // 78 chars × 12 etu / 9600 = 97.5 ms, 3 × 0.3 ms overhead, 3 ms page write
    assert_eq!(sim.modeled_time(), Duration::from_micros(97_500 + 900 + 3_000));
    let fast = TimingModel::with_bit_rate(115_200);
    assert_eq!(fast.transmission(78), Duration::from_nanos(8_125_000));
    sim.reset_counters();
    assert_eq!(sim.modeled_time(), Duration::ZERO);
}

#[test]
fn a_paced_card_answers_after_its_modeled_time() {
    let c = personalized(KeyAlgorithm::Tdes);
    let mut sim = SimTransport::new(c.card);
    assert!(!sim.is_paced());
    sim.set_pace(true);
    let started = std::time::Instant::now();
    {
        let mut tx = sim.transaction().unwrap();
        tx.exchange_ok(&Command::new(0, Ins::SELECT, 4, 0).with_data(h(SSSE_AID)).unwrap()).unwrap();
        tx.exchange_ok(&Command::new(0, Ins::READ_RECORD, 3, 0x2C).with_le(256).unwrap()).unwrap();
    }
    // (53 + 14) chars × 12 etu / 9600 + 2 × 0.3 ms = 84.35 ms of card time, taken in real time: never sooner
    assert_eq!(sim.modeled_time(), Duration::from_micros(83_750 + 600));
    assert!(started.elapsed() >= sim.modeled_time(), "answered after {:?}", started.elapsed());
}
