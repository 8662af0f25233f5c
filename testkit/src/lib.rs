//! Test support for end-to-end tests through pcscd and vsmartcard-vpcd.
//!
//! The two virtual readers (`Virtual PCD 00 00` on TCP 35963, `… 00 01` on 35964) are shared by every
//! end-to-end test of the workspace: hold [`vpcd_lock`] while using them. [`Reader0::insert`] puts a
//! fixture card into `Virtual PCD 00 00` from a thread of the test process (card-sim's vpcd client) and
//! waits until pcscd sees it; dropping the handle removes the card and waits until pcscd sees it gone.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod http;
pub mod key_service;
pub mod keys;
pub mod pcscd;
pub mod pg;
pub mod pki;
pub mod script;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use card_core::transport::{wait_for_card, wait_for_removal, ReaderSelector};
use card_sim::vpcd::InsertedCard;
use card_sim::{Card, SimTransport};

/// The reader the tests use.
pub const READER: &str = "Virtual PCD 00 00";
/// Its vpcd port.
pub const VPCD: &str = "127.0.0.1:35963";

/// Exclusive use of the virtual readers for the life of the returned file (`/tmp/sscard-vpcd.lock`).
pub fn vpcd_lock() -> File {
    let f = File::create("/tmp/sscard-vpcd.lock").expect("create the vpcd lock file");
    f.lock().expect("lock the vpcd readers");
    f
}

/// A fixture file of the repository (`fixtures/…`).
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(relative)
}

/// A fixture card image, loaded.
pub fn fixture_card(name: &str) -> Card {
    Card::load(fixture(&format!("cards/{name}"))).expect("load the fixture card")
}

/// The synthetic holder photo of the tests (`fixtures/photos/holder.jpg`, a drawn silhouette; TEST MATERIAL).
pub fn test_photo() -> Vec<u8> {
    std::fs::read(fixture("photos/holder.jpg")).expect("read fixtures/photos/holder.jpg")
}

/// A fixture card with `photo` written to its EF08 through card-core with the test keys (UKMF), as issuance
/// writes a holder's photo: the fixture cards themselves carry none.
pub fn fixture_card_with_photo(name: &str, photo: &[u8]) -> Card {
    let mut card = card_core::card::SocialSecurityCard::new(SimTransport::new(fixture_card(name)));
    card.write_binary(&keys::local_keys(), "SSSEEF08", photo).expect("write the photo");
    let mut card = card.into_transport().into_card();
    card.power_off();
    card
}

/// The selector of [`READER`].
pub fn reader() -> ReaderSelector {
    ReaderSelector::Name(READER.into())
}

/// A card in `Virtual PCD 00 00`, served from this process.
pub struct Reader0 {
    card: Option<InsertedCard>,
}

impl Reader0 {
    /// Inserts `card` and waits until pcscd reports it present.
    pub fn insert(card: SimTransport) -> Reader0 {
        wait_for_removal(&reader(), Duration::from_secs(10)).expect("reader empty before insertion");
        let inserted = InsertedCard::insert(card, VPCD).expect("connect to vpcd (is pcscd running?)");
        if wait_for_card(&reader(), Duration::from_secs(10)).is_ok() {
            return Reader0 { card: Some(inserted) };
        }
        // vpcd has been seen to miss an insertion under heavy parallel use of pcscd: out and in again, once
        eprintln!("testkit: pcscd did not see the card in {READER}; inserting it again");
        let card = inserted.remove().expect("card thread");
        let _ = wait_for_removal(&reader(), Duration::from_secs(10));
        let inserted = InsertedCard::insert(card, VPCD).expect("connect to vpcd (is pcscd running?)");
        let r = Reader0 { card: Some(inserted) };
        wait_for_card(&reader(), Duration::from_secs(10)).expect("pcscd sees the card");
        r
    }

    /// Inserts a fixture card by file name (`gen2-personalized.json`).
    pub fn insert_fixture(name: &str) -> Reader0 {
        Reader0::insert(SimTransport::new(fixture_card(name)))
    }

    /// Removes the card, waits until pcscd sees the reader empty, and returns the card.
    pub fn remove(mut self) -> SimTransport {
        let card = self.card.take().expect("inserted").remove().expect("card thread");
        wait_for_removal(&reader(), Duration::from_secs(10)).expect("pcscd sees the card gone");
        card
    }
}

impl Drop for Reader0 {
    fn drop(&mut self) {
        if let Some(c) = self.card.take() {
            drop(c);
            let _ = wait_for_removal(&reader(), Duration::from_secs(10));
        }
    }
}

/// A scratch directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
