//! Card cryptography per operation: what a host spends per external authentication, line-protected
//! command and diversification. `cargo bench -p card-core --bench crypto` (short runs: 2 cores).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use card_core::crypto::{line_mac, process_key, region_factor, Algorithm, CardKey};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("card-crypto");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    let region = region_factor("371700").unwrap();
    let card = [0, 0, 0, 0, 0, 0, 0, 0xA2];
    let payload = vec![0x5A; 64];
    for alg in [Algorithm::Tdes, Algorithm::Sm4] {
        let key = CardKey::new(alg, &[0x42; 16]).unwrap();
        let name = alg.name();
        g.bench_function(format!("{name} div region+card"), |b| b.iter(|| key.div_path(&[region, card])));
        g.bench_function(format!("{name} external-auth cryptogram"), |b| {
            b.iter(|| process_key(&key, &[1, 2, 3, 4, 5, 6, 7, 8]).cryptogram(&[8, 7, 6, 5, 4, 3, 2, 1]))
        });
        let challenge = vec![9u8; if alg == Algorithm::Tdes { 4 } else { 8 }];
        g.bench_function(format!("{name} line MAC 64 bytes"), |b| b.iter(|| line_mac(&key, &challenge, &payload)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
