//! The key service's throughput and latency (not a test): the real `keymgmt serve` binary over keep-alive mutual
//! TLS on 127.0.0.1, with 1, 16 and 64 client connections (one `ureq` agent and thread each, in this process),
//! side by side with the in-process `backend_answer` on the same keys. Read answers for a generation 3 (SM4)
//! card; every request is audited by the service as in production.
//!
//! `cargo bench -p key-mgmt --bench service` (`-- --secs N` to change the 5 s per row). Clients and server share
//! the machine's cores: the numbers are a floor for the service alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use card_core::codec::RegionCode;
use card_core::crypto::Algorithm;
use card_core::security::two_step::backend_answer;
use card_core::security::LocalKeys;
use key_mgmt::{components, KeyStore};
use testkit::pki::Pki;

const PASS: &str = "bench passphrase, not a secret";
const T1: &str = "371700000001";

fn step1(i: u64) -> String {
    format!(
        "371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|{:016X}|{:016X}|{:016X}|{:016X}|",
        i,
        i.wrapping_mul(3),
        i.wrapping_mul(5),
        i.wrapping_mul(7)
    )
}

struct Row {
    what: String,
    answers: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time the service process used for the row, per answer.
    server_cpu: Option<Duration>,
}

/// User + system CPU time of process `pid` (Linux `/proc/PID/stat`, clock ticks of 10 ms).
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn row(what: String, mut lat: Vec<Duration>, secs: f64) -> Row {
    lat.sort();
    let at = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Row { what, answers: lat.len() as u64, secs, p50: at(0.50), p99: at(0.99), server_cpu: None }
}

fn main() {
    let secs: f64 = std::env::args().skip_while(|a| a != "--secs").nth(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("keys.db");
    let c1 = components::parse_hex(&"0123456789ABCDEF".repeat(4), 1, 32).unwrap();
    let c2 = components::parse_hex(&"3C5A3C5A1E2D4B69".repeat(4), 2, 32).unwrap();
    let (s, _) = KeyStore::init(&store, &[c1, c2], Some(PASS.as_bytes())).unwrap();
    s.generate_profile_keys(Algorithm::Sm4, 1, true).unwrap();
    let region = s.region_keys("371700").unwrap();
    let mut local = LocalKeys::new(RegionCode::parse("371700").unwrap());
    for (name, e) in region.iter() {
        local.insert(name, e.key.try_clone());
    }
    drop(s);
    std::fs::write(d.join("pass.txt"), format!("{PASS}\n")).unwrap();
    let pki = Pki::new(d);
    let server = pki.server();
    let term = pki.terminal(T1);
    let config = format!(
        "listen = \"127.0.0.1:0\"\nstore = \"{}\"\nregions = [\"371700\"]\naudit_log = \"{}\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
         [limits]\nper_terminal_per_second = 1e9\nper_terminal_burst = 1e9\nglobal_per_second = 1e9\nglobal_burst = 1e9\n\
         [terminal.{T1}]\noperations = [\"read\"]\nregions = [\"371700\"]\ndfs = [\"SSSE\"]\n",
        store.display(),
        d.join("audit.jsonl").display(),
        server.cert.display(),
        server.key.display(),
        pki.ca_pem.display()
    );
    std::fs::write(d.join("svc.toml"), config).unwrap();

    let mut rows = Vec::new();
    // in process
    let t = Instant::now();
    let mut lat = Vec::new();
    let mut i = 0u64;
    while t.elapsed().as_secs_f64() < secs.min(2.0) {
        let s1 = step1(i);
        let a = Instant::now();
        std::hint::black_box(backend_answer(&local, &s1).unwrap());
        lat.push(a.elapsed());
        i += 1;
    }
    rows.push(row("in-process backend_answer (1 thread)".into(), lat, t.elapsed().as_secs_f64()));

    let mut child = Command::new(env!("CARGO_BIN_EXE_keymgmt"))
        .arg("--passphrase-file")
        .arg(d.join("pass.txt"))
        .arg("--no-syslog")
        .arg("serve")
        .arg("--config")
        .arg(d.join("svc.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = format!("{}/v1/answers", line.trim().rsplit(' ').next().unwrap().replace("127.0.0.1", "localhost"));

    let agent = || {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(&std::fs::read(&pki.ca_pem).unwrap()).unwrap();
        let chain = Certificate::from_pem(term.cert_pem.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(term.key_pem.as_bytes()).unwrap();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[ca]))
            .client_cert(Some(ClientCert::new_with_certs(&[chain], key)))
            .build();
        ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().new_agent()
    };
    for conns in [1usize, 16, 64] {
        let barrier = Arc::new(Barrier::new(conns + 1));
        let mut handles = Vec::new();
        for c in 0..conns {
            let (agent, url, barrier) = (agent(), url.clone(), barrier.clone());
            handles.push(std::thread::spawn(move || {
                let body = |i: u64| format!(r#"{{"operation":"read","step1":"{}","terminal":"{T1}"}}"#, step1(i));
                // the connection: handshake once, then keep-alive
                let r = agent.post(&url).header("content-type", "application/json").send(body(0)).unwrap();
                assert_eq!(r.status(), 200);
                barrier.wait();
                let t = Instant::now();
                let mut lat = Vec::new();
                let mut i = (c as u64) << 32;
                while t.elapsed().as_secs_f64() < secs {
                    let a = Instant::now();
                    let mut r = agent.post(&url).header("content-type", "application/json").send(body(i)).unwrap();
                    let _ = r.body_mut().read_to_string().unwrap();
                    assert_eq!(r.status(), 200);
                    lat.push(a.elapsed());
                    i += 1;
                }
                lat
            }));
        }
        barrier.wait();
        let cpu0 = cpu_of(child.id());
        let t = Instant::now();
        let lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let mut r = row(format!("keymgmt serve, {conns} TLS connection(s)"), lat, t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, cpu_of(child.id())) {
            r.server_cpu = Some((b.saturating_sub(a)) / u32::try_from(r.answers.max(1)).unwrap_or(u32::MAX));
        }
        rows.push(r);
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();

    println!("| what | answers/s | p50 | p99 | service CPU per answer | answers per service CPU-second |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let (cpu, per_sec) = match r.server_cpu {
            Some(c) if !c.is_zero() => {
                (format!("{:.1} µs", c.as_secs_f64() * 1e6), format!("{:.0}", 1.0 / c.as_secs_f64()))
            }
            _ => ("–".to_string(), "–".to_string()),
        };
        println!(
            "| {} | {:.0} | {:.3} ms | {:.3} ms | {cpu} | {per_sec} |",
            r.what,
            r.answers as f64 / r.secs,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    }
    println!("\nload average at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}
