//! Cards per hour, in process: one full personalization with verification on card-sim (key derivation
//! from the store and the journal included; the journal in memory). Wall time of the host side only —
//! the card's own time is the modeled time of `tests/issue.rs` (4.3 s a card at 9600 bit/s). `genN` takes the
//! keys from the store per card; `genN/batch_keys` from a batch's cache (`StoreKeySource::batch`), as
//! `personalize` does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use card_core::profile::Generation;
use card_sim::SimTransport;
use criterion::{criterion_group, criterion_main, Criterion};
use issuance::journal::Journal;
use issuance::prepare::Settings;
use issuance::run::Issuer;

fn personalize(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.db");
    common::make_store(&store);
    let keys = common::key_source(&store);
    let mut group = c.benchmark_group("personalize");
    group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    for g in [2u8, 3] {
        let gen = Generation::new(g).unwrap();
        let holders = common::sample(gen);
        group.bench_function(format!("gen{g}"), |b| {
            let mut serial = 0u64;
            b.iter(|| {
                let journal = Journal::in_memory().unwrap();
                let batch = journal.new_batch("bench", g, &holders).unwrap();
                let issuer = Issuer::reference(&keys, &journal, Settings::new(gen));
                serial += 1;
                let mut sim = SimTransport::new(common::blank(g, serial));
                issuer.issue(&mut sim, &holders[0], Some(batch)).unwrap()
            })
        });
        let batch_keys = keys.batch();
        group.bench_function(format!("gen{g}/batch_keys"), |b| {
            let mut serial = 1u64 << 32;
            b.iter(|| {
                let journal = Journal::in_memory().unwrap();
                let batch = journal.new_batch("bench", g, &holders).unwrap();
                let issuer = Issuer::reference(&batch_keys, &journal, Settings::new(gen));
                serial += 1;
                let mut sim = SimTransport::new(common::blank(g, serial));
                issuer.issue(&mut sim, &holders[0], Some(batch)).unwrap()
            })
        });
        batch_keys.end();
    }
    group.finish();
}

criterion_group!(benches, personalize);
criterion_main!(benches);
