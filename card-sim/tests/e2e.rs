//! End to end through the real PC/SC stack: `card-sim` (the binary) connects to vsmartcard-vpcd inside
//! pcscd as the card of `Virtual PCD 00 00`; the host side is card-core's `PcscTransport` (and, for the recovery
//! tests, its `DirectPcscTransport`, which makes the same calls on the caller's thread) and, for an independent
//! check, OpenSC's `opensc-tool`.
//!
//! Needs pcscd with vsmartcard-vpcd (`cargo xtask test` installs and starts both). The virtual readers are
//! shared by every end-to-end test of the workspace: each test holds `/tmp/sscard-vpcd.lock`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command as Process;
use std::time::Duration;

use card_core::apdu::{Command, Ins, StatusWord};
use card_core::transport::{
    list_readers, wait_for_card, CardTransactionExt, DirectPcscTransport, PcscTransport, RecordingTransport, Transport,
    TransportError,
};
use card_core::Error;

mod common;

use common::{reader, vpcd_lock, Sim, READER, SSSE_AID};
use testkit::pcscd;

fn select_ssse() -> Command {
    Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(hex::decode(SSSE_AID).unwrap()).unwrap().with_le(256).unwrap()
}

/// CARD-PROFILE §4 READ RECORD by number, SFI in P2.
fn read_record(sfi: u8, rec: u8) -> Command {
    Command::new(0x00, Ins::READ_RECORD, rec, (sfi << 3) | 4).with_le(256).unwrap()
}

fn opensc(args: &[&str]) -> String {
    let out = Process::new("opensc-tool").args(args).output().expect("run opensc-tool (package opensc)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Each `Received (SW1=0x.., SW2=0x..):` block of `opensc-tool -s` output: (SW, data hex), from the hex
/// columns of its dump lines (the ASCII column dropped).
fn received(out: &str) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Received (SW1=0x") else { continue };
        let sw = format!("{}{}", &rest[..2], &rest[10..12]).to_uppercase();
        let mut data = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("Sending") || next.starts_with("Received") || next.trim().is_empty() {
                break;
            }
            data.extend(next.get(..48).unwrap_or(next).split_whitespace().filter(|t| t.len() == 2));
            lines.next();
        }
        answers.push((sw, data));
    }
    answers
}

/// The issue's acceptance check, with an independent client: opensc-tool prints the ATR, and SELECT of SSSE
/// by name then READ RECORD 1 of EF05 return the card identifier record with 9000.
#[test]
fn opensc_tool_selects_ssse_and_reads_the_card_identifier() {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen2-personalized.json", &[]);
    let index = list_readers().unwrap().iter().position(|r| r == READER).unwrap().to_string();
    let atr = opensc(&["-r", &index, "-a"]);
    assert!(atr.contains("3b:6f:00:00:53:53:02:10:37:17:00"), "opensc-tool -a: {atr}");
    let out = opensc(&["-r", &index, "-s", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "-s", "00B2012C00"]);
    let answers = received(&out);
    assert_eq!(answers.len(), 2, "opensc-tool output:\n{out}");
    assert_eq!(answers[0].0, "9000", "SELECT SSSE:\n{out}");
    // record 1 = tag 01, length 16: region 371700 ‖ D156000005 ‖ chip serial 00000000000000A2
    assert_eq!(answers[1], ("9000".to_owned(), "0110371700D15600000500000000000000A2".to_owned()), "{out}");
}

#[test]
fn pcsc_transport_reads_the_holder_records() {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen2-personalized.json", &[]);
    let mut card = RecordingTransport::new(PcscTransport::connect(&reader()).unwrap());
    assert_eq!(card_core::transport::historical_bytes(card.atr()).unwrap()[7..], [0, 0, 0, 0, 0, 0, 0, 0xA2]);
    {
        let mut tx = card.transaction().unwrap();
        let fci = tx.exchange_ok(&select_ssse()).unwrap();
        assert_eq!(card_core::tlv::parse_fci(&fci).unwrap().unwrap().df_name, Some(hex::decode(SSSE_AID).unwrap()));
        let name = tx.exchange_ok(&read_record(6, 2)).unwrap();
        let tlv = card_core::tlv::RecordTlv::parse(&name).unwrap();
        assert_eq!((tlv.tag, card_core::codec::decode_an(&tlv.value).unwrap().as_str()), (0x09, "张三"));
        // a record past the end
        assert!(matches!(tx.exchange_ok(&read_record(6, 9)), Err(Error::Card(StatusWord::RECORD_NOT_FOUND))));
    }
    let c = card.counters();
    assert_eq!((c.apdus, c.transactions), (3, 1));
    assert!(card.transcript().contains("> 00B2023400\n< 091ED5C5C8FD00"), "{}", card.transcript());
}

#[test]
fn t0_mode_get_response_through_pcscd() {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen2-personalized.json", &["--t0"]);
    let mut card = RecordingTransport::new(PcscTransport::connect(&reader()).unwrap());
    {
        let mut tx = card.transaction().unwrap();
        let select = Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(hex::decode(SSSE_AID).unwrap()).unwrap();
        let fci = tx.exchange_ok(&select).unwrap();
        assert_eq!(fci.first(), Some(&0x6F));
        // wrong Le: the card says 6Cxx, the engine resends with the right one
        let rec = Command::new(0x00, Ins::READ_RECORD, 1, (5 << 3) | 4).with_le(4).unwrap();
        assert_eq!(tx.exchange_ok(&rec).unwrap().len(), 18);
    }
    let lines: Vec<String> = card.exchanges().iter().map(|e| e.to_lines()).collect();
    assert_eq!(card.counters().apdus, 4, "{lines:?}");
    assert!(lines[0].contains("< 61"), "{lines:?}");
    assert!(lines[1].starts_with("> 00C00000"), "{lines:?}");
    assert!(lines[2].contains("< 6C12"), "{lines:?}");
}

/// A card pulled in the middle of an operation: the precise error, then the next operation works once the
/// card is back.
#[test]
fn card_removed_mid_operation_then_reinserted() {
    removed_mid_operation_then_reinserted(|| PcscTransport::connect(&reader()));
}

/// The same with the PC/SC calls on the caller's thread.
#[test]
fn card_removed_mid_operation_then_reinserted_direct() {
    removed_mid_operation_then_reinserted(|| DirectPcscTransport::connect(&reader()));
}

fn removed_mid_operation_then_reinserted<T: Transport>(connect: impl Fn() -> Result<T, TransportError>) {
    let _lock = vpcd_lock();
    // APDU 1 SELECT goes through, APDU 2 READ RECORD tears the card out
    let mut sim =
        Sim::start("gen2-personalized.json", &["--tear-after", "2", "--tear-point", "before-write", "--save"]);
    let mut card = connect().unwrap();
    {
        let mut tx = card.transaction().unwrap();
        tx.exchange_ok(&select_ssse()).unwrap();
        match tx.exchange(&read_record(5, 1)) {
            Err(Error::Transport(TransportError::CardRemoved | TransportError::CardUnresponsive)) => {}
            other => panic!("expected card removed, got {other:?}"),
        }
    }
    assert_eq!(sim.wait_exit().code(), Some(3), "card-sim exits with 3 after a tear");
    // no card now
    match card.transaction() {
        Err(TransportError::NoCard(r)) => assert_eq!(r, READER),
        other => panic!("expected no card, got {:?}", other.map(|_| ())),
    }
    let dir = sim.into_dir();
    let _again = Sim::start_in(dir, &[]);
    let mut tx = card.transaction().expect("the same transport reconnects to the re-inserted card");
    tx.exchange_ok(&select_ssse()).unwrap();
    assert_eq!(tx.exchange_ok(&read_record(5, 3)).unwrap(), b"\x03\x042.00");
}

/// Another application resets the card between two operations: the next transaction reconnects by
/// itself; the card's security state is gone (a verified PIN must be verified again).
#[test]
fn reset_by_another_application_is_recovered() {
    reset_by_another_application(|| PcscTransport::connect(&reader()));
}

/// The same with the PC/SC calls on the caller's thread.
#[test]
fn reset_by_another_application_is_recovered_direct() {
    reset_by_another_application(|| DirectPcscTransport::connect(&reader()));
}

fn reset_by_another_application<T: Transport>(connect: impl Fn() -> Result<T, TransportError>) {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen2-personalized.json", &[]);
    let mut card = connect().unwrap();
    let pin = Command::new(0x00, Ins::VERIFY, 0, 0).with_data(vec![0x12, 0x34, 0x56]).unwrap().sensitive();
    let pin_status = Command::new(0x00, Ins::VERIFY, 0, 0);
    {
        let mut tx = card.transaction().unwrap();
        tx.exchange_ok(&select_ssse()).unwrap();
        tx.exchange_ok(&pin).unwrap();
        // VERIFY without data: 9000 while the PIN is verified
        assert_eq!(tx.exchange(&pin_status).unwrap().sw(), StatusWord::OK);
    }
    let index = list_readers().unwrap().iter().position(|r| r == READER).unwrap().to_string();
    let out = opensc(&["-r", &index, "--reset", "warm"]);
    assert!(!out.contains("Failed"), "opensc-tool --reset: {out}");
    let mut tx = card.transaction().expect("the transport reconnects after the reset");
    tx.exchange_ok(&select_ssse()).unwrap();
    assert_eq!(tx.exchange(&pin_status).unwrap().sw(), StatusWord(0x63C3), "PIN state cleared by the reset");
}

/// Another application holding the card exclusively: *reader busy*, not a protocol error; once it lets go
/// the same call works.
#[test]
fn exclusive_use_by_another_application_is_reader_busy() {
    let _lock = vpcd_lock();
    let _sim = Sim::start("gen2-personalized.json", &[]);
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(READER).unwrap();
    let other = ctx.connect(&name, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY).unwrap();
    let err = PcscTransport::connect(&reader()).unwrap_err();
    assert!(matches!(err, TransportError::ReaderBusy), "{err:?}");
    assert_eq!(err.to_string(), "reader busy: the card is in exclusive use by another application");
    drop(other);
    let mut card = PcscTransport::connect(&reader()).unwrap();
    card.transaction().unwrap().exchange_ok(&select_ssse()).unwrap();
}

/// `--save` on SIGTERM writes the state back: a wrong PIN's try counter survives a restart.
#[test]
fn sigterm_saves_the_image() {
    let _lock = vpcd_lock();
    let mut sim = Sim::start("gen2-personalized.json", &["--save"]);
    let wrong_pin = Command::new(0x00, Ins::VERIFY, 0, 0).with_data(vec![0x99, 0x99, 0x99]).unwrap().sensitive();
    {
        let mut card = PcscTransport::connect(&reader()).unwrap();
        let mut tx = card.transaction().unwrap();
        tx.exchange_ok(&select_ssse()).unwrap();
        assert!(matches!(tx.exchange_ok(&wrong_pin), Err(Error::WrongPin { tries_left: 2 })));
    }
    assert_eq!(sim.stop().code(), Some(0));
    let saved = card_sim::Card::load(sim.image()).unwrap();
    assert!(saved.lifecycle() == card_sim::Lifecycle::Personalized);
    let dir = sim.into_dir();
    let _again = Sim::start_in(dir, &[]);
    let mut card = PcscTransport::connect(&reader()).unwrap();
    let mut tx = card.transaction().unwrap();
    tx.exchange_ok(&select_ssse()).unwrap();
    assert!(matches!(tx.exchange_ok(&wrong_pin), Err(Error::WrongPin { tries_left: 1 })));
}

/// pcscd restarting under a running card and an open transport: card-sim reconnects to vpcd and the
/// transport re-establishes its PC/SC context, without a restart of either.
#[test]
fn pcscd_restart_is_recovered() {
    pcscd_restart(|| PcscTransport::connect(&reader()));
}

/// The same with the PC/SC calls on the caller's thread.
#[test]
fn pcscd_restart_is_recovered_direct() {
    pcscd_restart(|| DirectPcscTransport::connect(&reader()));
}

fn pcscd_restart<T: Transport>(connect: impl Fn() -> Result<T, TransportError>) {
    let _lock = vpcd_lock();
    let _back = pcscd::Back;
    let _sim = Sim::start("gen2-personalized.json", &[]);
    let mut card = connect().unwrap();
    card.transaction().unwrap().exchange_ok(&select_ssse()).unwrap();

    pcscd::stop();
    // while pcscd is gone: the precise error
    let err = card.transaction().map(|_| ()).unwrap_err();
    assert!(matches!(err, TransportError::NoService), "{err:?}");
    pcscd::start();
    wait_for_card(&reader(), Duration::from_secs(15)).expect("card-sim reconnected to the new pcscd");
    let mut tx = card.transaction().expect("the transport recovers after the pcscd restart");
    assert!(tx.exchange_ok(&select_ssse()).is_ok());
}
