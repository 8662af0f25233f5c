//! The reader's PIN pad (PC/SC part 10) through the real pcscd with vsmartcard-vpcd, which has no pad: the feature
//! request must come back as "no features", and the card-level PIN pad calls as "no PIN pad" (national −35) without
//! an APDU and without harm to the connection.
//!
//! Needs pcscd running with vsmartcard-vpcd (`cargo xtask test` starts both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::card::SocialSecurityCard;
use card_core::transport::pinpad::{PadTimeouts, PinModifyStructure, PinVerifyStructure};
use card_core::transport::{Control, PcscTransport, PinEntryError, RecordingTransport, Transport, TransportError};
use card_core::Error;
use testkit::{reader, vpcd_lock, Reader0};

/// What pcscd answers vpcd's `CM_IOCTL_GET_FEATURE_REQUEST`: `SCardControl` fails (the driver implements no
/// control), which the transport reports as "this reader has no part 10 features".
#[test]
fn vpcd_answers_the_feature_request_with_no_features() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let mut t = PcscTransport::connect(&reader()).unwrap();
    {
        let mut tx = t.transaction().unwrap();
        let raw = tx.control(Control::GetFeatureRequest);
        eprintln!("pcscd's answer to vpcd's feature request, as the transport reports it: {raw:?}");
        assert!(matches!(raw, Err(TransportError::Unsupported(_))) || matches!(&raw, Ok(b) if b.is_empty()), "{raw:?}");
    }
    let features = t.pinpad_features().unwrap();
    assert!(features.is_empty() && !features.has_pin_pad(), "{features:?}");
    let spec = card_core::profile::Profile::builtin().pin.clone();
    let verify = PinVerifyStructure::for_card(&spec, PadTimeouts::default()).unwrap();
    assert!(matches!(t.verify_pin_direct(&verify), Err(Error::PinEntry(PinEntryError::NoPinPad))));
    let modify = PinModifyStructure::for_card(&spec, PadTimeouts::default()).unwrap();
    assert!(matches!(t.modify_pin_direct(&modify), Err(Error::PinEntry(PinEntryError::NoPinPad))));
    assert!(t.is_live(), "the connection survives the failed control");
}

#[test]
fn card_on_vpcd_has_no_pin_pad_and_stays_usable() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let transport = RecordingTransport::counting(PcscTransport::connect(&reader()).unwrap());
    let mut card = SocialSecurityCard::new(transport);
    assert!(!card.has_pin_pad().unwrap());
    let err = card.verify_pin_on_pad(PadTimeouts::default()).unwrap_err();
    assert!(matches!(err, Error::PinEntry(PinEntryError::NoPinPad)), "{err:?}");
    assert_eq!(card_core::national::code(&err), card_core::national::PIN_ENTRY_UNAVAILABLE);
    let err = card.change_pin_on_pad(PadTimeouts::default()).unwrap_err();
    assert!(matches!(err, Error::PinEntry(PinEntryError::NoPinPad)), "{err:?}");
    assert_eq!(card.transport().counters().apdus, 0, "no APDU before the pad is known");
    // the card answers as before
    let info = card.detect().unwrap();
    assert_eq!(info.generation, card_core::profile::Generation::TWO);
    assert!(card.transport().counters().apdus > 0);
}
