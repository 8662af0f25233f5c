//! Moving a desk's journal into the city's: `Backend::export` / `Backend::import`, into PostgreSQL
//! (`testkit::pg::TestDb`) and into another SQLite file; conflicts listed row by row with nothing imported;
//! importing twice; the command line `issuance journal import|export` with its exit codes; sources that are not
//! journals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use issuance::journal::pg::PgJournal;
use issuance::journal::transfer::{Clash, Dump, Side, TransferError};
use issuance::journal::{state, Assigned, BatchSettings, Desk, Journal, NewCard, SCHEMA_VERSION};
use issuance::{Error, InputError};
use testkit::pg::TestDb;

const REGION: &str = "110100";

use testkit::pg::password;

fn pg(db: &TestDb, desk: &str) -> Journal {
    Journal::from_backend(PgJournal::connect(db.url(), password().as_ref()).unwrap())
        .at_desk(Desk::new(desk, "central operator").unwrap())
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

fn holder(line: u64) -> issuance::holders::Holder {
    issuance::holders::Holder {
        line,
        ssn: format!("SSN{line:04}"),
        name: "张三".into(),
        written_name: "张三".into(),
        name_ext: String::new(),
        sex: "1".into(),
        ethnicity: "01".into(),
        birthplace: REGION.into(),
        birth_date: "19800101".into(),
        region: REGION.into(),
        photo: None,
        own_pin: false,
        pin: None,
    }
}

fn card_of(j: &Journal, batch: i64, line: u64, chip: &str) -> i64 {
    let ssn = format!("SSN{line:04}");
    let c = NewCard {
        batch: Some(batch),
        holder_line: line,
        ssn: &ssn,
        region: REGION,
        generation: 3,
        chip,
        atr: "3B",
        reader: "desk reader",
    };
    j.new_card(&c, &|seq| Ok(assigned(REGION, seq))).unwrap().0
}

/// Runs two steps of a new attempt of `card`, the second ok or not.
fn steps(j: &Journal, card: i64, second_ok: bool) {
    let attempt = j.begin_attempt(card, r#"{"MK_MF":1}"#).unwrap();
    j.step_started(card, attempt, 0, "select MF").unwrap();
    j.step_finished(card, attempt, 0, true, None).unwrap();
    j.step_started(card, attempt, 1, "write EF05").unwrap();
    j.step_finished(card, attempt, 1, second_ok, (!second_ok).then_some("torn")).unwrap();
}

/// A desk's SQLite journal: a batch of four holders with an issued card (costs recorded), a failed card, an issued
/// card replaced (its one-holder replacement batch, without a desk) and the successor pending. 6 steps.
fn desk_journal(path: &Path) {
    let j = Journal::open(path).unwrap().at_desk(Desk::new("desk-7", "alice").unwrap());
    let settings =
        BatchSettings { validity_years: 10, card_type: "1".into(), organisation: "000001".into(), issue_date: None };
    let holders: Vec<_> = (2..6).map(holder).collect();
    let batch = j.new_batch_with("desk7.csv", 3, &holders, Some(&settings)).unwrap();
    let issued = card_of(&j, batch, 2, "C1");
    steps(&j, issued, true);
    j.set_state_and_costs(issued, state::ISSUED, None, 40, 2000, Some(1_500_000)).unwrap();
    let failed = card_of(&j, batch, 3, "C2");
    steps(&j, failed, false);
    j.set_state(failed, state::FAILED, Some("card removed")).unwrap();
    let replaced = card_of(&j, batch, 4, "C3");
    steps(&j, replaced, true);
    j.set_state(replaced, state::ISSUED, None).unwrap();
    let successor_batch = j.replace_card(replaced, true, "lost", &holder(4)).unwrap();
    card_of(&j, successor_batch, 4, "C4");
}

/// The dump with its ids replaced by their rank (batches and cards in id order), the schema set to this build's
/// and rows without a desk given `desk`: what an import of it exports again.
fn normalized(d: &Dump, desk: &str) -> Dump {
    let mut d = d.clone();
    d.fill_desk(desk);
    d.schema = SCHEMA_VERSION;
    let batches: HashMap<i64, i64> = d.batches.iter().zip(1..).map(|(b, i)| (b.id, i)).collect();
    let cards: HashMap<i64, i64> = d.cards.iter().zip(1..).map(|(c, i)| (c.id, i)).collect();
    for b in &mut d.batches {
        b.id = batches[&b.id];
    }
    for c in &mut d.cards {
        c.id = cards[&c.id];
        c.batch = c.batch.map(|b| batches[&b]);
    }
    for s in &mut d.steps {
        s.card = cards[&s.card];
    }
    for x in &mut d.replacements {
        x.old_card = cards[&x.old_card];
        x.batch = batches[&x.batch];
    }
    d.steps.sort_by_key(|s| (s.card, s.attempt, s.idx));
    d.replacements.sort_by_key(|x| x.old_card);
    d
}

fn issuance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(args)
        .env_remove("ISSUANCE_JOURNAL")
        .env_remove("ISSUANCE_DESK")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_desk_journal_moves_into_postgresql_whole_and_numbers_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let before = std::fs::read(&source).unwrap();
    let dump = Dump::from_sqlite_file(&source).unwrap();
    assert_eq!((dump.schema, dump.batches.len(), dump.cards.len(), dump.steps.len()), (SCHEMA_VERSION, 2, 4, 6));
    assert_eq!(dump.replacements.len(), 1);
    assert_eq!(std::fs::read(&source).unwrap(), before, "the source journal was changed");

    let db = TestDb::new("transfer_pg");
    let central = pg(&db, "city-1");
    let report = central.import(&dump, "desk.db").unwrap();
    assert!(report.imported(), "{:?}", report.conflicts);
    assert_eq!((report.batches, report.holders, report.cards, report.steps, report.replacements), (2, 5, 4, 6, 1));
    assert_eq!(report.source, "desk.db");

    let desk = Journal::open(&source).unwrap();
    assert_eq!(central.counts().unwrap(), desk.counts().unwrap());
    let ids =
        |j: &Journal| j.cards().unwrap().into_iter().map(|c| (c.card_id, c.card_number, c.seq)).collect::<Vec<_>>();
    assert_eq!(ids(&central), ids(&desk));
    assert_eq!(normalized(&central.export().unwrap(), "city-1"), normalized(&dump, "city-1"));
    // the replacement batch had no desk: it gets the importing desk; the others keep theirs
    let batches = central.batch_summaries().unwrap();
    assert_eq!(batches.iter().map(|b| b.desk.as_deref()).collect::<Vec<_>>(), [Some("desk-7"), Some("city-1")]);
    let replaced = central.cards().unwrap().into_iter().find(|c| c.state == state::REPLACED).unwrap();
    let r = central.replacement(replaced.id).unwrap().unwrap();
    assert_eq!(r.batch, batches[1].id);
    assert!(r.old_blocked);
    // the next card of the region continues after the imported sequence numbers
    let holder_batch = central.new_batch("more.csv", 3, &[holder(9)]).unwrap();
    let (_, seq) = central
        .new_card(
            &NewCard {
                batch: Some(holder_batch),
                holder_line: 9,
                ssn: "SSN0009",
                region: REGION,
                generation: 3,
                chip: "C9",
                atr: "3B",
                reader: "r",
            },
            &|seq| Ok(assigned(REGION, seq)),
        )
        .unwrap();
    assert_eq!(seq, 5);
}

#[test]
fn a_desk_journal_moves_into_another_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let dump = Dump::from_sqlite_file(&source).unwrap();
    let target = Journal::open(&dir.path().join("city.db")).unwrap().at_desk(Desk::new("city-2", "bob").unwrap());
    // a card of another region already there
    let other = NewCard {
        batch: None,
        holder_line: 1,
        ssn: "SSN9999",
        region: "120100",
        generation: 3,
        chip: "X1",
        atr: "3B",
        reader: "r",
    };
    target.new_card(&other, &|seq| Ok(assigned("120100", seq))).unwrap();
    let report = target.import(&dump, "desk.db").unwrap();
    assert!(report.imported(), "{:?}", report.conflicts);
    assert_eq!((report.batches, report.cards, report.steps), (2, 4, 6));
    let mut after = target.export().unwrap();
    assert_eq!(after.cards.len(), 5);
    after.cards.remove(0);
    assert_eq!(normalized(&after, "city-2"), normalized(&dump, "city-2"));
    let desk = Journal::open(&source).unwrap();
    let mut expected = desk.counts().unwrap();
    expected.iter_mut().find(|(s, _)| s == state::PENDING).unwrap().1 += 1;
    assert_eq!(target.counts().unwrap(), expected);
    for c in desk.cards().unwrap() {
        let moved = target.cards().unwrap().into_iter().find(|m| m.card_id == c.card_id).unwrap();
        assert_eq!((moved.card_number, moved.seq, moved.state, moved.desk), (c.card_number, c.seq, c.state, c.desk));
    }
}

#[test]
fn conflicts_are_listed_row_by_row_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let mut dump = Dump::from_sqlite_file(&source).unwrap();
    let failed = dump.cards.iter().find(|c| c.state == state::FAILED).unwrap().clone();
    let issued = dump.cards.iter().find(|c| c.state == state::ISSUED).unwrap().clone();
    // the same card twice in the dump
    let mut twice = issued.clone();
    twice.id = 99;
    dump.cards.push(twice);

    let db = TestDb::new("transfer_conflicts");
    let central = pg(&db, "city-1");
    let mut client = db.client();
    client.execute("INSERT INTO region_counters (region, last_seq) VALUES ($1, 100)", &[&REGION]).unwrap();
    // a card number already used centrally (the failed card's), and an SSN with a live card (the issued card's)
    let b = central.new_batch("city.csv", 3, &[]).unwrap();
    let nc = |ssn: &'static str, region: &'static str, chip: &'static str| NewCard {
        batch: Some(b),
        holder_line: 1,
        ssn,
        region,
        generation: 3,
        chip,
        atr: "3B",
        reader: "r",
    };
    let number = failed.card_number.clone();
    let (taken, _) = central
        .new_card(&nc("SSN7777", REGION, "Z1"), &|seq| {
            Ok(Assigned { card_number: number.clone(), ..assigned(REGION, seq) })
        })
        .unwrap();
    let (live, _) = central.new_card(&nc("SSN0002", "120100", "Z2"), &|seq| Ok(assigned("120100", seq))).unwrap();
    let before = central.export().unwrap();
    let counts = central.counts().unwrap();

    let report = central.import(&dump, "desk.db").unwrap();
    assert!(!report.imported());
    let got: Vec<(i64, Clash, Side, i64)> =
        report.conflicts.iter().map(|c| (c.card.id, c.clash, c.side, c.other.id)).collect();
    assert!(got.contains(&(failed.id, Clash::CardNumber, Side::Central, taken)), "{got:?}");
    assert!(got.contains(&(issued.id, Clash::LiveSsn, Side::Central, live)), "{got:?}");
    for clash in [Clash::CardId, Clash::CardNumber, Clash::Seq, Clash::LiveSsn] {
        assert!(got.contains(&(99, clash, Side::Dump, issued.id)), "{clash:?} {got:?}");
    }
    // the copy's SSN also has the central live card
    assert!(got.contains(&(99, Clash::LiveSsn, Side::Central, live)), "{got:?}");
    assert_eq!(got.len(), 7, "{got:?}");
    let shown = report.conflicts[0].to_string();
    assert!(shown.contains(&failed.card_number) || shown.contains(&issued.card_number), "{shown}");
    // nothing changed: the rows, the counts, the counter
    assert_eq!(central.export().unwrap(), before);
    assert_eq!(central.counts().unwrap(), counts);
    let last: i64 =
        client.query_one("SELECT last_seq FROM region_counters WHERE region = $1", &[&REGION]).unwrap().get(0);
    assert_eq!(last, 101);
}

#[test]
fn importing_twice_reports_every_card_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let dump = Dump::from_sqlite_file(&source).unwrap();
    let central = Journal::open(&dir.path().join("city.db")).unwrap();
    assert!(central.import(&dump, "desk.db").unwrap().imported());
    let once = central.export().unwrap();
    let again = central.import(&dump, "desk.db").unwrap();
    assert!(!again.imported());
    assert_eq!((again.batches, again.cards, again.steps), (0, 0, 0));
    for c in &dump.cards {
        assert!(
            again.conflicts.iter().any(|k| k.card.id == c.id && k.clash == Clash::CardId && k.side == Side::Central),
            "card {} not reported",
            c.id
        );
    }
    assert_eq!(central.export().unwrap(), once);
}

#[test]
fn export_then_import_round_trips_modulo_ids() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let desk = Journal::open(&source).unwrap();
    let dump = desk.export().unwrap();
    let mut bytes = Vec::new();
    dump.write_to(&mut bytes).unwrap();
    let first: serde_json::Value = serde_json::from_slice(bytes.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!((first["format"].as_str(), first["schema"].as_i64()), (Some("issuance-journal/1"), Some(4)));
    assert_eq!(first["cards"], 4);
    let read = Dump::read_from(bytes.as_slice()).unwrap();
    assert_eq!(read, dump);
    let target = Journal::in_memory().unwrap().at_desk(Desk::new("city-3", "carol").unwrap());
    assert!(target.import(&read, "dump").unwrap().imported());
    assert_eq!(normalized(&target.export().unwrap(), "city-3"), normalized(&dump, "city-3"));
}

#[test]
fn a_version_3_journal_is_read_without_being_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("v3.db");
    desk_journal(&source);
    let conn = rusqlite::Connection::open(&source).unwrap();
    conn.execute_batch(
        "DROP TRIGGER cards_count_insert; DROP TRIGGER cards_count_update; DROP TABLE card_counts; \
         DROP INDEX cards_desk; DROP INDEX cards_region; \
         ALTER TABLE batches DROP COLUMN desk; ALTER TABLE batches DROP COLUMN operator; \
         ALTER TABLE cards DROP COLUMN desk; ALTER TABLE cards DROP COLUMN operator; \
         ALTER TABLE steps DROP COLUMN desk; ALTER TABLE steps DROP COLUMN operator; \
         DELETE FROM migrations WHERE version = 4;",
    )
    .unwrap();
    drop(conn);
    let before = std::fs::read(&source).unwrap();
    let dump = Dump::from_sqlite_file(&source).unwrap();
    assert_eq!(dump.schema, 3);
    assert!(dump.cards.iter().all(|c| c.desk.is_none()));
    assert_eq!(std::fs::read(&source).unwrap(), before, "the source journal was changed");
    let target = Journal::in_memory().unwrap().at_desk(Desk::new("city-4", "dan").unwrap());
    assert!(target.import(&dump, "v3.db").unwrap().imported());
    assert!(target.cards().unwrap().iter().all(|c| c.desk.as_deref() == Some("city-4")));
    let desks = target.desk_counts(&issuance::journal::Scope::all()).unwrap();
    assert!(desks.iter().all(|d| d.desk == "city-4"), "{desks:?}");
}

fn transfer_error(r: Result<Dump, Error>) -> TransferError {
    match r {
        Err(Error::Input(InputError::Transfer(e))) => e,
        other => panic!("expected a refusal of the source, got {other:?}"),
    }
}

#[test]
fn a_source_that_is_not_a_journal_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random.db");
    let bytes: Vec<u8> = (0..4096_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&random, &bytes).unwrap();
    let e = transfer_error(Dump::from_sqlite_file(&random));
    assert!(matches!(e, TransferError::NotSqlite { .. }), "{e}");
    assert!(e.to_string().contains("not a SQLite journal"), "{e}");
    assert!(matches!(transfer_error(Dump::from_sqlite_file(Path::new("/dev/zero"))), TransferError::NotSqlite { .. }));
    assert!(matches!(transfer_error(Dump::read_file(Path::new("/dev/zero"))), TransferError::NoHeader));
    assert!(matches!(transfer_error(Dump::read_file(&random)), TransferError::NoHeader));
    assert!(matches!(
        transfer_error(Dump::from_sqlite_file(&dir.path().join("missing.db"))),
        TransferError::File { .. }
    ));
    // a SQLite database of something else; an old journal; a newer one
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    assert!(matches!(transfer_error(Dump::from_sqlite_file(&other)), TransferError::NotAJournal { .. }));
    let old = dir.path().join("old.db");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch(
            "CREATE TABLE migrations (version INTEGER, applied TEXT); INSERT INTO migrations VALUES (2, 'x')",
        )
        .unwrap();
    assert!(matches!(transfer_error(Dump::from_sqlite_file(&old)), TransferError::OlderSchema { found: 2 }));
    let newer = dir.path().join("newer.db");
    desk_journal(&newer);
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute("INSERT INTO migrations (version, applied) VALUES (?1, 'later')", [SCHEMA_VERSION + 1])
        .unwrap();
    let e = transfer_error(Dump::from_sqlite_file(&newer));
    assert!(
        matches!(e, TransferError::NewerSchema { found, supported: SCHEMA_VERSION } if found == SCHEMA_VERSION + 1)
    );
    // dumps: a newer schema, cut short, a row that is not one
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let mut written = Vec::new();
    Dump::from_sqlite_file(&source).unwrap().write_to(&mut written).unwrap();
    let lines = String::from_utf8(written).unwrap();
    let newer_dump = lines.replacen("\"schema\":4", "\"schema\":5", 1);
    assert!(matches!(
        transfer_error(Dump::read_from(newer_dump.as_bytes())),
        TransferError::NewerSchema { found: 5, .. }
    ));
    let cut: Vec<&str> = lines.lines().collect();
    let cut = cut[..cut.len() - 1].join("\n");
    assert!(matches!(transfer_error(Dump::read_from(cut.as_bytes())), TransferError::Count { .. }));
    let bad = format!("{lines}{{\"row\":\"card\",\"id\":\"x\"}}\n");
    assert!(matches!(transfer_error(Dump::read_from(bad.as_bytes())), TransferError::Line { .. }));

    // the command line: exit code 2 and the reason, no panic
    let journal = dir.path().join("city.db");
    let j = journal.to_str().unwrap();
    for (from, dump) in [(random.to_str().unwrap(), false), ("/dev/zero", false), ("/dev/zero", true)] {
        let mut args = vec!["--journal", j, "journal", "import", "--from", from];
        if dump {
            args.push("--dump");
        }
        let out = issuance(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{from}: {err}");
        assert!(err.contains("not a SQLite journal") || err.contains("not a dump"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn the_command_line_imports_and_exports_with_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("desk.db");
    desk_journal(&source);
    let from = source.to_str().unwrap();
    let db = TestDb::new("transfer_cli");
    let url = db.url();

    let out =
        issuance(&["--journal", url, "--desk", "city-9", "journal", "import", "--from", from, "--as-desk", "old-7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("imported 2 batches, 4 cards, 6 steps from {from}"));
    // the replacement batch had no desk
    let central = pg(&db, "x");
    let desks: Vec<Option<String>> = central.batch_summaries().unwrap().into_iter().map(|b| b.desk).collect();
    assert_eq!(desks, [Some("desk-7".to_owned()), Some("old-7".to_owned())]);

    // again: every card a conflict, exit code 2, listed
    let out = issuance(&["--journal", url, "--json", "journal", "import", "--from", from]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["imported"].as_bool(), v["cards"].as_u64()),
        (Some("issuance/1"), Some(false), Some(0))
    );
    let conflicts = v["conflicts"].as_array().unwrap();
    assert!(conflicts.len() >= 4, "{v}");
    assert_eq!(conflicts[0]["clash"], "card_id");
    assert_eq!(conflicts[0]["side"], "central");
    assert!(text(&out.stderr).contains("nothing was imported"), "{}", text(&out.stderr));
    let out = issuance(&["--journal", url, "journal", "import", "--from", from]);
    assert_eq!(out.status.code(), Some(2));
    let listed = text(&out.stdout);
    assert_eq!(listed.lines().count(), 1 + conflicts.len(), "{listed}");
    assert!(listed.contains("card id already used in this journal"), "{listed}");

    // export to a file and to standard output, then into a fresh SQLite journal
    let dumped = dir.path().join("city.jsonl");
    let out = issuance(&["--journal", url, "journal", "export", "--out", dumped.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("exported 2 batches, 4 cards, 6 steps to "), "{}", text(&out.stdout));
    let out = issuance(&["--journal", url, "journal", "export"]);
    assert!(out.status.success());
    let header: serde_json::Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "issuance-journal/1");
    assert_eq!(text(&out.stdout).lines().count(), 1 + 2 + 4 + 6 + 1);
    let fresh = dir.path().join("fresh.db");
    let out = issuance(&[
        "--journal",
        fresh.to_str().unwrap(),
        "--json",
        "journal",
        "import",
        "--dump",
        "--from",
        dumped.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["cards"].as_u64(), v["steps"].as_u64()),
        (Some("issuance/1"), Some(4), Some(6))
    );
    let fresh = Journal::open(&fresh).unwrap();
    assert_eq!(normalized(&fresh.export().unwrap(), "-"), normalized(&central.export().unwrap(), "-"));
    // a SQLite dump given as a dump, a dump given as a journal: refused
    let out = issuance(&["--journal", url, "journal", "import", "--dump", "--from", from]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = issuance(&["--journal", url, "journal", "import", "--from", dumped.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--dump"), "{}", text(&out.stderr));
}
