//! A city's journal with a real streaming replica: a primary and a hot standby made from it (`pg_basebackup -R
//! -X stream`, `testkit::pg::Cluster::start_standby`), both throwaway clusters of the test's own (not
//! `SSCARD_TEST_PG_URL`'s server; without Debian's PostgreSQL the tests fail, they never skip).
//!
//! - Reads on the standby: desks issue a batch on the primary; once the standby has replayed the primary's WAL,
//!   the journal opens there without DDL and every read (`status`, counts, cards, `report`, by the library and by
//!   the `issuance` program) equals the primary's; a write is refused with words that say the server is read-only.
//! - Failover: the standby is made synchronous, the primary is killed (`pg_ctl stop -m immediate`) while two desks
//!   are working, the standby is promoted, and a desk finishes the same batch there: no card the desks saw issued
//!   is lost, every holder ends with exactly one issued card, and the region's numbers are gapless and unique.
//!
//! Cards are card-sim cards in process, personalized and verified for real (as in `tests/desks.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use card_core::profile::Generation;
use card_sim::SimTransport;
use issuance::journal::pg::PgJournal;
use issuance::journal::{state, Backend, Desk, Journal, Location, Scope, Wait, SCHEMA_VERSION};
use issuance::prepare::{Settings, StoreKeySource};
use issuance::run::Issuer;
use issuance::Error;
use testkit::pg::Cluster;

const G: Generation = Generation::TWO;
const DESKS: usize = 2;
const HOLDERS: usize = 20;
const REGION: &str = "371700";

fn keys() -> (tempfile::TempDir, StoreKeySource) {
    let dir = tempfile::tempdir().unwrap();
    common::make_store(&dir.path().join("keys.db"));
    let keys = common::key_source(&dir.path().join("keys.db"));
    (dir, keys)
}

fn desk_journal(url: &str, desk: usize) -> Journal {
    let location = Location::new(url.into());
    Journal::open_waiting(&location, None, Wait::default())
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .at_desk(Desk::new(&format!("desk-{desk}"), &format!("clerk {desk}")).unwrap())
}

/// `DESKS` desks work through `batch` on `url` until no holder is left; the holder lines each issued.
fn issue_all(url: &str, keys: &StoreKeySource, batch: i64, serial: &AtomicU64) -> Vec<Vec<u64>> {
    let barrier = Barrier::new(DESKS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=DESKS)
            .map(|d| {
                let barrier = &barrier;
                s.spawn(move || {
                    let journal = desk_journal(url, d);
                    let issuer = Issuer::reference(keys, &journal, Settings::new(G));
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let mut card =
                            SimTransport::new(common::blank(G.number(), serial.fetch_add(1, Ordering::SeqCst)));
                        match issuer.issue_from_batch(&mut card, batch, None, &|_| None).unwrap() {
                            Some((holder, _, _)) => mine.push(holder.line),
                            None => break mine,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// What the journal holds at the end: every card of the batch issued, one per holder, the region's numbers 1..=n
/// gapless and unique.
fn assert_issued_once_each(j: &Journal, batch: i64, n: usize) {
    let cards = j.cards_of_batch(batch).unwrap();
    let not_issued: Vec<_> = cards.iter().filter(|c| c.state != state::ISSUED).map(|c| (c.id, &c.state)).collect();
    assert!(not_issued.is_empty(), "cards not issued: {not_issued:?}");
    assert_eq!(cards.len(), n, "one card per holder");
    let lines: BTreeSet<i64> = cards.iter().map(|c| c.holder_line).collect();
    assert_eq!(lines, (2..n as i64 + 2).collect(), "every holder once");
    assert!(cards.iter().all(|c| c.region == REGION));
    let seqs: BTreeSet<i64> = cards.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=n as i64).collect(), "sequence numbers gapless from 1");
    let ids: BTreeSet<&str> = cards.iter().map(|c| c.card_id.as_str()).collect();
    let numbers: BTreeSet<&str> = cards.iter().map(|c| c.card_number.as_str()).collect();
    assert_eq!((ids.len(), numbers.len()), (n, n), "card ids and numbers unique");
    let region = Scope { region: Some(REGION.into()), ..Scope::default() };
    assert_eq!(j.counts_in(&region).unwrap(), vec![(state::ISSUED.to_owned(), n as i64)]);
    assert!(j.waiting_holders(batch).unwrap().is_empty());
}

/// What `issuance --journal URL ARGS…` prints as JSON (it must succeed).
fn program_json(url: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", url])
        .args(args)
        .env_remove("ISSUANCE_JOURNAL")
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} on {url}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn json<T: serde::Serialize>(v: T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn in_recovery(cluster: &Cluster) -> bool {
    let mut c = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    c.query_one("SELECT pg_is_in_recovery()", &[]).unwrap().get(0)
}

/// Desks issue a batch on the primary; the standby, once it has replayed, answers every read as the primary does —
/// the library's reads and the program's `status --json` and `report --format json` — and refuses a write saying
/// the server is read-only.
#[test]
fn reads_on_a_streaming_standby_equal_the_primarys_and_a_write_is_refused_as_read_only() {
    let primary = Cluster::start();
    // the standby exists before the journal does: the schema reaches it by streaming too
    let standby = primary.start_standby();
    assert!(in_recovery(&standby) && !in_recovery(&primary));
    let (_dir, keys) = keys();
    let holders = common::many_holders(HOLDERS);
    let batch = desk_journal(&primary.url(), 0).new_batch("city.csv", G.number(), &holders).unwrap();
    let serial = AtomicU64::new(0x60_0000);
    let per_desk = issue_all(&primary.url(), &keys, batch, &serial);
    assert_eq!(per_desk.iter().map(Vec::len).sum::<usize>(), HOLDERS);
    assert!(per_desk.iter().all(|m| !m.is_empty()), "both desks issued: {per_desk:?}");
    let at = standby.wait_for_replay(&primary);
    eprintln!("the standby replayed up to {at}");

    // the journal opens on the standby without DDL (a hot standby refuses any): the schema is current
    let pg = PgJournal::connect(&standby.url(), None).unwrap_or_else(|e| panic!("the standby: {e}"));
    assert_eq!(pg.schema_version().unwrap(), SCHEMA_VERSION);
    let (p, s) = (desk_journal(&primary.url(), 0), desk_journal(&standby.url(), 0));
    assert_issued_once_each(&p, batch, HOLDERS);
    assert_issued_once_each(&s, batch, HOLDERS);
    let region = Scope { region: Some(REGION.into()), ..Scope::default() };
    let desk1 = Scope { desk: Some("desk-1".into()), ..Scope::default() };
    let of_batch = Scope { batch: Some(batch), ..Scope::default() };
    for scope in [Scope::all(), region, desk1, of_batch] {
        assert_eq!(s.counts_in(&scope).unwrap(), p.counts_in(&scope).unwrap(), "{scope:?}");
        assert_eq!(s.desk_counts(&scope).unwrap(), p.desk_counts(&scope).unwrap(), "{scope:?}");
        assert_eq!(json(s.cards_in(&scope, None).unwrap()), json(p.cards_in(&scope, None).unwrap()), "{scope:?}");
        assert_eq!(json(s.cards_in(&scope, Some(5)).unwrap()), json(p.cards_in(&scope, Some(5)).unwrap()));
        assert_eq!(
            json(s.batch_summaries_in(&scope, None).unwrap()),
            json(p.batch_summaries_in(&scope, None).unwrap())
        );
    }
    assert_eq!(s.batch_settings(batch).unwrap(), p.batch_settings(batch).unwrap());
    assert_eq!(s.cards_in(&Scope::all(), None).unwrap().len(), HOLDERS);
    // the program: `status --json` and `report --format json`, whole city and one desk, the same on both
    for args in [
        &["--json", "status"][..],
        &["--json", "status", "--desk", "desk-2"],
        &["report", "--format", "json"],
        &["report", "--format", "json", "--region", REGION],
    ] {
        let (on_standby, on_primary) = (program_json(&standby.url(), args), program_json(&primary.url(), args));
        assert_eq!(on_standby, on_primary, "{args:?}");
    }
    assert_eq!(program_json(&standby.url(), &["--json", "status"])["total"], HOLDERS as i64);

    // a write on the standby: refused, and the words say why
    let e = s.new_batch("late.csv", G.number(), &common::many_holders(1)).unwrap_err();
    assert!(matches!(e, Error::Postgres(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("read-only"), "{text}");
    assert!(text.contains("the journal server is read-only (a standby?): desks write to the primary"), "{text}");
    // nothing was written anywhere
    assert_eq!(p.last_batch().unwrap(), Some(batch));
    assert_eq!(s.last_batch().unwrap(), Some(batch));
}

/// The standby is synchronous (a commit on the primary returns once the standby has it); the primary is killed
/// while two desks work through the batch; the standby is promoted and a desk finishes the batch there. What this
/// shows is the synchronous case under load: every card a desk saw issued before the kill is issued on the
/// promoted server, a card cut off by the kill is resumed there, and in the end every holder has exactly one
/// issued card and the region's numbers are gapless and unique.
#[test]
fn failover_to_a_synchronous_standby_loses_no_card_and_a_desk_finishes_the_batch() {
    let mut primary = Cluster::start();
    let mut standby = primary.start_standby();
    primary.make_synchronous(&standby);
    let (_dir, keys) = keys();
    let holders = common::many_holders(HOLDERS);
    let batch = desk_journal(&primary.url(), 0).new_batch("failover.csv", G.number(), &holders).unwrap();
    let serial = AtomicU64::new(0x70_0000);
    // the cards each desk saw issued (holder line, card row), and the cards cut off by the kill
    let issued: Mutex<Vec<(u64, i64)>> = Mutex::default();
    let count = AtomicUsize::new(0);
    let cut_off: Mutex<Vec<SimTransport>> = Mutex::default();
    std::thread::scope(|s| {
        for d in 1..=DESKS {
            let (keys, serial, issued, count, cut_off, url) =
                (&keys, &serial, &issued, &count, &cut_off, primary.url());
            s.spawn(move || {
                let journal = desk_journal(&url, d);
                let issuer = Issuer::reference(keys, &journal, Settings::new(G));
                loop {
                    let mut card = SimTransport::new(common::blank(G.number(), serial.fetch_add(1, Ordering::SeqCst)));
                    match issuer.issue_from_batch(&mut card, batch, None, &|_| None) {
                        Ok(Some((holder, id, _))) => {
                            issued.lock().unwrap().push((holder.line, id));
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(None) => panic!("desk-{d}: the batch was finished before the primary was killed"),
                        // the primary is gone: this desk stops, its card kept to be resumed
                        Err(e) => {
                            eprintln!("desk-{d}: the card stopped: {e}");
                            cut_off.lock().unwrap().push(card);
                            break;
                        }
                    }
                }
            });
        }
        // under way: the primary dies as a crash would (no checkpoint, no shutdown record)
        let start = std::time::Instant::now();
        while count.load(Ordering::SeqCst) < HOLDERS / 3 {
            let stopped = cut_off.lock().unwrap().len();
            assert!(stopped == 0, "a desk stopped before the kill");
            assert!(start.elapsed() < Duration::from_secs(120), "the desks issued too slowly");
            std::thread::sleep(Duration::from_millis(10));
        }
        primary.kill();
    });
    let before: Vec<(u64, i64)> = issued.into_inner().unwrap();
    let cut_off = cut_off.into_inner().unwrap();
    assert!(before.len() >= HOLDERS / 3 && before.len() < HOLDERS, "{} issued before the kill", before.len());
    assert_eq!(cut_off.len(), DESKS, "each desk's card was cut off by the kill");

    standby.promote();
    assert!(!in_recovery(&standby), "promoted");
    let j = desk_journal(&standby.url(), 3);
    // no card a desk saw issued is lost: a synchronous standby had each commit before the desk was told
    for (line, id) in &before {
        let card = j.card(*id).unwrap_or_else(|e| panic!("card {id} (line {line}) lost by the failover: {e}"));
        assert_eq!((card.holder_line as u64, card.state.as_str()), (*line, state::ISSUED));
    }
    // a card cut off by the kill is unfinished on the promoted server (if its row was made): resume finishes it;
    // one whose last commit reached the standby but whose answer the kill cut off is issued there already
    let issuer = Issuer::reference(&keys, &j, Settings::new(G));
    let (mut resumed, mut committed_unseen) = (0, 0);
    for mut card in cut_off {
        let chip = hex::encode_upper(issuance::run::chip_of(&card).unwrap());
        match j.open_card_of_chip(&chip).unwrap() {
            Some(open) => {
                let (id, _) = issuer.resume(&mut card, &|_| None).unwrap().unwrap();
                assert_eq!((id, j.card(id).unwrap().state.as_str()), (open.id, state::ISSUED));
                resumed += 1;
            }
            // none at all: the claim never committed (no row, no number taken)
            None => {
                if let Some(done) = j.last_card_of_chip(&chip).unwrap() {
                    assert_eq!(done.state, state::ISSUED);
                    committed_unseen += 1;
                }
            }
        }
    }
    // a desk continues the same batch on the promoted server
    let mut after = 0;
    loop {
        let mut card = SimTransport::new(common::blank(G.number(), serial.fetch_add(1, Ordering::SeqCst)));
        match issuer.issue_from_batch(&mut card, batch, None, &|_| None).unwrap() {
            Some(_) => after += 1,
            None => break,
        }
    }
    eprintln!(
        "{} issued on the primary ({committed_unseen} more committed unseen), {resumed} resumed and {after} issued \
         on the promoted standby",
        before.len()
    );
    assert!(after > 0, "the desk issued on the promoted server");
    assert_eq!(before.len() + committed_unseen + resumed + after, HOLDERS);
    assert_issued_once_each(&j, batch, HOLDERS);
}
