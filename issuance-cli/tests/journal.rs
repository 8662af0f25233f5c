//! The journal's schema: migrations recorded, reopening is harmless, a newer schema is refused, and the
//! UNIQUE rules hold (card id; card number per region; one unfinished card per chip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use issuance::journal::{Assigned, Journal, NewCard, SCHEMA_VERSION};

fn new_card(j: &Journal, chip: &str, id: &str, number: &str) -> Result<(i64, u64), issuance::Error> {
    let c = NewCard {
        batch: None,
        holder_line: 2,
        ssn: chip,
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
    assert!(Journal::open(&path).is_err());
}

#[test]
fn card_ids_numbers_and_open_chips_are_unique() {
    let j = Journal::in_memory().unwrap();
    let (a, seq) = new_card(&j, "AA", "ID1", "N1").unwrap();
    assert_eq!(seq, 1);
    assert!(new_card(&j, "AA", "ID2", "N2").is_err(), "one unfinished card per chip");
    assert!(new_card(&j, "BB", "ID1", "N2").is_err(), "card id unique");
    assert!(new_card(&j, "BB", "ID2", "N1").is_err(), "card number unique in the region");
    j.set_state(a, "rejected", Some("test")).unwrap();
    let (_, seq) = new_card(&j, "AA", "ID2", "N2").unwrap();
    assert_eq!(seq, 2, "a rejected card's number is not reused");
}

/// A version 1 journal (before replacements) is upgraded in place on open: its cards are kept and the
/// replacements table appears.
#[test]
fn a_version_1_journal_is_upgraded_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    {
        let j = Journal::open(&path).unwrap();
        new_card(&j, "AA", "ID1", "N1").unwrap();
    }
    // back to version 1 as it was released
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE replacements; DELETE FROM migrations WHERE version = 2;").unwrap();
    drop(conn);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.schema_version().unwrap(), 2);
    assert_eq!(j.cards().unwrap().len(), 1);
    assert!(j.replacement(1).unwrap().is_none());
}
