//! The counter page end to end in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/counter.mjs`), against `terminal-agent serve`, pcscd and a card-sim card in `Virtual PCD 00 00`.
//! The page shows the holder's name after the card is inserted; a page from an origin not on the allow-list is
//! refused; a page from an allowed origin reads through CORS.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`cargo xtask test` installs both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{vpcd_lock, Reader0};

#[test]
fn counter_page_shows_the_holder_and_foreign_origins_are_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists() && dir.join("node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and `npm ci` in {}: run `cargo xtask test`",
        dir.display()
    );
    let _lock = vpcd_lock();
    // a free port for the allowed foreign origin, served by the script
    let allowed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let allowed = format!("http://127.0.0.1:{allowed_port}");
    let agent = common::start_with("local", "", &[allowed.as_str()]);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("counter-page.png");
    let mut node = Command::new("node")
        .current_dir(&dir)
        .arg("counter.mjs")
        .arg(agent.port.to_string())
        .arg(allowed_port.to_string())
        .arg(&shot)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = || lines.next().map(|l| l.unwrap()).unwrap_or_else(|| "(script ended)".into());
    assert_eq!(next(), "READY");
    let _card = Reader0::insert_fixture("gen2-personalized.json");
    assert_eq!(next(), "NAME 张三");
    assert_eq!(next(), "FOREIGN refused");
    assert_eq!(next(), "ALLOWED 张三");
    assert!(node.wait().unwrap().success());
    assert!(shot.exists(), "screenshot {}", shot.display());

    // the agent audited the page's reads; the foreign page never reached a handler
    let audit = std::fs::read_to_string(agent.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"origin\":\"self\"") && l.contains("read-basic")), "{audit}");
    assert!(audit.lines().any(|l| l.contains(&allowed) && l.contains("read-basic")), "{audit}");
    assert!(!audit.contains("127.0.0.1:0"), "{audit}");
}
