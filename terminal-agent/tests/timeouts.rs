//! Slow and idle connections are closed (`header_read_timeout_ms`): a client that opens a connection and sends
//! nothing, one that sends half a request's headers, and a keep-alive connection left idle after its request.
//! The service runs in process over an in-process card (no pcscd).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use card_core::security::NoKeys;
use card_sim::SimTransport;
use terminal_agent::service::config::Config;
use terminal_agent::service::connector::InProcessReaders;
use terminal_agent::service::Server;
use testkit::fixture_card;

/// Generous: the check is that the connection is closed at all, not how fast.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// Reads until the peer closes (or the bound passes): everything read, and whether it closed.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < CLOSED_WITHIN {
        match s.read(&mut buf) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (all, true),
        }
    }
    (all, false)
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let readers = InProcessReaders::new();
    readers.insert("Sim Reader 0", SimTransport::new(fixture_card("gen2-personalized.json")));
    let config = Config {
        port: 0,
        allowed_origins: vec!["https://counter.example".into()],
        header_read_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = rt.block_on(Server::bind_with(config, Arc::new(NoKeys), Arc::new(readers))).unwrap();
    let port = server.port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(server.run(async {
        let _ = stop_rx.await;
    }));

    // nothing sent
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_, closed) = read_until_closed(&mut s);
    assert!(closed, "a silent connection stays open");

    // half the headers, then silence
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /v1/readers HTTP/1.1\r\nHost: 127.0.0.1").unwrap();
    let (_, closed) = read_until_closed(&mut s);
    assert!(closed, "a connection stuck in its headers stays open");

    // a whole request on a keep-alive connection is answered; then the idle connection is closed
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!("GET /v1/readers HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://counter.example\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let (answer, closed) = read_until_closed(&mut s);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Sim Reader 0"), "{answer}");
    assert!(closed, "an idle keep-alive connection stays open");

    let _ = stop_tx.send(());
    rt.block_on(running).unwrap().unwrap();
}
