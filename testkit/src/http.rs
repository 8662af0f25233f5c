//! A minimal HTTP/1.1 client for tests and benchmarks of the terminal agent, with any Host and Origin (a real client
//! library would not let a test send a forged Host): [`http`] makes one request per connection; a [`Client`] keeps
//! its connection open across requests (keep-alive), as a browser does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Header lines, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer decoded).
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request on a fresh connection; `host: None` sends the agent's own `127.0.0.1:PORT`.
pub fn http(port: u16, method: &str, path: &str, host: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = request_head(port, method, path, host, headers, body, true);
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s)).map(|(resp, _)| resp).unwrap_or_else(|e| panic!("response: {e}"))
}

/// The request line and headers (`close`: ask the server to close the connection after the answer).
fn request_head(
    port: u16,
    method: &str,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> String {
    let own = format!("127.0.0.1:{port}");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", host.unwrap_or(&own));
    if close {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req
}

/// An HTTP/1.1 client that keeps one connection to the agent open across requests (keep-alive), connecting again
/// when the agent closed it between two requests (its idle timeout). Each answer is read to the end of its body
/// (`Content-Length` or chunked), so the next request can follow on the same connection.
#[derive(Debug)]
pub struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    connects: u64,
}

impl Client {
    /// A client of the agent on 127.0.0.1:`port`; it connects at the first request.
    pub fn new(port: u16) -> Client {
        Client { port, conn: None, connects: 0 }
    }

    /// How many connections it has made so far (1 when every request reused the first).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// `GET path` with the agent's own Host and `headers`.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, None, headers, b"")
    }

    /// One request on the kept connection; `host: None` sends the agent's own `127.0.0.1:PORT`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        host: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let head = request_head(self.port, method, path, host, headers, body, false);
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        // a kept connection the agent has closed meanwhile fails on the write or gives EOF before the status line:
        // then once more on a new connection (nothing of the request was answered)
        let reused = self.conn.is_some();
        match self.exchange(&message) {
            Ok(resp) => resp,
            Err(_) if reused => {
                self.conn = None;
                self.exchange(&message).unwrap_or_else(|e| panic!("request on a new connection: {e}"))
            }
            Err(e) => panic!("request: {e}"),
        }
    }

    fn exchange(&mut self, message: &[u8]) -> std::io::Result<Resp> {
        if self.conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_nodelay(true)?;
            self.connects += 1;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().ok_or_else(|| std::io::Error::other("no connection"))?;
        conn.get_mut().write_all(message)?;
        let (resp, keep) = match read_response(conn) {
            Ok((resp, framed)) => {
                let close = resp.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let keep = framed && !close;
                (Ok(resp), keep)
            }
            Err(e) => (Err(e), false),
        };
        if !keep {
            self.conn = None;
        }
        resp
    }
}

/// Reads one response: the head, then exactly its body; whether its end was framed (a length or chunks, not the end
/// of the connection).
fn read_response(conn: &mut BufReader<TcpStream>) -> std::io::Result<(Resp, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let resp = Resp { status, headers, body: Vec::new() };
    let chunked = resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    let mut framed = true;
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            if n == 0 {
                // trailers, up to the empty line
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + n + 2, 0);
            conn.read_exact(&mut body[start..])?;
            body.truncate(start + n);
        }
    } else if let Some(n) = resp.header("content-length") {
        let n: usize = n.parse().map_err(|_| bad("content length"))?;
        body.resize(n, 0);
        conn.read_exact(&mut body)?;
    } else if !(resp.status == 204 || resp.status == 304 || (100..200).contains(&resp.status)) {
        // no length: the body ends with the connection
        conn.read_to_end(&mut body)?;
        framed = false;
    }
    Ok((Resp { body, ..resp }, framed))
}
