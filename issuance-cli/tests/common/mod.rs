//! Shared test material: a key store made in the test, blank cards, the sample holders, and the helpers of the
//! tests that run the `issuance` program.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use card_core::apdu::{Ins, StatusWord};
use card_core::transport::{CardTransactionExt, Transport};

use card_core::crypto::Algorithm;
use card_core::profile::{Generation, Profile};
use card_sim::{BlankParams, Card, KeyAlgorithm};
use issuance::holders::{self, Context, Holder};
use key_mgmt::KeyStore;

/// The blank cards' transport key. TEST MATERIAL. Every byte has odd parity, so the store (which
/// parity-adjusts 3DES keys) keeps it as is and it serves SM4 cards too.
pub const TRANSPORT: [u8; 16] =
    [0x01, 0x02, 0x04, 0x07, 0x08, 0x0B, 0x0D, 0x0E, 0x10, 0x13, 0x15, 0x16, 0x19, 0x1A, 0x1C, 0x1F];
/// The store passphrase. TEST MATERIAL.
pub const PASSPHRASE: &str = "issuance test passphrase";

/// A key store with every profile key in 3DES (version 1) and SM4 (version 2), and TRANSPORT.
pub fn make_store(path: &Path) {
    let c1 = zeroize::Zeroizing::new((1u8..=32).collect::<Vec<u8>>());
    let c2 = zeroize::Zeroizing::new((0u8..32).map(|i| i.wrapping_mul(7) ^ 0xA5).collect::<Vec<u8>>());
    let (store, _) = KeyStore::init(path, &[c1, c2], Some(PASSPHRASE.as_bytes())).unwrap();
    store.generate_profile_keys(Algorithm::Tdes, 1, true).unwrap();
    for def in key_mgmt::inventory::key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
        store.generate(&def.name, 2, Algorithm::Sm4, None, true).unwrap();
    }
    // two components whose XOR is the transport key
    let mask: Vec<u8> = (0u8..16).map(|i| i.wrapping_mul(13) ^ 0x5C).collect();
    let a = zeroize::Zeroizing::new(mask.clone());
    let b = zeroize::Zeroizing::new(TRANSPORT.iter().zip(&mask).map(|(x, m)| x ^ m).collect::<Vec<u8>>());
    store.import_components("TRANSPORT", 1, Algorithm::Tdes, &[a, b], true).unwrap();
}

/// [`make_store`] as `dir/keys.db`, with its passphrase in `dir/pass.txt`: what [`issuance`] uses.
pub fn setup(dir: &Path) {
    make_store(&dir.join("keys.db"));
    std::fs::write(dir.join("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
}

/// The journal backend the issuance suite runs on: SQLite (the default), or PostgreSQL when
/// `ISSUANCE_TEST_BACKEND=postgresql` — a database per journal on `SSCARD_TEST_PG_URL`'s server (`cargo xtask test`
/// runs the suite a second time so).
pub fn on_postgres() -> bool {
    match std::env::var("ISSUANCE_TEST_BACKEND").as_deref() {
        Ok("postgresql") => {
            assert!(
                std::env::var("SSCARD_TEST_PG_URL").is_ok_and(|u| !u.is_empty()),
                "ISSUANCE_TEST_BACKEND=postgresql needs SSCARD_TEST_PG_URL (cargo xtask test sets both)"
            );
            true
        }
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("ISSUANCE_TEST_BACKEND={other}: sqlite or postgresql"),
    }
}

/// A new database on the test server for one journal; it stays there (the server is the run's throwaway).
fn new_database() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let db = testkit::pg::TestDb::new(&format!("suite_{n}"));
    let url = db.url().to_owned();
    std::mem::forget(db);
    url
}

/// A new, empty journal: in memory on SQLite, a new database on PostgreSQL.
pub fn fresh_journal() -> issuance::journal::Journal {
    if on_postgres() {
        let password = testkit::pg::password();
        issuance::journal::Journal::open_at(&issuance::journal::Location::new(new_database().into()), password.as_ref())
            .unwrap()
    } else {
        issuance::journal::Journal::in_memory().unwrap()
    }
}

/// What `--journal` names for `dir`: `dir/journal.db`, or on PostgreSQL the URL of `dir`'s database (made on
/// first use, its URL kept in `dir/journal.url`).
pub fn journal_arg(dir: &Path) -> std::ffi::OsString {
    if !on_postgres() {
        return dir.join("journal.db").into_os_string();
    }
    let kept = dir.join("journal.url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return url.into();
    }
    let url = new_database();
    std::fs::write(&kept, &url).unwrap();
    url.into()
}

/// The journal of `dir`: the one `issuance(dir)` uses.
pub fn journal(dir: &Path) -> issuance::journal::Journal {
    let password = testkit::pg::password();
    let location = issuance::journal::Location::new(journal_arg(dir).into());
    issuance::journal::Journal::open_at(&location, password.as_ref()).unwrap()
}

/// The `issuance` program with the journal, key store and passphrase file of `dir`.
pub fn issuance(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_issuance"));
    c.arg("--journal").arg(journal_arg(dir));
    c.arg("--keystore").arg(dir.join("keys.db"));
    c.arg("--passphrase-file").arg(dir.join("pass.txt"));
    c
}

/// Waits (at most 60 s) for a line of the program's output containing `what`; returns it.
pub fn expect_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {what:?}: {e}"),
        }
    }
}

/// SELECT SSSE by name (its AID `sx1.sh.社会保障`).
pub fn select_ssse_command() -> card_core::apdu::Command {
    let aid = b"sx1.sh.\xC9\xE7\xBB\xE1\xB1\xA3\xD5\xCF".to_vec();
    card_core::apdu::Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid).unwrap().with_le(256).unwrap()
}

/// SELECT SSSE by name: its status word (`6A81` once the application is blocked).
pub fn select_ssse(t: &mut dyn Transport) -> StatusWord {
    let mut tx = t.transaction().unwrap();
    tx.exchange(&select_ssse_command()).unwrap().sw()
}

/// A program under test (`issuance`); killed if the test fails before it ends, so that it
/// does not go on waiting for cards in the shared reader.
pub struct Running(Option<Child>);

impl Running {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
    /// Waits for the end and collects the output.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        self.0.take().unwrap().wait_with_output()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `cmd` with its stdout as a channel of lines.
pub fn spawn(cmd: &mut Command) -> (Running, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Running(Some(child)), rx)
}

/// A store, unlocked, as a key source.
pub fn key_source(path: &Path) -> issuance::prepare::StoreKeySource {
    let mut store = KeyStore::open(path).unwrap();
    store.unlock_with_passphrase(PASSPHRASE.as_bytes()).unwrap();
    issuance::prepare::StoreKeySource::new(store)
}

/// A blank card of generation `g` with chip serial `serial`.
pub fn blank(g: u8, serial: u64) -> Card {
    Card::new_blank(BlankParams {
        generation: g,
        region: "371700".into(),
        serial,
        transport_key: TRANSPORT,
        algorithm: if g == 3 { KeyAlgorithm::Sm4 } else { KeyAlgorithm::Tdes },
    })
    .unwrap()
}

/// A repository fixture.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(rel)
}

/// The valid holders of `fixtures/holders/sample.csv` for generation `g`.
pub fn sample(g: Generation) -> Vec<Holder> {
    let no = |_: &str| false;
    let ctx = Context { generation: g, base: fixture("holders"), issued: &no };
    let p = holders::read_file(&fixture("holders/sample.csv"), &ctx, holders::Encoding::Utf8).unwrap();
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    p.valid
}

/// `n` (at most 500) holders with distinct valid SSNs (GB 11643 check digit), the data of the sample's first
/// holder (born 19810101, male: odd sequence digits), on lines 2, 3, …
pub fn many_holders(n: usize) -> Vec<Holder> {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    assert!(n <= 500, "three sequence digits, odd: 500 holders at most");
    let base = sample(Generation::THREE).swap_remove(0);
    (0..n)
        .map(|i| {
            let body = format!("37170219810101{:03}", 2 * i + 1);
            let sum: u32 = body.chars().zip(W).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
            let check = b"10X98765432"[(sum % 11) as usize] as char;
            let mut h = base.without_pin();
            h.ssn = format!("{body}{check}");
            h.line = i as u64 + 2;
            h
        })
        .collect()
}
