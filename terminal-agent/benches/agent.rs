//! The agent's cost, through pcscd and a card-sim card in `Virtual PCD 00 00` (run: `cargo bench -p terminal-agent
//! --bench agent`; needs pcscd with vsmartcard-vpcd, as `cargo xtask test` sets up):
//!
//! 1. latency p50/p99 of a basic read through the agent (HTTP, one connection per request) against the same read
//!    sent directly through card-core (same APDUs), and their ratio;
//! 2. requests per second with 1, 4 and 16 concurrent clients on the one reader (the reader serializes them).
//!
//! Results go to stdout and to `target/bench-agent.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use card_core::card::SocialSecurityCard;
use card_core::security::NoKeys;
use card_core::transport::PcscTransport;
use terminal_agent::service::config::{Config, KeyMode};
use terminal_agent::service::Server;
use testkit::http::http;
use testkit::{reader, vpcd_lock, Reader0, READER};

const ORIGIN: &str = "https://counter.example";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful: run only as a bench
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let n: usize = std::env::var("AGENT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200);

    // direct: card-core on PC/SC
    let mut card = SocialSecurityCard::new(PcscTransport::connect(&reader()).unwrap());
    card.read_basic(&NoKeys).unwrap();
    let mut direct: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            card.read_basic(&NoKeys).unwrap();
            t.elapsed()
        })
        .collect();
    drop(card);

    // through the agent, in process
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let config = Config {
        port: 0,
        allowed_origins: vec![ORIGIN.into()],
        keys: KeyMode::TwoStep,
        queue_wait: Duration::from_secs(30),
        audit_log: Some(std::env::temp_dir().join("sscard-bench-audit.jsonl")),
        ..Config::default()
    };
    let server = runtime.block_on(Server::bind(config, Arc::new(NoKeys))).unwrap();
    let port = server.port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    let readers = http(port, "GET", "/v1/readers", None, &[("Origin", ORIGIN)], b"").json();
    let index =
        readers["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap()["index"].as_u64().unwrap();
    let path = format!("/v1/readers/{index}/basic");
    let get = || {
        let r = http(port, "GET", &path, None, &[("Origin", ORIGIN)], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    };
    get();
    let mut agent: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            get();
            t.elapsed()
        })
        .collect();
    direct.sort();
    agent.sort();
    let (d50, d99, a50, a99) =
        (percentile(&direct, 0.5), percentile(&direct, 0.99), percentile(&agent, 0.5), percentile(&agent, 0.99));
    println!("read-basic, gen 2 card, {n} reads each");
    println!("  direct (card-core):  p50 {:7.2} ms  p99 {:7.2} ms", ms(d50), ms(d99));
    println!("  through the agent:   p50 {:7.2} ms  p99 {:7.2} ms", ms(a50), ms(a99));
    println!("  ratio agent/direct:  p50 {:.2}  p99 {:.2}", ms(a50) / ms(d50), ms(a99) / ms(d99));

    let mut throughput = Vec::new();
    for clients in [1usize, 4, 16] {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let window = Duration::from_secs(5);
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (done, stop, path) = (done.clone(), stop.clone(), path.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let r = http(port, "GET", &path, None, &[("Origin", ORIGIN)], b"");
                        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let t = Instant::now();
        std::thread::sleep(window);
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        let rps = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
        println!("  {clients:2} concurrent clients: {rps:7.1} requests/s");
        throughput.push(serde_json::json!({ "clients": clients, "requests_per_second": rps }));
    }
    let _ = stop_tx.send(());
    runtime.block_on(serving).unwrap().unwrap();
    let out = serde_json::json!({
        "reads": n,
        "direct_ms": { "p50": ms(d50), "p99": ms(d99) },
        "agent_ms": { "p50": ms(a50), "p99": ms(a99) },
        "ratio": { "p50": ms(a50) / ms(d50), "p99": ms(a99) / ms(d99) },
        "throughput": throughput,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-agent.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("written {}", path.display());
}
