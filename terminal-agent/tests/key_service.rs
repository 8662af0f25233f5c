//! The counter without keys: `terminal-agent serve` with `[keys] mode = "key-service"` and the key service
//! (`keymgmt serve`, real mutual TLS with test certificates) — through pcscd with card-sim cards in
//! `Virtual PCD 00 00`, which must accept what the service computed.
//!
//! The store holds the published test issuer keys (`testkit::keys::issuer_store`), so the fixture cards are cards
//! of the store; the agent holds no key at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use card_core::card::SocialSecurityCard;
use card_core::codec::RegionCode;
use card_core::security::LocalKeys;
use serde_json::{json, Value};
use terminal_agent::service::token::{claims, sign, Scope};
use testkit::key_service::{config, KeyService};
use testkit::pki::Pki;
use testkit::{fixture, vpcd_lock, Reader0, READER};

use common::{http, start, Agent, Resp, ORIGIN, TERMINAL, TOKEN_KEY};

/// A terminal the service lets read only.
const READ_ONLY: &str = "371700000002";

fn policies() -> String {
    format!(
        "[terminal.{TERMINAL}]\noperations = [\"read\", \"write\", \"pin-reload\", \"pin-unblock\"]\n\
         regions = [\"371700\"]\ndfs = [\"SSSE\", \"DF01\"]\n\n\
         [terminal.{READ_ONLY}]\noperations = [\"read\"]\nregions = [\"371700\"]\ndfs = [\"SSSE\"]\n"
    )
}

/// The test PKI, the store, and `n` replicas of the key service in `dir`.
fn services(dir: &Path, n: usize) -> (Pki, Vec<KeyService>) {
    let pki = Pki::new(dir);
    let store = testkit::keys::issuer_store(dir);
    let server = pki.server();
    let keymgmt = testkit::script::programs().join("keymgmt");
    let replicas = (0..n)
        .map(|i| {
            let audit = dir.join(format!("replica-{i}.jsonl"));
            KeyService::start(
                &keymgmt,
                dir,
                &format!("replica-{i}"),
                &config(&store, &pki, &server, &audit, &policies()),
            )
            .unwrap()
        })
        .collect();
    (pki, replicas)
}

/// The `[keys]` table of an agent asking `urls` as `terminal` (its certificate made by `pki`).
fn key_service_mode(pki: &Pki, terminal: &str, urls: &[String]) -> String {
    let cert = pki.terminal(terminal);
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[keys]\nmode = \"key-service\"\nurls = [{}]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         timeout_ms = 3000\n",
        urls.join(", "),
        pki.ca_pem.display(),
        cert.cert.display(),
        cert.key.display()
    )
}

fn get(a: &Agent, path: &str) -> Resp {
    http(a.port, "GET", path, None, &[("Origin", ORIGIN)], b"")
}

fn post(a: &Agent, path: &str, scope: Scope, body: &Value) -> Resp {
    let token = sign(&hex::decode(TOKEN_KEY).unwrap(), &claims(&[scope], TERMINAL, Duration::from_secs(60))).unwrap();
    let auth = format!("Bearer {token}");
    http(a.port, "POST", path, None, &[("Origin", ORIGIN), ("Authorization", &auth)], body.to_string().as_bytes())
}

fn reader0(a: &Agent) -> usize {
    let v = get(a, "/v1/readers").json();
    v["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap()["index"].as_u64().unwrap() as usize
}

fn national(file: &str) -> String {
    std::fs::read_to_string(fixture(&format!("national/{file}"))).unwrap().trim_end().to_owned()
}

/// The service's audit lines.
fn audited(dir: &Path, replica: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("replica-{replica}.jsonl"))).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn answered(dir: &Path, replica: usize, operation: &str) -> usize {
    audited(dir, replica).iter().filter(|l| l["operation"] == operation && l["result"] == "ok").count()
}

/// The region keys of the test issuer keys, to check a card taken out of the reader.
fn test_region_keys() -> LocalKeys {
    let region = RegionCode::parse("371700").unwrap();
    let keys = testkit::keys::test_keys();
    let mut entries = Vec::new();
    for alg in [card_core::crypto::Algorithm::Tdes, card_core::crypto::Algorithm::Sm4] {
        for name in testkit::keys::names() {
            entries.push((name.clone(), keys.issuer(alg, &name).unwrap()));
        }
    }
    LocalKeys::from_issuer_keys(region, entries).unwrap()
}

#[test]
fn a_counter_without_keys_reads_and_writes_generation_3_through_the_key_service() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pki, replicas) = services(dir.path(), 1);
    let a = start(&key_service_mode(&pki, TERMINAL, &[replicas[0].base.clone()]), "");

    // generation 2: read without any key, the service is not asked
    let card = Reader0::insert_fixture("gen2-personalized.json");
    let i = reader0(&a);
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["national"], national("gen2-basic.txt"));
    assert_eq!(answered(dir.path(), 0, "read"), 0);
    drop(card);

    // generation 3: the whole holder, through the service; the card checked the service's cryptogram and the
    // agent the card's internal authentication (the card carries the test photo, read below)
    let photo = testkit::test_photo();
    let card = Reader0::insert(card_sim::SimTransport::new(testkit::fixture_card_with_photo(
        "gen3-personalized.json",
        &photo,
    )));
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["code"], 0);
    assert_eq!(v["national"], national("gen3-basic.txt"));
    assert_eq!(answered(dir.path(), 0, "read"), 1);
    let line = audited(dir.path(), 0).into_iter().find(|l| l["operation"] == "read").unwrap();
    assert_eq!(line["terminal"], TERMINAL);
    assert_eq!(line["card_id"], v["card"]["card_id"]);
    assert_eq!((line["key"].as_str(), line["version"].as_u64()), (Some("RKSSSE"), Some(2)), "SM4 is version 2");

    // the photo, behind RKSSSE too: through the service as well, never cacheable
    let p = get(&a, &format!("/v1/readers/{i}/photo"));
    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(p.body, photo);
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert_eq!(answered(dir.path(), 0, "read"), 2, "the photo's RKSSSE cryptogram came from the service");

    // a write under UKMF, computed by the service
    let address = "SSSEEF06|09|$";
    let w = post(
        &a,
        &format!("/v1/readers/{i}/items"),
        Scope::Write,
        &json!({"address": address, "data": "SSSEEF06|李四|$"}),
    );
    assert_eq!(w.status, 200, "{}", String::from_utf8_lossy(&w.body));
    assert_eq!(answered(dir.path(), 0, "write"), 1);

    // PIN reload (RLK's MAC) and unblock (PUK's secure data and MAC) from the service; the new PIN verifies
    let reload = post(&a, &format!("/v1/readers/{i}/pin/reload"), Scope::Pin, &json!({"new_pin": "246802"}));
    assert_eq!(reload.status, 200, "{}", String::from_utf8_lossy(&reload.body));
    let verify = post(&a, &format!("/v1/readers/{i}/pin/verify"), Scope::Pin, &json!({"pin": "246802"}));
    assert_eq!(verify.status, 200, "{}", String::from_utf8_lossy(&verify.body));
    let unblock = post(&a, &format!("/v1/readers/{i}/pin/unblock"), Scope::Pin, &json!({"new_pin": "135791"}));
    assert_eq!(unblock.status, 200, "{}", String::from_utf8_lossy(&unblock.body));
    assert_eq!((answered(dir.path(), 0, "pin-reload"), answered(dir.path(), 0, "pin-unblock")), (1, 1));

    // the card itself says what was written and which PIN it holds
    let mut sim = SocialSecurityCard::new(card.remove());
    let keys = test_region_keys();
    let items = sim.read_items(&keys, &address.parse().unwrap(), None).unwrap();
    assert_eq!(items.to_national(), "SSSEEF06|李四|$");
    sim.verify_pin(&secrecy::SecretString::from("135791")).unwrap();

    // nothing secret in the service's audit log: no PIN, no Step1 or Step2 string
    let log = std::fs::read_to_string(dir.path().join("replica-0.jsonl")).unwrap();
    for secret in ["246802", "135791", "\"step1\"", "\"step2\""] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}

/// The national function table over the agent's WebSocket in key-service mode: iReadCardBas of a generation 3
/// card and iWriteCard through the service, as the HTTP routes do.
#[test]
fn the_national_socket_reads_and_writes_generation_3_through_the_key_service() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pki, replicas) = services(dir.path(), 1);
    let a = start(
        &key_service_mode(&pki, TERMINAL, &[replicas[0].base.clone()]),
        &format!("[readers]\ncontact = \"{READER}\"\n"),
    );
    let card = Reader0::insert_fixture("gen3-personalized.json");
    let mut ws = common::national_socket(&a, Some(ORIGIN)).unwrap();
    let v = common::national_call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(
        (v["code"].as_i64(), v["pOutInfo"].as_str()),
        (Some(0), Some(national("gen3-basic.txt").as_str())),
        "{v}"
    );
    assert_eq!(answered(dir.path(), 0, "read"), 1, "the service computed the read's cryptogram");

    let basic = national("gen3-basic.txt");
    let f: Vec<&str> = basic.split('|').collect();
    let token =
        sign(&hex::decode(TOKEN_KEY).unwrap(), &claims(&[Scope::Write], TERMINAL, Duration::from_secs(60))).unwrap();
    let w = common::national_call(
        &mut ws,
        json!({"function": "iWriteCard", "iType": 1, "pCardInfo": format!("{}|{}|", f[3], f[2]),
               "pFileAddr": "SSSEEF06|09|$", "pWriteData": "SSSEEF06|李四|$", "token": token}),
    );
    assert_eq!((w["code"].as_i64(), w["pOutInfo"].as_str()), (Some(0), Some("")), "{w}");
    assert_eq!(answered(dir.path(), 0, "write"), 1, "the service authenticated the write");
    // holder items are read with RKSSSE, which the agent does not hold: −2203, as libsscard answers
    let r = common::national_call(
        &mut ws,
        json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": format!("{}|{}|", f[3], f[2]),
               "pFileAddr": "SSSEEF06|09|$"}),
    );
    assert_eq!((r["code"].as_i64(), r["pOutInfo"].as_str()), (Some(-2203), Some("")), "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("_HSM_")), "{r}");
    drop(ws);
    drop(a);

    // the card itself holds the name written
    let mut sim = SocialSecurityCard::new(card.remove());
    let items = sim.read_items(&test_region_keys(), &"SSSEEF06|09|$".parse().unwrap(), None).unwrap();
    assert_eq!(items.to_national(), "SSSEEF06|李四|$");
}

#[test]
fn refusals_and_an_unreachable_service_reach_the_clerk_with_their_codes() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pki, replicas) = services(dir.path(), 1);
    let _card = Reader0::insert_fixture("gen3-personalized.json");

    // a terminal the service lets read only: its write is refused by the service, the card untouched
    let ro = common::start_as(READ_ONLY, &key_service_mode(&pki, READ_ONLY, &[replicas[0].base.clone()]), "");
    let i = reader0(&ro);
    assert_eq!(get(&ro, &format!("/v1/readers/{i}/basic")).json()["code"], 0, "reading is allowed");
    let token =
        sign(&hex::decode(TOKEN_KEY).unwrap(), &claims(&[Scope::Write], READ_ONLY, Duration::from_secs(60))).unwrap();
    let auth = format!("Bearer {token}");
    let body = json!({"address": "SSSEEF06|09|$", "data": "SSSEEF06|李四|$"}).to_string();
    let w = http(
        ro.port,
        "POST",
        &format!("/v1/readers/{i}/items"),
        None,
        &[("Origin", ORIGIN), ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(w.status, 502, "{}", String::from_utf8_lossy(&w.body));
    let v = w.json();
    assert_eq!(v["error"], "key_service_refused");
    assert_eq!(v["code"], -24, "key level insufficient, as the service said");
    let refused: Vec<Value> =
        audited(dir.path(), 0).into_iter().filter(|l| l["operation"] == "write" && l["result"] != "ok").collect();
    assert_eq!(refused.len(), 1, "refused and audited by the service");
    drop(ro);

    // no replica reachable: 503 with −11, nothing read
    let dead = vec!["https://localhost:1".to_owned()];
    let a = start(&key_service_mode(&pki, TERMINAL, &dead), "");
    let r = get(&a, &format!("/v1/readers/{}/basic", reader0(&a)));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "key_service_unreachable");
    assert_eq!(r.json()["code"], -11);
}

#[test]
fn two_replicas_one_killed_under_load_no_read_fails() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pki, mut replicas) = services(dir.path(), 2);
    let urls: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let a = start(&key_service_mode(&pki, TERMINAL, &urls), "");
    let i = reader0(&a);
    let path = format!("/v1/readers/{i}/basic");
    let port = a.port;
    let reads = std::thread::spawn(move || {
        (0..30)
            .map(|_| {
                let r = http(port, "GET", &path, None, &[("Origin", ORIGIN)], b"");
                (r.status, r.json()["code"].as_i64())
            })
            .collect::<Vec<_>>()
    });
    // the first replica answers until it dies mid-run
    let t = std::time::Instant::now();
    while answered(dir.path(), 0, "read") < 5 {
        assert!(t.elapsed() < Duration::from_secs(60), "replica 0 answered nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    replicas[0].kill();
    let results = reads.join().unwrap();
    assert!(results.iter().all(|r| *r == (200, Some(0))), "every read succeeded: {results:?}");
    assert!(answered(dir.path(), 1, "read") > 0, "the second replica took over");
    // one answer per read, and one more if the kill fell between replica 0's audit line and its answer reaching the
    // agent (that read is asked again of replica 1; the reads are one at a time, so at most one was in flight)
    let total = answered(dir.path(), 0, "read") + answered(dir.path(), 1, "read");
    assert!((30..=31).contains(&total), "{total} answers for 30 reads");
}

#[test]
fn read_basic_diagnosis_through_the_key_service() {
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pki, replicas) = services(dir.path(), 1);
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let cert = pki.terminal(TERMINAL);
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
            .args(["read-basic", "--json", "--reader", READER, "--terminal-no", TERMINAL, "--device-no"])
            .arg("SIM-READER-01")
            .args(["--key-service", url, "--service-ca"])
            .arg(&pki.ca_pem)
            .arg("--client-cert")
            .arg(&cert.cert)
            .arg("--client-key")
            .arg(&cert.key)
            .output()
            .unwrap()
    };
    let out = run(&replicas[0].base);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 0);
    assert_eq!(v["national"], national("gen3-basic.txt"));
    assert_eq!(v["apdus"], 7, "Step 1 and Step 2 in one transaction");
    let out = run("https://localhost:1");
    assert_eq!(out.status.code(), Some(7), "no replica reached: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no replica answered"));
    let _: PathBuf = dir.path().to_path_buf();
}
