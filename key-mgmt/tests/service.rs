//! `keymgmt serve`, the key service, end to end: the real binary on 127.0.0.1 (ephemeral port), real mutual TLS
//! with certificates made here (testkit's `Pki`), clients with `ureq`, and card-sim cards that must accept the
//! answers.
//!
//! The store: `KeyStore::init`, then the published test issuer keys (`fixtures/cards/test-keys.toml`) imported
//! as two XOR components each — 3DES as version 1, SM4 as version 2 — so the fixture cards (personalized by
//! card-sim under exactly those issuer keys) are cards of this store. A rotation adds random versions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use card_core::apdu::Sensitivity;
use card_core::card::{Address, SocialSecurityCard};
use card_core::codec::RegionCode;
use card_core::crypto::Algorithm;
use card_core::profile::Profile;
use card_core::security::two_step::{self, Step1};
use card_core::security::{LocalKeys, SecurityModule};
use card_core::transport::Transport;
use card_sim::{Card, SimTransport};
use key_mgmt::{KeyStore, VersionSelect};
use serde_json::{json, Value};
use testkit::pki::{Issued, Pki};

const T1: &str = "371700000001";
const PASS: &str = testkit::keys::PASSPHRASE;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

use testkit::keys::{names, test_keys};

/// A store holding the test issuer keys: 3DES v1, SM4 v2, all active (`testkit::keys::issuer_store`).
fn make_store(dir: &Path) -> PathBuf {
    testkit::keys::issuer_store(dir)
}

/// The region keys of 371700 at `version` of every name, as the service's answers must use them.
fn region_keys(store: &Path, version: u8) -> LocalKeys {
    let mut s = KeyStore::open(store).unwrap();
    s.unlock_with_passphrase(PASS.as_bytes()).unwrap();
    let exact: BTreeMap<String, u8> = names().into_iter().map(|n| (n, version)).collect();
    let set = s.region_keys_with("371700", &VersionSelect::Exact(exact)).unwrap();
    let mut local = LocalKeys::new(RegionCode::parse("371700").unwrap());
    for (name, entry) in set.iter() {
        assert_eq!(entry.version, version, "{name}");
        local.insert(name, entry.key.try_clone());
    }
    local
}

struct Service {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    fn start(dir: &Path, config: &str, insecure: bool) -> Service {
        Service::try_start(dir, config, insecure).unwrap_or_else(|e| panic!("service did not start: {e}"))
    }

    fn try_start(dir: &Path, config: &str, insecure: bool) -> Result<Service, String> {
        let cfg = dir.join("key-service.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keymgmt"));
        cmd.arg("--passphrase-file")
            .arg(dir.join("pass.txt"))
            .arg("--no-syslog")
            .arg("serve")
            .arg("--config")
            .arg(&cfg);
        if insecure {
            cmd.arg("--insecure-loopback");
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || for _ in out.lines() {});
        let Some(url) = line.trim().strip_prefix("keymgmt serve: listening on ") else {
            let status = child.wait().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            return Err(format!("{status}: {}", stderr.lock().unwrap()));
        };
        let base = url.replace("127.0.0.1", "localhost");
        Ok(Service { child, base, stderr })
    }

    fn url(&self) -> String {
        format!("{}/v1/answers", self.base)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGHUP, then waits until the service says it reloaded.
    fn hup(&self) {
        let before = self.stderr().matches("SIGHUP: reloaded").count();
        let ok = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
        let t = Instant::now();
        while self.stderr().matches("SIGHUP: reloaded").count() == before {
            assert!(t.elapsed() < Duration::from_secs(30), "no reload: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent(pki: &Pki, cert: Option<&Issued>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(&std::fs::read(&pki.ca_pem).unwrap()).unwrap();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
    if let Some(c) = cert {
        let chain = Certificate::from_pem(c.cert_pem.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(c.key_pem.as_bytes()).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[chain], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// POST `body`; `Err` if the connection or TLS failed.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(u16, Value), String> {
    post_raw(agent, url, &body.to_string())
}

fn post_raw(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, Value), String> {
    let mut resp = agent.post(url).header("content-type", "application/json").send(body).map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn card(gen: u8) -> SocialSecurityCard<SimTransport> {
    SocialSecurityCard::new(SimTransport::new(
        Card::load(repo(&format!("fixtures/cards/gen{gen}-personalized.json"))).unwrap(),
    ))
}

fn config(dir: &Path, pki: &Pki, server: &Issued, extra: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
store = "{store}"
regions = ["371700"]
audit_log = "{audit}"
revocation_list = "{revoked}"
max_body_bytes = 8192

[tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"

[limits]
per_terminal_per_second = 1000
per_terminal_burst = 1000

[terminal.{T1}]
operations = ["read", "write", "pin-reload", "pin-unblock"]
regions = ["371700"]
dfs = ["SSSE", "DF01"]

[terminal.371700000002]
operations = ["read"]
regions = ["371700"]
dfs = ["SSSE"]

[terminal.371700000009]
operations = ["read"]
regions = ["*"]
dfs = ["*"]
per_second = 0.01
burst = 3
{extra}"#,
        store = dir.join("keys.db").display(),
        audit = dir.join("audit/replica-1.jsonl").display(),
        revoked = dir.join("revoked.txt").display(),
        cert = server.cert.display(),
        key = server.key.display(),
        ca = pki.ca_pem.display(),
    )
}

fn read_req(step1: &str, terminal: &str) -> Value {
    json!({ "operation": "read", "step1": step1, "terminal": terminal })
}

fn transmit(c: &mut SocialSecurityCard<SimTransport>, apdu: &str) -> (Vec<u8>, String) {
    let mut tx = c.transport_mut().transaction().unwrap();
    let out = tx.transmit(&hex::decode(apdu.replace(' ', "")).unwrap(), Sensitivity::Sensitive).unwrap();
    let (data, sw) = out.split_at(out.len() - 2);
    (data.to_vec(), hex::encode_upper(sw))
}

fn verify(pin: &str) -> String {
    hex::encode_upper(card_core::command::verify_pin(&hex::decode(pin).unwrap()).unwrap().to_bytes())
}

fn select_ssse(c: &mut SocialSecurityCard<SimTransport>) {
    let aid = Profile::builtin().df("SSSE").unwrap().aid.clone().unwrap();
    let (_, sw) = transmit(c, &format!("00A40400{:02X}{}", aid.len(), hex::encode_upper(&aid)));
    assert!(sw == "9000" || sw.starts_with("61"), "SELECT SSSE {sw}");
}

struct World {
    dir: tempfile::TempDir,
    pki: Pki,
    server: Issued,
    t1: Issued,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    std::fs::write(dir.path().join("revoked.txt"), "# revoked terminal certificates\n").unwrap();
    let pki = Pki::new(dir.path());
    let server = pki.server();
    let t1 = pki.terminal(T1);
    World { dir, pki, server, t1 }
}

/// Read, write, PIN reload and PIN unblock answers of the service: equal to `backend_answer` with the store's
/// region keys, and accepted by generation 2 (3DES) and generation 3 (SM4) cards.
#[test]
fn answers_are_what_the_cards_accept() {
    let w = world();
    let dir = w.dir.path();
    let svc = Service::start(dir, &config(dir, &w.pki, &w.server, ""), false);
    let a = agent(&w.pki, Some(&w.t1));
    for (gen, version) in [(2u8, 1u8), (3, 2)] {
        let local = region_keys(&dir.join("keys.db"), version);
        let mut c = card(gen);

        // read
        let session = c.begin_two_step().unwrap();
        let step1 = session.step1();
        let (status, body) = post(&a, &svc.url(), &read_req(&step1, T1)).unwrap();
        assert_eq!(status, 200, "gen {gen}: {body}");
        let answer = body["answer"].as_str().unwrap().to_string();
        assert_eq!(answer, two_step::backend_answer(&local, &step1).unwrap(), "gen {gen}");
        assert_eq!((body["key"].as_str(), body["version"].as_u64()), (Some("RKSSSE"), Some(u64::from(version))));
        session.finish(&answer).unwrap();

        // write, DF01 and SSSE
        for (addr, data, file, key) in [
            ("DF01EF06|23|$", "DF01EF06|济南市|$", "DF01EF06", "UK_DF01"),
            ("SSSEEF06|0A|$", "SSSEEF06|2|$", "SSSEEF06", "UKMF"),
        ] {
            let address: Address = addr.parse().unwrap();
            let wr = c.begin_two_step_write(&address, data).unwrap();
            assert_eq!(wr.key(), key);
            let req = json!({ "operation": "write", "step1": wr.step1(), "terminal": T1, "file": file });
            let (status, body) = post(&a, &svc.url(), &req).unwrap();
            assert_eq!(status, 200, "gen {gen} {file}: {body}");
            assert_eq!(body["key"], key);
            let answer = body["answer"].as_str().unwrap();
            assert_eq!(answer, two_step::backend_answer_for(&local, &wr.step1(), key).unwrap());
            wr.finish(answer).unwrap();
        }
        let back = c.read_items(&local, &"DF01EF06|23|$".parse().unwrap(), None).unwrap().to_national();
        assert_eq!(back, "DF01EF06|济南市|$", "gen {gen}");

        // PIN reload: RELOAD PIN with the service's MAC, then VERIFY with the new PIN
        let (pin, pin2) = ("135790", "246802");
        select_ssse(&mut c);
        let req = json!({ "operation": "pin-reload", "step1": step1, "terminal": T1, "step2": format!("{pin}|") });
        let (status, body) = post(&a, &svc.url(), &req).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"], "RLK");
        let mac = body["answer"].as_str().unwrap().trim_end_matches('|').to_string();
        let s1: Step1 = step1.parse().unwrap();
        let ctx = s1.card_context().unwrap();
        let pin_bytes = hex::decode(pin).unwrap();
        assert_eq!(mac, hex::encode_upper(local.line_mac_zero_iv(&ctx, "RLK", &pin_bytes).unwrap()));
        assert_eq!(transmit(&mut c, &format!("805E000007{pin}{mac}")).1, "9000", "gen {gen} RELOAD PIN");
        assert_eq!(transmit(&mut c, &verify(pin)).1, "9000", "gen {gen} VERIFY after reload");

        // PIN unblock: GET CHALLENGE, the service's secure data and MAC, PIN UNBLOCK, VERIFY
        select_ssse(&mut c);
        let len = if gen == 3 { 8 } else { 4 };
        let (challenge, sw) = transmit(&mut c, &format!("00840000{len:02X}"));
        assert_eq!(sw, "9000");
        let step2 = format!("{}|84240000|{pin2}|", hex::encode_upper(&challenge));
        let req = json!({ "operation": "pin-unblock", "step1": step1, "terminal": T1, "step2": step2 });
        let (status, body) = post(&a, &svc.url(), &req).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"], "PUK");
        let data = body["answer"].as_str().unwrap().trim_end_matches('|').to_string();
        let enc = local.secure_data(&ctx, "PUK", &hex::decode(pin2).unwrap()).unwrap();
        assert!(data.starts_with(&hex::encode_upper(&enc)));
        let apdu = format!("84240000{:02X}{data}", data.len() / 2);
        assert_eq!(transmit(&mut c, &apdu).1, "9000", "gen {gen} PIN UNBLOCK");
        assert_eq!(transmit(&mut c, &verify(pin2)).1, "9000", "gen {gen} VERIFY after unblock");
    }
    let log = dir.join("audit/replica-1.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 10, "one line per request:\n{text}");
    drop(svc);
    verify_log(&log, true);
}

fn verify_log(log: &Path, ok: bool) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keymgmt")).arg("audit").arg("verify-log").arg(log).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if ok {
        assert!(out.status.success(), "{text}");
    } else {
        assert_eq!(out.status.code(), Some(4), "{text}");
    }
    text
}

/// Everyone who may not ask is refused, audited; the log verifies, then fails after an edit and after a cut; no
/// secret in the log or on stderr.
#[test]
fn refusals_audit_and_secrets() {
    let w = world();
    let dir = w.dir.path();
    let svc = Service::start(dir, &config(dir, &w.pki, &w.server, ""), false);
    let url = svc.url();
    let mut c = card(3);
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let good = agent(&w.pki, Some(&w.t1));
    let (status, body) = post(&good, &url, &read_req(&step1, T1)).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer = body["answer"].as_str().unwrap().to_string();

    // handshake refusals: no certificate, another CA, expired
    assert!(post(&agent(&w.pki, None), &url, &read_req(&step1, T1)).is_err(), "no client certificate");
    let other = w.pki.other_ca_terminal(T1);
    assert!(post(&agent(&w.pki, Some(&other)), &url, &read_req(&step1, T1)).is_err(), "another CA");
    let expired = w.pki.expired_terminal(T1);
    assert!(post(&agent(&w.pki, Some(&expired)), &url, &read_req(&step1, T1)).is_err(), "expired");

    let refused = |agent: &ureq::Agent, body: &Value, status: u16, code: i64| {
        let (s, b) = post(agent, &url, body).unwrap();
        assert_eq!((s, b["code"].as_i64()), (status, Some(code)), "{body} → {b}");
        assert!(b.get("answer").is_none());
        b
    };
    // terminal mismatch
    refused(&good, &read_req(&step1, "371700000002"), 403, -24);
    // operation, region, DF not allowed
    let t2 = agent(&w.pki, Some(&w.pki.terminal("371700000002")));
    let write = json!({ "operation": "write", "step1": step1, "terminal": "371700000002", "file": "DF01EF06" });
    refused(&t2, &write, 403, -24);
    let other_region = step1.replacen("371700|", "371000|", 1).replacen("|371700D1", "|371000D1", 1);
    refused(&t2, &read_req(&other_region, "371700000002"), 403, -24);
    let write_df02 = json!({ "operation": "write", "step1": step1, "terminal": T1, "file": "DF02EF05" });
    refused(&good, &write_df02, 403, -24);
    // a terminal not listed: the default policy is nothing
    let t3 = agent(&w.pki, Some(&w.pki.terminal("371700000003")));
    refused(&t3, &read_req(&step1, "371700000003"), 403, -24);

    // malformed or hostile Step1: 400 with the national code, nothing answered
    let fields: Vec<&str> = step1.split('|').collect();
    refused(&good, &read_req(&fields[..5].join("|"), T1), 400, -14);
    refused(&good, &read_req(&step1.replacen(fields[4], "ZZZZZZZZZZZZZZZZ", 1), T1), 400, -14);
    let t9 = agent(&w.pki, Some(&w.pki.terminal("371700000009")));
    refused(&t9, &read_req(&other_region, "371700000009"), 400, -2203);
    let aes = step1.replacen("|03|", "|04|", 1);
    refused(&good, &read_req(&aes, T1), 400, -2202);
    refused(&good, &read_req(&step1.replacen("|03|", "|02|", 1), T1), 400, -2202);
    refused(&good, &read_req(&step1.replacen("|371700D1", "|110100D1", 1), T1), 400, -23);
    let huge = json!({ "operation": "read", "step1": "A".repeat(1024 * 1024), "terminal": T1 });
    refused(&good, &huge, 400, -14);
    let (s, b) = post_raw(&good, &url, "{not json").unwrap();
    assert_eq!((s, b["code"].as_i64()), (400, Some(-14)));
    let bad_pin = json!({ "operation": "pin-reload", "step1": step1, "terminal": T1, "step2": "12A4B6C8D0E2|" });
    refused(&good, &bad_pin, 400, -41);
    let short_pin = json!({ "operation": "pin-reload", "step1": step1, "terminal": T1, "step2": "12|" });
    refused(&good, &short_pin, 400, -42);

    // rate limit: terminal 9 has a burst of 3 (one spent above)
    let codes: Vec<u16> = (0..4).map(|_| post(&t9, &url, &read_req(&step1, "371700000009")).unwrap().0).collect();
    assert_eq!(codes, [200, 200, 429, 429], "{codes:?}");
    let (s, b) = post(&t9, &url, &read_req(&step1, "371700000009")).unwrap();
    assert_eq!((s, b["code"].as_i64()), (429, Some(-12)));

    // revoked, then SIGHUP without restart: refused on the connection already open, and on new ones
    let t4cert = w.pki.terminal("371700000002");
    let t4 = agent(&w.pki, Some(&t4cert));
    assert_eq!(post(&t4, &url, &read_req(&step1, "371700000002")).unwrap().0, 200);
    std::fs::write(dir.join("revoked.txt"), format!("# lost\n{}\n", t4cert.serial)).unwrap();
    svc.hup();
    refused(&t4, &read_req(&step1, "371700000002"), 403, -24);
    assert_eq!(
        post(&t2, &url, &read_req(&step1, "371700000002")).unwrap().0,
        200,
        "another certificate of the terminal"
    );

    // the card still accepts the first answer (nothing above touched it)
    session.finish(&answer).unwrap();

    let stderr_buf = svc.stderr.clone();
    drop(svc);
    let stderr = stderr_buf.lock().unwrap().clone();
    let log = dir.join("audit/replica-1.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().filter(|l| l["event"] == "tls").count() >= 3, "{text}");
    assert!(lines.iter().any(|l| l["result"] == "refused" && l["status"] == 429));
    assert!(lines.iter().any(|l| l["cert_serial"] == t4cert.serial.as_str() && l["status"] == 403));
    assert!(lines
        .iter()
        .filter(|l| l["event"] == "answer")
        .all(|l| l["client"].as_str().unwrap().starts_with("127.0.0.1:")));
    let ok_line = lines.iter().find(|l| l["result"] == "ok").unwrap();
    assert_eq!(ok_line["card_id"], fields[3]);
    assert_eq!(
        (ok_line["key"].as_str(), ok_line["version"].as_u64(), ok_line["code"].as_i64()),
        (Some("RKSSSE"), Some(2), Some(0))
    );

    // no key, cryptogram, random, PIN or Step1 in the log or on stderr
    let mut secrets: Vec<String> = fields[4..8].iter().map(|s| s.to_string()).collect();
    secrets.push(answer[..16].to_string());
    secrets.push(answer[33..49].to_string());
    secrets.push(step1.clone());
    secrets.push("12A4B6C8D0E2".into());
    for name in names() {
        for alg in [Algorithm::Tdes, Algorithm::Sm4] {
            secrets.push(hex::encode_upper(test_keys().issuer(alg, &name).unwrap().expose_secret()));
        }
    }
    for s in &secrets {
        for (what, hay) in [("audit log", &text), ("stderr", &stderr)] {
            assert!(!hay.to_uppercase().contains(s.as_str()), "{what} holds {s}");
        }
    }

    // verify-log passes, then fails after an edit and after a cut
    verify_log(&log, true);
    std::fs::write(&log, text.replacen("\"code\":-24", "\"code\":0", 1)).unwrap();
    assert!(verify_log(&log, false).contains("edited"));
    let cut: String = text.lines().take(lines.len() - 2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, cut).unwrap();
    assert!(verify_log(&log, false).contains("cut"));
    std::fs::write(&log, &text).unwrap();
    verify_log(&log, true);
}

/// SIGHUP picks up a rotated key version; with the issuance journal, a card issued under the older version is
/// still served with it.
#[test]
fn rotation_and_the_journal() {
    let w = world();
    let dir = w.dir.path();
    // the journal: issuance-cli's `cards` table, this card issued under SM4 v2
    let journal = dir.join("journal.db");
    let conn = rusqlite::Connection::open(&journal).unwrap();
    conn.execute_batch("CREATE TABLE cards (id INTEGER PRIMARY KEY, card_id TEXT NOT NULL UNIQUE, key_versions TEXT NOT NULL DEFAULT '{}')").unwrap();
    let mut c = card(3);
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    drop(session);
    let card_id = step1.split('|').nth(3).unwrap().to_string();
    conn.execute(
        "INSERT INTO cards (card_id, key_versions) VALUES (?1, ?2)",
        rusqlite::params![card_id, r#"{"RKSSSE":2,"IRK":2}"#],
    )
    .unwrap();
    drop(conn);
    let extra = format!("journal = \"{}\"\n", journal.display());
    // `journal` must come before the tables: put it first
    let cfg = format!("{extra}{}", config(dir, &w.pki, &w.server, ""));
    let svc = Service::start(dir, &cfg, false);
    let a = agent(&w.pki, Some(&w.t1));

    // rotate RKSSSE's SM4 line: v3, active
    {
        let mut s = KeyStore::open(&dir.join("keys.db")).unwrap();
        s.unlock_with_passphrase(PASS.as_bytes()).unwrap();
        let r = s.rotate_alg("RKSSSE", Some(Algorithm::Sm4)).unwrap();
        assert_eq!(r.version, 3);
    }
    // before SIGHUP: still v2; a card the journal does not know gets the highest active version
    let other_card = step1.replacen(&card_id, &format!("{}FF", &card_id[..30]), 1);
    let (_, body) = post(&a, &svc.url(), &read_req(&other_card, T1)).unwrap();
    assert_eq!(body["version"], 2, "{body}");
    svc.hup();
    let (_, body) = post(&a, &svc.url(), &read_req(&other_card, T1)).unwrap();
    assert_eq!(body["version"], 3, "SIGHUP picked up the rotation: {body}");
    let mut exact = BTreeMap::new();
    exact.insert("RKSSSE".to_string(), 3u8);
    exact.insert("IRK".to_string(), 2u8);
    let mut s = KeyStore::open(&dir.join("keys.db")).unwrap();
    s.unlock_with_passphrase(PASS.as_bytes()).unwrap();
    let set = s.region_keys_with("371700", &VersionSelect::Exact(exact)).unwrap();
    let local = LocalKeys::new(RegionCode::parse("371700").unwrap())
        .with_key("RKSSSE", set.get("RKSSSE").unwrap().key.try_clone())
        .with_key("IRK", set.get("IRK").unwrap().key.try_clone());
    assert_eq!(body["answer"].as_str().unwrap(), two_step::backend_answer(&local, &other_card).unwrap());

    // the journal's card: v2, and the card accepts it
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let (status, body) = post(&a, &svc.url(), &read_req(&step1, T1)).unwrap();
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    session.finish(body["answer"].as_str().unwrap()).unwrap();
    drop(svc);
    verify_log(&dir.join("audit/replica-1.jsonl"), true);
}

/// `--insecure-loopback`: plain HTTP on 127.0.0.1, the terminal from the request, audited as insecure; refused on
/// another address.
#[test]
fn insecure_loopback() {
    let w = world();
    let dir = w.dir.path();
    let cfg = config(dir, &w.pki, &w.server, "").replace("127.0.0.1:0", "0.0.0.0:0");
    let err = Service::try_start(dir, &cfg, true).err().unwrap();
    assert!(err.contains("exit status: 2") && err.contains("loopback"), "{err}");
    // a configuration error names file:line:column, exit 2
    let cfg = config(dir, &w.pki, &w.server, "").replace("dfs = [\"SSSE\", \"DF01\"]", "dfs = [\"SSSE\", \"DF99\"]");
    let err = Service::try_start(dir, &cfg, true).err().unwrap();
    assert!(err.contains("exit status: 2") && err.contains("key-service.toml:20:"), "{err}");
    let svc = Service::start(dir, &config(dir, &w.pki, &w.server, ""), true);
    assert!(svc.base.starts_with("http://"));
    let mut c = card(2);
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let plain = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let (status, body) = post(&plain, &svc.url(), &read_req(&step1, T1)).unwrap();
    assert_eq!(status, 200, "{body}");
    session.finish(body["answer"].as_str().unwrap()).unwrap();
    let (status, _) = post(&plain, &svc.url(), &read_req(&step1, "371700000003")).unwrap();
    assert_eq!(status, 403, "the default policy still applies");
    drop(svc);
    let text = std::fs::read_to_string(dir.join("audit/replica-1.jsonl")).unwrap();
    assert!(text.lines().all(|l| l.contains("\"insecure\":true")), "{text}");
}

/// The city's journal on PostgreSQL, over TLS verified against its CA (`sslmode=verify-full`): the card the journal
/// knows is answered under the version it was issued with (and the card accepts it), another card under the
/// active version; a journal server whose certificate the configured CA did not sign stops the service at start.
#[test]
fn the_city_journal_on_postgresql_over_tls() {
    use key_mgmt::pg;
    let w = world();
    let dir = w.dir.path();
    let cluster = testkit::pg::Cluster::start_tls(&w.pki.server());
    // rotate RKSSSE's SM4 line to v3 (active) before the start: the journal's card stays at v2
    {
        let mut s = KeyStore::open(&dir.join("keys.db")).unwrap();
        s.unlock_with_passphrase(PASS.as_bytes()).unwrap();
        assert_eq!(s.rotate_alg("RKSSSE", Some(Algorithm::Sm4)).unwrap().version, 3);
    }
    let mut c = card(3);
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    drop(session);
    let card_id = step1.split('|').nth(3).unwrap().to_string();
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", cluster.url(), w.pki.ca_pem.display());
    {
        let (config, tls) = pg::config(&url, None, "test").unwrap();
        let mut db = pg::connect(&config, &tls).unwrap();
        db.batch_execute("CREATE TABLE cards (id BIGSERIAL PRIMARY KEY, card_id TEXT NOT NULL UNIQUE, key_versions TEXT NOT NULL DEFAULT '{}')").unwrap();
        db.execute(
            "INSERT INTO cards (card_id, key_versions) VALUES ($1, $2)",
            &[&card_id, &r#"{"RKSSSE":2,"IRK":2}"#],
        )
        .unwrap();
    }
    let cfg = format!("journal = \"{url}\"\n{}", config(dir, &w.pki, &w.server, ""));
    let svc = Service::start(dir, &cfg, false);
    let a = agent(&w.pki, Some(&w.t1));
    let session = c.begin_two_step().unwrap();
    let step1 = session.step1();
    let (status, body) = post(&a, &svc.url(), &read_req(&step1, T1)).unwrap();
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    session.finish(body["answer"].as_str().unwrap()).unwrap();
    let other_card = step1.replacen(&card_id, &format!("{}FF", &card_id[..30]), 1);
    let (_, body) = post(&a, &svc.url(), &read_req(&other_card, T1)).unwrap();
    assert_eq!(body["version"], 3, "{body}");
    drop(svc);

    // another CA in sslrootcert: the service does not start, and says why
    let wrong = url.replace(&w.pki.ca_pem.display().to_string(), &w.pki.other_ca_pem.display().to_string());
    let cfg = format!("journal = \"{wrong}\"\n{}", config(dir, &w.pki, &w.server, ""));
    let err = Service::try_start(dir, &cfg, false).err().unwrap();
    assert!(err.contains("exit status: 2") && err.contains("journal"), "{err}");
}
