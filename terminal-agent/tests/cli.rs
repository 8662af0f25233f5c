//! The diagnostic CLI, run as a program against a card in `Virtual PCD 00 00` (pcscd + vpcd).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use testkit::{vpcd_lock, Reader0, READER};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_terminal-agent")).args(args).output().expect("run terminal-agent")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn readers_lists_both_virtual_readers_and_the_card() {
    let _lock = vpcd_lock();
    let o = agent(&["readers", "--json"]);
    assert!(o.status.success());
    let v = json(&o);
    assert_eq!(v["format"], "terminal-agent/1");
    let r0 = v["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap().clone();
    assert_eq!(r0["card"], false);
    assert!(r0["atr"].is_null());

    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let v = json(&agent(&["readers", "--json"]));
    let r0 = v["readers"].as_array().unwrap().iter().find(|r| r["name"] == READER).unwrap().clone();
    assert_eq!(r0["card"], true);
    assert_eq!(r0["atr"], "3B6F00005353021037170000000000000000A2");
    let human = stdout(&agent(&["readers"]));
    assert!(human.contains("yes   Virtual PCD 00 00"), "{human}");
}

#[test]
fn apdu_sends_in_one_transaction_and_shows_status_meanings() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = agent(&[
        "apdu",
        "--reader",
        READER,
        "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
        "00B2012C00",
        "00 B2 09 2C 00",
    ]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("< 0110371700D15600000500000000000000A2\n  9000 ok"), "{out}");
    assert!(out.contains("6A83 record not found"), "{out}");
    let v = json(&agent(&["apdu", "--json", "-r", "0", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "00B2032C00"]));
    assert_eq!(v["apdus"], 2);
    // EF05 record 3: tag 03, spec version "2.00"
    assert_eq!(v["responses"][1]["data"], "0304322E3030");
    assert_eq!(v["responses"][1]["sw"], "9000");
}

#[test]
fn exit_codes_tell_who_is_at_fault() {
    let _lock = vpcd_lock();
    // no card in the reader: 3
    let o = agent(&["apdu", "-r", READER, "00A4040000"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no card in reader \"Virtual PCD 00 00\""));
    // bad hex, bad APDU: 2
    assert_eq!(agent(&["apdu", "zz"]).status.code(), Some(2));
    assert_eq!(agent(&["apdu", "00A4"]).status.code(), Some(2));
    // unknown reader: 3
    assert_eq!(agent(&["apdu", "-r", "No Such Reader", "00A4040000"]).status.code(), Some(3));
}
