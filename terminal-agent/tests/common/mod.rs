//! Shared by the service tests: a `terminal-agent serve` process on a free port with a test configuration, and a
//! minimal HTTP/1.1 client that can send any Host and Origin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub use testkit::fixture;
#[allow(unused_imports)]
pub use testkit::http::{http, Resp};

/// The allowed origin of the tests.
pub const ORIGIN: &str = "https://counter.example";
/// The token key of the test configuration.
pub const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The terminal number of the test configuration.
pub const TERMINAL: &str = "371700000001";

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the agent with keys `local` (the test keys), `two-step`, or a whole `[keys]` table given as it is, and
/// `extra` configuration lines.
pub fn start(keys: &str, extra: &str) -> Agent {
    start_with(keys, extra, &[])
}

/// [`start`] as another terminal than [`TERMINAL`].
pub fn start_as(terminal: &str, keys: &str, extra: &str) -> Agent {
    start_full(terminal, keys, extra, &[])
}

/// [`start`], allowing `more_origins` besides [`ORIGIN`].
pub fn start_with(keys: &str, extra: &str, more_origins: &[&str]) -> Agent {
    start_full(TERMINAL, keys, extra, more_origins)
}

fn start_full(terminal: &str, keys: &str, extra: &str, more_origins: &[&str]) -> Agent {
    let origins: Vec<String> =
        std::iter::once(ORIGIN).chain(more_origins.iter().copied()).map(|o| format!("\"{o}\"")).collect();
    let origins = origins.join(", ");
    let dir = tempfile::tempdir().unwrap();
    let keys = match keys {
        "local" => format!(
            "[keys]\nmode = \"local\"\nkey_file = \"{}\"\nregion = \"371700\"\n",
            fixture("cards/test-keys.toml").display()
        ),
        table if table.starts_with("[keys]") => table.to_owned(),
        _ => "[keys]\nmode = \"two-step\"\n".to_owned(),
    };
    let config = format!(
        "allowed_origins = [{origins}]\nterminal_no = \"{terminal}\"\ndevice_no = \"SIM-READER-01\"\n\
         audit_log = \"audit.jsonl\"\ntoken_key = \"{TOKEN_KEY}\"\n{extra}\n{keys}"
    );
    std::fs::write(dir.path().join("agent.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
        .args(["serve", "--port", "0", "--config"])
        .arg(dir.path().join("agent.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start terminal-agent serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("terminal-agent: listening on http://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    assert_eq!(second.trim(), format!("terminal-agent: listening on http://[::1]:{port}/"), "IPv6 loopback too");
    Agent { child, port, dir }
}
