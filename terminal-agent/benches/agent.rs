//! The agent's cost, through pcscd and a card-sim card in `Virtual PCD 00 00` (run: `cargo bench -p terminal-agent
//! --bench agent`; needs pcscd with vsmartcard-vpcd, as `cargo xtask test` sets up).
//!
//! The basic read of the generation 2 fixture (`GET /v1/readers/{i}/basic`), three ways, on the card unpaced (it
//! answers as fast as the host computes) and paced at 9600 bit/s (each APDU takes its modeled time):
//!
//! - `direct`: card-core's `SocialSecurityCard::read_basic` over `PcscTransport`;
//! - `raw`: the same APDUs (recorded from card-core's read) sent with the `pcsc` crate, one transaction per read;
//! - `agent`: through the agent over HTTP/1.1 keep-alive (one connection per client, reused), with 1, 4 and 16
//!   concurrent clients on the one reader (which serializes them: latency grows with the clients);
//! - `http`: the agent's HTTP round trip with no card in it (`GET /favicon.svg` on the same connection), to tell the
//!   HTTP layer's share of the agent's overhead from the rest.
//!
//! The direct, raw and 1-client agent reads are interleaved in blocks, so that a change in the machine's load
//! (other builds) hits the three alike; their ratio is the agent's overhead. The 1-client `rps` is 1 / mean latency;
//! with 4 and 16 clients it is the requests done over the time from the first client's start to the last one's end.
//!
//! p50/p99 latencies and requests per second go to stdout and to `target/bench-agent.json` (`AGENT_BENCH_JSON` names
//! another file):
//!
//! ```json
//! { "unpaced": { "samples": 1000, "apdus": 3,
//!                "direct": { "p50_ms": …, "p99_ms": … },
//!                "raw":    { "p50_ms": …, "p99_ms": … },
//!                "http":   { "p50_ms": …, "p99_ms": … },
//!                "agent":  { "clients": { "1":  { "p50_ms": …, "p99_ms": …, "rps": … },
//!                                         "4":  { … }, "16": { … } } },
//!                "ratio_p50": agent (1 client) p50 / direct p50 },
//!   "paced_9600": { the same } }
//! ```
//!
//! The agent runs on its own runtime (`terminal_agent::service::runtime`, one thread) driven by a thread of its own;
//! `AGENT_BENCH_RUNTIME=multi-thread` runs it on a default multi-thread runtime instead, for comparison.
//!
//! `AGENT_BENCH_N` sets the samples of the unpaced runs (1000), `AGENT_BENCH_PACED_N` those of the paced runs (20: a
//! paced read of 3 APDUs takes about 280 ms). With c clients, each makes ⌈samples / c⌉ timed requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use card_core::card::SocialSecurityCard;
use card_core::security::NoKeys;
use card_core::transport::{Exchange, PcscTransport, RecordingTransport};
use card_sim::{SimTransport, TimingModel};
use serde_json::{json, Value};
use terminal_agent::service::config::{Config, KeyMode};
use terminal_agent::service::Server;
use testkit::http::Client;
use testkit::{fixture_card, reader, vpcd_lock, Reader0, READER};

const ORIGIN: &str = "https://counter.example";
const CLIENTS: [usize; 3] = [1, 4, 16];
/// Blocks of the interleaved direct, raw and agent reads.
const BLOCKS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `{p50_ms, p99_ms}` of the samples.
fn latency(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    json!({ "p50_ms": ms(percentile(&samples, 0.5)), "p99_ms": ms(percentile(&samples, 0.99)) })
}

/// One untimed call of `f`, then `k` timed ones into `into`.
fn timed(k: usize, f: &mut dyn FnMut(), into: &mut Vec<Duration>) {
    f();
    for _ in 0..k {
        let t = Instant::now();
        f();
        into.push(t.elapsed());
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful: run only as a bench
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _lock = vpcd_lock();
    let unpaced = env_usize("AGENT_BENCH_N", 1000).max(1);
    let paced = env_usize("AGENT_BENCH_PACED_N", 20).max(1);
    // the agent's own runtime (one thread), driven by a thread of its own as `sscard-agent serve` drives it
    let runtime = Arc::new(match std::env::var("AGENT_BENCH_RUNTIME").as_deref() {
        Ok("multi-thread") => tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap(),
        _ => terminal_agent::service::runtime().unwrap(),
    });
    let mut out = serde_json::Map::new();
    for (label, pace, n) in [("unpaced", false, unpaced), ("paced_9600", true, paced)] {
        out.insert(label.to_owned(), run(&runtime, label, pace, n));
    }
    let path = std::env::var_os("AGENT_BENCH_JSON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-agent.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(out)).unwrap()).unwrap();
    println!("written {}", path.display());
}

/// One card (paced or not): direct, raw and agent measurements.
fn run(runtime: &Arc<tokio::runtime::Runtime>, label: &str, pace: bool, n: usize) -> Value {
    let mut sim = SimTransport::with_timing(fixture_card("gen2-personalized.json"), TimingModel::with_bit_rate(9600));
    sim.set_pace(pace);
    let inserted = Reader0::insert(sim);

    // the agent, in process, over pcscd; stopped (its card released) before the card is removed
    let config = Config {
        port: 0,
        allowed_origins: vec![ORIGIN.into()],
        keys: KeyMode::TwoStep,
        queue_wait: Duration::from_secs(120),
        audit_log: Some(std::env::temp_dir().join("sscard-bench-audit.jsonl")),
        ..Config::default()
    };
    let server = runtime.block_on(Server::bind(config, Arc::new(NoKeys))).unwrap();
    let port = server.port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = runtime.clone();
    let serving = std::thread::spawn(move || {
        rt.block_on(server.run(async move {
            let _ = stop_rx.await;
        }))
    });
    let mut client = Client::new(port);
    let readers = client.get("/v1/readers", &[("Origin", ORIGIN)]).json();
    let index =
        readers["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap()["index"].as_u64().unwrap();
    let path = Arc::new(format!("/v1/readers/{index}/basic"));
    let get = |client: &mut Client| {
        let r = client.get(&path, &[("Origin", ORIGIN)]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    };

    // the APDUs of card-core's read, recorded, for the raw reads
    let mut recording = SocialSecurityCard::new(RecordingTransport::new(PcscTransport::connect(&reader()).unwrap()));
    recording.read_basic(&NoKeys).unwrap();
    let commands: Vec<Vec<u8>> = recording
        .transport()
        .exchanges()
        .iter()
        .map(|e| match e {
            Exchange::Apdu { command, redacted: false, .. } => command.clone(),
            other => panic!("a basic read of a generation 2 card without keys sends plain APDUs only: {other:?}"),
        })
        .collect();
    drop(recording);
    // direct: card-core on PC/SC
    let mut card = SocialSecurityCard::new(PcscTransport::connect(&reader()).unwrap());
    // raw: the same APDUs through the pcsc crate, one transaction per read, as card-core does
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = CString::new(READER).unwrap();
    let mut raw_card = ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).unwrap();
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    let mut raw_read = |card: &mut pcsc::Card| {
        let tx = card.transaction().unwrap();
        for c in &commands {
            let r = tx.transmit(c, &mut buf).unwrap();
            assert!(r.len() >= 2 && r[r.len() - 2..] == [0x90, 0x00], "{}", hex::encode_upper(r));
        }
        tx.end(pcsc::Disposition::LeaveCard).map_err(|(_, e)| e).unwrap();
    };
    raw_read(&mut raw_card);
    get(&mut client); // the connection made, the reader's worker started and connected to the card

    // the three interleaved, in blocks: a change of the machine's load hits them alike. Each block begins with a read
    // that is not timed: the first transaction on a handle after another handle's may wait for pcsc-lite's lock
    // poll (card-core ends its transactions asynchronously, on its connection's thread)
    let (mut direct, mut raw, mut agent1, mut http) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let block = n.div_ceil(BLOCKS);
    while agent1.len() < n {
        let k = block.min(n - agent1.len());
        let mut direct_read = || drop(card.read_basic(&NoKeys).unwrap());
        timed(k, &mut direct_read, &mut direct);
        timed(k, &mut || raw_read(&mut raw_card), &mut raw);
        timed(k, &mut || get(&mut client), &mut agent1);
        timed(k, &mut || assert_eq!(client.get("/favicon.svg", &[("Origin", ORIGIN)]).status, 200), &mut http);
    }
    drop(card);
    let _ = raw_card.disconnect(pcsc::Disposition::LeaveCard);
    assert_eq!(client.connects(), 1, "keep-alive: one connection");
    drop(client);

    let mut agent = serde_json::Map::new();
    let one_rps = agent1.len() as f64 / agent1.iter().sum::<Duration>().as_secs_f64();
    let mut stats = latency(agent1);
    stats["rps"] = json!(one_rps);
    let agent1_p50 = stats["p50_ms"].as_f64().unwrap();
    agent.insert("1".to_owned(), stats);
    for clients in CLIENTS.into_iter().filter(|&c| c > 1) {
        let per_client = n.div_ceil(clients);
        let start = Arc::new(std::sync::Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut client = Client::new(port);
                    let mut get = || {
                        let r = client.get(&path, &[("Origin", ORIGIN)]);
                        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    };
                    get(); // connected
                    start.wait();
                    let began = Instant::now();
                    let samples: Vec<Duration> = (0..per_client)
                        .map(|_| {
                            let t = Instant::now();
                            get();
                            t.elapsed()
                        })
                        .collect();
                    let connects = client.connects();
                    (samples, began, Instant::now(), connects)
                })
            })
            .collect();
        let mut samples = Vec::new();
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for t in threads {
            let (s, began, ended, connects) = t.join().unwrap();
            assert_eq!(connects, 1, "keep-alive: one connection per client");
            samples.extend(s);
            first = Some(first.map_or(began, |f| f.min(began)));
            last = Some(last.map_or(ended, |l| l.max(ended)));
        }
        let window = last.unwrap() - first.unwrap();
        let rps = samples.len() as f64 / window.as_secs_f64();
        let mut stats = latency(samples);
        stats["rps"] = json!(rps);
        agent.insert(clients.to_string(), stats);
    }
    let _ = stop_tx.send(());
    serving.join().unwrap().unwrap();
    drop(inserted);

    let (direct, raw, http) = (latency(direct), latency(raw), latency(http));
    let ratio = agent1_p50 / direct["p50_ms"].as_f64().unwrap();
    println!("read-basic, gen 2 card, {label}: {n} samples, {} APDUs per read", commands.len());
    let show = |what: &str, v: &Value| println!("  {what:<24} p50 {:8.3} ms  p99 {:8.3} ms", v["p50_ms"], v["p99_ms"]);
    show("direct (card-core)", &direct);
    show("raw PC/SC", &raw);
    show("HTTP alone (no card)", &http);
    for clients in CLIENTS {
        let v = &agent[&clients.to_string()];
        show(&format!("agent, {clients:>2} client(s)"), v);
        println!("  {:<24} {:8.1} requests/s", "", v["rps"].as_f64().unwrap());
    }
    println!("  ratio agent (1 client) / direct p50: {ratio:.3}");
    json!({
        "samples": n,
        "apdus": commands.len(),
        "direct": direct,
        "raw": raw,
        "http": http,
        "agent": { "clients": agent },
        "ratio_p50": ratio,
    })
}
