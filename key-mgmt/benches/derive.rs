//! Card key sets derived per second (CARD-PROFILE §5.2): a full set of the profile's card keys,
//! `Div(region key, card factor)` for each, for 3DES and SM4 — from region keys in memory (what
//! issuance does per card) and from the store (row checks, key block unwraps, region Div).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use card_core::crypto::Algorithm;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use key_mgmt::{KeyStore, VersionSelect};
use zeroize::Zeroizing;

fn store(dir: &std::path::Path, alg: Algorithm) -> KeyStore {
    let comps = vec![Zeroizing::new((0u8..32).collect::<Vec<u8>>()), Zeroizing::new([0x3C, 0x5A].repeat(16))];
    let (store, _) = KeyStore::init(&dir.join("bench.db"), &comps, None).unwrap();
    store.generate_profile_keys(alg, 1, true).unwrap();
    store
}

fn derive(c: &mut Criterion) {
    let mut g = c.benchmark_group("card_key_set");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::Tdes, Algorithm::Sm4] {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), alg);
        let region = store.region_keys("371700").unwrap();
        let mut cf = [0x12u8, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x45];
        g.bench_function(format!("{}/{}_keys/from_region_keys", alg.name(), region.len()), |b| {
            b.iter(|| {
                cf[7] = cf[7].wrapping_add(1);
                black_box(region.card_keys(black_box(&cf)).unwrap())
            })
        });
        g.bench_function(format!("{}/{}_keys/from_store", alg.name(), region.len()), |b| {
            b.iter(|| black_box(store.card_keys("371700", black_box(&cf), &VersionSelect::Active).unwrap()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = derive
}
criterion_main!(benches);
