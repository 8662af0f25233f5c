//! Issue 11, "Hostile card": a card-sim card that misbehaves (card-sim `Hostile`, COS.md "Hostile cards") in
//! `Virtual PCD 00 00`, read through pcscd by `terminal-agent read-basic` (exit code and message) and by the agent
//! (`GET /v1/readers/{i}/basic`: HTTP status and error kind). Bad card data and malformed answers are the card's
//! fault (exit 5, 502 `card_error`); a card that does not answer is given up on after the card timeout (exit 3
//! "card does not respond", 504 `card_timeout`). Afterwards the reader works again with a good card, for the CLI
//! and for the same agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use card_sim::{Hostile, SimTransport};
use testkit::{fixture_card, vpcd_lock, Reader0, READER};

use common::{http, start, Agent, Resp, ORIGIN};

/// The card timeout of the tests, CLI (seconds) and agent (`card_timeout_ms`).
const CARD_TIMEOUT_SECS: u64 = 2;

fn read_basic() -> Output {
    Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
        .args(["read-basic", "-r", READER, "--card-timeout", &CARD_TIMEOUT_SECS.to_string()])
        .output()
        .expect("run terminal-agent")
}

fn get(a: &Agent, path: &str) -> Resp {
    http(a.port, "GET", path, None, &[("Origin", ORIGIN)], b"")
}

/// The index of `Virtual PCD 00 00` in the agent's reader list.
fn reader0(a: &Agent) -> usize {
    let v = get(a, "/v1/readers").json();
    v["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap()["index"].as_u64().unwrap() as usize
}

/// What a hostile card must give.
struct Expected {
    exit: i32,
    says: &'static str,
    status: u16,
    error: &'static str,
    code: i64,
}

const BAD_DATA: Expected = Expected { exit: 5, says: "", status: 502, error: "card_error", code: 0 };

/// Reads the hostile card with the CLI and the agent, then a good card in the same reader.
fn hostile(kind: &str, expected: Expected) {
    let _lock = vpcd_lock();
    let hostile: Hostile = kind.parse().unwrap();
    let mut sim = SimTransport::new(fixture_card("gen2-personalized.json"));
    sim.set_hostile(Some(hostile));
    let card = Reader0::insert(sim);

    let started = Instant::now();
    let o = read_basic();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(expected.exit), "{kind}: {stderr}");
    assert!(stderr.contains(expected.says), "{kind}: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(CARD_TIMEOUT_SECS + 8),
        "{kind}: the CLI took {:?}",
        started.elapsed()
    );

    let a = start("local", &format!("card_timeout_ms = {}", CARD_TIMEOUT_SECS * 1000));
    let i = reader0(&a);
    let started = Instant::now();
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    let v = r.json();
    assert_eq!((r.status, v["error"].as_str()), (expected.status, Some(expected.error)), "{kind}: {v}");
    if expected.code != 0 {
        assert_eq!(v["code"], expected.code, "{kind}: {v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(CARD_TIMEOUT_SECS + 8),
        "{kind}: the agent took {:?}",
        started.elapsed()
    );

    // out with the hostile card, in with a good one: the reader, the CLI and the same agent work again
    card.remove();
    let _good = Reader0::insert(SimTransport::new(fixture_card("gen2-personalized.json")));
    let o = read_basic();
    assert!(o.status.success(), "{kind}, then a good card: {}", String::from_utf8_lossy(&o.stderr));
    let r = get(&a, &format!("/v1/readers/{i}/basic"));
    assert_eq!(r.status, 200, "{kind}, then a good card: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["card"]["name"], "张三");
}

/// EF06 tag 09 whose bytes are not GBK: the card's data, not the caller's input (was exit 2 and 400).
#[test]
fn name_bytes_that_are_not_gbk() {
    hostile("non-gbk-name", Expected { says: "the card's data does not decode in its format", code: -23, ..BAD_DATA });
}

/// Record TLVs whose length runs past the record, FCIs whose length runs past the answer.
#[test]
fn over_long_tlv_lengths() {
    hostile("long-tlv", BAD_DATA);
}

/// 300-byte answers to commands that asked for at most 256.
#[test]
fn answers_longer_than_le() {
    hostile("oversized", Expected { says: "response exceeds 256 bytes", ..BAD_DATA });
}

/// `61xx` for ever: the GET RESPONSE loop is bounded.
#[test]
fn endless_61xx() {
    hostile("endless-61", Expected { says: "kept answering 61xx", ..BAD_DATA });
}

/// `6Cxx` again after the resend.
#[test]
fn repeated_6cxx() {
    hostile("loop-6c", Expected { says: "6Cxx again", ..BAD_DATA });
}

/// An ATR with 4 historical bytes: no card factor, not a supported card.
#[test]
fn short_atr() {
    hostile("short-atr", Expected { says: "fewer than 8 historical bytes", code: -1, ..BAD_DATA });
}

/// 1-byte answers: no status word.
#[test]
fn one_byte_answers() {
    hostile("one-byte", Expected { says: "has no status word", ..BAD_DATA });
}

/// 0 bytes to READ RECORD: vpcd keeps waiting for the answer and so does pcscd's SCardTransmit; the card timeout
/// gives up on it (exit 3, 504), and the connection stuck in pcscd is abandoned.
#[test]
fn no_answer_to_read_record() {
    hostile(
        "empty:B2",
        Expected { exit: 3, says: "card does not respond", status: 504, error: "card_timeout", code: -4 },
    );
}

/// 0 bytes from the third APDU on (after SELECT and a first record).
#[test]
fn no_answer_after_two_apdus() {
    hostile(
        "empty-after:3",
        Expected { exit: 3, says: "card does not respond", status: 504, error: "card_timeout", code: -4 },
    );
}

/// SELECT SSSE answered with an FCI whose algorithm `86` is 2 bytes: the card's malformed data, said precisely
/// (was taken as no FCI at all when the FCI did not parse).
#[test]
fn fci_with_a_two_byte_algorithm() {
    hostile(
        "fci-86-length",
        Expected { says: "malformed FCI: 86 (algorithm) is 2 bytes (0100), not 1", code: -23, ..BAD_DATA },
    );
}

/// SELECT SSSE answered with an FCI whose algorithm `86` is `7F`, no algorithm's id (was exit 1: a crypto error).
#[test]
fn fci_with_an_unknown_algorithm() {
    hostile("fci-86-unknown", Expected { says: "malformed FCI: 86 (algorithm) is 7F, none of", code: -23, ..BAD_DATA });
}

/// SELECT SSSE answered with an FCI whose `A5` runs past its `6F` (was ignored: the card was read from EF05).
#[test]
fn fci_whose_template_runs_past_the_data() {
    hostile("fci-overrun", Expected { says: "malformed FCI: TLV at offset", code: -23, ..BAD_DATA });
}
