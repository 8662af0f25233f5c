//! `terminal-agent serve`, run as a program, through pcscd and a card in `Virtual PCD 00 00`: the API, the web
//! safety checks (Host, Origin, CORS, tokens, body limits, PIN rate limit), the audit log and the events socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use card_sim::{SimTransport, Tear, TearPoint};
use serde_json::{json, Value};
use terminal_agent::service::token::{claims, sign, Scope};
use testkit::http::Client;
use testkit::{fixture, fixture_card, pcscd, vpcd_lock, Reader0, READER};

use common::{http, start, Agent, Resp, ORIGIN, TERMINAL, TOKEN_KEY};

fn get(a: &Agent, path: &str) -> Resp {
    http(a.port, "GET", path, None, &[("Origin", ORIGIN)], b"")
}

fn post(a: &Agent, path: &str, token: Option<&str>, body: &Value) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Origin", ORIGIN)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http(a.port, "POST", path, None, &headers, body.to_string().as_bytes())
}

fn token(scope: Scope) -> String {
    sign(&hex::decode(TOKEN_KEY).unwrap(), &claims(&[scope], TERMINAL, Duration::from_secs(60))).unwrap()
}

/// The index of `Virtual PCD 00 00` in the agent's reader list.
fn reader0(a: &Agent) -> usize {
    let v = get(a, "/v1/readers").json();
    v["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap()["index"].as_u64().unwrap() as usize
}

fn audit_lines(a: &Agent) -> Vec<Value> {
    let text = std::fs::read_to_string(a.dir.path().join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn basic_read_for_an_allowed_origin_and_refusals_for_foreign_ones() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "");
    let i = reader0(&a);
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let expected = std::fs::read_to_string(fixture("national/gen2-basic.txt")).unwrap();
    assert_eq!(v["national"], expected.trim_end());
    assert_eq!(v["card"]["name"], "张三");
    assert_eq!(v["card"]["ssn"], "371702198001010019");
    assert_eq!(v["code"], 0);
    // CORS for the allowed origin only, never a wildcard
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(r.header("vary").unwrap_or("").contains("Origin"));

    let path = format!("/v1/readers/{i}/basic");
    let foreign = http(a.port, "GET", &path, None, &[("Origin", "https://evil.example")], b"");
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json()["error"], "bad_origin");
    assert!(foreign.header("access-control-allow-origin").is_none());
    let null = http(a.port, "GET", &path, None, &[("Origin", "null")], b"");
    assert_eq!(null.status, 403);
    let absent = http(a.port, "GET", &path, None, &[], b"");
    assert_eq!(absent.status, 403, "no Origin on an API route");
    let rebinding = http(a.port, "GET", &path, Some(&format!("evil.example:{}", a.port)), &[("Origin", ORIGIN)], b"");
    assert_eq!(rebinding.status, 421, "a foreign Host (DNS rebinding)");
    assert_eq!(rebinding.json()["error"], "bad_host");
    for host in [format!("localhost:{}", a.port), format!("[::1]:{}", a.port)] {
        assert_eq!(http(a.port, "GET", &path, Some(&host), &[("Origin", ORIGIN)], b"").status, 200, "{host}");
    }
    // the agent's own page may GET same-origin without Origin, as browsers do
    let own = http(a.port, "GET", "/v1/readers", None, &[("Sec-Fetch-Site", "same-origin")], b"");
    assert_eq!(own.status, 200);
    let cross_no_origin = http(a.port, "GET", "/v1/readers", None, &[("Sec-Fetch-Site", "cross-site")], b"");
    assert_eq!(cross_no_origin.status, 403);

    // preflights
    let pre = http(
        a.port,
        "OPTIONS",
        &format!("/v1/readers/{i}/pin/verify"),
        None,
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(pre.header("access-control-allow-headers").unwrap().contains("authorization"));
    let pre_evil = http(
        a.port,
        "OPTIONS",
        "/v1/readers",
        None,
        &[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    assert_eq!(pre_evil.status, 403);

    // the audit log has the read, with the card id, and the refused requests never reached a handler
    let lines = audit_lines(&a);
    let reads: Vec<_> = lines.iter().filter(|l| l["operation"] == "read-basic").collect();
    assert_eq!(reads.len(), 3, "{lines:?}");
    assert_eq!(reads[0]["origin"], ORIGIN);
    assert_eq!(reads[0]["card_id"], "371700D15600000500000000000000A2");
    assert_eq!(reads[0]["result"], "ok");
}

#[test]
fn pin_operations_need_a_token_and_are_rate_limited() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "pin_attempts_per_minute = 4");
    let i = reader0(&a);
    let path = format!("/v1/readers/{i}/pin/verify");
    let no_token = post(&a, &path, None, &json!({ "pin": "123456" }));
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.json()["error"], "token_refused");
    let wrong_scope = post(&a, &path, Some(&token(Scope::Write)), &json!({ "pin": "123456" }));
    assert_eq!(wrong_scope.status, 403);

    let t = token(Scope::Pin);
    let ok = post(&a, &path, Some(&t), &json!({ "pin": "123456" }));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let replay = post(&a, &path, Some(&t), &json!({ "pin": "123456" }));
    assert_eq!(replay.status, 403, "a token is good for one operation");
    assert!(replay.json()["message"].as_str().unwrap().contains("already used"));

    // the back end's reference signer, `terminal-agent token`, makes tokens the agent takes
    let signed = std::process::Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
        .args(["token", "--scope", "pin", "--ttl", "30", "--config"])
        .arg(a.dir.path().join("agent.toml"))
        .output()
        .unwrap();
    assert!(signed.status.success(), "{signed:?}");
    let cli_token = String::from_utf8(signed.stdout).unwrap();
    let ok = post(&a, &path, Some(cli_token.trim()), &json!({ "pin": "123456" }));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));

    let wrong = post(&a, &path, Some(&token(Scope::Pin)), &json!({ "pin": "999999" }));
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.json()["code"], -51, "national code: PIN wrong");
    // the fourth attempt in the minute passes the limit; the fifth is refused before the card sees it
    let ok = post(&a, &path, Some(&token(Scope::Pin)), &json!({ "pin": "123456" }));
    assert_eq!(ok.status, 200, "a right PIN resets the card's counter");
    let limited = post(&a, &path, Some(&token(Scope::Pin)), &json!({ "pin": "123456" }));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["code"], -31);
    assert!(limited.header("retry-after").is_some());

    // no PIN, no token in the audit log
    let text = std::fs::read_to_string(a.dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains("123456") && !text.contains("999999"), "{text}");
    assert!(!text.contains(&t[..20]), "no token in the audit log");
    let ops: Vec<_> = audit_lines(&a).iter().map(|l| (l["operation"].clone(), l["result"].clone())).collect();
    assert_eq!(ops.iter().filter(|(o, r)| o == "pin-verify" && r == "ok").count(), 3, "{ops:?}");
    assert_eq!(ops.iter().filter(|(o, r)| o == "pin-verify" && r == "error").count(), 5, "{ops:?}");
}

#[test]
fn pin_change_reload_and_unblock_through_the_api() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "pin_attempts_per_minute = 20");
    let i = reader0(&a);
    let pin = |op: &str, body: Value| post(&a, &format!("/v1/readers/{i}/pin/{op}"), Some(&token(Scope::Pin)), &body);
    let r = pin("change", json!({ "old_pin": "123456", "new_pin": "246810" }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(pin("verify", json!({ "pin": "123456" })).json()["code"], -51, "the old PIN is gone");
    assert_eq!(pin("verify", json!({ "pin": "246810" })).status, 200);
    let missing = pin("change", json!({ "old_pin": "246810" }));
    assert_eq!(missing.status, 400);
    assert!(missing.json()["message"].as_str().unwrap().contains("new_pin"));
    // block the PIN with wrong tries, then unblock it with the agent's keys
    let mut last = json!(null);
    for _ in 0..3 {
        last = pin("verify", json!({ "pin": "000000" })).json();
    }
    assert_eq!(last["code"], -51, "{last}");
    assert!(last["message"].as_str().unwrap().contains("0 tries left"), "{last}");
    assert_eq!(pin("verify", json!({ "pin": "246810" })).json()["code"], -52, "blocked, even for the right PIN");
    let r = pin("unblock", json!({ "new_pin": "135790" }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(pin("verify", json!({ "pin": "135790" })).status, 200);
    let r = pin("reload", json!({ "new_pin": "123456" }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(pin("verify", json!({ "pin": "123456" })).status, 200);
    assert_eq!(pin("rewind", json!({})).status, 404);
}

#[test]
fn bad_bodies_get_precise_errors_that_echo_nothing() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "max_body_bytes = 1024");
    let i = reader0(&a);
    let path = format!("/v1/readers/{i}/pin/verify");
    let auth = format!("Bearer {}", token(Scope::Pin));
    let headers = [("Origin", ORIGIN), ("Authorization", auth.as_str())];
    let malformed = http(a.port, "POST", &path, None, &headers, b"{\"pin\": \"123456\"");
    assert_eq!(malformed.status, 400);
    let m = malformed.json()["message"].as_str().unwrap().to_owned();
    assert!(m.contains("not valid JSON") && m.contains("line 1"), "{m}");
    assert!(!m.contains("123456"), "the body is not echoed: {m}");
    let wrong_type = http(a.port, "POST", &path, None, &headers, b"{\"pin\": 654321}");
    assert_eq!(wrong_type.status, 400);
    assert!(!wrong_type.json()["message"].as_str().unwrap().contains("654321"));
    let big = vec![b' '; 4096];
    let too_large = http(a.port, "POST", &path, None, &headers, &big);
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["error"], "body_too_large");
    let bad_address = get(&a, &format!("/v1/readers/{i}/items?address=NOPE"));
    assert_eq!(bad_address.status, 400);
    let no_reader = get(&a, "/v1/readers/99/basic");
    assert_eq!(no_reader.status, 404);
    assert_eq!(no_reader.json()["error"], "no_reader");
    assert_eq!(get(&a, "/v1/readers/..%2F..%2Fetc/basic").status, 404);
    // `default`: the first reader with a card, here Virtual PCD 00 00
    let d = get(&a, "/v1/readers/default/basic");
    assert_eq!(d.status, 200);
    assert_eq!(d.json()["card"]["name"], "张三");
    let unknown = get(&a, "/v1/nothing");
    assert_eq!(unknown.status, 404);
    // every refusal is the JSON error shape, the framework's own included
    let no_address = get(&a, &format!("/v1/readers/{i}/items"));
    assert_eq!((no_address.status, no_address.json()["error"].as_str()), (400, Some("bad_request")));
    let not_ws = get(&a, "/v1/events");
    assert_eq!(not_ws.json()["error"], "not_websocket");
    let delete = http(a.port, "DELETE", "/v1/readers", None, &[("Origin", ORIGIN)], b"");
    assert_eq!((delete.status, delete.json()["error"].as_str()), (405, Some("method_not_allowed")));
    // the agent still serves
    assert_eq!(get(&a, &format!("/v1/readers/{i}/basic")).status, 200);
}

#[test]
fn items_photo_and_card_status() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "");
    let i = reader0(&a);
    let st = get(&a, &format!("/v1/readers/{i}/card")).json();
    assert_eq!(st["generation"], 2);
    assert_eq!(st["atr"], "3B6F00005353021037170000000000000000A2");
    let items = get(&a, &format!("/v1/readers/{i}/items?address=SSSEEF05%7C05%7C06%7C07%7C%24"));
    assert_eq!(items.status, 200, "{}", String::from_utf8_lossy(&items.body));
    assert_eq!(items.json()["national"], "SSSEEF05|20200101|20300101|A0000001T|$");

    // a write needs a token; with one it lands and reads back
    let w = json!({ "address": "DF01EF06|23|$", "data": "DF01EF06|济南市|$" });
    assert_eq!(post(&a, &format!("/v1/readers/{i}/items"), None, &w).status, 401);
    let r = post(&a, &format!("/v1/readers/{i}/items"), Some(&token(Scope::Write)), &w);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let back = get(&a, &format!("/v1/readers/{i}/items?address=DF01EF06%7C23%7C%24")).json();
    assert_eq!(back["national"], "DF01EF06|济南市|$");

    let photo = get(&a, &format!("/v1/readers/{i}/photo"));
    match photo.status {
        200 => {
            assert_eq!(photo.header("content-type"), Some("image/jpeg"));
            assert!(photo.body.starts_with(&[0xFF, 0xD8]) && photo.body.ends_with(&[0xFF, 0xD9]));
        }
        404 => assert_eq!(photo.json()["error"], "no_photo"),
        s => panic!("photo: {s} {}", String::from_utf8_lossy(&photo.body)),
    }
}

#[test]
fn a_card_pulled_mid_request_is_reported_and_the_agent_keeps_serving() {
    let _lock = vpcd_lock();
    let mut sim = SimTransport::new(fixture_card("gen2-personalized.json"));
    sim.arm_tear(Tear { after_apdu: 3, when: TearPoint::BeforeWrite });
    let card = Reader0::insert(sim);
    let a = start("local", "");
    let i = reader0(&a);
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "no_card");
    assert_eq!(r.json()["code"], -2);
    drop(card.remove());
    let _again = Reader0::insert_fixture("gen2-personalized.json");
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["card"]["name"], "张三");
}

#[test]
fn two_step_read_with_the_back_ends_answer() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let a = start("two-step", "queue_wait_ms = 300");
    let i = reader0(&a);
    // without keys the agent withholds the gen 3 holder data
    let plain = get(&a, &format!("/v1/readers/{i}/basic")).json();
    assert_eq!(plain["code"], -2203);
    let s1 = post(&a, &format!("/v1/readers/{i}/basic/step1"), None, &json!({}));
    assert_eq!(s1.status, 200, "{}", String::from_utf8_lossy(&s1.body));
    let s1 = s1.json();
    // the back end: its HSM holds the region keys (here: the test keys)
    let keys = card_core::security::LocalKeys::from_issuer_keys(
        card_core::codec::RegionCode::parse("371700").unwrap(),
        test_issuer_keys(),
    )
    .unwrap();
    let answer = card_core::security::two_step::backend_answer(&keys, s1["step1"].as_str().unwrap()).unwrap();
    let wrong = post(
        &a,
        &format!("/v1/readers/{i}/basic/step2"),
        None,
        &json!({ "session": "00000000000000000000000000000000", "answer": answer }),
    );
    assert_eq!(wrong.status, 404, "unknown session");
    // while step 1 holds the card, other requests wait for it, and give up as busy after the configured wait
    let busy = get(&a, &format!("/v1/readers/{i}/card"));
    assert_eq!(busy.status, 503, "{}", String::from_utf8_lossy(&busy.body));
    assert_eq!(busy.json()["error"], "busy");
    assert!(busy.header("retry-after").is_some());
    let step2 = |session: &Value, answer: &str| {
        post(&a, &format!("/v1/readers/{i}/basic/step2"), None, &json!({ "session": session, "answer": answer }))
    };
    let s2 = step2(&s1["session"], &answer);
    assert_eq!(s2.status, 200, "{}", String::from_utf8_lossy(&s2.body));
    let expected = std::fs::read_to_string(fixture("national/gen3-basic.txt")).unwrap();
    assert_eq!(s2.json()["national"], expected.trim_end());
    assert_eq!(step2(&s1["session"], &answer).status, 404, "a session is answered once");

    // a two-step write: the token at step 1, the back end answers for the file's update key
    let w = json!({ "address": "DF01EF06|23|$", "data": "DF01EF06|青岛市|$" });
    assert_eq!(post(&a, &format!("/v1/readers/{i}/items/step1"), None, &w).status, 401);
    let t1 = post(&a, &format!("/v1/readers/{i}/items/step1"), Some(&token(Scope::Write)), &w);
    assert_eq!(t1.status, 200, "{}", String::from_utf8_lossy(&t1.body));
    let t1 = t1.json();
    let key = t1["key"].as_str().unwrap();
    let answer = card_core::security::two_step::backend_answer_for(&keys, t1["step1"].as_str().unwrap(), key).unwrap();
    let body = json!({ "session": t1["session"], "answer": answer });
    let t2 = post(&a, &format!("/v1/readers/{i}/items/step2"), None, &body);
    assert_eq!(t2.status, 200, "{}", String::from_utf8_lossy(&t2.body));
    let audit: Vec<String> = audit_lines(&a).iter().map(|l| l["operation"].as_str().unwrap().to_owned()).collect();
    for op in ["read-basic-step1", "read-basic-step2", "write-items-step1", "write-items-step2"] {
        assert!(audit.iter().any(|o| o == op), "{op} audited: {audit:?}");
    }
}

/// The issuer test keys of `fixtures/cards/test-keys.toml` (TEST MATERIAL).
fn test_issuer_keys() -> Vec<(String, card_core::crypto::CardKey)> {
    let text = std::fs::read_to_string(fixture("cards/test-keys.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (alg, keys) in v["issuer"].as_table().unwrap() {
        let alg = match alg.as_str() {
            "3des" => card_core::crypto::Algorithm::Tdes,
            "sm4" => card_core::crypto::Algorithm::Sm4,
            _ => card_core::crypto::Algorithm::Aes128,
        };
        for (name, hex_key) in keys.as_table().unwrap() {
            let key = card_core::crypto::CardKey::new(alg, &hex::decode(hex_key.as_str().unwrap()).unwrap()).unwrap();
            out.push((name.clone(), key));
        }
    }
    out
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens `/v1/events` with `origin`; reads time out after 15 s.
fn events_socket(a: &Agent, origin: &str) -> Result<Socket, tungstenite::Error> {
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://127.0.0.1:{}/v1/events", a.port))
        .header("Host", format!("127.0.0.1:{}", a.port))
        .header("Origin", origin)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key())
        .body(())
        .unwrap();
    let (mut ws, _) = tungstenite::connect(request)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    Ok(ws)
}

/// The next JSON event.
fn next_event(ws: &mut Socket) -> Value {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("an event within 15 s") {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next event of `kind` for the test reader, skipping others (e.g. the other virtual reader's).
fn next_event_of(ws: &mut Socket, kind: &str) -> Value {
    loop {
        let e = next_event(ws);
        if e["type"] == kind && e["reader"] == READER {
            return e;
        }
    }
}

#[test]
fn events_socket_announces_cards_and_refuses_foreign_origins() {
    let _lock = vpcd_lock();
    let a = start("local", "");
    match events_socket(&a, "https://evil.example") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("a foreign origin must be refused: {:?}", other.map(|_| ())),
    }
    let mut ws = events_socket(&a, ORIGIN).expect("allowed origin");
    let snapshot = next_event(&mut ws);
    assert_eq!(snapshot["type"], "snapshot");
    assert!(snapshot["readers"].as_array().unwrap().iter().any(|r| r["reader"] == READER), "{snapshot}");
    let card = Reader0::insert_fixture("gen2-personalized.json");
    let e = next_event(&mut ws);
    assert_eq!((e["type"].as_str(), e["reader"].as_str()), (Some("card_inserted"), Some(READER)), "{e}");
    assert_eq!(e["atr"], "3B6F00005353021037170000000000000000A2");
    drop(card);
    let e = next_event(&mut ws);
    assert_eq!((e["type"].as_str(), e["reader"].as_str()), (Some("card_removed"), Some(READER)), "{e}");
}

/// pcscd restarting under the agent: requests get a precise error while it is gone, and the reads and the events
/// come back with it, without a restart of the agent.
#[test]
fn pcscd_restart_is_recovered_without_restarting_the_agent() {
    let _lock = vpcd_lock();
    let _back = pcscd::Back;
    let card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", "");
    let i = reader0(&a);
    let path = format!("/v1/readers/{i}/basic");
    assert_eq!(get(&a, &path).status, 200);
    let mut ws = events_socket(&a, ORIGIN).unwrap();
    assert_eq!(next_event(&mut ws)["type"], "snapshot");

    pcscd::stop();
    drop(card); // its vpcd connection went with pcscd
    let r = get(&a, &path);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], -12, "national code: no connection");
    assert_eq!(next_event_of(&mut ws, "card_removed")["reader"], READER);
    // with pcscd gone its readers vanish for the agent, and come back with it
    assert_eq!(next_event_of(&mut ws, "reader_removed")["reader"], READER);

    pcscd::start();
    assert_eq!(next_event_of(&mut ws, "reader_added")["reader"], READER);
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    assert_eq!(next_event_of(&mut ws, "card_inserted")["atr"], "3B6F00005353021037170000000000000000A2");
    let r = get(&a, &format!("/v1/readers/{}/basic", reader0(&a)));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["card"]["name"], "张三");
}

/// Keep-alive: requests follow each other on one connection, as a browser's do; a card swapped between two of them
/// is reached by the next one (the reader watcher's event, or the failed first transaction, tells the pool).
#[test]
fn a_kept_connection_serves_reads_across_a_card_swap() {
    let _lock = vpcd_lock();
    let card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("two-step", "");
    let path = format!("/v1/readers/{}/card", reader0(&a));
    let mut client = Client::new(a.port);
    for _ in 0..3 {
        let r = client.get(&path, &[("Origin", ORIGIN)]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["generation"], 2);
        assert!(r.header("connection").is_none_or(|v| !v.eq_ignore_ascii_case("close")), "{:?}", r.headers);
    }
    drop(card.remove());
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let r = client.get(&path, &[("Origin", ORIGIN)]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["generation"], 3);
    assert_eq!(client.connects(), 1, "every request on the first connection");
}

#[test]
fn the_page_and_the_openapi_file_are_served_with_a_strict_policy() {
    let a = start("two-step", "");
    let page = http(a.port, "GET", "/", None, &[], b"");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(String::from_utf8_lossy(&page.body).contains("社会保障卡"));
    let spec = http(a.port, "GET", "/openapi.yaml", None, &[], b"");
    assert_eq!(spec.status, 200);
    let text = String::from_utf8(spec.body).unwrap();
    let on_disk = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml")).unwrap();
    assert_eq!(text, on_disk, "the served spec is the repository's");
    let rebinding = http(a.port, "GET", "/", Some("attacker.example"), &[], b"");
    assert_eq!(rebinding.status, 421);
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let mut a = start("two-step", "");
    let pid = a.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = a.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", a.port)).is_err(), "the port is closed");
}
