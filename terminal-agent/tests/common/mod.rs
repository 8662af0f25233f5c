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

/// A WebSocket to the agent.
pub type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens `/v1/national` with `origin` (none: no Origin header); reads time out after 20 s.
pub fn national_socket(a: &Agent, origin: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = tungstenite::http::Request::builder()
        .uri(format!("ws://127.0.0.1:{}/v1/national", a.port))
        .header("Host", format!("127.0.0.1:{}", a.port))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key());
    if let Some(o) = origin {
        request = request.header("Origin", o);
    }
    let (mut ws, _) = tungstenite::connect(request.body(()).unwrap())?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    }
    Ok(ws)
}

/// Sends `text` as one message on a national socket and returns the answer.
pub fn national_send(ws: &mut Socket, text: &str) -> serde_json::Value {
    ws.send(tungstenite::Message::Text(text.into())).unwrap();
    loop {
        match ws.read().expect("an answer within 20 s") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// One call on a national socket: its answer.
pub fn national_call(ws: &mut Socket, call: serde_json::Value) -> serde_json::Value {
    national_send(ws, &call.to_string())
}
