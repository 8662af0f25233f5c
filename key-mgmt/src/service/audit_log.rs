//! The key service's audit log: one JSON line per request (and per refused TLS handshake), hash-chained, one
//! file per replica; its head in `<log>.head`.
//!
//! A line is a JSON object with sorted keys, written compactly (serde_json's canonical form). Each carries `seq`
//! (1, 2, …), `prev` (the previous line's `hash`; 64 zeros for the first) and `hash` = hex SHA-256 of the
//! canonical line **without** its `hash` key. `<log>.head` holds `seq hash` of the last line written,
//! overwritten in place after every line. [`verify`] (`keymgmt audit verify-log FILE`) recomputes the chain:
//! an edited, removed, inserted or reordered line breaks it; a cut tail is found by the head file, which is ahead
//! of the log.
//!
//! Not MAC'd (decided): the log is checked by auditors who hold no key, and each replica — which holds the
//! KBPK-derived keys — would be able to forge a MAC anyway. Against someone who can rewrite the whole file and
//! its head consistently, the answer is shipping: lines go to a collector off the host as they are written
//! (README "Key service").
//!
//! Never in a line: a key, a cryptogram, a random, a PIN, a Step1 string. The fields: `time`, `event`
//! (`answer` | `tls`), `terminal`, `cert_serial`, `card_id`, `region`, `operation`, `key`, `version`,
//! `result` (`ok` | `refused`), `status` (HTTP), `code` (national), `message`, `client`, `insecure`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `prev` of the first line.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one line says (the writer adds `seq`, `prev`, `hash` and `time`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Record {
    /// `answer` (a request) or `tls` (a connection refused in the handshake).
    pub event: &'static str,
    /// The terminal (certificate CN, or the request's over `--insecure-loopback`).
    pub terminal: Option<String>,
    /// The client certificate's serial.
    pub cert_serial: Option<String>,
    /// The card identifier (EF05 tag 01, hex) of the Step1.
    pub card_id: Option<String>,
    /// The card's region.
    pub region: Option<String>,
    /// The operation asked.
    pub operation: Option<String>,
    /// The key (inventory name) used or asked for.
    pub key: Option<String>,
    /// Its version.
    pub version: Option<u8>,
    /// `ok` or `refused`.
    pub result: &'static str,
    /// HTTP status (none for a TLS line).
    pub status: Option<u16>,
    /// National code (0 = success).
    pub code: i32,
    /// Why, in words (no secret).
    pub message: Option<String>,
    /// The client's address.
    pub client: String,
    /// Plain HTTP on loopback.
    pub insecure: bool,
}

/// The head file's path for a log.
pub fn head_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".head");
    PathBuf::from(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

fn hash_of(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// `seq hash`, padded: the head file is overwritten in place, always the same length.
fn head_text(seq: u64, hash: &str) -> String {
    format!("{seq:020} {hash}\n")
}

fn parse_head(text: &str) -> Option<(u64, String)> {
    let (seq, hash) = text.trim().split_once(' ')?;
    let hash = hash.trim();
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq.parse().ok()?, hash.to_string()))
}

struct State {
    log: File,
    head: File,
    seq: u64,
    prev: String,
}

/// The writer of one replica's log.
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<State>,
}

/// The last complete line of `file` (reads at most the last 1 MiB).
fn last_line(file: &mut File, path: &Path) -> Result<Option<String>> {
    let len = file.seek(SeekFrom::End(0)).map_err(io(path))?;
    let start = len.saturating_sub(1024 * 1024);
    file.seek(SeekFrom::Start(start)).map_err(io(path))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).map_err(|_| Error::Integrity(format!("{}: not UTF-8 text", path.display())))?;
    Ok(tail.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
}

impl AuditLog {
    /// Opens (or creates) the log at `path` and its head; an existing log continues its chain, after checking that
    /// its last line is the one the head names (else: integrity failure, the log was cut or changed — move it and
    /// its head aside to start a new one).
    pub fn open(path: &Path) -> Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut log = OpenOptions::new().create(true).append(true).read(true).open(path).map_err(io(path))?;
        let head_path = head_path(path);
        let head_existing = std::fs::read_to_string(&head_path).ok();
        let (seq, prev) = match last_line(&mut log, path)? {
            None => {
                if let Some((seq, _)) = head_existing.as_deref().and_then(parse_head).filter(|(s, _)| *s > 0) {
                    return Err(Error::Integrity(format!(
                        "{}: empty, but its head names line {seq}: the log was cut",
                        path.display()
                    )));
                }
                (0, ZERO_HASH.to_string())
            }
            Some(line) => {
                let (seq, hash) = line_seq_hash(&line).ok_or_else(|| {
                    Error::Integrity(format!("{}: the last line is not an audit line", path.display()))
                })?;
                match head_existing.as_deref().and_then(parse_head) {
                    Some((s, h)) if s == seq && h == hash => {}
                    Some((s, _)) => {
                        return Err(Error::Integrity(format!(
                            "{}: ends at line {seq} but its head names line {s}: the log was cut or changed",
                            path.display()
                        )))
                    }
                    None => {
                        return Err(Error::Integrity(format!(
                            "{}: has lines but no head ({}): the head was removed",
                            path.display(),
                            head_path.display()
                        )))
                    }
                }
                (seq, hash)
            }
        };
        let head =
            OpenOptions::new().create(true).write(true).truncate(false).open(&head_path).map_err(io(&head_path))?;
        let log_w = OpenOptions::new().append(true).open(path).map_err(io(path))?;
        drop(log);
        Ok(AuditLog { path: path.to_path_buf(), state: Mutex::new(State { log: log_w, head, seq, prev }) })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record`; an error means the line may not be written (the caller refuses to answer).
    pub fn write(&self, record: &Record) -> Result<()> {
        let mut value = serde_json::to_value(record).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let Some(obj) = value.as_object_mut() else { return Err(Error::InvalidInput("audit record".into())) };
        obj.retain(|_, v| !v.is_null());
        obj.insert("time".into(), Value::String(crate::audit::now()));
        let mut st = self.state.lock().map_err(|_| Error::Integrity("audit log writer poisoned".into()))?;
        let seq = st.seq + 1;
        obj.insert("seq".into(), Value::from(seq));
        obj.insert("prev".into(), Value::String(st.prev.clone()));
        let canonical = canonical(obj);
        let hash = hash_of(&canonical);
        obj.insert("hash".into(), Value::String(hash.clone()));
        let mut line = canonical_of_map(obj);
        line.push('\n');
        st.log.write_all(line.as_bytes()).map_err(io(&self.path))?;
        st.head.write_all_at(head_text(seq, &hash).as_bytes(), 0).map_err(io(&self.path))?;
        st.seq = seq;
        st.prev = hash;
        Ok(())
    }
}

fn canonical_of_map(obj: &Map<String, Value>) -> String {
    // serde_json's Map is sorted by key (no `preserve_order`): this is the canonical form
    Value::Object(obj.clone()).to_string()
}

fn canonical(obj: &Map<String, Value>) -> String {
    canonical_of_map(obj)
}

fn line_seq_hash(line: &str) -> Option<(u64, String)> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some((v.get("seq")?.as_u64()?, v.get("hash")?.as_str()?.to_string()))
}

/// What [`verify`] found.
#[derive(Clone, Debug, Serialize)]
pub struct LogVerification {
    /// Lines checked.
    pub lines: u64,
    /// The last line's hash.
    pub head: String,
    /// Whether a head file was there and matched.
    pub head_checked: bool,
}

/// Checks the chain of `log` and its head file (`head`, default `<log>.head`); an integrity error names the
/// first line that breaks it.
pub fn verify(log: &Path, head: Option<&Path>) -> Result<LogVerification> {
    let file = File::open(log).map_err(io(log))?;
    let broken = |n: u64, why: &str| Error::Integrity(format!("{}:{n}: {why}", log.display()));
    let mut prev = ZERO_HASH.to_string();
    let mut seq = 0u64;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|_| broken(n, "not UTF-8 text"))?;
        let mut obj = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => o,
            _ => return Err(broken(n, "not a JSON object")),
        };
        let Some(Value::String(hash)) = obj.remove("hash") else { return Err(broken(n, "no hash")) };
        if obj.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(broken(n, "its prev is not the previous line's hash: a line was removed, inserted or moved"));
        }
        if obj.get("seq").and_then(Value::as_u64) != Some(seq + 1) {
            return Err(broken(n, "its seq does not follow the previous line's"));
        }
        if hash_of(&canonical(&obj)) != hash {
            return Err(broken(n, "its hash does not match its content: the line was edited"));
        }
        seq += 1;
        prev = hash;
    }
    let head_file = head.map(Path::to_path_buf).unwrap_or_else(|| head_path(log));
    let text = std::fs::read_to_string(&head_file).map_err(|source| {
        Error::Integrity(format!("{}: {source}: without the head, a cut tail cannot be found", head_file.display()))
    })?;
    let (hseq, hhash) = parse_head(&text)
        .ok_or_else(|| Error::Integrity(format!("{}: not a head (`seq hash`)", head_file.display())))?;
    if hseq != seq || (seq > 0 && hhash != prev) {
        return Err(Error::Integrity(format!(
            "{}: the head names line {hseq}, the log ends at line {seq}: the log was cut (or the head changed)",
            log.display()
        )));
    }
    Ok(LogVerification { lines: seq, head: prev, head_checked: true })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(n: i32) -> Record {
        Record { event: "answer", result: "ok", code: n, client: "127.0.0.1:1".into(), ..Record::default() }
    }

    #[test]
    fn chain_verifies_and_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let log = AuditLog::open(&p).unwrap();
        for i in 0..5 {
            log.write(&rec(-i)).unwrap();
        }
        drop(log);
        assert_eq!(verify(&p, None).unwrap().lines, 5);
        // reopened: the chain goes on
        AuditLog::open(&p).unwrap().write(&rec(-9)).unwrap();
        assert_eq!(verify(&p, None).unwrap().lines, 6);
        let text = std::fs::read_to_string(&p).unwrap();
        // an edit
        std::fs::write(&p, text.replacen("\"code\":-2", "\"code\":0", 1)).unwrap();
        assert!(verify(&p, None).unwrap_err().to_string().contains(":3: its hash"));
        // a cut tail
        let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        std::fs::write(&p, &cut).unwrap();
        assert!(verify(&p, None).unwrap_err().to_string().contains("was cut"));
        assert!(AuditLog::open(&p).is_err(), "a cut log is not continued");
        // a removed line
        let gap: String = text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| format!("{l}\n")).collect();
        std::fs::write(&p, gap).unwrap();
        assert!(verify(&p, None).unwrap_err().to_string().contains(":2: its prev"));
    }
}
