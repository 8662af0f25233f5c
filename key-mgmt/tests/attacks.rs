//! Issue 11, "Key store": an attacker who can write the SQLite file (a stolen backup, an
//! administrator) but does not hold the KBPK. Each attack edits the file with rusqlite, through
//! the library and through the `keymgmt` CLI (exit code 4: integrity failure).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use card_core::crypto::Algorithm;
use key_mgmt::components::Secret;
use key_mgmt::inventory::KeyState;
use key_mgmt::{Error, ErrorKind, KeyStore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const PASS: &[u8] = b"correct horse battery staple";
const BIN: &str = env!("CARGO_BIN_EXE_keymgmt");

fn s(hex_text: &str) -> Secret {
    Zeroizing::new(hex::decode(hex_text).unwrap())
}

fn kbpk_components() -> Vec<Secret> {
    vec![s("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"), s(&"3C5A".repeat(16))]
}

fn witness(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.witness", path.display()))
}

fn sink(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.audit.jsonl", path.display()))
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A store with three keys, closed.
fn store_with_keys(dir: &Path) -> PathBuf {
    let path = dir.join("keys.db");
    let (store, _) = KeyStore::init(&path, &kbpk_components(), Some(PASS)).unwrap();
    for n in ["PUK", "RLK", "STK"] {
        store.generate(n, 1, Algorithm::Sm4, None, true).unwrap();
    }
    store.audit_verify().unwrap();
    path
}

/// A store with keys, a copy of it taken now (`copy.db`), and then PUK v1 destroyed in the store: the rollback
/// attacks put (part of) the copy back. Returns (store, copy).
fn destroyed_after_a_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let path = store_with_keys(dir);
    let copy = dir.join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let st = reopen(&path);
    st.set_state("PUK", 1, "", KeyState::Retired).unwrap();
    st.set_state("PUK", 1, "", KeyState::Destroyed).unwrap();
    (path, copy)
}

fn reopen(path: &Path) -> KeyStore {
    let mut s = KeyStore::open(path).unwrap();
    s.unlock_with_passphrase(PASS).unwrap();
    s
}

fn integrity(r: Result<impl Sized, Error>, says: &str) {
    let e = r.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains(says), "{e} does not say {says:?}");
}

/// The chain's hash as `audit.rs` computes it: anyone can recompute it.
fn entry_hash(prev_hex: &str, seq: i64, fields: [&str; 4]) -> String {
    let mut h = Sha256::new();
    h.update(hex::decode(prev_hex).unwrap());
    h.update(seq.to_be_bytes());
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex::encode_upper(h.finalize())
}

/// Appends an entry with a correctly recomputed hash and the given MAC (the attacker has none).
fn forge_entry(path: &Path, mac: &str) -> i64 {
    let c = raw(path);
    let (seq, prev): (i64, String) = c
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let fields = ["2026-01-01T00:00:00Z", "destroy", "ok", r#"{"name":"PUK","version":1}"#];
    let hash = entry_hash(&prev, seq + 1, fields);
    c.execute(
        "INSERT INTO audit (seq, time, event, outcome, detail, prev, hash, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![seq + 1, fields[0], fields[1], fields[2], fields[3], prev, hash, mac],
    )
    .unwrap();
    seq + 1
}

/// Recomputes every hash (and link) from entry `from` on, as an attacker who edited entry `from` would.
fn rechain(path: &Path, from: i64) {
    let c = raw(path);
    let rows: Vec<(i64, String, String, String, String)> = {
        let mut st =
            c.prepare("SELECT seq, time, event, outcome, detail FROM audit WHERE seq >= ?1 ORDER BY seq").unwrap();
        st.query_map([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut prev: String = c.query_row("SELECT hash FROM audit WHERE seq = ?1", [from - 1], |r| r.get(0)).unwrap();
    for (seq, t, e, o, d) in rows {
        let h = entry_hash(&prev, seq, [&t, &e, &o, &d]);
        c.execute("UPDATE audit SET prev = ?1, hash = ?2 WHERE seq = ?3", rusqlite::params![prev, h, seq]).unwrap();
        prev = h;
    }
}

// ---- 1. A forged entry with a recomputed chain ----

#[test]
fn forged_entry_with_recomputed_chain_is_not_sealed() {
    for (mac, says) in [("", "has no MAC"), (&"AB".repeat(32)[..], "wrong MAC")] {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_keys(dir.path());
        let seq = forge_entry(&path, mac);
        // Several unlocks later the forged entry is still refused: nothing seals it.
        for _ in 0..2 {
            let st = reopen(&path);
            integrity(st.audit_verify(), &format!("entry {seq} "));
            integrity(st.audit_verify(), says);
        }
        if mac.is_empty() {
            // The unlock says so, and audits it.
            let st = reopen(&path);
            assert!(st.warnings().iter().any(|w| w.contains(&format!("[{seq}]"))), "{:?}", st.warnings());
            assert!(st.audit_entries().unwrap().iter().any(|e| e.event == "audit-check" && e.outcome == "fail"));
        }
    }
}

#[test]
fn every_entry_carries_a_mac() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    let empty: i64 =
        raw(&path).query_row("SELECT count(*) FROM audit WHERE length(mac) <> 64", [], |r| r.get(0)).unwrap();
    assert_eq!(empty, 0);
    // Moving a MAC to another entry does not help: it binds the sequence number and the hash.
    raw(&path).execute("UPDATE audit SET mac = (SELECT mac FROM audit WHERE seq = 2) WHERE seq = 3", []).unwrap();
    integrity(reopen(&path).audit_verify(), "entry 3 has a wrong MAC");
}

// ---- 2. The sealed head removed with a cut tail, or with a recomputed edit ----

#[test]
fn a_removed_head_is_never_resealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    std::fs::remove_file(witness(&path)).unwrap();
    raw(&path).execute_batch("DELETE FROM audit WHERE seq >= 6; DELETE FROM meta WHERE k = 'audit_head';").unwrap();
    for _ in 0..3 {
        let st = reopen(&path);
        assert!(st.warnings().iter().any(|w| w.contains("not sealed")), "{:?}", st.warnings());
        integrity(st.audit_verify(), "sealed head is missing");
        // The key rows cannot be trusted without the head either.
        integrity(st.list(), "sealed audit head is missing");
    }
}

#[test]
fn a_removed_head_with_a_recomputed_edit_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    std::fs::remove_file(witness(&path)).unwrap();
    raw(&path)
        .execute_batch(
            "UPDATE audit SET detail = replace(detail, 'PUK', 'RLK') WHERE seq = 3; DELETE FROM meta WHERE k = 'audit_head';",
        )
        .unwrap();
    rechain(&path, 3);
    integrity(reopen(&path).audit_verify(), "entry 3 has a wrong MAC");
    integrity(reopen(&path).audit_verify(), "entry 3 has a wrong MAC");
}

#[test]
fn with_the_witness_a_removed_head_refuses_the_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    raw(&path).execute_batch("DELETE FROM meta WHERE k = 'audit_head';").unwrap();
    let mut st = KeyStore::open(&path).unwrap();
    integrity(st.unlock_with_passphrase(PASS), "sealed audit head is missing");
    assert!(!st.is_unlocked());
    raw(&path).execute_batch("DELETE FROM audit WHERE seq >= 6;").unwrap();
    integrity(st.unlock_with_passphrase(PASS), "rollback");
}

// ---- 3. A failed unlock deleted from the store before the next unlock ----

#[test]
fn a_deleted_failed_unlock_is_reported_from_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    let mut st = KeyStore::open(&path).unwrap();
    assert!(matches!(st.unlock_with_passphrase(b"guessed passphrase"), Err(Error::WrongPassphrase)));
    drop(st);
    let line = std::fs::read_to_string(sink(&path)).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(
        (v["format"].as_str(), v["event"].as_str(), v["outcome"].as_str()),
        (Some("keymgmt-audit-sink/1"), Some("unlock"), Some("fail"))
    );
    assert!(!line.contains("guessed"), "the sink holds the passphrase tried");
    let seq = v["seq"].as_i64().unwrap();
    raw(&path).execute("DELETE FROM audit WHERE seq = ?1", [seq]).unwrap();
    // The next unlock succeeds, warns and audits; verify fails, and keeps failing.
    let st = reopen(&path);
    assert!(
        st.warnings()
            .iter()
            .any(|w| w.contains(&format!("{seq} (unlock fail")) && w.contains("removed outside keymgmt")),
        "{:?}",
        st.warnings()
    );
    let found = st.audit_entries().unwrap().into_iter().find(|e| e.event == "audit-sink").unwrap();
    assert_eq!(found.outcome, "fail");
    assert!(found.detail.contains(&format!("\"seq\":{seq}")), "{}", found.detail);
    integrity(st.audit_verify(), "in the audit sink but not in the store");
    integrity(reopen(&path).audit_verify(), &format!("entry {seq} (unlock fail"));
}

#[test]
fn failed_unlocks_kept_are_confirmed_by_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_keys(dir.path());
    let mut st = KeyStore::open(&path).unwrap();
    for _ in 0..2 {
        assert!(matches!(st.unlock_with_passphrase(b"guessed passphrase"), Err(Error::WrongPassphrase)));
    }
    let unmaced: i64 = raw(&path).query_row("SELECT count(*) FROM audit WHERE mac = ''", [], |r| r.get(0)).unwrap();
    assert_eq!(unmaced, 2);
    st.unlock_with_passphrase(PASS).unwrap();
    assert!(st.warnings().is_empty(), "{:?}", st.warnings());
    let v = st.audit_verify().unwrap();
    assert_eq!((v.unsealed, v.sink_entries), (0, 2));
    let unmaced: i64 = raw(&path).query_row("SELECT count(*) FROM audit WHERE mac = ''", [], |r| r.get(0)).unwrap();
    assert_eq!(unmaced, 0);
    // Without the sink (lost with the machine, or never copied), a failed unlock cannot be
    // told from a forged entry: reported, not sealed.
    drop(st);
    let mut st = KeyStore::open(&path).unwrap();
    assert!(matches!(st.unlock_with_passphrase(b"guessed passphrase"), Err(Error::WrongPassphrase)));
    std::fs::remove_file(sink(&path)).unwrap();
    let st = reopen(&path);
    assert!(st.warnings().iter().any(|w| w.contains("does not confirm")), "{:?}", st.warnings());
    integrity(st.audit_verify(), "has no MAC");
}

// ---- 4. Rollback to a copy taken before `destroy` ----

#[test]
fn witness_refuses_a_rolled_back_store() {
    let dir = tempfile::tempdir().unwrap();
    let (path, copy) = destroyed_after_a_copy(dir.path());
    std::fs::copy(&copy, &path).unwrap();
    let mut st = KeyStore::open(&path).unwrap();
    integrity(st.unlock_with_passphrase(PASS), "rollback");
    integrity(st.unlock_with_components(&kbpk_components()), "older copy");
    // Locked: the destroyed key is not usable.
    assert!(matches!(st.derive_kcv("PUK", 1, "371700", &[0; 8]), Err(Error::Locked)));
    // The refusal went to the sink (not into the rolled-back store).
    let text = std::fs::read_to_string(sink(&path)).unwrap();
    assert!(text.contains("\"outcome\":\"refused\"") && text.contains("rollback"), "{text}");
}

#[test]
fn keys_rolled_back_with_their_digest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, copy) = destroyed_after_a_copy(dir.path());
    // Only the keys table and its digest go back; the audit log and its head stay.
    let c = raw(&path);
    c.execute("ATTACH DATABASE ?1 AS old", [copy.to_str().unwrap()]).unwrap();
    c.execute_batch(
        "DELETE FROM keys; INSERT INTO keys SELECT * FROM old.keys;
         UPDATE meta SET v = (SELECT v FROM old.meta WHERE k = 'keys_digest') WHERE k = 'keys_digest';",
    )
    .unwrap();
    drop(c);
    let st = reopen(&path);
    integrity(st.derive_kcv("PUK", 1, "371700", &[0; 8]), "not those sealed with the audit head");
    integrity(st.list(), "rolled back");
    // Also with the head rolled back: the witness refuses the unlock.
    let c = raw(&path);
    c.execute("ATTACH DATABASE ?1 AS old", [copy.to_str().unwrap()]).unwrap();
    c.execute_batch("UPDATE meta SET v = (SELECT v FROM old.meta WHERE k = 'audit_head') WHERE k = 'audit_head';")
        .unwrap();
    drop(c);
    integrity(KeyStore::open(&path).unwrap().unlock_with_passphrase(PASS), "rollback");
}

#[test]
fn a_witness_of_another_store_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = store_with_keys(a.path());
    let pb = store_with_keys(b.path());
    std::fs::copy(witness(&pb), witness(&pa)).unwrap();
    integrity(KeyStore::open(&pa).unwrap().unlock_with_passphrase(PASS), "belongs to store");
    std::fs::write(witness(&pa), "{}").unwrap();
    integrity(KeyStore::open(&pa).unwrap().unlock_with_passphrase(PASS), "not a keymgmt witness");
}

// ---- The previous release's store ----

fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("v1.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.db"), &path).unwrap();
    path
}

#[test]
fn format_1_is_upgraded_at_the_first_unlock_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path());
    let backup = dir.path().join("v1-backup.db");
    std::fs::copy(&path, &backup).unwrap();
    let st = reopen(&path);
    assert!(st.warnings().iter().any(|w| w.contains("upgraded")), "{:?}", st.warnings());
    let up = st.audit_entries().unwrap().into_iter().find(|e| e.event == "upgrade").unwrap();
    assert!(up.detail.contains("keymgmt-store/1") && up.detail.contains("keymgmt-store/2"), "{}", up.detail);
    assert_eq!(st.audit_verify().unwrap().witness, Some(st.audit_entries().unwrap().len() as i64));
    drop(st);
    let format: String = raw(&path).query_row("SELECT v FROM meta WHERE k = 'format'", [], |r| r.get(0)).unwrap();
    assert_eq!(format, "keymgmt-store/2");
    // The format 1 copy restored over the upgraded store: the witness has seen the upgrade.
    std::fs::copy(&backup, &path).unwrap();
    integrity(KeyStore::open(&path).unwrap().unlock_with_passphrase(PASS), "before its upgrade");
}

#[test]
fn a_tampered_format_1_store_is_not_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path());
    // In format 1 anyone could append an entry after the head; only failures written while
    // locked were legitimate there.
    forge_entry_v1(&path);
    integrity(KeyStore::open(&path).unwrap().unlock_with_passphrase(PASS), "not upgraded");
    let format: String = raw(&path).query_row("SELECT v FROM meta WHERE k = 'format'", [], |r| r.get(0)).unwrap();
    assert_eq!(format, "keymgmt-store/1");
}

fn forge_entry_v1(path: &Path) {
    let c = raw(path);
    let (seq, prev): (i64, String) = c
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let fields = ["2026-01-01T00:00:00Z", "import", "ok", "{}"];
    let hash = entry_hash(&prev, seq + 1, fields);
    c.execute(
        "INSERT INTO audit (seq, time, event, outcome, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![seq + 1, fields[0], fields[1], fields[2], fields[3], prev, hash],
    )
    .unwrap();
}

// ---- The same attacks through the CLI ----

const FILES: [(&str, &str); 3] = [
    ("c1.hex", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n"),
    ("c2.hex", "3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A\n"),
    ("pass.txt", "correct horse battery staple\n"),
];

/// Runs `keymgmt --store keys.db --no-syslog [--passphrase-file pass]` with `args` in `dir`.
fn km_with(dir: &Path, pass: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--store", "keys.db", "--no-syslog", "--passphrase-file", pass];
    all.extend_from_slice(args);
    let o = Command::new(BIN)
        .args(&all)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("KEYMGMT_STORE")
        .env_remove("KEYMGMT_AUDIT_SINK")
        .env_remove("KEYMGMT_WITNESS")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn km(dir: &Path, args: &[&str]) -> (i32, String, String) {
    km_with(dir, "pass.txt", args)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = km(dir, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn fails(dir: &Path, args: &[&str], says: &str) -> String {
    let (code, _, err) = km(dir, args);
    assert_eq!(code, 4, "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err} does not say {says:?}");
    err
}

fn cli_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let d = dir.path();
    ok(d, &["init", "--component-file", "c1.hex", "--component-file", "c2.hex"]);
    for n in ["PUK", "RLK"] {
        ok(d, &["generate", "--name", n, "--version", "1", "--alg", "sm4", "--activate"]);
    }
    assert!(ok(d, &["audit", "verify"]).contains("audit log OK"));
    dir
}

#[test]
fn cli_forged_entry() {
    let dir = cli_store();
    let d = dir.path();
    let seq = forge_entry(&d.join("keys.db"), "");
    let (code, _, err) = km(d, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains("no MAC"), "{err}");
    fails(d, &["audit", "verify"], &format!("entry {seq} (destroy ok) has no MAC"));
    fails(d, &["audit", "verify"], "added outside keymgmt");
}

#[test]
fn cli_removed_head_and_cut_tail() {
    let dir = cli_store();
    let d = dir.path();
    raw(&d.join("keys.db"))
        .execute_batch("DELETE FROM audit WHERE seq >= 4; DELETE FROM meta WHERE k = 'audit_head';")
        .unwrap();
    // The witness refuses the unlock.
    fails(d, &["list"], "rollback");
    // Without the witness, the unlock goes on but never re-seals: verify fails every time.
    std::fs::remove_file(d.join("keys.db.witness")).unwrap();
    for _ in 0..2 {
        fails(d, &["audit", "verify"], "sealed head is missing");
    }
}

#[test]
fn cli_deleted_failed_unlock() {
    let dir = cli_store();
    let d = dir.path();
    std::fs::write(d.join("bad.txt"), "not the passphrase\n").unwrap();
    assert_eq!(km_with(d, "bad.txt", &["list"]).0, 3);
    let seq: i64 = raw(&d.join("keys.db")).query_row("SELECT max(seq) FROM audit", [], |r| r.get(0)).unwrap();
    raw(&d.join("keys.db")).execute("DELETE FROM audit WHERE seq = ?1", [seq]).unwrap();
    let (code, _, err) = km(d, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains("removed outside keymgmt"), "{err}");
    fails(d, &["audit", "verify"], &format!("entry {seq} (unlock fail"));
    let (_, out, _) = km(d, &["audit"]);
    assert!(out.lines().any(|l| l.contains("audit-sink") && l.contains("fail")), "{out}");
}

#[test]
fn cli_rollback_before_destroy() {
    let dir = cli_store();
    let d = dir.path();
    std::fs::copy(d.join("keys.db"), d.join("copy.db")).unwrap();
    ok(d, &["retire", "--name", "PUK", "--version", "1"]);
    ok(d, &["destroy", "--name", "PUK", "--version", "1"]);
    std::fs::copy(d.join("copy.db"), d.join("keys.db")).unwrap();
    fails(d, &["audit", "verify", "--witness", "keys.db.witness"], "rollback");
    fails(d, &["list"], "restored from an older copy");
    fails(
        d,
        &["derive-kcv", "--name", "PUK", "--version", "1", "--region", "371700", "--card-factor", "0123456789ABCDEF"],
        "rollback",
    );
    fails(d, &["export", "--name", "PUK", "--version", "1", "--kek", "KEK"], "rollback");
}

#[test]
fn cli_explicit_witness_and_sink() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in FILES {
        std::fs::write(d.join(name), text).unwrap();
    }
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    let at = ["--witness", "elsewhere/w.json", "--audit-sink", "elsewhere/sink.jsonl"];
    ok(d, &[&at[..], &["init", "--component-file", "c1.hex", "--component-file", "c2.hex"]].concat());
    assert!(d.join("elsewhere/w.json").exists() && !d.join("keys.db.witness").exists());
    std::fs::write(d.join("bad.txt"), "not the passphrase\n").unwrap();
    assert_eq!(km_with(d, "bad.txt", &[&at[..], &["list"]].concat()).0, 3);
    assert!(std::fs::read_to_string(d.join("elsewhere/sink.jsonl")).unwrap().contains("wrong passphrase"));
    let out = ok(d, &[&at[..], &["audit", "verify"]].concat());
    assert!(out.contains("audit sink: 1 entries") && out.contains("the witness has seen entry"), "{out}");
    // An explicit witness must exist.
    fails(d, &["--witness", "elsewhere/none.json", "audit", "verify"], "does not exist");
}
