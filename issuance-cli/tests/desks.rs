//! Many desks, one journal on PostgreSQL: desks issuing one batch together (each holder exactly once, card numbers
//! gapless and unique), a server restart under working desks (every card ends issued or resumable), and a server
//! that cannot be reached before a card (the desk waits, says so, and sends the card nothing).
//!
//! Cards are card-sim cards in process, personalized and verified for real; the journal is a real PostgreSQL
//! (`testkit::pg`: `SSCARD_TEST_PG_URL`'s server, or a throwaway cluster; never skipped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use card_core::profile::Generation;
use card_sim::SimTransport;
use issuance::journal::{state, Desk, Journal, Location, Scope, Wait};
use issuance::prepare::{Settings, StoreKeySource};
use issuance::run::Issuer;
use issuance::{Error, JournalError};
use testkit::pg::{Cluster, TestDb};

const G: Generation = Generation::TWO;

fn keys() -> (tempfile::TempDir, StoreKeySource) {
    let dir = tempfile::tempdir().unwrap();
    common::make_store(&dir.path().join("keys.db"));
    let keys = common::key_source(&dir.path().join("keys.db"));
    (dir, keys)
}

fn desk_journal(url: &str, desk: usize, wait: Wait) -> Journal {
    let location = Location::new(url.into());
    Journal::open_waiting(&location, testkit::pg::password().as_ref(), wait)
        .unwrap()
        .at_desk(Desk::new(&format!("desk-{desk}"), &format!("clerk {desk}")).unwrap())
}

/// What the journal holds at the end: every card issued, one per holder, numbers 1..=n gapless and unique.
fn assert_issued_once_each(j: &Journal, batch: i64, n: usize) {
    let cards = j.cards_of_batch(batch).unwrap();
    let not_issued: Vec<_> = cards.iter().filter(|c| c.state != state::ISSUED).map(|c| (c.id, &c.state)).collect();
    assert!(not_issued.is_empty(), "cards not issued: {not_issued:?}");
    assert_eq!(cards.len(), n, "one card per holder");
    let lines: BTreeSet<i64> = cards.iter().map(|c| c.holder_line).collect();
    assert_eq!(lines.len(), n, "no holder twice");
    let seqs: BTreeSet<i64> = cards.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=n as i64).collect(), "sequence numbers gapless from 1");
    let ids: BTreeSet<&str> = cards.iter().map(|c| c.card_id.as_str()).collect();
    let numbers: BTreeSet<&str> = cards.iter().map(|c| c.card_number.as_str()).collect();
    assert_eq!((ids.len(), numbers.len()), (n, n), "card ids and numbers unique");
    assert_eq!(j.counts().unwrap(), vec![(state::ISSUED.to_owned(), n as i64)]);
    assert!(j.waiting_holders(batch).unwrap().is_empty());
}

/// Eight desks, each with its own connection and its own blank cards, work through one 400-holder batch: every
/// holder is issued exactly once, card numbers are gapless and unique, and each desk's cards carry its id.
#[test]
fn eight_desks_issue_one_400_holder_batch_each_holder_once() {
    const DESKS: usize = 8;
    const HOLDERS: usize = 400;
    let db = TestDb::new("eight_desks");
    let (_dir, keys) = keys();
    let holders = common::many_holders(HOLDERS);
    let batch = desk_journal(db.url(), 0, Wait::default()).new_batch("city.csv", G.number(), &holders).unwrap();
    let serial = AtomicU64::new(0x10_0000);
    let barrier = Barrier::new(DESKS);
    let per_desk: Vec<Vec<(u64, i64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=DESKS)
            .map(|d| {
                let (keys, serial, barrier, url) = (&keys, &serial, &barrier, db.url());
                s.spawn(move || {
                    let journal = desk_journal(url, d, Wait::default());
                    let issuer = Issuer::reference(keys, &journal, Settings::new(G));
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let mut card =
                            SimTransport::new(common::blank(G.number(), serial.fetch_add(1, Ordering::SeqCst)));
                        match issuer.issue_from_batch(&mut card, batch, None, &|_| None).unwrap() {
                            Some((holder, id, _)) => mine.push((holder.line, id)),
                            None => break mine,
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let j = desk_journal(db.url(), 0, Wait::default());
    assert_issued_once_each(&j, batch, HOLDERS);
    // each desk's cards say so, and the kept counts per desk add up to what each desk did
    let desks = j.desk_counts(&Scope::all()).unwrap();
    for (d, mine) in per_desk.iter().enumerate() {
        let name = format!("desk-{}", d + 1);
        for (_, id) in mine {
            assert_eq!(j.card(*id).unwrap().desk.as_deref(), Some(name.as_str()));
        }
        let kept: i64 = desks.iter().filter(|c| c.desk == name).map(|c| c.cards).sum();
        assert_eq!(kept, mine.len() as i64, "{name}");
    }
    assert_eq!(per_desk.iter().map(Vec::len).sum::<usize>(), HOLDERS);
    let region = Scope { region: Some("371700".into()), ..Scope::default() };
    assert_eq!(j.counts_in(&region).unwrap(), vec![(state::ISSUED.to_owned(), HOLDERS as i64)]);
    let one_desk = Scope { desk: Some("desk-1".into()), ..Scope::default() };
    assert_eq!(j.cards_in(&one_desk, None).unwrap().len(), per_desk[0].len());
}

/// The server is stopped and started again while four desks work through a batch. Desks wait for it (and say
/// so); a card whose journal call failed is left resumable and `resume` finishes it. In the end every holder
/// has one issued card and the numbers are gapless and unique.
#[test]
fn a_server_restart_under_four_desks_leaves_every_card_issued_or_resumable() {
    const DESKS: usize = 4;
    const HOLDERS: usize = 48;
    let mut cluster = Cluster::start();
    let url = cluster.url();
    let (_dir, keys) = keys();
    let holders = common::many_holders(HOLDERS);
    let batch = desk_journal(&url, 0, Wait::default()).new_batch("restart.csv", G.number(), &holders).unwrap();
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let wait = Wait {
        limit: Duration::from_secs(60),
        notify: {
            let said = said.clone();
            Arc::new(move |m: &str| said.lock().unwrap().push(m.to_owned()))
        },
    };
    let serial = AtomicU64::new(0x20_0000);
    let issued = AtomicUsize::new(0);
    // cards whose run failed (the server went away under them): kept to be resumed
    let stopped: Mutex<Vec<SimTransport>> = Mutex::default();
    std::thread::scope(|s| {
        for d in 1..=DESKS {
            let (keys, serial, issued, stopped, url, wait) = (&keys, &serial, &issued, &stopped, &url, wait.clone());
            s.spawn(move || {
                let journal = desk_journal(url, d, wait);
                let issuer = Issuer::reference(keys, &journal, Settings::new(G));
                loop {
                    let mut card = SimTransport::new(common::blank(G.number(), serial.fetch_add(1, Ordering::SeqCst)));
                    match issuer.issue_from_batch(&mut card, batch, None, &|_| None) {
                        Ok(Some(_)) => {
                            issued.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(None) => break,
                        Err(e) => stopped.lock().unwrap().push({
                            eprintln!("desk-{d}: a card stopped: {e}");
                            card
                        }),
                    }
                }
            });
        }
        // a third of the way through: the server is stopped (its connections closed) and started again
        while issued.load(Ordering::SeqCst) < HOLDERS / 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster.stop();
        std::thread::sleep(Duration::from_secs(2));
        cluster.start_again();
    });
    let said = said.lock().unwrap().clone();
    assert!(said.iter().any(|m| m.contains("cannot be reached")), "the desks said they were waiting: {said:?}");
    assert!(said.iter().any(|m| m.contains("answers again")), "{said:?}");
    let j = desk_journal(&url, 0, Wait::default());
    // a card stopped by the restart is under way in the journal (never issued without verification): resume it
    let stopped = stopped.into_inner().unwrap();
    for mut card in stopped {
        let chip = hex::encode_upper(issuance::run::chip_of(&card).unwrap());
        let open = j.open_card_of_chip(&chip).unwrap();
        let Some(open) = open else { continue }; // the card never got a row: nothing to finish
        assert_ne!(open.state, state::ISSUED);
        let issuer = Issuer::reference(&keys, &j, Settings::new(G));
        let (id, _) = issuer.resume(&mut card, &|_| None).unwrap().unwrap();
        assert_eq!(j.card(id).unwrap().state, state::ISSUED);
    }
    assert_issued_once_each(&j, batch, HOLDERS);
}

/// A desk whose journal server cannot be reached waits (saying so), gives up after `--journal-wait` with a precise
/// error, and sends nothing to the card in its reader; started again in time, it goes on.
#[test]
fn an_unreachable_server_before_a_card_the_desk_waits_and_touches_no_card() {
    let mut cluster = Cluster::start();
    let url = cluster.url();
    let (_dir, keys) = keys();
    let holders = common::many_holders(2);
    let batch = desk_journal(&url, 0, Wait::default()).new_batch("wait.csv", G.number(), &holders).unwrap();
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let wait = |secs| Wait {
        limit: Duration::from_secs(secs),
        notify: {
            let said = said.clone();
            Arc::new(move |m: &str| said.lock().unwrap().push(m.to_owned()))
        },
    };
    let journal = desk_journal(&url, 1, wait(2));
    let issuer = Issuer::reference(&keys, &journal, Settings::new(G));
    cluster.stop();
    let mut card = SimTransport::new(common::blank(G.number(), 0x30_0000));
    let e = issuer.issue_from_batch(&mut card, batch, None, &|_| None).unwrap_err();
    assert!(matches!(e, Error::Journal(JournalError::Unreachable { waited: 2.., .. })), "{e:?}");
    assert!(e.to_string().contains("the journal server did not answer for 2 s"), "{e}");
    assert_eq!(card.apdu_count(), 0, "nothing was sent to the card");
    assert!(said.lock().unwrap()[0].contains("cannot be reached"), "{:?}", said.lock().unwrap());

    // the command line: the same wait and error, exit code 1, nothing on stdout
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", &url, "--journal-wait", "1", "status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be reached") && stderr.contains("did not answer for 1 s"), "{stderr}");

    // the server back within the wait: the desk goes on where it was
    cluster.start_again();
    let journal = desk_journal(&url, 1, wait(60));
    let issuer = Issuer::reference(&keys, &journal, Settings::new(G));
    cluster.stop();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        cluster.start_again();
        cluster
    });
    let (holder, id, _) = issuer.issue_from_batch(&mut card, batch, None, &|_| None).unwrap().unwrap();
    assert_eq!((holder.line, journal.card(id).unwrap().state.as_str()), (2, state::ISSUED));
    let _cluster = restarter.join().unwrap();
    let lines: BTreeMap<i64, String> =
        journal.cards_of_batch(batch).unwrap().into_iter().map(|c| (c.holder_line, c.state)).collect();
    assert_eq!(lines, BTreeMap::from([(2, state::ISSUED.to_owned())]));
}

/// Two desks — two `issuance` processes with their own desk ids, each at one of the two virtual readers through
/// pcscd — work through one batch on a shared PostgreSQL journal: the second joins with `personalize --continue`.
/// Every holder of the sample is issued once; each process issues only what it claimed.
#[test]
fn two_desk_processes_at_the_two_virtual_readers_share_one_batch() {
    use card_core::transport::{wait_for_card, wait_for_removal, ReaderSelector};
    use card_sim::vpcd::InsertedCard;
    let _lock = testkit::vpcd_lock();
    let db = TestDb::new("two_desks");
    let dir = tempfile::tempdir().unwrap();
    common::setup(dir.path());
    let readers = [(testkit::READER, "127.0.0.1:35963"), ("Virtual PCD 00 01", "127.0.0.1:35964")];
    let desk = |name: &str, reader: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_issuance"));
        c.args(["--journal", db.url(), "--desk", name, "--operator", "clerk"])
            .arg("--keystore")
            .arg(dir.path().join("keys.db"))
            .arg("--passphrase-file")
            .arg(dir.path().join("pass.txt"))
            .args(["personalize", "--card-timeout", "60", "--reader", reader, "--holders"])
            .arg(common::fixture("holders/sample.csv"));
        c
    };
    let (first, rx0) = common::spawn(desk("hall-1", readers[0].0).args(["--generation", "3"]));
    // the batch is made once the first desk asks for its first card; the second desk then joins it
    let mut pending: Vec<String> = vec![common::expect_line(&rx0, "insert a blank card")];
    let (second, rx1) = common::spawn(desk("hall-2", readers[1].0).args(["--continue", "1"]));
    let rxs = [&rx0, &rx1];
    let mut inserted: [Option<InsertedCard>; 2] = [None, None];
    let mut serial = 0x4000;
    let mut issued_by = [0usize; 2];
    let mut summaries: [Option<String>; 2] = [None, None];
    let start = std::time::Instant::now();
    while summaries.iter().any(Option::is_none) {
        assert!(start.elapsed() < Duration::from_secs(180), "desks did not finish: {summaries:?}");
        let mut lines: Vec<(usize, String)> = pending.drain(..).map(|l| (0, l)).collect();
        for (i, rx) in rxs.iter().enumerate() {
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
                lines.push((i, l));
            }
        }
        for (i, line) in lines {
            let (name, port) = readers[i];
            let sel = ReaderSelector::Name(name.into());
            if line.contains(" issued, ") && line.starts_with("batch 1:") {
                summaries[i] = Some(line);
            } else if line.starts_with(&format!("{name}: insert")) {
                serial += 1;
                inserted[i] = Some(InsertedCard::insert(SimTransport::new(common::blank(3, serial)), port).unwrap());
                wait_for_card(&sel, Duration::from_secs(10)).unwrap();
            } else if line.starts_with(&format!("{name}: remove")) {
                inserted[i].take().unwrap().remove().unwrap();
                wait_for_removal(&sel, Duration::from_secs(10)).unwrap();
            } else if line.starts_with(&format!("{name}: line")) {
                assert!(!line.contains("FAILED"), "{line}");
                if line.contains(" issued (") {
                    issued_by[i] += 1;
                }
            }
        }
    }
    for (i, out) in [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()].iter().enumerate() {
        assert!(out.status.success(), "desk {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for c in inserted.into_iter().flatten() {
        c.remove().unwrap();
    }
    assert_eq!(issued_by.iter().sum::<usize>(), 5, "{summaries:?}");
    assert!(issued_by.iter().all(|n| *n > 0), "both desks issued cards: {issued_by:?}");
    for (i, s) in summaries.iter().enumerate() {
        let s = s.as_deref().unwrap_or_default();
        assert!(s.contains(&format!("{} issued, 0 failed", issued_by[i])), "{s}");
    }
    let j = desk_journal(db.url(), 0, Wait::default());
    assert_issued_once_each(&j, 1, 5);
    let by_desk: BTreeMap<String, i64> =
        j.desk_counts(&Scope::all()).unwrap().into_iter().map(|d| (d.desk, d.cards)).collect();
    assert_eq!(
        by_desk,
        BTreeMap::from([("hall-1".to_owned(), issued_by[0] as i64), ("hall-2".to_owned(), issued_by[1] as i64)])
    );
    // status of one desk, from the command line
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_issuance"))
        .args(["--journal", db.url(), "--json", "status", "--desk", "hall-2"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], issued_by[1] as i64);
    assert!(v["cards"].as_array().unwrap().iter().all(|c| c["desk"] == "hall-2" && c["operator"] == "clerk"));
}

/// A card torn at one desk is finished at another: the chip decides which card it is, the card row keeps the desk
/// that started it, and the resumed attempt's steps carry the desk that finished it.
#[test]
fn a_card_torn_at_one_desk_is_resumed_at_another() {
    use card_sim::{Tear, TearPoint};
    let db = TestDb::new("resume_elsewhere");
    let (_dir, keys) = keys();
    let holders = common::many_holders(1);
    let a = desk_journal(db.url(), 1, Wait::default());
    let batch = a.new_batch("one.csv", G.number(), &holders).unwrap();
    let mut card = SimTransport::new(common::blank(G.number(), 0x50_0000));
    card.arm_tear(Tear { after_apdu: 40, when: TearPoint::BeforeWrite });
    let torn = Issuer::reference(&keys, &a, Settings::new(G)).issue_from_batch(&mut card, batch, None, &|_| None);
    assert!(torn.is_err(), "the tear stops the run");
    let row = a.cards_of_batch(batch).unwrap().remove(0);
    assert_eq!((row.state.as_str(), row.desk.as_deref()), (state::FAILED, Some("desk-1")));
    card.reinsert();
    let b = desk_journal(db.url(), 2, Wait::default());
    let (id, _) = Issuer::reference(&keys, &b, Settings::new(G)).resume(&mut card, &|_| None).unwrap().unwrap();
    let done = b.card(id).unwrap();
    assert_eq!((id, done.state.as_str(), done.desk.as_deref()), (row.id, state::ISSUED, Some("desk-1")));
    let steps: BTreeSet<(i64, Option<String>)> = db
        .client()
        .query("SELECT DISTINCT attempt, desk FROM steps WHERE card = $1", &[&id])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(steps, BTreeSet::from([(1, Some("desk-1".to_owned())), (2, Some("desk-2".to_owned()))]));
}
