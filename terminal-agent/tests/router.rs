//! The router in process, without a socket and without pcscd: `service::router` over [`InProcessReaders`] holding
//! card-sim cards, called with `tower::ServiceExt::oneshot` (the axum `testing` pattern). Reads, items, the photo,
//! a PIN verify with a token, Host and Origin refusals, the audit log, and the APDUs each request costs (counted
//! by the card itself, so the counts are exact).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use card_core::security::{NoKeys, SecurityModule};
use card_core::transport::{CardTransaction, ReaderSelector, ReaderStatus, Transport, TransportError};
use card_sim::SimTransport;
use serde_json::{json, Value};
use terminal_agent::service::config::Config;
use terminal_agent::service::connector::{CardConnector, CardLink, InProcessReaders};
use terminal_agent::service::events::{Canceller, EventSource};
use terminal_agent::service::token::{claims, sign, Scope};
use terminal_agent::service::{router, Shared};
use testkit::{fixture, fixture_card};
use tower::ServiceExt;

/// The port the app believes it listens on (the Host check); nothing is bound.
const PORT: u16 = 17788;
const HOST: &str = "127.0.0.1:17788";
const ORIGIN: &str = "https://counter.example";
const TERMINAL: &str = "371700000001";
const DEVICE: &str = "SIM-READER-01";
const TOKEN_KEY: [u8; 32] = [0x42; 32];
/// Reader 0 holds the generation 2 fixture, reader 1 the generation 3 one.
const GEN2_READER: &str = "Sim Reader 0";
const GEN3_READER: &str = "Sim Reader 1";

struct App {
    router: Router,
    readers: InProcessReaders<SimTransport>,
    dir: tempfile::TempDir,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn app_with(keys: Arc<dyn SecurityModule + Send + Sync>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let readers = InProcessReaders::new();
    readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen2-personalized.json")));
    readers.insert(GEN3_READER, SimTransport::new(fixture_card("gen3-personalized.json")));
    let config = Config {
        allowed_origins: vec![ORIGIN.to_owned()],
        terminal_no: TERMINAL.to_owned(),
        device_no: DEVICE.to_owned(),
        audit_log: Some(dir.path().join("audit.jsonl")),
        token_key: Some(zeroize::Zeroizing::new(TOKEN_KEY.to_vec())),
        queue_wait: Duration::from_secs(5),
        ..Config::default()
    };
    let state = Shared::new(&config, PORT, keys, Arc::new(readers.clone())).unwrap();
    App { router: router(state, config.max_body_bytes), readers, dir }
}

fn app() -> App {
    app_with(Arc::new(NoKeys))
}

impl App {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_vec())).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec();
        Resp { status, headers, body }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[("host", HOST), ("origin", ORIGIN)], b"").await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("host", HOST), ("origin", ORIGIN), ("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.call("POST", path, &headers, body.to_string().as_bytes()).await
    }

    /// APDUs the card in `reader` has answered so far.
    fn apdus(&self, reader: &str) -> u64 {
        self.readers.with_card(reader, |sim| sim.apdu_count()).unwrap()
    }

    /// The APDUs one request costs: `(response, count)`.
    async fn counted(&self, reader: &str, request: impl std::future::Future<Output = Resp>) -> (Resp, u64) {
        let before = self.apdus(reader);
        let r = request.await;
        (r, self.apdus(reader) - before)
    }

    fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn token(scope: Scope) -> String {
    sign(&TOKEN_KEY, &claims(&[scope], TERMINAL, Duration::from_secs(60))).unwrap()
}

/// The generation 2 fixture's card identifier (EF05 record 1), as the audit log writes it.
const GEN2_CARD_ID: &str = "371700D15600000500000000000000A2";

#[tokio::test]
async fn readers_are_listed_from_the_connector() {
    let a = app();
    let r = a.get("/v1/readers").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let readers = v["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 2, "{v}");
    assert_eq!(readers[0]["index"], 0);
    assert_eq!(readers[0]["name"], GEN2_READER);
    assert_eq!(readers[0]["card_present"], true);
    assert_eq!(readers[0]["exclusive"], false);
    assert_eq!(readers[0]["atr"], "3B6F00005353021037170000000000000000A2");
    assert_eq!(readers[1]["name"], GEN3_READER);
    // an empty reader: no ATR
    a.readers.remove(GEN3_READER).unwrap();
    let v = a.get("/v1/readers").await.json();
    assert_eq!(v["readers"][1]["card_present"], false);
    assert_eq!(v["readers"][1]["atr"], Value::Null);
    assert_eq!(a.get("/v1/readers/1/basic").await.json()["error"], "no_card");
}

#[tokio::test]
async fn basic_read_of_the_generation_2_fixture_is_the_national_string() {
    let a = app();
    let r = a.get("/v1/readers/0/basic").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let expected = std::fs::read_to_string(fixture("national/gen2-basic.txt")).unwrap();
    assert_eq!(v["national"], expected.trim_end());
    assert!(expected.contains("|371700000001|SIM-READER-01|"), "the fixture names the test terminal");
    assert_eq!(v["code"], 0);
    assert_eq!(v["card"]["name"], "张三");
    assert_eq!(v["card"]["card_id"], GEN2_CARD_ID);
    assert_eq!(r.headers.get("access-control-allow-origin").and_then(|h| h.to_str().ok()), Some(ORIGIN));
    // `default`: the first reader with a card
    assert_eq!(a.get("/v1/readers/default/basic").await.json()["card"]["name"], "张三");
    let reads: Vec<_> = a.audit().into_iter().filter(|l| l["operation"] == "read-basic").collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0]["card_id"], GEN2_CARD_ID);
    assert_eq!(reads[0]["reader"], GEN2_READER);
    assert_eq!(reads[0]["origin"], ORIGIN);
}

#[tokio::test]
async fn generation_3_without_keys_shows_the_card_number_in_two_apdus() {
    let a = app();
    let (r, apdus) = a.counted(GEN3_READER, a.get("/v1/readers/1/basic")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], -2203);
    assert_eq!(v["card"]["card_number"], "B0000002U");
    assert_eq!(v["card"]["name"], Value::Null, "holder data withheld");
    assert_eq!(v["card"]["withheld_for_lack_of"], "RKSSSE");
    assert!(v["national"].as_str().unwrap().contains("B0000002U"), "{v}");
    // SELECT SSSE (the FCI names SM4: generation 3), READ RECORD EF05
    assert_eq!(apdus, 2);
}

#[tokio::test]
async fn items_and_card_status() {
    let a = app();
    let st = a.get("/v1/readers/0/card").await.json();
    assert_eq!(st["generation"], 2);
    assert_eq!(st["reader"], GEN2_READER);
    assert_eq!(st["atr"], "3B6F00005353021037170000000000000000A2");
    let items = a.get("/v1/readers/0/items?address=SSSEEF05%7C05%7C06%7C07%7C%24").await;
    assert_eq!(items.status, 200, "{}", items.text());
    assert_eq!(items.json()["national"], "SSSEEF05|20200101|20300101|A0000001T|$");
    let bad = a.get("/v1/readers/0/items?address=NOPE").await;
    assert_eq!((bad.status, bad.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let read = a.audit().into_iter().find(|l| l["operation"] == "read-items").unwrap();
    assert_eq!(read["card_id"], GEN2_CARD_ID);
    assert_eq!(read["result"], "ok");
}

#[tokio::test]
async fn the_generation_2_fixture_has_no_photo() {
    let a = app();
    let r = a.get("/v1/readers/0/photo").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["error"], "no_photo");
}

#[tokio::test]
async fn pin_verify_needs_a_token() {
    let a = app();
    let path = "/v1/readers/0/pin/verify";
    let none = a.post(path, None, &json!({ "pin": "123456" })).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"], "token_refused");
    let ok = a.post(path, Some(&token(Scope::Pin)), &json!({ "pin": "123456" })).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["ok"], true);
    let wrong = a.post(path, Some(&token(Scope::Pin)), &json!({ "pin": "999999" })).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.json()["code"], -51);
    assert_eq!(wrong.json()["error"], "pin_refused");
    let audit = a.audit();
    let verifies: Vec<_> = audit.iter().filter(|l| l["operation"] == "pin-verify").collect();
    assert_eq!(verifies.len(), 3, "{audit:?}");
    assert_eq!(verifies[0]["card_id"], Value::Null, "refused before the card");
    assert_eq!(verifies[1]["card_id"], GEN2_CARD_ID);
    assert_eq!(verifies[1]["result"], "ok");
    let text = std::fs::read_to_string(a.dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains("123456") && !text.contains("999999"), "no PIN in the audit log");
}

#[tokio::test]
async fn host_and_origin_are_checked_before_any_handler() {
    let a = app();
    let path = "/v1/readers/0/basic";
    let before = a.apdus(GEN2_READER);
    let rebinding = a.call("GET", path, &[("host", "evil.example:17788"), ("origin", ORIGIN)], b"").await;
    assert_eq!(rebinding.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(rebinding.json()["error"], "bad_host");
    let no_host = a.call("GET", path, &[("origin", ORIGIN)], b"").await;
    assert_eq!(no_host.status, StatusCode::MISDIRECTED_REQUEST);
    let foreign = a.call("GET", path, &[("host", HOST), ("origin", "https://evil.example")], b"").await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(foreign.json()["error"], "bad_origin");
    assert!(foreign.headers.get("access-control-allow-origin").is_none());
    let null = a.call("GET", path, &[("host", HOST), ("origin", "null")], b"").await;
    assert_eq!(null.status, StatusCode::FORBIDDEN);
    let absent = a.call("GET", path, &[("host", HOST)], b"").await;
    assert_eq!(absent.status, StatusCode::FORBIDDEN);
    for host in ["localhost:17788", "[::1]:17788"] {
        assert_eq!(a.call("GET", path, &[("host", host), ("origin", ORIGIN)], b"").await.status, 200, "{host}");
    }
    assert_eq!(a.apdus(GEN2_READER) - before, 2 * 3, "only the two accepted reads reached the card");
    assert!(a.audit().iter().all(|l| l["origin"] == ORIGIN), "refusals never reach a handler");
}

/// The APDUs a photo read and a PIN verify cost through the agent, after a basic read taught the agent the
/// card's generation (a 3DES card's FCI does not tell 1 from 2).
///
/// The audit line's card identifier comes from the operation's own transaction: one READ RECORD (EF05 record 1)
/// right after its SELECT SSSE. Before (agent of commit 1097bbe) it was read in a transaction of its own, SELECT
/// SSSE and READ RECORD, before the operation: a photo read took 2 + 18 = 20 APDUs and a PIN verify 2 + 2 = 4.
#[tokio::test]
async fn apdus_per_request() {
    let a = app();
    assert_eq!(a.get("/v1/readers/0/basic").await.status, 200);
    let (photo, photo_apdus) = a.counted(GEN2_READER, a.get("/v1/readers/0/photo")).await;
    assert_eq!(photo.status, StatusCode::NOT_FOUND, "{}", photo.text());
    let (t, body) = (token(Scope::Pin), json!({ "pin": "123456" }));
    let (verify, verify_apdus) = a.counted(GEN2_READER, a.post("/v1/readers/0/pin/verify", Some(&t), &body)).await;
    assert_eq!(verify.status, 200, "{}", verify.text());
    // SELECT SSSE, READ RECORD EF05 1, SELECT EF08, 16 READ BINARY (4 096 bytes)
    assert_eq!(photo_apdus, 19);
    // SELECT SSSE, READ RECORD EF05 1, VERIFY
    assert_eq!(verify_apdus, 3);
    let items = a.get("/v1/readers/0/items?address=SSSEEF05%7C05%7C06%7C07%7C%24");
    let (items, items_apdus) = a.counted(GEN2_READER, items).await;
    assert_eq!(items.status, 200, "{}", items.text());
    // SELECT SSSE, READ RECORD EF05 1, READ RECORD EF05 "all from 5"
    assert_eq!(items_apdus, 3);
    // every one of them audited with the card it was done on
    let audit = a.audit();
    for op in ["read-photo", "pin-verify", "read-items"] {
        let line = audit.iter().find(|l| l["operation"] == op).unwrap();
        assert_eq!(line["card_id"], GEN2_CARD_ID, "{op}: {line}");
    }
}

/// A refused PIN is audited with the card it was tried on (the identifier is read before the VERIFY).
#[tokio::test]
async fn a_wrong_pin_is_audited_with_its_card() {
    let a = app();
    let (t, body) = (token(Scope::Pin), json!({ "pin": "000000" }));
    let wrong = a.post("/v1/readers/0/pin/verify", Some(&t), &body).await;
    assert_eq!(wrong.json()["code"], -51);
    let line = a.audit().into_iter().find(|l| l["operation"] == "pin-verify").unwrap();
    assert_eq!((line["result"].as_str(), line["card_id"].as_str()), (Some("error"), Some(GEN2_CARD_ID)));
}

/// Errors say what went wrong in stable words: a card pulled from its reader, an operation the card refuses.
#[tokio::test]
async fn errors_are_stable_messages() {
    let a = app();
    a.readers.remove(GEN2_READER).unwrap();
    let r = a.get("/v1/readers/0/basic").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let v = r.json();
    assert_eq!((v["error"].as_str(), v["code"].as_i64()), (Some("no_card"), Some(-2)));
    assert_eq!(v["message"], "no card in the reader");
    assert!(!v["message"].as_str().unwrap().contains(GEN2_READER), "no reader internals: {v}");
    // the generation 3 card without keys: its photo needs RKSSSE
    let photo = a.get("/v1/readers/1/photo").await.json();
    assert_eq!(photo["error"], "key_not_held", "{photo}");
    assert!(!photo["message"].as_str().unwrap().contains("RKSSSE"), "{photo}");
}

/// The in-process connector is an events source too: the hub sees its readers, then each insertion and removal.
#[tokio::test]
async fn in_process_cards_make_reader_events() {
    use terminal_agent::service::connector::CardConnector;
    use terminal_agent::service::events::{Event, EventHub};

    let readers: InProcessReaders<SimTransport> = InProcessReaders::new();
    readers.add_reader(GEN2_READER);
    let hub = EventHub::start_with(readers.events());
    // subscribed after the watcher started: its first batch (the reader added) may come before or after
    let mut rx = hub.subscribe();
    let within = Duration::from_secs(5);
    let mut next = async || loop {
        match tokio::time::timeout(within, rx.recv()).await.unwrap().unwrap() {
            Event::ReaderAdded { reader } => assert_eq!(reader, GEN2_READER),
            other => return other,
        }
    };
    readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen2-personalized.json")));
    let atr = "3B6F00005353021037170000000000000000A2".to_owned();
    assert_eq!(next().await, Event::CardInserted { reader: GEN2_READER.into(), atr: atr.clone() });
    let snap = hub.snapshot();
    assert!(snap.iter().any(|r| r.reader == GEN2_READER && r.card_present && r.atr.as_deref() == Some(atr.as_str())));
    readers.remove(GEN2_READER).unwrap();
    assert_eq!(next().await, Event::CardRemoved { reader: GEN2_READER.into() });
}

/// A card swapped between two requests: the pool's connection to the old card is no longer live, and the next
/// request reaches the new card (no restart, no error).
#[tokio::test]
async fn a_swapped_card_is_reached_by_the_next_request() {
    let a = app();
    assert_eq!(a.get("/v1/readers/0/card").await.json()["generation"], 2);
    a.readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen3-personalized.json")));
    let r = a.get("/v1/readers/0/card").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 3);
}

#[tokio::test]
async fn a_reader_index_is_written_as_the_reader_list_writes_it() {
    let a = app();
    assert_eq!(a.get("/v1/readers/0/card").await.status, StatusCode::OK);
    assert_eq!(a.get("/v1/readers/1/card").await.status, StatusCode::OK);
    for bad in ["+0", "00", "01", "-0", "0x0", " 0"] {
        let r = a.get(&format!("/v1/readers/{}/card", bad.replace(' ', "%20"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"], "no_reader", "{bad}");
    }
}

#[tokio::test]
async fn the_audit_line_says_what_the_client_was_told() {
    let a = app();
    // a card without a photo: 404 no_photo to the client, and so in the audit
    let r = a.get("/v1/readers/0/photo").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let told = r.json();
    // a generation 3 card read without keys: 200 with code −2203, and so in the audit
    let r = a.get("/v1/readers/1/basic").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["code"], -2203);
    let audit = a.audit();
    let photo = audit.iter().find(|l| l["operation"] == "read-photo").unwrap();
    assert_eq!(photo["result"], "error", "{photo}");
    assert_eq!(photo["error"], "no_photo", "{photo}");
    assert_eq!(photo["code"], told["code"], "{photo}");
    let basic = audit.iter().find(|l| l["operation"] == "read-basic" && l["reader"] == GEN3_READER).unwrap();
    assert_eq!(basic["code"], -2203, "{basic}");
}

/// A connector that counts what the agent asks of "pcscd" besides the card's APDUs: reader lists and lookups,
/// connections, liveness checks (`SCardStatus` for pcscd's readers); `mute_events` keeps the watcher to its first
/// batch, as if every later event were missed.
struct Counting {
    inner: InProcessReaders<SimTransport>,
    counts: Arc<Counts>,
    mute_events: bool,
}

#[derive(Default)]
struct Counts {
    listings: AtomicU64,
    connects: AtomicU64,
    liveness: AtomicU64,
}

impl Counts {
    /// `(reader listings and lookups, connections, liveness checks)`.
    fn get(&self) -> (u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        (get(&self.listings), get(&self.connects), get(&self.liveness))
    }
}

impl CardConnector for Counting {
    fn readers(&self) -> Result<Vec<ReaderStatus>, TransportError> {
        self.counts.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.readers()
    }
    fn reader_names(&self) -> Result<Vec<String>, TransportError> {
        self.counts.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.reader_names()
    }
    fn resolve(&self, selector: &ReaderSelector) -> Result<String, TransportError> {
        self.counts.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve(selector)
    }
    fn connect(&self, reader: &str) -> Result<Box<dyn CardLink>, TransportError> {
        self.counts.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(CountingLink { link: self.inner.connect(reader)?, counts: self.counts.clone() }))
    }
    fn events(&self) -> Box<dyn EventSource> {
        let source = self.inner.events();
        if self.mute_events {
            Box::new(FirstBatchOnly { source, given: false })
        } else {
            source
        }
    }
}

struct CountingLink {
    link: Box<dyn CardLink>,
    counts: Arc<Counts>,
}

impl Transport for CountingLink {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        self.link.transaction()
    }
    fn atr(&self) -> &[u8] {
        self.link.atr()
    }
    fn name(&self) -> &str {
        self.link.name()
    }
}

impl CardLink for CountingLink {
    fn is_live(&self) -> bool {
        self.counts.liveness.fetch_add(1, Ordering::SeqCst);
        self.link.is_live()
    }
}

/// An event source that reports the present once, then nothing until it is cancelled.
struct FirstBatchOnly {
    source: Box<dyn EventSource>,
    given: bool,
}

impl EventSource for FirstBatchOnly {
    fn next_batch(&mut self) -> Option<Vec<card_core::transport::ReaderChange>> {
        if !self.given {
            self.given = true;
            return self.source.next_batch();
        }
        // drain (and drop) the rest until cancelled
        while self.source.next_batch().is_some() {}
        None
    }
    fn readers(&self) -> Vec<ReaderStatus> {
        self.source.readers()
    }
    fn canceller(&self) -> Canceller {
        self.source.canceller()
    }
}

/// An app over a [`Counting`] connector, once the reader watcher's first batch is in.
async fn counted_app(mute_events: bool) -> (App, Arc<Counts>, terminal_agent::service::AppState) {
    let dir = tempfile::tempdir().unwrap();
    let readers = InProcessReaders::new();
    readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen2-personalized.json")));
    readers.insert(GEN3_READER, SimTransport::new(fixture_card("gen3-personalized.json")));
    let counts = Arc::new(Counts::default());
    let connector = Counting { inner: readers.clone(), counts: counts.clone(), mute_events };
    let config = Config {
        allowed_origins: vec![ORIGIN.to_owned()],
        terminal_no: TERMINAL.to_owned(),
        device_no: DEVICE.to_owned(),
        audit_log: Some(dir.path().join("audit.jsonl")),
        queue_wait: Duration::from_secs(5),
        ..Config::default()
    };
    let state = Shared::new(&config, PORT, Arc::new(NoKeys), Arc::new(connector)).unwrap();
    let seen = state.events.snapshot_when_ready(Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 2, "the watcher's first batch: {seen:?}");
    let app = App { router: router(state.clone(), config.max_body_bytes), readers, dir };
    (app, counts, state)
}

/// Waits until the watcher has seen the card with `atr` in `reader`.
async fn until_seen(state: &terminal_agent::service::AppState, reader: &str, atr: &str) {
    for _ in 0..500 {
        if state.events.snapshot().iter().any(|r| r.reader == reader && r.atr.as_deref() == Some(atr)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the watcher did not see {atr} in {reader}");
}

/// N reads through the agent cost the card's APDUs and nothing else: the reader comes from the watcher's view, the
/// connection made by the first read is trusted while the watcher sees no change on the reader. A card swapped
/// afterwards (the watcher tells) costs one liveness check and one connection.
#[tokio::test]
async fn reads_cost_no_reader_lookups_or_liveness_checks_while_the_watcher_sees_no_change() {
    let (a, counts, state) = counted_app(false).await;
    const N: u64 = 10;
    let (first, per_read) = a.counted(GEN2_READER, a.get("/v1/readers/0/basic")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let before = a.apdus(GEN2_READER);
    for _ in 0..N {
        let r = a.get("/v1/readers/0/basic").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(a.apdus(GEN2_READER) - before, per_read * N, "the card's APDUs, {per_read} a read");
    assert_eq!(counts.get(), (0, 1, 0), "(listings, connects, liveness checks)");
    // `default` too: the first reader with a card, from the watcher's view
    assert_eq!(a.get("/v1/readers/default/basic").await.status, 200);
    assert_eq!(counts.get(), (0, 1, 0));

    a.readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen3-personalized.json")));
    let gen3_atr = a.readers.with_card(GEN2_READER, |c| hex::encode_upper(Transport::atr(c))).unwrap();
    until_seen(&state, GEN2_READER, &gen3_atr).await;
    let r = a.get("/v1/readers/0/card").await;
    assert_eq!(r.json()["generation"], 3, "{}", r.text());
    assert_eq!(counts.get(), (0, 2, 1), "the change made the pool check its connection, then connect again");
    for _ in 0..N {
        assert_eq!(a.get("/v1/readers/0/card").await.status, 200);
    }
    assert_eq!(counts.get(), (0, 2, 1));
    // an unknown index is asked of the connector: the precise error
    assert_eq!(a.get("/v1/readers/7/basic").await.json()["error"], "no_reader");
    assert_eq!(counts.get().0, 1);
}

/// The watcher missed the swap (its events are muted): the read still reaches the new card, the old connection
/// failing to begin its transaction and being made again before anything is sent; a pulled card is `no_card`.
#[tokio::test]
async fn a_swap_the_watcher_missed_is_caught_by_the_first_transaction() {
    let (a, counts, _state) = counted_app(true).await;
    assert_eq!(a.get("/v1/readers/0/card").await.json()["generation"], 2);
    a.readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen3-personalized.json")));
    let r = a.get("/v1/readers/0/card").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 3);
    assert_eq!(counts.get(), (0, 2, 0), "(listings, connects, liveness checks)");
    a.readers.remove(GEN2_READER).unwrap();
    let r = a.get("/v1/readers/0/basic").await;
    assert_eq!(r.json()["error"], "no_card", "{}", r.text());
    a.readers.insert(GEN2_READER, SimTransport::new(fixture_card("gen2-personalized.json")));
    let r = a.get("/v1/readers/0/basic").await;
    assert_eq!(r.json()["card"]["name"], "张三", "{}", r.text());
}
