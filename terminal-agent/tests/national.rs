//! `GET /v1/national`: the national function table over the agent's WebSocket — `terminal-agent serve` run as a
//! program, through pcscd and card-sim cards in `Virtual PCD 00 00`. The expected strings are the fixtures of
//! `fixtures/national/` (the agent's terminal ids are libsscard's: 371700000001, SIM-READER-01).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use card_core::codec::RegionCode;
use card_core::security::{key_file, two_step, LocalKeys};
use serde_json::{json, Value};
use terminal_agent::service::token::{claims, sign, Scope};
use testkit::{fixture, vpcd_lock, Reader0, READER};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use common::{start, Agent, Socket, ORIGIN, TERMINAL, TOKEN_KEY};

/// The second virtual reader (no card in these tests).
const READER1: &str = "Virtual PCD 00 01";

fn socket(a: &Agent, origin: Option<&str>) -> Result<Socket, tungstenite::Error> {
    common::national_socket(a, origin)
}

fn open(a: &Agent) -> Socket {
    socket(a, Some(ORIGIN)).expect("the allowed origin gets the socket")
}

fn send_text(ws: &mut Socket, text: &str) -> Value {
    common::national_send(ws, text)
}

fn call(ws: &mut Socket, v: Value) -> Value {
    common::national_call(ws, v)
}

/// `(code, pOutInfo)` of an answer.
fn outcome(v: &Value) -> (i64, &str) {
    (v["code"].as_i64().expect("an integer code"), v["pOutInfo"].as_str().expect("a pOutInfo string"))
}

fn national(file: &str) -> String {
    std::fs::read_to_string(fixture(&format!("national/{file}"))).unwrap().trim_end().to_owned()
}

fn token(scope: Scope) -> String {
    sign(&hex::decode(TOKEN_KEY).unwrap(), &claims(&[scope], TERMINAL, Duration::from_secs(60))).unwrap()
}

/// The published test keys of region 371700: the back end's HSM of the two-step read.
fn test_keys() -> LocalKeys {
    key_file::load(&fixture("cards/test-keys.toml"), RegionCode::parse("371700").unwrap()).unwrap()
}

/// `pCardInfo` of the card whose iReadCardBas string is `basic`: 卡识别码|卡号|.
fn card_info(basic: &str) -> String {
    let f: Vec<&str> = basic.split('|').collect();
    format!("{}|{}|", f[3], f[2])
}

fn contact_only() -> String {
    format!("[readers]\ncontact = \"{READER}\"\n")
}

#[test]
fn read_basic_of_generation_2_with_every_itype() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let expected = national("gen2-basic.txt");
    // no [readers]: the first reader is the contact one (pcscd lists Virtual PCD 00 00 first)
    let a = start("two-step", "");
    let mut ws = open(&a);
    for itype in [1, 3, 4] {
        let v = call(&mut ws, json!({"id": itype, "function": "iReadCardBas", "iType": itype}));
        assert_eq!(outcome(&v), (0, expected.as_str()), "iType {itype}: {v}");
        assert_eq!(v["id"], itype, "the id is echoed");
        assert_eq!(v["function"], "iReadCardBas");
        assert!(v.get("message").is_none(), "{v}");
    }
    let v = call(&mut ws, json!({"id": "c2", "function": "iReadCardBas", "iType": 2}));
    assert_eq!(outcome(&v), (-13, ""), "no contactless reader configured: {v}");
    assert_eq!(v["id"], "c2");
    for bad in [json!(0), json!(5), json!("3"), json!(1.5), json!(null)] {
        let v = call(&mut ws, json!({"function": "iReadCardBas", "iType": bad}));
        assert_eq!(outcome(&v), (-14, ""), "iType {bad}: {v}");
    }
    let v = call(&mut ws, json!({"function": "iReadCardBas"}));
    assert_eq!(outcome(&v), (-14, ""), "iType missing: {v}");
    drop(a);

    // a contactless reader without a card: 2 is no card; 4 passes it over for the contact one, 3 needs not
    let a = start("two-step", &format!("[readers]\ncontact = \"{READER}\"\ncontactless = \"{READER1}\"\n"));
    let mut ws = open(&a);
    assert_eq!(outcome(&call(&mut ws, json!({"function": "iReadCardBas", "iType": 2}))), (-2, ""));
    for itype in [4, 3, 1] {
        let v = call(&mut ws, json!({"function": "iReadCardBas", "iType": itype}));
        assert_eq!(outcome(&v), (0, expected.as_str()), "iType {itype}: {v}");
    }
    // the contact role on the other reader: the card's reader is the contactless one now
    drop(a);
    let a = start("two-step", &format!("[readers]\ncontact = \"{READER1}\"\ncontactless = \"{READER}\"\n"));
    let mut ws = open(&a);
    assert_eq!(outcome(&call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}))), (-2, ""));
    assert_eq!(outcome(&call(&mut ws, json!({"function": "iReadCardBas", "iType": 2}))), (0, expected.as_str()));
    assert_eq!(outcome(&call(&mut ws, json!({"function": "iReadCardBas", "iType": 3}))), (0, expected.as_str()));
}

#[test]
fn generation_3_without_keys_is_minus_2203_and_the_two_step_read_gives_the_holder() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let a = start("two-step", &contact_only());
    let mut ws = open(&a);
    let v = call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(outcome(&v), (-2203, national("gen3-basic-nokeys.txt").as_str()), "{v}");
    assert!(v["message"].as_str().unwrap().contains("RKSSSE"), "{v}");

    // Step2 with no Step1 on this socket
    let v = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": "00|00|"}));
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    // Step1, the back end's HSM (the published test keys), Step2
    let s1 = call(&mut ws, json!({"id": 1, "function": "iReadCardBas_HSM_Step1", "iType": 3}));
    let (code, step1) = outcome(&s1);
    assert_eq!(code, 0, "{s1}");
    assert!(step1.starts_with("371700|5353031037170000000000000000A3|03|371700D15600000500000000000000A3|"), "{step1}");
    assert_eq!(step1.split('|').count(), 9, "8 fields, each ending with |: {step1}");
    let key = two_step::backend_answer(&test_keys(), step1).unwrap();
    let s2 = call(&mut ws, json!({"id": 2, "function": "iReadCardBas_HSM_Step2", "pKey": key}));
    assert_eq!(outcome(&s2), (0, national("gen3-basic.txt").as_str()), "{s2}");
    assert_eq!(s2["id"], 2);
    // the session was answered: a second Step2 has nothing to answer
    let again = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": key}));
    assert_eq!(outcome(&again), (-14, ""));

    // a wrong answer: the card refuses the external authentication with its status word
    let s1 = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}));
    assert_eq!(s1["code"], 0, "{s1}");
    let wrong = format!("{}|{}|", "00".repeat(16), "00".repeat(16));
    let s2 = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": wrong}));
    let (code, out) = outcome(&s2);
    assert!(code < -0x6000 && out.is_empty(), "{s2}");
    // a new Step1 gives a pending one up (the card is not held twice): Step1, Step1, Step2 works
    let first = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}));
    assert_eq!(first["code"], 0, "{first}");
    let second = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}));
    assert_eq!(second["code"], 0, "{second}");
    let key = two_step::backend_answer(&test_keys(), second["pOutInfo"].as_str().unwrap()).unwrap();
    let s2 = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": key}));
    assert_eq!(outcome(&s2), (0, national("gen3-basic.txt").as_str()), "{s2}");

    // every card call is audited under the HTTP routes' names, from the page's origin; no Step strings in it
    let log = std::fs::read_to_string(a.dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for op in ["read-basic", "read-basic-step1", "read-basic-step2"] {
        assert!(lines.iter().any(|l| l["operation"] == op && l["origin"] == ORIGIN), "{op} audited: {log}");
    }
    assert!(!log.contains(step1) && !log.contains(&key), "no Step1 or Step2 string in the audit log");
}

#[test]
fn a_step2_after_the_timeout_is_minus_4() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let a = start("two-step", &format!("two_step_timeout_secs = 1\n{}", contact_only()));
    let mut ws = open(&a);
    let s1 = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}));
    assert_eq!(s1["code"], 0, "{s1}");
    let key = two_step::backend_answer(&test_keys(), s1["pOutInfo"].as_str().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let s2 = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": key}));
    assert_eq!(outcome(&s2), (-4, ""), "{s2}");
    // the card was released at the timeout
    assert_eq!(call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}))["code"], -2203);
}

#[test]
fn a_socket_closed_between_the_steps_releases_the_card() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    // held cards wait 60 s for Step2; other calls wait 3 s for the reader before −11
    let a = start("two-step", &format!("two_step_timeout_secs = 60\nqueue_wait_ms = 3000\n{}", contact_only()));
    let mut holder = open(&a);
    let s1 = call(&mut holder, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}));
    assert_eq!(s1["code"], 0, "{s1}");
    // while the card is held, another socket's read waits for the reader and gives up: the card is held
    let mut other = open(&a);
    let busy = call(&mut other, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(outcome(&busy), (-11, ""), "{busy}");
    // the holder goes away between the steps: the card is released at once, not after 60 s
    holder.close(None).unwrap();
    while holder.read().is_ok() {}
    let started = Instant::now();
    let v = call(&mut other, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(outcome(&v), (-2203, national("gen3-basic-nokeys.txt").as_str()), "{v}");
    assert!(started.elapsed() < Duration::from_secs(3), "released at once: {:?}", started.elapsed());
    // and a dropped TCP connection (no close handshake) releases it as well
    let mut dropped = open(&a);
    assert_eq!(call(&mut dropped, json!({"function": "iReadCardBas_HSM_Step1", "iType": 1}))["code"], 0);
    drop(dropped);
    let v = call(&mut other, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(v["code"], -2203, "{v}");
}

#[test]
fn items_read_and_written_with_the_test_keys() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", &contact_only());
    let mut ws = open(&a);
    let info = card_info(&national("gen2-basic.txt"));
    let read = |ws: &mut Socket, addr: &str| {
        call(ws, json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": info, "pFileAddr": addr}))
    };
    let v = read(&mut ws, "SSSEEF05|05|06|07|$");
    assert_eq!(outcome(&v), (0, "SSSEEF05|20200101|20300101|A0000001T|$"), "{v}");

    let write = |ws: &mut Socket, data: &str, token: Option<String>| {
        let mut c = json!({"function": "iWriteCard", "iType": 1, "pCardInfo": info,
                           "pFileAddr": "DF01EF06|23|$", "pWriteData": data});
        if let Some(t) = token {
            c["token"] = Value::String(t);
        }
        call(ws, c)
    };
    // a write needs the operation token, as POST …/items does
    let v = write(&mut ws, "DF01EF06|济南市|$", None);
    assert_eq!(outcome(&v), (-24, ""), "{v}");
    let v = write(&mut ws, "DF01EF06|济南市|$", Some("v1.bad.token".into()));
    assert_eq!(outcome(&v), (-24, ""), "{v}");
    let v = write(&mut ws, "DF01EF06|济南市|$", Some(token(Scope::Write)));
    assert_eq!(outcome(&v), (0, ""), "{v}");
    assert_eq!(outcome(&read(&mut ws, "DF01EF06|23|$")), (0, "DF01EF06|济南市|$"));
    let v = write(&mut ws, "DF01EF06|青岛市|$", Some(token(Scope::Write)));
    assert_eq!(outcome(&v), (0, ""), "{v}");
    assert_eq!(outcome(&read(&mut ws, "DF01EF06|23|$")), (0, "DF01EF06|青岛市|$"));
    // data that does not mirror the address: refused before the card (and before the token is spent)
    let v = write(&mut ws, "DF01EF06|青岛市|x|$", None);
    assert_eq!(outcome(&v), (-14, ""), "{v}");

    // pCardInfo: another card's id is −22 (checked against the card), a malformed one −20 / −14
    let other = "371700D15600000500000000000000FF|A0000001T|";
    let v = call(
        &mut ws,
        json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": other, "pFileAddr": "SSSEEF05|05|$"}),
    );
    assert_eq!(outcome(&v), (-22, ""), "{v}");
    for (bad, code) in [("371700D1|A0000001T|", -20), ("371700D15600000500000000000000A2|A0000001T", -14)] {
        let v = call(
            &mut ws,
            json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": bad, "pFileAddr": "SSSEEF05|05|$"}),
        );
        assert_eq!(outcome(&v), (code, ""), "{bad}: {v}");
    }
    // iAuthType is part of the published call
    let v =
        call(&mut ws, json!({"function": "iReadCard", "iType": 1, "pCardInfo": info, "pFileAddr": "SSSEEF05|05|$"}));
    assert_eq!(outcome(&v), (-14, ""), "{v}");
}

#[test]
fn an_agent_without_keys_answers_minus_2201_for_a_write() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("two-step", &contact_only());
    let mut ws = open(&a);
    let v = call(
        &mut ws,
        json!({"function": "iWriteCard", "iType": 1, "pCardInfo": card_info(&national("gen2-basic.txt")),
               "pFileAddr": "DF01EF06|23|$", "pWriteData": "DF01EF06|济南市|$", "token": token(Scope::Write)}),
    );
    assert_eq!(outcome(&v), (-2201, ""), "{v}");
}

#[test]
fn malformed_calls_unknown_functions_and_bad_parameters() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("local", &contact_only());
    let mut ws = open(&a);
    let v = send_text(&mut ws, "{\"function\": \"iReadCardBas\", ");
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    assert!(v["message"].as_str().unwrap().contains("JSON"), "{v}");
    for text in ["[1, 2]", "\"iReadCardBas\"", "{\"iType\": 1}", "{\"function\": 3, \"iType\": 1}"] {
        assert_eq!(outcome(&send_text(&mut ws, text)), (-14, ""), "{text}");
    }
    let v = call(&mut ws, json!({"id": {"seq": 9}, "function": "iFormatDisk", "iType": 1}));
    assert_eq!(outcome(&v), (-13, ""), "{v}");
    assert_eq!(v["id"], json!({"seq": 9}));
    assert!(v.get("function").is_none(), "an unknown name is not sent back: {v}");
    assert!(v["message"].as_str().unwrap().contains("unknown function"), "{v}");
    // the PIN functions that ask the holder are not offered over the socket (the page asks: iVerifyPin)
    for f in ["iVerifyPIN", "iChangePIN", "iReloadPIN", "iUnblockPIN", "iReloadPIN_HSM_Step1", "iDoDebit"] {
        let v = call(&mut ws, json!({"function": f, "iType": 1}));
        assert_eq!(outcome(&v), (-13, ""), "{f}: {v}");
        assert_eq!(v["function"], f);
    }
    let info = card_info(&national("gen2-basic.txt"));
    for addr in ["SSSEEF05|05|06", "SSSEEF05|5|$", "SSSEEF05|ZZ|$", ""] {
        let v = call(
            &mut ws,
            json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": info, "pFileAddr": addr}),
        );
        assert_eq!(outcome(&v), (-14, ""), "pFileAddr {addr:?}: {v}");
    }
    let v =
        call(&mut ws, json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": info, "pFileAddr": 5}));
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    let v = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step2", "pKey": ["00"]}));
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    ws.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    let v: Value = match ws.read().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    // after all this the socket still answers
    let v = call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}));
    assert_eq!(outcome(&v), (0, national("gen2-basic.txt").as_str()), "{v}");

    // a call over 64 KiB is refused: the socket is closed with 1009, and the call is not answered
    let huge = json!({"function": "iReadCardBas", "iType": 1, "pad": "x".repeat(70 * 1024)}).to_string();
    ws.send(Message::Text(huge.into())).unwrap();
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size, "{frame:?}"),
        other => panic!("a close frame 1009 was expected: {other:?}"),
    }
    // the agent goes on
    let mut ws = open(&a);
    assert_eq!(call(&mut ws, json!({"function": "iReadCardBas", "iType": 1}))["code"], 0);
}

#[test]
fn no_card_is_minus_2() {
    let _lock = vpcd_lock();
    let a = start("local", &contact_only());
    let mut ws = open(&a);
    let v = call(&mut ws, json!({"id": 1, "function": "iReadCardBas", "iType": 1}));
    assert_eq!(outcome(&v), (-2, ""), "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("无卡"), "{v}");
    let v = call(&mut ws, json!({"function": "iReadCardBas_HSM_Step1", "iType": 3}));
    assert_eq!(outcome(&v), (-2, ""), "{v}");
}

#[test]
fn foreign_and_absent_origins_are_refused_before_the_upgrade() {
    let _lock = vpcd_lock();
    let a = start("local", "");
    for origin in [Some("https://evil.example"), Some("null"), None] {
        match socket(&a, origin) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403, "{origin:?}"),
            other => panic!("{origin:?} must be refused: {:?}", other.map(|_| ())),
        }
    }
    // a plain GET (no upgrade) is told what the route is
    let r = common::http(a.port, "GET", "/v1/national", None, &[("Origin", ORIGIN)], b"");
    assert_eq!(r.json()["error"], "not_websocket");
    // the agent's own page may open it
    let own = format!("http://127.0.0.1:{}", a.port);
    assert!(socket(&a, Some(&own)).is_ok());
}

/// `iReadCard_HSM_*` and `iWriteCard_HSM_*` on an agent without keys, the back end's HSM played with the
/// published test keys (`C‖R4`): a generation 3 card's protected items read and an application's written; free
/// items −2204; a Step2 of another function than the pending Step1's is −14 and leaves it pending; the write needs
/// the token at Step1; bad data at Step2 writes nothing.
#[test]
fn items_in_two_steps_for_an_agent_without_keys() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let a = start("two-step", &contact_only());
    let mut ws = open(&a);
    let keys = test_keys();
    let info = card_info(&national("gen3-basic.txt"));
    let read = |ws: &mut Socket, addr: &str, key: &str| {
        let s1 = call(ws, json!({"function": "iReadCard_HSM_Step1", "iType": 1, "pCardInfo": info, "pFileAddr": addr}));
        assert_eq!(s1["code"], 0, "{s1}");
        let answer = two_step::backend_external_answer(&keys, s1["pOutInfo"].as_str().unwrap(), key).unwrap();
        call(ws, json!({"function": "iReadCard_HSM_Step2", "pKey": answer}))
    };
    let v = read(&mut ws, "SSSEEF06|08|$", "RKSSSE");
    assert_eq!(outcome(&v), (0, "SSSEEF06|371702199203150022|$"), "{v}");
    // free items: no exchange
    let v = call(
        &mut ws,
        json!({"function": "iReadCard_HSM_Step1", "iType": 1, "pCardInfo": info, "pFileAddr": "SSSEEF05|05|$"}),
    );
    assert_eq!(outcome(&v), (-2204, ""), "{v}");
    // a pending read is not answered by a write's Step2
    let s1 = call(
        &mut ws,
        json!({"function": "iReadCard_HSM_Step1", "iType": 1, "pCardInfo": info, "pFileAddr": "SSSEEF06|08|$"}),
    );
    assert_eq!(s1["code"], 0, "{s1}");
    let v = call(&mut ws, json!({"function": "iWriteCard_HSM_Step2", "pKey": "00", "pWriteData": "x"}));
    assert_eq!(outcome(&v), (-14, ""), "{v}");
    let answer = two_step::backend_external_answer(&keys, s1["pOutInfo"].as_str().unwrap(), "RKSSSE").unwrap();
    let v = call(&mut ws, json!({"function": "iReadCard_HSM_Step2", "pKey": answer}));
    assert_eq!(v["code"], 0, "still pending: {v}");

    // a write: the token at Step1, the data at Step2
    let addr = "DF01EF06|23|$";
    let step1 = json!({"function": "iWriteCard_HSM_Step1", "iType": 1, "pCardInfo": info, "pFileAddr": addr});
    assert_eq!(outcome(&call(&mut ws, step1.clone())), (-24, ""), "no token");
    let write = |ws: &mut Socket, data: &str| {
        let mut with_token = step1.clone();
        with_token["token"] = json!(token(Scope::Write));
        let s1 = call(ws, with_token);
        assert_eq!(s1["code"], 0, "{s1}");
        let answer = two_step::backend_external_answer(&keys, s1["pOutInfo"].as_str().unwrap(), "UK_DF01").unwrap();
        call(ws, json!({"function": "iWriteCard_HSM_Step2", "pKey": answer, "pWriteData": data}))
    };
    let plain = |ws: &mut Socket| {
        let v = call(
            ws,
            json!({"function": "iReadCard", "iType": 1, "iAuthType": 0, "pCardInfo": info, "pFileAddr": addr}),
        );
        v["pOutInfo"].as_str().unwrap().to_owned()
    };
    assert_eq!(outcome(&write(&mut ws, "DF01EF06|淄博市张店区|$")), (0, ""));
    assert_eq!(plain(&mut ws), "DF01EF06|淄博市张店区|$");
    let long = format!("DF01EF06|{}|$", "一".repeat(41));
    assert_eq!(outcome(&write(&mut ws, &long)).0, -42);
    assert_eq!(plain(&mut ws), "DF01EF06|淄博市张店区|$", "nothing written");
}

/// The vendor PIN variants with the PINs as parameters, under the PIN token and never in the audit log.
#[test]
fn pins_given_by_the_page() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let a = start("two-step", &contact_only());
    let mut ws = open(&a);
    let v = call(&mut ws, json!({"function": "iVerifyPin", "iType": 1, "pPin": "123456"}));
    assert_eq!(outcome(&v), (-24, ""), "no token: {v}");
    let v = call(&mut ws, json!({"function": "iVerifyPin", "iType": 1, "pPin": "111111", "token": token(Scope::Pin)}));
    assert_eq!(outcome(&v), (-51, ""), "{v}");
    let v = call(&mut ws, json!({"function": "iVerifyPin", "iType": 1, "pPin": "123456", "token": token(Scope::Pin)}));
    assert_eq!(outcome(&v), (0, ""), "{v}");
    let v = call(
        &mut ws,
        json!({"function": "iChangePin", "iType": 1, "pOldPin": "123456", "pNewPin": "192837", "token": token(Scope::Pin)}),
    );
    assert_eq!(outcome(&v), (0, ""), "{v}");
    let v = call(&mut ws, json!({"function": "iVerifyPin", "iType": 1, "pPin": "192837", "token": token(Scope::Pin)}));
    assert_eq!(outcome(&v), (0, ""), "{v}");
    let log = std::fs::read_to_string(a.dir.path().join("audit.jsonl")).unwrap();
    assert!(log.contains("pin-verify") && log.contains("pin-change"), "{log}");
    assert!(!log.contains("123456") && !log.contains("192837") && !log.contains("111111"), "no PIN in the audit log");
}
