//! The diagnostic CLI, run as a program against a card in `Virtual PCD 00 00` (pcscd + vpcd).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

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

fn agent_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run terminal-agent");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The terminal identifiers of the national fixture strings (`fixtures/national/README.md`).
const TERMINAL_NO: &str = "371700000001";
const DEVICE_NO: &str = "SIM-READER-01";

fn national_fixture(name: &str) -> String {
    std::fs::read_to_string(testkit::fixture(&format!("national/{name}"))).unwrap()
}

fn test_keys() -> String {
    testkit::fixture("cards/test-keys.toml").display().to_string()
}

/// The issue's acceptance check: the gen 2 fixture's national string, in 3 APDUs.
#[test]
fn read_basic_gen2_prints_the_national_string_in_3_apdus() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o =
        agent(&["read-basic", "--reader", READER, "--json", "--terminal-no", TERMINAL_NO, "--device-no", DEVICE_NO]);
    assert!(o.status.success(), "{o:?}");
    let v = json(&o);
    assert_eq!(v["national"], national_fixture("gen2-basic.txt"));
    assert_eq!(v["apdus"], 3);
    assert_eq!(v["code"], 0);
    assert_eq!(v["card"]["name"], "张三");
    assert_eq!(v["exchanges"].as_array().unwrap().len(), 3);
    assert!(v["exchanges"][0].as_str().unwrap().starts_with("> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF"));
}

/// Gen 3: with keys the SSN, name and card number are read (5 APDUs); without, they are empty and the
/// national code is −2203, as the national interface answers.
#[test]
fn read_basic_gen3_with_and_without_keys() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let ids = ["--terminal-no", TERMINAL_NO, "--device-no", DEVICE_NO];
    let v = json(&agent(&[&["read-basic", "-r", READER, "--keys", &test_keys(), "--json"][..], &ids].concat()));
    assert_eq!(v["national"], national_fixture("gen3-basic.txt"));
    assert_eq!(v["apdus"], 5);
    assert_eq!(v["card"]["name"], "欧阳𠮷娜");
    assert!(v["card"]["ssn"].is_string() && v["card"]["card_number"].is_string());

    let o = agent(&[&["read-basic", "-r", READER, "--json"][..], &ids].concat());
    assert!(o.status.success(), "the national interface answers −2203 with data, not an error");
    let v = json(&o);
    assert_eq!(v["code"], -2203);
    assert_eq!(v["national"], national_fixture("gen3-basic-nokeys.txt"));
    assert!(v["card"]["ssn"].is_null() && v["card"]["name"].is_null());
    // EF05 is free on a generation 3 card as on the real 3.00 card's trace: the card number is there, in 2 APDUs
    assert_eq!(v["card"]["card_number"], "B0000002U");
    assert_eq!(v["apdus"], 2);
}

#[test]
fn read_and_write_items_by_national_address() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = agent(&["read", "-r", READER, "SSSEEF05|05|07|$SSSEEF06|09|$"]);
    assert_eq!(stdout(&o).trim_end(), "SSSEEF05|20200101|A0000001T|$SSSEEF06|张三|$", "{o:?}");
    // writing DF01 needs UK_DF01: without keys, refused with the national code and exit 6
    let o = agent(&["write", "-r", READER, "DF01EF06|23|$", "DF01EF06|济南市历下区|$"]);
    assert_eq!(o.status.code(), Some(6), "{o:?}");
    let o = agent(&["write", "-r", READER, "--keys", &test_keys(), "DF01EF06|23|$", "DF01EF06|济南市历下区|$"]);
    assert!(o.status.success(), "{o:?}");
    let o = agent(&["read", "-r", READER, "DF01EF06|23|$"]);
    assert_eq!(stdout(&o).trim_end(), "DF01EF06|济南市历下区|$");
    // a malformed address is bad input
    assert_eq!(agent(&["read", "-r", READER, "DF01EF06|23|"]).status.code(), Some(2));
}

#[test]
fn pins_come_from_a_file_descriptor_never_argv() {
    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    let o = agent_with_stdin(&["verify-pin", "-r", READER, "--pin-fd", "0"], "000000\n");
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 tries left") && err.contains("national code -51"), "{err}");
    assert!(!err.contains("000000"), "the PIN never appears in output");
    let o = agent_with_stdin(&["verify-pin", "-r", READER, "--pin-fd", "0", "--json"], "123456\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(json(&o)["result"], "PIN verified");
    let o = agent_with_stdin(&["change-pin", "-r", READER, "--pin-fd", "0"], "123456\n111111\n111111\n");
    assert!(o.status.success(), "{o:?}");
    let o = agent_with_stdin(&["verify-pin", "-r", READER, "--pin-fd", "0"], "111111\n");
    assert!(o.status.success(), "{o:?}");
    // no terminal and no --pin-fd: refused, nothing sent
    let o = agent_with_stdin(&["verify-pin", "-r", READER], "");
    assert_eq!(o.status.code(), Some(2));
    // a PIN on the command line is not an option
    assert_eq!(agent(&["verify-pin", "--pin", "123456"]).status.code(), Some(2));
}

/// Gen 3 with the keys of a key-mgmt store: RKSSSE imported from two components, unlocked by passphrase.
#[test]
fn read_basic_gen3_with_a_key_store() {
    use card_core::crypto::Algorithm;
    use zeroize::Zeroizing;
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("keys.db");
    let kbpk = [
        Zeroizing::new((0..32u8).map(|i| i.wrapping_mul(7) ^ 0x5C).collect()),
        Zeroizing::new((0..32u8).collect::<Vec<u8>>()),
    ];
    let (store, _) = key_mgmt::KeyStore::init(&store_path, &kbpk, Some(b"counter pass")).unwrap();
    // the published SM4 test issuer key RKSSSE of fixtures/cards/test-keys.toml
    let rkssse = hex::decode("1616A265CF68556282F6720EF98BD625").unwrap();
    let comps = key_mgmt::components::split(&rkssse, 2).unwrap();
    store.import_components("RKSSSE", 1, Algorithm::Sm4, &comps, true).unwrap();
    drop(store);
    let pass = dir.path().join("pass.txt");
    std::fs::write(&pass, "counter pass\n").unwrap();

    let _lock = vpcd_lock();
    let _card = Reader0::insert_fixture("gen3-personalized.json");
    let ids = ["--terminal-no", TERMINAL_NO, "--device-no", DEVICE_NO];
    let store_arg = store_path.display().to_string();
    let pass_arg = pass.display().to_string();
    let args =
        [&["read-basic", "-r", READER, "--keystore", &store_arg, "--passphrase-file", &pass_arg, "--json"][..], &ids];
    let o = agent(&args.concat());
    assert!(o.status.success(), "{o:?}");
    let v = json(&o);
    assert_eq!(v["national"], national_fixture("gen3-basic.txt"));
    assert_eq!(v["apdus"], 5);
    // a wrong passphrase: exit 6, nothing sent to the card
    std::fs::write(&pass, "wrong\n").unwrap();
    let o = agent(&args.concat());
    assert_eq!(o.status.code(), Some(6), "{o:?}");
}

#[test]
fn token_key_makes_a_private_key_file_that_signs_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = testkit::tempdir();
    let key = dir.path().join("agent-token.key");
    let k = key.to_str().unwrap();
    let o = agent(&["token-key", "--out", k]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64, "32 bytes in hex");
    assert!(hex::decode(text.trim()).is_ok());
    assert!(!String::from_utf8_lossy(&o.stderr).contains(text.trim()), "the key is not printed");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // a second run leaves the key as it was
    let o = agent(&["token-key", "--out", k]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // the configuration that names it signs tokens, within its maximum lifetime only
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "token_key_file = \"agent-token.key\"\nterminal_no = \"T1\"\ntoken_max_ttl_secs = 120\n")
        .unwrap();
    let c = config.to_str().unwrap();
    let o = agent(&["token", "--config", c, "--scope", "pin", "--ttl", "120"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).starts_with("v1."));
    let o = agent(&["token", "--config", c, "--scope", "pin", "--ttl", "121"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than 120 s"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "no token is signed");
}

#[test]
fn a_configuration_error_names_its_line() {
    let dir = testkit::tempdir();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "port = 17788\n[keys]\nmode = \"local\", keystore = \"keys.db\"\n").unwrap();
    let o = agent(&["token", "--config", config.to_str().unwrap(), "--scope", "pin"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("agent.toml:3:"), "{err}");
}

/// A configuration, token key file or passphrase file that never ends (`/dev/zero`, a FIFO nobody writes) or is
/// huge is refused at once, naming the file (and the limit), exit 2 (issue 11).
#[test]
fn unbounded_configuration_and_key_files_are_refused_fast() {
    let dir = testkit::tempdir();
    let d = dir.path();
    std::fs::write(d.join("huge.toml"), vec![b'#'; 2 << 20]).unwrap();
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo (coreutils) is needed");
    let fifo = fifo.to_str().unwrap().to_owned();
    let huge = d.join("huge.toml").to_str().unwrap().to_owned();
    for bad in ["/dev/zero", huge.as_str(), fifo.as_str()] {
        let t0 = std::time::Instant::now();
        let o = agent(&["token", "--config", bad, "--scope", "pin"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "config {bad}: {err}");
        assert!(err.contains(bad), "config {bad}: the message names it: {err}");
        // the token key file the configuration names
        let config = d.join("agent.toml");
        std::fs::write(&config, format!("token_key_file = \"{bad}\"\nterminal_no = \"T1\"\n")).unwrap();
        let o = agent(&["token", "--config", config.to_str().unwrap(), "--scope", "pin"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "token key file {bad}: {err}");
        assert!(err.contains(bad), "token key file {bad}: the message names it: {err}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{bad}: not refused at once");
    }
    let o = agent(&["token", "--config", &huge, "--scope", "pin"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1048576 bytes"), "the limit is named");
}

/// A key file (`--keys`) or key store passphrase file (`--passphrase-file`) of a card command that never ends
/// (`/dev/zero`, a FIFO nobody writes) or is huge is refused at once, before any reader is opened, naming the file
/// and the limit, exit 2 (issue 11).
#[test]
fn unbounded_key_and_passphrase_files_of_card_commands_are_refused_fast() {
    let dir = testkit::tempdir();
    let d = dir.path();
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo (coreutils) is needed");
    let fifo = fifo.to_str().unwrap().to_owned();
    let huge = d.join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(1024 * 1024 + 1).unwrap(); // sparse
    let huge = huge.to_str().unwrap().to_owned();
    let keystore = d.join("keys.db");
    let keystore = keystore.to_str().unwrap();
    for bad in ["/dev/zero", fifo.as_str(), huge.as_str()] {
        let t0 = std::time::Instant::now();
        let o = agent(&["read-basic", "-r", "no such reader", "--keys", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "key file {bad}: {err}");
        assert!(err.contains(bad), "key file {bad}: the message names it: {err}");
        assert!(err.contains("1048576 bytes"), "key file {bad}: the message names the limit: {err}");
        let o = agent(&["read-basic", "-r", "no such reader", "--keystore", keystore, "--passphrase-file", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "passphrase file {bad}: {err}");
        assert!(err.contains(bad), "passphrase file {bad}: the message names it: {err}");
        assert!(err.contains("4096 bytes"), "passphrase file {bad}: the message names the limit: {err}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{bad}: not refused at once");
    }
}
