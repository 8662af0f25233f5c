//! Cards per hour through pcscd and vsmartcard-vpcd, on one and on two virtual readers (`cargo xtask
//! bench-issuance`, or `cargo bench -p issuance-cli --bench pcscd`; not run by `cargo test`).
//!
//! Each reader has a worker, as `issuance personalize --reader R --reader R2` has: a blank card-sim card is
//! inserted into the reader (vpcd), the worker waits for pcscd to report it, issues it through `PcscTransport`
//! (journal on disk, WAL, one connection per worker; keys from a key store; read-back verification), and the
//! card is removed and the worker waits for pcscd to see it gone. Wall time covers all of that; what the card
//! itself would take is card-sim's modeled time (9600 bit/s, T=0), printed per card beside the APDU count and
//! bytes. `ISSUANCE_BENCH_CARDS` sets the cards per reader (default 4), `ISSUANCE_BENCH_GENERATION` the
//! generation (default 3), `ISSUANCE_BENCH_PACE` a bit rate at which the cards are paced (`card-sim --pace`: each
//! answer waits for the modeled time of a real card; unset: unpaced), `ISSUANCE_BENCH_JSON` a file for the results
//! (`cargo xtask bench` reads it). Holds the lock on the virtual readers for the whole run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use card_core::profile::Generation;
use card_core::transport::{wait_for_card, wait_for_removal, PcscTransport, ReaderSelector};
use card_sim::vpcd::InsertedCard;
use card_sim::{SimTransport, TimingModel};
use issuance::journal::Journal;
use issuance::prepare::{KeySource, Settings, StoreKeySource};
use issuance::run::Issuer;

const READERS: [(&str, &str); 2] = [("Virtual PCD 00 00", "127.0.0.1:35963"), ("Virtual PCD 00 01", "127.0.0.1:35964")];

/// What one card cost, beside its plan's floor.
struct Card {
    apdus: u64,
    bytes: u64,
    modeled: Duration,
    issue: Duration,
    floor: issuance::floor::Floor,
    verified_floor: issuance::floor::Floor,
}

fn run(
    dir: &Path,
    keys: &StoreKeySource,
    g: Generation,
    pace: Option<u32>,
    readers: &[(&str, &str)],
    per_reader: usize,
) -> (Duration, Vec<Card>) {
    let journal_path = dir.join(format!("journal-{}.db", readers.len()));
    let all = common::many_holders(readers.len() * per_reader);
    let batch = Journal::open(&journal_path).unwrap().new_batch("bench", g.number(), &all).unwrap();
    let started = Instant::now();
    let cards = std::thread::scope(|s| {
        let workers: Vec<_> = readers
            .iter()
            .enumerate()
            .map(|(r, (name, port))| {
                let mine = &all[r * per_reader..(r + 1) * per_reader];
                let journal_path = &journal_path;
                s.spawn(move || {
                    let journal = Journal::open(journal_path).unwrap();
                    let issuer = Issuer::reference(keys, &journal, Settings::new(g));
                    let sel = ReaderSelector::Name((*name).into());
                    let mut out = Vec::new();
                    for (k, holder) in mine.iter().enumerate() {
                        let serial = 0xBE00_0000 + (r as u64) * 0x1000 + k as u64;
                        let blank = common::blank(g.number(), serial);
                        let mut sim =
                            SimTransport::with_timing(blank, TimingModel::with_bit_rate(pace.unwrap_or(9600)));
                        sim.set_pace(pace.is_some());
                        let inserted = InsertedCard::insert(sim, port).expect("connect to vpcd (is pcscd running?)");
                        wait_for_card(&sel, Duration::from_secs(10)).unwrap();
                        let mut t = PcscTransport::connect(&sel).unwrap();
                        let t0 = Instant::now();
                        let (id, costs) = issuer.issue(&mut t, holder, Some(batch)).unwrap();
                        let issue = t0.elapsed();
                        drop(t);
                        assert_eq!(journal.card(id).unwrap().state, "issued");
                        let sim = inserted.remove().unwrap();
                        wait_for_removal(&sel, Duration::from_secs(10)).unwrap();
                        // the floor of the plan this card ran (issuance::floor)
                        let chip = issuance::run::chip_of(&sim).unwrap();
                        let set = keys.card_keys(&holder.region, &chip, issuance::prepare::algorithm_of(g)).unwrap();
                        let plan = issuer.plan_for(&journal.card(id).unwrap(), holder, &set).unwrap();
                        let (floor, verified_floor) = (plan.floor().unwrap(), plan.verified_floor().unwrap());
                        out.push(Card {
                            apdus: costs.apdus,
                            bytes: costs.bytes,
                            modeled: sim.modeled_time(),
                            issue,
                            floor,
                            verified_floor,
                        });
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect::<Vec<_>>()
    });
    (started.elapsed(), cards)
}

fn main() {
    let per_reader: usize =
        std::env::var("ISSUANCE_BENCH_CARDS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(4);
    let g = std::env::var("ISSUANCE_BENCH_GENERATION")
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(Generation::new)
        .unwrap_or(Generation::THREE);
    let pace: Option<u32> = std::env::var("ISSUANCE_BENCH_PACE").ok().and_then(|v| v.parse().ok());
    let json_out = std::env::var_os("ISSUANCE_BENCH_JSON");
    let _lock = testkit::vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    common::make_store(&dir.path().join("keys.db"));
    let keys = common::key_source(&dir.path().join("keys.db"));

    println!(
        "issuance through pcscd + vpcd, generation {}, {per_reader} cards per reader (insertion, issue with \
         verification, removal), {}",
        g.number(),
        pace.map_or("unpaced".to_owned(), |b| format!("paced at {b} bit/s"))
    );
    println!("{:>7} {:>6} {:>9} {:>9} {:>14}", "readers", "cards", "seconds", "cards/h", "issue s/card");
    let mut per_card = None;
    let mut readers = Vec::new();
    let mut issue_s = Vec::new();
    for n in [1, 2] {
        let (wall, cards) = run(dir.path(), &keys, g, pace, &READERS[..n], per_reader);
        let secs = wall.as_secs_f64();
        let issue = cards.iter().map(|c| c.issue.as_secs_f64()).sum::<f64>() / cards.len() as f64;
        let per_hour = cards.len() as f64 * 3600.0 / secs;
        println!("{n:>7} {:>6} {secs:>9.1} {per_hour:>9.0} {issue:>14.2}", cards.len());
        readers.push(serde_json::json!({
            "readers": n, "cards": cards.len(), "seconds": secs, "cards_per_hour": per_hour, "issue_s_per_card": issue,
        }));
        issue_s.extend(cards.iter().map(|c| c.issue.as_secs_f64()));
        per_card = cards.into_iter().next();
    }
    if let (Some(c), Some(path)) = (&per_card, json_out) {
        let json = serde_json::json!({
            "generation": g.number(),
            "bit_rate": pace.unwrap_or(9600),
            "paced": pace.is_some(),
            "per_card": {
                "apdus": c.apdus,
                "bytes": c.bytes,
                "modeled_s": c.modeled.as_secs_f64(),
                "wall_s": issue_s.iter().sum::<f64>() / issue_s.len().max(1) as f64,
            },
            "readers": readers,
            "floor": {
                "apdus": c.floor.apdus,
                "bytes": c.floor.bytes,
                "eeprom_pages": c.floor.eeprom_pages,
                "modeled_s": c.floor.modeled.as_secs_f64(),
            },
            "verified_floor": {
                "apdus": c.verified_floor.apdus,
                "bytes": c.verified_floor.bytes,
                "eeprom_pages": c.verified_floor.eeprom_pages,
                "modeled_s": c.verified_floor.modeled.as_secs_f64(),
            },
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    }
    if let Some(c) = per_card {
        let modeled = c.modeled.as_secs_f64();
        println!(
            "per card: {} APDUs, {} bytes, modeled card time {modeled:.2} s (the card alone bounds a reader at \
             {:.0} cards/h at 9600 bit/s)",
            c.apdus,
            c.bytes,
            3600.0 / modeled
        );
    }
}
