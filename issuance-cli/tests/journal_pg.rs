//! The journal on PostgreSQL: open and migrate, allocation, one live card per SSN, desks in parallel.
//!
//! The server (`testkit::pg::TestDb`): `SSCARD_TEST_PG_URL` (a `postgresql://user@host:port` URL without a
//! password; PGPASSWORD if the server asks for one; each test makes its own database there; `cargo xtask test` sets
//! it), or else a throwaway cluster per test from Debian's PostgreSQL, stopped when the test ends. A test that can
//! have neither fails: it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::process::Command;
use std::sync::Barrier;

use issuance::journal::pg::{NewCardOwned, PgJournal};
use issuance::journal::{Assigned, Backend, Journal, Location, NewCard, SCHEMA_VERSION};
use issuance::{Error, JournalError};
use testkit::pg::TestDb;

use testkit::pg::password;

fn journal(db: &TestDb) -> PgJournal {
    PgJournal::connect(db.url(), password().as_ref()).unwrap()
}

fn assigned(region: &str, seq: u64) -> Assigned {
    Assigned {
        card_id: format!("{region}{seq:026}"),
        card_number: format!("N{seq:08}"),
        issue_date: "20260101".into(),
        expiry_date: "20360101".into(),
        card_type: "1".into(),
    }
}

fn new_card<'a>(ssn: &'a str, region: &'a str, chip: &'a str) -> NewCard<'a> {
    NewCard { batch: None, holder_line: 1, ssn, region, generation: 3, chip, atr: "3B", reader: "desk" }
}

#[test]
fn opens_migrates_and_refuses_a_newer_schema() {
    let db = TestDb::new("open");
    let j = journal(&db);
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    drop(j);
    // opened again: nothing to do
    let j = Journal::open_at(&Location::new(db.url().into()), password().as_ref()).unwrap();
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(j.cards().unwrap().is_empty());
    let mut client = db.client();
    client.execute("INSERT INTO migrations (version, applied) VALUES ($1, 'later')", &[&(SCHEMA_VERSION + 1)]).unwrap();
    match PgJournal::connect(db.url(), password().as_ref()) {
        Err(Error::Journal(JournalError::NewerSchema { found, supported })) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected a refusal of the newer schema, got {:?}", other.err()),
    }
}

#[test]
fn an_older_schema_is_upgraded_on_open() {
    let db = TestDb::new("upgrade");
    drop(journal(&db));
    // back to schema 1: no replacements, no batch settings
    let mut client = db.client();
    client
        .batch_execute(
            "DROP TRIGGER cards_count ON cards; DROP FUNCTION card_counts_track(); DROP TABLE card_counts; DROP INDEX cards_region; \
             ALTER TABLE batches DROP COLUMN desk, DROP COLUMN operator; \
             ALTER TABLE cards DROP COLUMN desk, DROP COLUMN operator; \
             ALTER TABLE steps DROP COLUMN desk, DROP COLUMN operator; \
             DROP TABLE replacements; ALTER TABLE batches DROP COLUMN settings; DELETE FROM migrations WHERE version > 1",
        )
        .unwrap();
    let j = journal(&db);
    assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
    let versions: Vec<i64> = client
        .query("SELECT version FROM migrations ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    assert_eq!(j.replacement(1).unwrap().map(|r| r.old_card), None);
    let b = j.new_batch("x.csv", 3, &[]).unwrap();
    assert_eq!(j.batch_settings(b).unwrap(), None);
    drop(j);
    drop(client);
}

#[test]
fn a_password_in_the_url_is_refused_without_being_repeated() {
    let e = PgJournal::connect("postgresql://desk:hunter2@127.0.0.1:1/j", None).err().unwrap();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, Error::Input(_)), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn allocation_per_region_and_one_live_card_per_ssn() {
    let db = TestDb::new("alloc");
    let j = journal(&db);
    let (_, s1) = j.new_card(&new_card("S1", "110100", "C1"), &|s| Ok(assigned("110100", s))).unwrap();
    let (_, s2) = j.new_card(&new_card("S2", "110100", "C2"), &|s| Ok(assigned("110100", s))).unwrap();
    let (_, t1) = j.new_card(&new_card("S3", "310100", "C3"), &|s| Ok(assigned("310100", s))).unwrap();
    assert_eq!((s1, s2, t1), (1, 2, 1));
    // a second live card of S1 is refused by the database, and its number is not burnt
    let again = j.new_card(&new_card("S1", "110100", "C9"), &|s| Ok(assigned("110100", s)));
    assert!(matches!(again, Err(Error::Postgres(_))), "{:?}", again.err());
    let (id, s3) = j.new_card(&new_card("S4", "110100", "C4"), &|s| Ok(assigned("110100", s))).unwrap();
    assert_eq!(s3, 3);
    // a refused preparation rolls its number back too
    let refused = j.new_card(&new_card("S5", "110100", "C5"), &|_| {
        Err(JournalError::NoBatch { row: issuance::Row::Card(0) }.into())
    });
    assert!(refused.is_err());
    let (_, s4) = j.new_card(&new_card("S5", "110100", "C5"), &|s| Ok(assigned("110100", s))).unwrap();
    assert_eq!(s4, 4);
    // the row reads back; once cancelled, the holder may have another card
    let row = j.card(id).unwrap();
    assert_eq!((row.ssn.as_str(), row.seq, row.state.as_str()), ("S4", 3, "pending"));
    assert!(j.ssn_has_card("S1").unwrap());
    j.set_state(1, "cancelled", Some("lost")).unwrap();
    assert!(!j.ssn_has_card("S1").unwrap());
    let (_, s5) = j.new_card(&new_card("S1", "110100", "C6"), &|s| Ok(assigned("110100", s))).unwrap();
    assert_eq!(s5, 5);
    assert_eq!(j.begin_attempt(id, "{}").unwrap(), 1);
    j.step_started(id, 1, 0, "select").unwrap();
    j.step_finished(id, 1, 0, true, None).unwrap();
    assert_eq!(j.step_count(id, 1, "done").unwrap(), 1);
    drop(j);
}

#[test]
fn eight_desks_allocate_400_card_numbers_gapless_and_unique() {
    const DESKS: usize = 8;
    const EACH: usize = 50;
    let db = TestDb::new("desks");
    drop(journal(&db)); // the schema, once
    let barrier = Barrier::new(DESKS);
    let seqs: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..DESKS)
            .map(|desk| {
                let (db, barrier) = (&db, &barrier);
                s.spawn(move || {
                    let j = journal(db); // each desk its own connection
                    barrier.wait();
                    (0..EACH)
                        .map(|i| {
                            let ssn = format!("D{desk}-{i}");
                            let chip = format!("CHIP{desk}-{i}");
                            let c = new_card(&ssn, "440300", &chip);
                            j.new_card(&c, &|seq| Ok(assigned("440300", seq))).unwrap().1
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(seqs.len(), DESKS * EACH);
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), DESKS * EACH, "duplicate sequence numbers");
    assert_eq!(unique, (1..=(DESKS * EACH) as u64).collect::<HashSet<u64>>(), "not gapless");
    let cards = journal(&db).cards().unwrap();
    let numbers: HashSet<&str> = cards.iter().map(|c| c.card_number.as_str()).collect();
    assert_eq!(numbers.len(), DESKS * EACH);
    drop(cards);
}

fn holder(line: u64) -> issuance::holders::Holder {
    issuance::holders::Holder {
        line,
        ssn: format!("SSN{line:04}"),
        name: "张三".into(),
        written_name: "张三".into(),
        name_ext: String::new(),
        sex: "1".into(),
        ethnicity: "01".into(),
        birthplace: "110100".into(),
        birth_date: "19800101".into(),
        region: "110100".into(),
        photo: None,
        own_pin: false,
        pin: None,
    }
}

#[test]
fn four_desks_working_through_one_batch_claim_every_holder_exactly_once() {
    const DESKS: usize = 4;
    const HOLDERS: u64 = 60;
    let db = TestDb::new("claims");
    let holders: Vec<_> = (2..HOLDERS + 2).map(holder).collect();
    let batch = journal(&db).new_batch("batch.csv", 3, &holders).unwrap();
    let barrier = Barrier::new(DESKS);
    let claimed: Vec<(usize, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..DESKS)
            .map(|desk| {
                let (db, barrier) = (&db, &barrier);
                s.spawn(move || {
                    let j = journal(db);
                    barrier.wait();
                    let mut mine = Vec::new();
                    let mut n = 0;
                    loop {
                        n += 1;
                        let card = |h: &issuance::holders::Holder| {
                            Ok(NewCardOwned {
                                batch: Some(batch),
                                holder_line: h.line,
                                ssn: h.ssn.clone(),
                                region: h.region.clone(),
                                generation: 3,
                                chip: format!("CHIP{desk}-{n}"),
                                atr: "3B".into(),
                                reader: format!("desk {desk}"),
                            })
                        };
                        match j.claim_and_new_card(batch, None, &card, &|_, seq| Ok(assigned("110100", seq))).unwrap() {
                            Some(c) => mine.push((desk, c.holder.line, c.seq)),
                            None => break mine,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let lines: HashSet<u64> = claimed.iter().map(|c| c.1).collect();
    assert_eq!(claimed.len() as u64, HOLDERS, "a holder claimed twice or missed");
    assert_eq!(lines, (2..HOLDERS + 2).collect::<HashSet<u64>>());
    let seqs: HashSet<u64> = claimed.iter().map(|c| c.2).collect();
    assert_eq!(seqs, (1..=HOLDERS).collect::<HashSet<u64>>(), "sequence numbers not gapless");
    let j = journal(&db);
    assert!(j.waiting_holders(batch).unwrap().is_empty());
    assert_eq!(j.cards_of_batch(batch).unwrap().len() as u64, HOLDERS);
    drop(j);
}

#[test]
fn the_command_line_reads_a_postgresql_journal_and_keeps_passwords_off_it() {
    let db = TestDb::new("cli");
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", db.url(), "status", "--json"])
        .env_remove("ISSUANCE_JOURNAL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "issuance/1", "{v}");
    // the schema was made by the command line
    assert_eq!(journal(&db).schema_version().unwrap(), SCHEMA_VERSION);
    let out = Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", "postgresql://desk:hunter2@127.0.0.1:1/j", "status"])
        .env_remove("ISSUANCE_JOURNAL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--journal-password-file") && !err.contains("hunter2"), "{err}");
}

/// A journal already at this schema opens without writing (a hot standby refuses DDL and locks): on a database
/// whose transactions are read-only, as a standby's are, `status` and `report` work; an older schema there is
/// refused by the server's words, not opened half-migrated.
#[test]
fn a_current_journal_opens_read_only_as_on_a_standby() {
    let db = TestDb::new("read_only");
    let j = journal(&db);
    j.new_card(&new_card("371702198101010112", "371700", "C1"), &|s| Ok(assigned("371700", s))).unwrap();
    drop(j);
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    let mut admin = db.client();
    admin.batch_execute(&format!("ALTER DATABASE {name} SET default_transaction_read_only = on")).unwrap();
    let j = journal(&db);
    assert_eq!(j.counts().unwrap(), vec![("pending".to_owned(), 1)]);
    // writing is what the server refuses
    assert!(matches!(j.set_state(1, "failed", None), Err(Error::Postgres(_))));
    for args in [&["status", "--json"][..], &["report", "--format", "csv"][..]] {
        let out =
            Command::new(env!("CARGO_BIN_EXE_issuance")).args(["--journal", db.url()]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // an older schema on a read-only server: the migration is refused, nothing half done
    admin.batch_execute(&format!("ALTER DATABASE {name} SET default_transaction_read_only = off")).unwrap();
    let mut c = db.client();
    c.batch_execute("DELETE FROM migrations WHERE version = 4").unwrap();
    admin.batch_execute(&format!("ALTER DATABASE {name} SET default_transaction_read_only = on")).unwrap();
    let e = PgJournal::connect(db.url(), password().as_ref()).err().unwrap();
    assert!(e.to_string().contains("read-only transaction"), "{e}");
}

#[test]
fn a_desk_claims_onwards_from_its_last_claim_and_comes_back_for_a_holder_freed_before_it() {
    let db = TestDb::new("claim_from");
    let holders: Vec<_> = (2..6).map(holder).collect();
    let j = journal(&db);
    let batch = j.new_batch("batch.csv", 3, &holders).unwrap();
    let card = |h: &issuance::holders::Holder| {
        Ok(NewCardOwned {
            batch: Some(batch),
            holder_line: h.line,
            ssn: h.ssn.clone(),
            region: h.region.clone(),
            generation: 3,
            chip: format!("CHIP-{}", h.line),
            atr: "3B".into(),
            reader: "desk".into(),
        })
    };
    let claim = |prefer: Option<u64>| {
        j.claim_and_new_card(batch, prefer, &card, &|_, seq| Ok(assigned("110100", seq)))
            .unwrap()
            .map(|c| c.holder.line)
    };
    assert_eq!(claim(None), Some(2));
    let first = j.cards_of_batch(batch).unwrap()[0].id;
    assert_eq!(claim(None), Some(3));
    // the first holder's card is rejected: the holder is waiting again, before where this desk looks next
    j.set_state(first, "rejected", Some("test")).unwrap();
    assert_eq!(claim(None), Some(4));
    assert_eq!(claim(None), Some(5));
    // nothing after its last claim: the desk looks again from the batch's start
    assert_eq!(claim(None), Some(2));
    assert_eq!(claim(None), None);
    // a preferred line is asked for first, wherever it is
    let second = j.cards_of_batch(batch).unwrap().iter().find(|c| c.holder_line == 3).unwrap().id;
    j.set_state(second, "cancelled", None).unwrap();
    assert_eq!(claim(Some(3)), Some(3));
    assert_eq!(claim(None), None);
}
