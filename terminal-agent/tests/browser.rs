//! The counter page end to end in a real browser, as a clerk uses it: Debian's headless Chromium, driven by
//! playwright-core (`tests/browser/counter.mjs`), against `terminal-agent serve`, pcscd and card-sim cards in
//! `Virtual PCD 00 00`.
//!
//! - generation 2: the holder and the photo after insertion, drawn in a CJK font (Debian's `fonts-noto-cjk`; the
//!   screenshot `counter-page.png` is kept for a person to look at), `no-store` on what the page reads, Enter reads
//!   again, large text kept across a reload, everything gone within a second of the card's removal, a card without
//!   a photo says so, everything gone after the idle timeout; foreign origins refused, allowed ones read by CORS;
//! - generation 3 at a counter without keys: the same fields and the photo through the key service (`keymgmt
//!   serve`, mutual TLS), and "key service unreachable" in words with its national code once it is gone.
//!
//! Needs `/usr/bin/chromium`, `fonts-noto-cjk` and `tests/browser/node_modules` (`cargo xtask test` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use card_sim::SimTransport;
use testkit::key_service::{config, KeyService};
use testkit::pki::Pki;
use testkit::{fixture_card, fixture_card_with_photo, test_photo, vpcd_lock, Reader0};

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn check_tools() {
    let dir = script_dir();
    assert!(
        Path::new("/usr/bin/chromium").exists() && dir.join("node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and `npm ci` in {}: run `cargo xtask test`",
        dir.display()
    );
    assert!(
        Path::new("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists(),
        "the browser test needs Debian's fonts-noto-cjk (the page's Chinese text): run `cargo xtask test`"
    );
}

/// The script, talking on its stdout and listening on its stdin.
struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stdin: ChildStdin,
}

impl Script {
    fn start(agent_port: u16, allowed_port: u16, shot: &Path, mode: &str) -> Script {
        let mut child = Command::new("node")
            .current_dir(script_dir())
            .arg("counter.mjs")
            .arg(agent_port.to_string())
            .arg(allowed_port.to_string())
            .arg(shot)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stdin = child.stdin.take().unwrap();
        Script { child, lines, stdin }
    }

    fn next(&mut self) -> String {
        self.lines.next().map(|l| l.unwrap()).unwrap_or_else(|| "(script ended)".into())
    }

    /// The next line, which must start with `word`; the rest of it.
    fn expect(&mut self, word: &str) -> String {
        let line = self.next();
        match line.strip_prefix(word) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("expected {word}, the script said: {line}"),
        }
    }

    fn say(&mut self, word: &str) {
        writeln!(self.stdin, "{word}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn finish(mut self) {
        assert!(self.child.wait().unwrap().success());
    }
}

fn screenshot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn counter_page_as_a_clerk_uses_it() {
    check_tools();
    let _lock = vpcd_lock();
    // a free port for the allowed foreign origin, served by the script
    let allowed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let allowed = format!("http://127.0.0.1:{allowed_port}");
    let agent = common::start_with("local", "page_idle_secs = 6", &[allowed.as_str()]);
    let shot = screenshot("counter-page.png");
    let mut script = Script::start(agent.port, allowed_port, &shot, "gen2");
    script.expect("READY");
    let card = Reader0::insert(SimTransport::new(fixture_card_with_photo("gen2-personalized.json", &test_photo())));
    assert_eq!(script.expect("NAME"), "张三");
    assert_eq!(script.expect("PHOTO"), "120x160");
    let font = script.expect("FONT");
    assert!(font.contains("Noto Sans CJK"), "{font}");
    script.expect("NOSTORE");
    script.expect("ENTER");
    script.expect("LARGE");
    script.expect("REMOVE");
    drop(card.remove()); // returns once pcscd sees the reader empty
    script.say("REMOVED");
    let ms: u64 = script.expect("CLEARED").parse().unwrap();
    assert!(ms <= 1000, "{ms} ms");
    let _card = Reader0::insert(SimTransport::new(fixture_card("gen2-personalized.json")));
    script.expect("NOPHOTO");
    let idle: f64 = script.expect("IDLE").parse().unwrap();
    assert!((4.4..=10.0).contains(&idle), "cleared {idle} s after the read, the timeout is 6 s");
    assert_eq!(script.expect("FOREIGN"), "refused");
    assert_eq!(script.expect("ALLOWED"), "张三");
    script.finish();
    assert!(shot.exists(), "screenshot {}", shot.display());

    // the agent audited the page's reads; the foreign page never reached a handler
    let audit = std::fs::read_to_string(agent.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"origin\":\"self\"") && l.contains("read-basic")), "{audit}");
    assert!(audit.lines().any(|l| l.contains("\"origin\":\"self\"") && l.contains("read-photo")), "{audit}");
    assert!(audit.lines().any(|l| l.contains(&allowed) && l.contains("read-basic")), "{audit}");
    assert!(!audit.contains("127.0.0.1:0"), "{audit}");
}

#[test]
fn counter_page_shows_generation_3_through_the_key_service() {
    check_tools();
    let _lock = vpcd_lock();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let store = testkit::keys::issuer_store(dir.path());
    let policies =
        format!("[terminal.{}]\noperations = [\"read\"]\nregions = [\"371700\"]\ndfs = [\"SSSE\"]\n", common::TERMINAL);
    let mut service = KeyService::start(
        &testkit::script::programs().join("keymgmt"),
        dir.path(),
        "service",
        &config(&store, &pki, &pki.server(), &dir.path().join("service.jsonl"), &policies),
    )
    .unwrap();
    let cert = pki.terminal(common::TERMINAL);
    let keys = format!(
        "[keys]\nmode = \"key-service\"\nurls = [\"{}\"]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         timeout_ms = 3000\n",
        service.base,
        pki.ca_pem.display(),
        cert.cert.display(),
        cert.key.display()
    );
    let agent = common::start(&keys, "");
    let shot = screenshot("counter-page-gen3.png");
    let mut script = Script::start(agent.port, 0, &shot, "gen3");
    script.expect("READY");
    let _card = Reader0::insert(SimTransport::new(fixture_card_with_photo("gen3-personalized.json", &test_photo())));
    // the same fields as a generation 2 card: the full name (its character outside GBK from tag 4E), the photo
    assert_eq!(script.expect("NAME"), "欧阳𠮷娜");
    assert_eq!(script.expect("PHOTO"), "120x160");
    assert!(script.expect("FONT").contains("Noto Sans CJK"));
    let audit = std::fs::read_to_string(dir.path().join("service.jsonl")).unwrap();
    assert!(audit.lines().filter(|l| l.contains("\"operation\":\"read\"") && l.contains("\"ok\"")).count() >= 2);
    service.kill();
    script.say("SERVICE-DOWN");
    let words = script.expect("UNREACHABLE");
    assert!(words.contains("密钥服务无法连接") && words.contains("call the help desk"), "{words}");
    assert!(words.contains("代码 code -"), "the national code for the help desk: {words}");
    script.finish();
    assert!(shot.exists());
}
