//! End-to-end tests of `PcscTransport` against the real pcscd with the vsmartcard-vpcd readers.
//!
//! Needs pcscd running with vsmartcard-vpcd (`cargo xtask test` installs and starts both).
//! The virtual readers are shared by every end-to-end test of the workspace: each test holds
//! the lock file `/tmp/sscard-vpcd.lock` while it uses them.
#![cfg(feature = "pcsc")]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs::File;

use card_core::transport::{list_readers, PcscTransport, ReaderSelector, Transport, TransportError};

fn vpcd_lock() -> File {
    let f = File::create("/tmp/sscard-vpcd.lock").expect("create the vpcd lock file");
    f.lock().expect("lock the vpcd readers");
    f
}

#[test]
fn lists_the_virtual_readers() {
    let _lock = vpcd_lock();
    let readers = list_readers().expect("pcscd must be running (cargo xtask test starts it)");
    assert!(readers.iter().any(|r| r == "Virtual PCD 00 00"), "readers: {readers:?}");
    assert!(readers.iter().any(|r| r == "Virtual PCD 00 01"), "readers: {readers:?}");
}

#[test]
fn empty_reader_is_no_card() {
    let _lock = vpcd_lock();
    // by exact name
    match PcscTransport::connect(&ReaderSelector::Name("Virtual PCD 00 00".into())) {
        Err(TransportError::NoCard(name)) => assert_eq!(name, "Virtual PCD 00 00"),
        other => panic!("expected NoCard, got {other:?}"),
    }
    // by index, as opensc-tool -r 1
    let readers = list_readers().unwrap();
    let index = readers.iter().position(|r| r == "Virtual PCD 00 01").unwrap();
    let err = PcscTransport::connect(&ReaderSelector::Index(index)).map(|t| t.name().to_owned()).unwrap_err();
    assert!(matches!(err, TransportError::NoCard(ref n) if n == "Virtual PCD 00 01"), "{err:?}");
    assert_eq!(err.to_string(), "no card in reader \"Virtual PCD 00 01\"");
}

#[test]
fn unknown_reader_is_no_reader() {
    let err = PcscTransport::connect(&ReaderSelector::Name("No Such Reader 99".into())).unwrap_err();
    assert!(matches!(err, TransportError::NoReader(ref n) if n == "No Such Reader 99"), "{err:?}");
    let err = PcscTransport::connect(&ReaderSelector::Index(99)).unwrap_err();
    assert!(matches!(err, TransportError::NoReader(_)), "{err:?}");
    // "Virtual PCD" alone matches two readers: ambiguous, so refused
    let err = PcscTransport::connect(&ReaderSelector::Name("Virtual PCD".into())).unwrap_err();
    assert!(matches!(err, TransportError::NoReader(_)), "{err:?}");
}
