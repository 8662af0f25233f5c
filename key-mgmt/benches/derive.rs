//! Card key sets derived per second (CARD-PROFILE §5.2): a full set of the profile's card keys,
//! `Div(region key, card factor)` for each, for 3DES and SM4 — from region keys in memory (what
//! issuance does per card), from the store per call (row checks, key block unwraps, region Div on every call)
//! and from a batch's region cache (the store's key stamp read, then the card Div from the cached region keys).
//!
//! After the criterion groups, `cargo bench -p key-mgmt --bench derive` also times each path in a plain loop and
//! writes `target/bench-keysets.json` (read by `cargo xtask bench`):
//!
//! ```json
//! {"tdes": {"in_memory_per_s": 0.0, "store_per_call_per_s": 0.0, "store_batch_per_s": 0.0},
//!  "sm4":  {"in_memory_per_s": 0.0, "store_per_call_per_s": 0.0, "store_batch_per_s": 0.0}}
//! ```
//!
//! Each figure is full card key sets per second (one set = every profile card key of that algorithm), one
//! thread. `BENCH_KEYSETS_JSON` names another file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use card_core::crypto::Algorithm;
use criterion::{criterion_group, Criterion, Throughput};
use key_mgmt::{KeyStore, VersionSelect};
use zeroize::Zeroizing;

fn store(dir: &std::path::Path, alg: Algorithm) -> KeyStore {
    let comps = vec![Zeroizing::new((0u8..32).collect::<Vec<u8>>()), Zeroizing::new([0x3C, 0x5A].repeat(16))];
    let (store, _) = KeyStore::init(&dir.join("bench.db"), &comps, None).unwrap();
    store.generate_profile_keys(alg, 1, true).unwrap();
    store
}

fn next(cf: &mut [u8; 8]) -> &[u8; 8] {
    cf[7] = cf[7].wrapping_add(1);
    cf
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
            b.iter(|| black_box(region.card_keys(black_box(next(&mut cf))).unwrap()))
        });
        g.bench_function(format!("{}/{}_keys/from_store", alg.name(), region.len()), |b| {
            b.iter(|| black_box(store.card_keys("371700", black_box(next(&mut cf)), &VersionSelect::Active).unwrap()))
        });
        let mut batch = store.region_cache(VersionSelect::Active).unwrap();
        g.bench_function(format!("{}/{}_keys/from_store_batch", alg.name(), region.len()), |b| {
            b.iter(|| black_box(batch.card_keys(&store, "371700", black_box(next(&mut cf))).unwrap()))
        });
        batch.end();
    }
    g.finish();
}

/// Sets per second of `f`, run for about `budget` (at least 3 runs).
fn per_second(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u64;
    while n < 3 || start.elapsed() < budget {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The plain-loop figures of one algorithm, as the JSON object of `bench-keysets.json`.
fn figures(alg: Algorithm, budget: Duration) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), alg);
    let region = store.region_keys("371700").unwrap();
    let mut cf = [0x12u8, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x45];
    let in_memory = per_second(budget, || {
        black_box(region.card_keys(next(&mut cf)).unwrap());
    });
    let per_call = per_second(budget, || {
        black_box(store.card_keys("371700", next(&mut cf), &VersionSelect::Active).unwrap());
    });
    let mut batch = store.region_cache(VersionSelect::Active).unwrap();
    let batched = per_second(budget, || {
        black_box(batch.card_keys(&store, "371700", next(&mut cf)).unwrap());
    });
    batch.end();
    serde_json::json!({
        "in_memory_per_s": in_memory.round(),
        "store_per_call_per_s": per_call.round(),
        "store_batch_per_s": batched.round(),
    })
}

fn write_json() {
    let budget = Duration::from_millis(700);
    let v = serde_json::json!({"tdes": figures(Algorithm::Tdes, budget), "sm4": figures(Algorithm::Sm4, budget)});
    let path = std::env::var_os("BENCH_KEYSETS_JSON").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("bench-keysets.json")
    });
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, format!("{}\n", serde_json::to_string_pretty(&v).unwrap())).unwrap();
    println!("key sets per second: {v}\nwritten to {}", path.display());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = derive
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // the plain-loop figures only under `cargo bench` (criterion's own test mode, `cargo test --benches`, passes
    // no `--bench`)
    if std::env::args().any(|a| a == "--bench") {
        write_json();
    }
}
