//! The journal's schema: migrations recorded, reopening is harmless, a newer schema is refused, and the
//! UNIQUE rules hold (card id; card number per region; one unfinished card per chip).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use issuance::journal::{Assigned, BatchSettings, Journal, NewCard, SCHEMA_VERSION};

/// A card for chip `chip`, card id `id`, card number `number`; its SSN is `chip/id` (its own unless a test
/// repeats chip and id), so that a refusal comes from the rule under test, not from the one live card per SSN.
fn new_card(j: &Journal, chip: &str, id: &str, number: &str) -> Result<(i64, u64), issuance::Error> {
    let ssn = format!("{chip}/{id}");
    let c = NewCard {
        batch: None,
        holder_line: 2,
        ssn: &ssn,
        region: "371700",
        generation: 2,
        chip,
        atr: "3B",
        reader: "test",
    };
    j.new_card(&c, &|_| {
        Ok(Assigned {
            card_id: id.into(),
            card_number: number.into(),
            issue_date: "20260101".into(),
            expiry_date: "20360101".into(),
            card_type: "1".into(),
        })
    })
}

#[test]
fn schema_is_versioned_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    assert_eq!(Journal::open(&path).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(Journal::open(&path).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO migrations (version, applied) VALUES (99, 'future')", []).unwrap();
    drop(conn);
    assert!(matches!(
        Journal::open(&path),
        Err(issuance::Error::Journal(issuance::JournalError::NewerSchema { found: 99, supported: SCHEMA_VERSION }))
    ));
}

/// The columns of the UNIQUE rule that refused `r` (SQLite's "UNIQUE constraint failed: …").
fn unique_violation(r: Result<(i64, u64), issuance::Error>) -> String {
    match r {
        Err(issuance::Error::Sqlite(rusqlite::Error::SqliteFailure(e, Some(msg))))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            msg.strip_prefix("UNIQUE constraint failed: ").unwrap_or(&msg).to_owned()
        }
        other => panic!("expected a UNIQUE violation, got {other:?}"),
    }
}

#[test]
fn card_ids_numbers_and_open_chips_are_unique() {
    let j = Journal::in_memory().unwrap();
    let (a, seq) = new_card(&j, "AA", "ID1", "N1").unwrap();
    assert_eq!(seq, 1);
    assert_eq!(unique_violation(new_card(&j, "AA", "ID2", "N2")), "cards.chip", "one unfinished card per chip");
    assert_eq!(unique_violation(new_card(&j, "BB", "ID1", "N2")), "cards.card_id", "card id unique");
    assert_eq!(
        unique_violation(new_card(&j, "BB", "ID2", "N1")),
        "cards.region, cards.card_number",
        "card number unique in the region"
    );
    j.set_state(a, "rejected", Some("test")).unwrap();
    let (_, seq) = new_card(&j, "AA", "ID2", "N2").unwrap();
    assert_eq!(seq, 2, "a rejected card's number is not reused");
}

/// A version 1 journal (before replacements and batch settings) is upgraded in place on open: its cards and
/// batches are kept, the replacements table appears, and its old batch has no journalled settings.
#[test]
fn a_version_1_journal_is_upgraded_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let old_batch = {
        let j = Journal::open(&path).unwrap();
        new_card(&j, "AA", "ID1", "N1").unwrap();
        j.new_batch("old.csv", 2, &[]).unwrap()
    };
    // back to version 1 as it was first written
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER cards_count_insert; DROP TRIGGER cards_count_update; DROP TABLE card_counts; \
         DROP INDEX cards_desk; DROP INDEX cards_region; DROP INDEX cards_batch; \
         ALTER TABLE batches DROP COLUMN desk; ALTER TABLE batches DROP COLUMN operator; \
         ALTER TABLE cards DROP COLUMN desk; ALTER TABLE cards DROP COLUMN operator; \
         ALTER TABLE steps DROP COLUMN desk; ALTER TABLE steps DROP COLUMN operator; \
         DROP TABLE replacements; ALTER TABLE batches DROP COLUMN settings; DELETE FROM migrations WHERE version >= 2;",
    )
    .unwrap();
    drop(conn);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(j.cards().unwrap().len(), 1);
    assert!(j.replacement(1).unwrap().is_none());
    assert_eq!(j.batch_settings(old_batch).unwrap(), None);
    // version 4's counts are filled from the cards already there; the old card has no desk
    assert_eq!(j.counts().unwrap(), vec![("pending".to_owned(), 1)]);
    let desks = j.desk_counts(&issuance::journal::Scope::all()).unwrap();
    assert_eq!((desks.len(), desks[0].desk.as_str(), desks[0].cards), (1, "", 1));
    assert_eq!(j.cards().unwrap()[0].desk, None);
}

/// A batch keeps the settings it was started with.
#[test]
fn batch_settings_are_journalled() {
    let j = Journal::in_memory().unwrap();
    let s = BatchSettings {
        validity_years: 5,
        card_type: "3".into(),
        organisation: "000002".into(),
        issue_date: Some("20261201".into()),
    };
    let b = j.new_batch_with("x.csv", 3, &[], Some(&s)).unwrap();
    assert_eq!(j.batch_settings(b).unwrap(), Some(s));
    let plain = j.new_batch("y.csv", 3, &[]).unwrap();
    assert_eq!(j.batch_settings(plain).unwrap(), None);
    assert!(j.batch_settings(999).unwrap().is_none());
}
