//! `SocialSecurityCard::identified`: the card identifier (EF05 tag 01) read inside the operation's own transaction,
//! right after SELECT SSSE. The card side is a hand-written transcript (the SM4 card of
//! `fixtures/transcripts/gen3-real-fci-nokeys.txt`) played by the replay transport, which fails on the first command
//! the host sends that the transcript does not have.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::card::SocialSecurityCard;
use card_core::transport::{RecordingTransport, ReplayTransport};

const HEAD: &str = "atr 3B6D000000814A444686605199000001AC
> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00
< 6F1C840F7378312E73682EC9E7BBE1B1A3D5CFA50988011E9F0C038601039000
";

fn card(rest: &str) -> SocialSecurityCard<RecordingTransport<ReplayTransport>> {
    let replay = ReplayTransport::from_transcript(&format!("{HEAD}{rest}")).unwrap();
    SocialSecurityCard::new(RecordingTransport::counting(replay))
}

#[test]
fn the_identifier_is_read_after_select_in_the_same_transaction() {
    // READ RECORD EF05 record 1 (P2 = SFI 5 << 3 | 100)
    let mut c = card("> 00B2012C00\n< 0110519900D15600000510000B26FFFFFFFF9000\n");
    let (id, info) = c.identified(|c| c.detect());
    assert_eq!(info.unwrap().generation.number(), 3);
    assert_eq!(hex::encode_upper(id.unwrap()), "519900D15600000510000B26FFFFFFFF");
    assert_eq!(c.transport().counters().apdus, 2, "SELECT SSSE, READ RECORD: no transaction of its own");
    c.transport().inner().finish().unwrap();
}

#[test]
fn a_refused_read_leaves_the_identifier_unknown_and_the_operation_runs() {
    let mut c = card("> 00B2012C00\n< 6A83\n");
    let (id, info) = c.identified(|c| c.detect());
    assert!(info.is_ok());
    assert_eq!(id, None);
    c.transport().inner().finish().unwrap();
}

#[test]
fn outside_identified_nothing_more_is_read() {
    let mut c = card("");
    c.detect().unwrap();
    assert_eq!(c.transport().counters().apdus, 1);
    c.transport().inner().finish().unwrap();
}

#[test]
fn a_link_failure_during_the_read_fails_the_operation() {
    // the transcript ends after SELECT: the replay transport fails the READ RECORD as a link error
    let mut c = card("");
    let (id, info) = c.identified(|c| c.detect());
    assert_eq!(id, None);
    assert!(matches!(info, Err(card_core::Error::Transport(_))), "{info:?}");
}
