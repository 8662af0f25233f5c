//! Cards journalled per second with 1, 4 and 16 desks, SQLite against PostgreSQL (`cargo bench -p issuance-cli
//! --bench journal`; not run by `cargo test`). Prints a Markdown table.
//!
//! "Journal work only": each desk is a thread with its own connection (`Journal::open_at(…).at_desk(…)`) and
//! makes, per card, exactly the journal calls `Issuer::issue_from_batch` makes for a card that goes through —
//! `open_card_of_chip`, `claim_and_new_card` (the holder claimed from one batch all desks share, the region's
//! sequence number allocated), `card`, `begin_attempt`, the steps of a real generation 3 plan journalled ahead in
//! the issuer's groups (`journal::ahead`: one transaction a group and one at the end; the steps and their groups
//! read at start-up from one card issued on card-sim), `set_state_and_costs written`, `set_state_and_costs verified`,
//! `set_state issued` — with no card and no crypto. All holders are of one
//! region, so every card's allocation goes through the same counter: the worst case.
//!
//! Rows: a SQLite file (WAL, `synchronous = FULL` as the journal opens it); PostgreSQL in a throwaway cluster
//! started here (testkit::pg) with `fsync = off` (testkit's setting), then the same cluster restarted with
//! `fsync = on` (the server's default, `synchronous_commit = on`: each commit waits for its WAL flush); and, on
//! PostgreSQL with fsync on, full in-process cards (card-sim, real key derivation and secure messaging,
//! verification) with 1 and 4 desks, to compare the whole host side with the journal's share of it. The `alloc`
//! rows (SQLite, PostgreSQL with fsync on; 1 and 16 desks) make only the claim and one state change a card: how
//! fast cards can be allocated when nothing else is journalled.
//!
//! Each row runs for `JBENCH_SECS` seconds (default 10) after its batch is made, on a fresh database;
//! `JBENCH_ROWS` (comma-separated: `sqlite`, `pg-nofsync`, `pg-fsync`, `alloc`, `cards`, `pg-sync`) picks rows,
//! default all. `pg-sync`: journal only on the fsync-on cluster with a synchronous streaming standby (itself with
//! fsync on), each commit waiting for the standby's flush.
//! `JBENCH_PG_URL` adds journal-only rows on that database (e.g. a journal filled by `scripts/gen-cards.sql`; a
//! batch of the bench's holders is added to it) with the desks of `JBENCH_URL_DESKS` (default 1,16). cards/s
//! counts the cards every desk finished in the row's wall time; p50/p99 are per card (all its calls), "claim" is
//! the `claim_and_new_card` call alone (the allocation); "failed" counts cards whose calls failed (SQLite's
//! "database is locked" after its 10 s busy timeout). Afterwards the journal is checked: every card counted is
//! `issued`, and the batch's sequence numbers have no gap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use card_core::profile::Generation;
use card_sim::SimTransport;
use issuance::holders::Holder;
use issuance::journal::ahead::Ahead;
use issuance::journal::{state, Assigned, Desk, Journal, Location, NewCardOwned};
use issuance::prepare::Settings;
use issuance::run::Issuer;
use issuance::Error;

/// Holders in each row's batch (more than any row issues in its time).
const HOLDERS: usize = 20_000;

/// What one desk measured.
#[derive(Default)]
struct DeskRun {
    /// Per card: all its journal calls (or the whole card).
    card: Vec<Duration>,
    /// Per card: `claim_and_new_card` alone.
    claim: Vec<Duration>,
    /// Cards whose journal calls failed.
    errors: usize,
    /// The first failure.
    first_error: Option<String>,
}

/// One row of the table.
struct RowResult {
    backend: String,
    work: &'static str,
    desks: usize,
    cards: usize,
    errors: usize,
    wall: Duration,
    card: Vec<Duration>,
    claim: Vec<Duration>,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// `n` holders like the sample's first (generation 3), each with its own SSN and line, no PIN of their own.
fn holders(n: usize) -> Vec<Holder> {
    let base = common::sample(Generation::new(3).unwrap()).remove(0);
    (0..n)
        .map(|i| {
            let mut h = base.without_pin();
            h.line = i as u64 + 2;
            h.ssn = format!("3717021981{:07}X", i);
            h.own_pin = false;
            h
        })
        .collect()
}

/// The card id and number `prepare` makes for region `region` and sequence `seq` (no holder needed).
fn assigned(region: &str, seq: u64) -> Assigned {
    Assigned {
        card_id: format!("{region}D156000005{seq:016X}"),
        card_number: format!("{seq:08}X"),
        issue_date: "20261203".into(),
        expiry_date: "20361203".into(),
        card_type: "1".into(),
    }
}

/// The steps of a generation 3 card in the groups the issuer journals them in (each group begins with a
/// selection): issues one on card-sim into an in-memory journal and reads its steps back.
fn gen3_groups(store: &Path) -> Vec<Vec<String>> {
    let keys = common::key_source(store);
    let journal = Journal::in_memory().unwrap();
    let g = Generation::new(3).unwrap();
    let hs = holders(1);
    let batch = journal.new_batch("steps", 3, &hs).unwrap();
    let issuer = Issuer::reference(&keys, &journal, Settings::new(g));
    let mut sim = SimTransport::new(common::blank(3, 1));
    issuer.issue_from_batch(&mut sim, batch, None, &|_| None).unwrap().unwrap();
    let mut steps = journal.export().unwrap().steps;
    steps.sort_by_key(|s| s.idx);
    let mut groups: Vec<Vec<String>> = Vec::new();
    for s in steps {
        assert_eq!(s.state, "done");
        match groups.last_mut() {
            Some(g) if !s.label.starts_with("select ") => g.push(s.label),
            _ => groups.push(vec![s.label]),
        }
    }
    groups
}

/// What a row's desks do for each card.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Every journal call of a card (see the module docs).
    Journal,
    /// `claim_and_new_card` and `set_state issued` only: the allocation and nothing else.
    Alloc,
    /// A whole card on card-sim through `Issuer::issue_from_batch`.
    Full,
}

/// One desk's journal work for one card; `None` when the batch has no holder left. An error (SQLite's "database
/// is locked" after its 10 s busy timeout) leaves the card where it stopped; the desk counts it and goes on.
fn journal_card(
    j: &Journal,
    batch: i64,
    chip: &str,
    groups: &[Vec<String>],
    alloc_only: bool,
    run: &mut DeskRun,
) -> Result<Option<()>, Error> {
    let t0 = Instant::now();
    assert!(j.open_card_of_chip(chip)?.is_none());
    let claimed = j.claim_and_new_card(
        batch,
        None,
        &|h| {
            Ok(NewCardOwned {
                batch: Some(batch),
                holder_line: h.line,
                ssn: h.ssn.clone(),
                region: h.region.clone(),
                generation: 3,
                chip: chip.to_owned(),
                atr: "3B6D000080".into(),
                reader: "bench reader".into(),
            })
        },
        &|_, seq| Ok(assigned("371700", seq)),
    )?;
    let claim = t0.elapsed();
    let Some(claimed) = claimed else { return Ok(None) };
    if alloc_only {
        j.set_state(claimed.card, state::ISSUED, None)?;
        run.card.push(t0.elapsed());
        run.claim.push(claim);
        return Ok(Some(()));
    }
    let row = j.card(claimed.card)?;
    let attempt = j.begin_attempt(row.id, r#"{"MK_MF":2,"TRANSPORT":1}"#)?;
    let mut ahead = Ahead::new(&**j, row.id, attempt);
    for group in groups {
        ahead.group(group, &mut |_| Ok(()))?;
    }
    ahead.finish()?;
    j.set_state_and_costs(row.id, state::WRITTEN, None, 420, 21_000, Some(5_400_000))?;
    j.set_state_and_costs(row.id, state::VERIFIED, None, 460, 22_000, Some(5_900_000))?;
    j.set_state(row.id, state::ISSUED, None)?;
    run.card.push(t0.elapsed());
    run.claim.push(claim);
    Ok(Some(()))
}

/// Runs `desks` desks on `location` for `secs`: journal work only, or (`full`) whole cards on card-sim.
fn run_row(
    location: &Location,
    desks: usize,
    secs: Duration,
    groups: &Arc<Vec<Vec<String>>>,
    store: &Path,
    work: Work,
) -> RowResult {
    let full = work == Work::Full;
    let setup = Journal::open_at(location, None).unwrap();
    let batch = setup.new_batch("bench", 3, &holders(HOLDERS)).unwrap();
    drop(setup);
    let barrier = Arc::new(Barrier::new(desks + 1));
    // a key store of each desk's own, as each desk has (one store file does not take several writers: its audit
    // log), opened one after the other
    let key_sources: Vec<_> = (0..desks)
        .map(|d| {
            full.then(|| {
                let own = store.with_file_name(format!("keys-desk-{d}.db"));
                if !own.exists() {
                    common::make_store(&own);
                }
                common::key_source(&own)
            })
        })
        .collect();
    let handles: Vec<_> = key_sources
        .into_iter()
        .enumerate()
        .map(|(d, keys)| {
            let (location, barrier, groups) = (location.clone(), Arc::clone(&barrier), Arc::clone(groups));
            std::thread::spawn(move || {
                let desk = Desk::new(&format!("desk-{d:02}"), "bench").unwrap();
                let j = Journal::open_at(&location, None).unwrap().at_desk(desk);
                let issuer =
                    keys.as_ref().map(|k| Issuer::reference(k, &j, Settings::new(Generation::new(3).unwrap())));
                let mut run = DeskRun::default();
                barrier.wait();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < secs {
                    let serial = (d as u64) << 32 | n;
                    n += 1;
                    if let Some(issuer) = &issuer {
                        let mut sim = SimTransport::new(common::blank(3, serial + 1_000_000));
                        let t0 = Instant::now();
                        if issuer.issue_from_batch(&mut sim, batch, None, &|_| None).unwrap().is_none() {
                            break;
                        }
                        run.card.push(t0.elapsed());
                    } else {
                        let chip = format!("BE{serial:014X}");
                        match journal_card(&j, batch, &chip, &groups, work == Work::Alloc, &mut run) {
                            Ok(Some(())) => {}
                            Ok(None) => break,
                            Err(e) => {
                                run.errors += 1;
                                run.first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                }
                run
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let runs: Vec<DeskRun> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = start.elapsed();
    let mut card: Vec<Duration> = runs.iter().flat_map(|r| r.card.iter().copied()).collect();
    let mut claim: Vec<Duration> = runs.iter().flat_map(|r| r.claim.iter().copied()).collect();
    card.sort_unstable();
    claim.sort_unstable();
    // the journal agrees: every card of the batch issued, numbers 1..=n without a gap
    let check = Journal::open_at(location, None).unwrap();
    let cards = check.cards_of_batch(batch).unwrap();
    let errors: usize = runs.iter().map(|r| r.errors).sum();
    // a failed claim made no row; a failure after it left its card short of issued
    assert!((card.len()..=card.len() + errors).contains(&cards.len()));
    assert_eq!(cards.iter().filter(|c| c.state == state::ISSUED).count(), card.len());
    let (first, last) = (cards.iter().map(|c| c.seq).min(), cards.iter().map(|c| c.seq).max());
    if let (Some(first), Some(last)) = (first, last) {
        assert_eq!(usize::try_from(last - first + 1).unwrap(), cards.len(), "sequence numbers with a gap");
    }
    if let Some(e) = runs.iter().find_map(|r| r.first_error.as_ref()) {
        eprintln!("{errors} cards failed; the first: {e}");
    }
    RowResult {
        backend: String::new(),
        work: match work {
            Work::Journal => "journal only",
            Work::Alloc => "allocation only",
            Work::Full => "full card (card-sim)",
        },
        desks,
        cards: card.len(),
        errors,
        wall,
        card,
        claim,
    }
}

/// A fresh database `name` on the cluster; its location.
fn pg_database(cluster: &testkit::pg::Cluster, name: &str) -> Location {
    let mut admin = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    Location::Postgres(format!("postgresql://postgres@127.0.0.1:{}/{name}", cluster.port()))
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken
    let secs = Duration::from_secs(std::env::var("JBENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10));
    let wanted =
        std::env::var("JBENCH_ROWS").unwrap_or_else(|_| "sqlite,pg-nofsync,pg-fsync,alloc,cards,pg-sync".into());
    let wants = |r: &str| wanted.split(',').any(|w| w == r);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    common::make_store(&store);
    let groups = Arc::new(gen3_groups(&store));
    let steps: usize = groups.iter().map(Vec::len).sum();
    eprintln!("a generation 3 card: {steps} steps in {} groups; {} s a row", groups.len(), secs.as_secs());
    let mut results = Vec::new();
    let mut push = |mut r: RowResult, backend: &str| {
        r.backend = backend.to_owned();
        eprintln!("{backend} {} {} desks: {} cards in {:.1} s", r.work, r.desks, r.cards, r.wall.as_secs_f64());
        results.push(r);
    };
    for desks in [1, 4, 16] {
        if wants("sqlite") {
            let location = Location::Sqlite(dir.path().join(format!("journal-{desks}.db")));
            push(
                run_row(&location, desks, secs, &groups, &store, Work::Journal),
                "SQLite file (WAL, synchronous=FULL)",
            );
        }
    }
    if wants("alloc") {
        for desks in [1, 16] {
            let location = Location::Sqlite(dir.path().join(format!("alloc-{desks}.db")));
            push(run_row(&location, desks, secs, &groups, &store, Work::Alloc), "SQLite file (WAL, synchronous=FULL)");
        }
    }
    if ["pg-nofsync", "pg-fsync", "alloc", "cards", "pg-sync"].into_iter().any(wants) {
        let mut cluster = testkit::pg::Cluster::start();
        if wants("pg-nofsync") {
            for desks in [1, 4, 16] {
                let location = pg_database(&cluster, &format!("jb_nofsync_{desks}"));
                push(run_row(&location, desks, secs, &groups, &store, Work::Journal), "PostgreSQL, fsync=off");
            }
        }
        // the same cluster with the server's defaults: fsync on, synchronous_commit on
        cluster.restart_with_fsync();
        if wants("pg-fsync") {
            for desks in [1, 4, 16] {
                let location = pg_database(&cluster, &format!("jb_fsync_{desks}"));
                push(run_row(&location, desks, secs, &groups, &store, Work::Journal), "PostgreSQL, fsync=on");
            }
        }
        if wants("alloc") {
            for desks in [1, 16] {
                let location = pg_database(&cluster, &format!("jb_alloc_{desks}"));
                push(run_row(&location, desks, secs, &groups, &store, Work::Alloc), "PostgreSQL, fsync=on");
            }
        }
        if wants("cards") {
            for desks in [1, 4] {
                let location = pg_database(&cluster, &format!("jb_cards_{desks}"));
                push(run_row(&location, desks, secs, &groups, &store, Work::Full), "PostgreSQL, fsync=on");
            }
        }
        if wants("pg-sync") {
            // and with a synchronous standby (fsync on too): each commit waits until the standby has it on disk
            let mut standby = cluster.start_standby();
            standby.restart_with_fsync();
            cluster.make_synchronous(&standby);
            for desks in [1, 4, 16] {
                let location = pg_database(&cluster, &format!("jb_sync_{desks}"));
                push(
                    run_row(&location, desks, secs, &groups, &store, Work::Journal),
                    "PostgreSQL, fsync=on, synchronous standby",
                );
            }
        }
    }
    if let Ok(url) = std::env::var("JBENCH_PG_URL") {
        let desks = std::env::var("JBENCH_URL_DESKS").unwrap_or_else(|_| "1,16".into());
        for d in desks.split(',').filter_map(|d| d.parse().ok()) {
            let location = Location::Postgres(url.clone());
            push(run_row(&location, d, secs, &groups, &store, Work::Journal), "PostgreSQL, JBENCH_PG_URL");
        }
    }
    println!();
    println!(
        "Cards journalled per second ({steps} steps a card in {} groups, {} s a row, one region)",
        groups.len(),
        secs.as_secs()
    );
    println!();
    println!(
        "| journal | work | desks | cards | failed | cards/s | p50 ms/card | p99 ms/card | claim p50 ms | claim p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let (c50, c99) = if r.claim.is_empty() {
            ("–".to_owned(), "–".to_owned())
        } else {
            (ms(pct(&r.claim, 0.5)), ms(pct(&r.claim, 0.99)))
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} | {c50} | {c99} |",
            r.backend,
            r.work,
            r.desks,
            r.cards,
            r.errors,
            r.cards as f64 / r.wall.as_secs_f64(),
            ms(pct(&r.card, 0.5)),
            ms(pct(&r.card, 0.99)),
        );
    }
}
