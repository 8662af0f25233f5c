//! What the store keeps outside its own file, so that someone who can write the SQLite file
//! (a stolen backup, an administrator) without also rewriting these is detected:
//!
//! - the **audit sink**, an append-only JSON-lines file (default: beside the store,
//!   `<store>.audit.jsonl`), one line per entry written while the store is locked — failed
//!   unlocks, which cannot be MAC'd with the KBPK they failed to unlock:
//!   `{"format":"keymgmt-audit-sink/1","store":ID,"seq":N,"time":…,"event":…,"outcome":…,"detail":…,"hash":…}`;
//!   optionally also the system log (`/dev/log`, facility `auth`);
//! - the **witness** (default `<store>.witness`), rewritten at every sealing of the audit head:
//!   `{"format":"keymgmt-witness/1","store":ID,"seq":N,"hash":H,"keys":D,"mac":M}` with
//!   `M = HMAC-SHA256(audit key, "witness" ‖ ID ‖ N ‖ H ‖ D)`; a store whose sealed head is older
//!   than the witness's, or that does not hold the witnessed entry, was rolled back.
//!
//! `ID` is the store's random identifier (meta row `store_id`, MAC'd), so that one sink can serve
//! several stores. Neither file holds a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, Head};
use crate::error::{Error, Result};
use crate::secrets::hmac;

const SINK_FORMAT: &str = "keymgmt-audit-sink/1";
const WITNESS_FORMAT: &str = "keymgmt-witness/1";

/// Where the store's anchors outside its file are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outside {
    /// The audit sink (JSON lines, append-only).
    pub sink: PathBuf,
    /// The witness of the audit head.
    pub witness: PathBuf,
    /// Also send failed unlocks to the system log (`/dev/log`) when it exists.
    pub syslog: bool,
}

impl Outside {
    /// The defaults beside `store`: `<store>.audit.jsonl` and `<store>.witness`; no system log.
    pub fn beside(store: &Path) -> Outside {
        let with = |suffix: &str| {
            let mut s = store.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        Outside { sink: with(".audit.jsonl"), witness: with(".witness"), syslog: false }
    }
}

/// Largest audit sink read back (one line per failed unlock; a sink this large is refused, not read).
const MAX_SINK_FILE: u64 = 64 * 1024 * 1024;
/// Largest witness file read (one short line).
const MAX_WITNESS_FILE: u64 = 64 * 1024;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// A sink or witness that cannot be read: not a regular file (`/dev/zero`, a FIFO) or larger than its limit is bad
/// input (exit 2, the message names the file and the limit), as for the other files given on the command line;
/// other failures are I/O errors.
fn read_failed(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::FileTooLarge => Error::InvalidInput(e.to_string()),
        _ => io(path)(e),
    }
}

#[derive(Serialize, Deserialize)]
struct SinkLine {
    format: String,
    store: String,
    seq: i64,
    time: String,
    event: String,
    outcome: String,
    detail: String,
    hash: String,
}

/// Appends `entry` to the sink file (created `0600`), one JSON line.
pub(crate) fn sink_append(path: &Path, store: &str, e: &AuditEntry) -> Result<()> {
    let line = SinkLine {
        format: SINK_FORMAT.into(),
        store: store.into(),
        seq: e.seq,
        time: e.time.clone(),
        event: e.event.clone(),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
        hash: e.hash.clone(),
    };
    let mut text = serde_json::to_string(&line).map_err(|e| Error::Integrity(format!("audit sink line: {e}")))?;
    text.push('\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))?;
    f.sync_data().map_err(io(path))
}

/// The sink's entries for store `store` (none if the file does not exist), and the number of
/// lines that are not sink lines. Lines with sequence number 0 (unlocks refused with the right
/// KBPK: rollback, tampering) record no entry of the log and are left out.
pub(crate) fn sink_read(path: &Path, store: &str) -> Result<(Vec<AuditEntry>, usize)> {
    let text = match card_core::read_limited_string(path, MAX_SINK_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(read_failed(path, e)),
    };
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<SinkLine>(line) {
            Ok(l) if l.format == SINK_FORMAT => {
                if l.store == store && l.seq > 0 {
                    out.push(AuditEntry {
                        seq: l.seq,
                        time: l.time,
                        event: l.event,
                        outcome: l.outcome,
                        detail: l.detail,
                        hash: l.hash,
                    });
                }
            }
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// Best effort: one line to the system log (`/dev/log`, facility auth, severity warning).
/// No secret goes there: event, outcome, store id, sequence number and the reason's text.
pub(crate) fn syslog(store: &str, e: &AuditEntry) {
    #[cfg(unix)]
    {
        let dev = Path::new("/dev/log");
        if !dev.exists() {
            return;
        }
        let msg = format!(
            "<36>keymgmt[{}]: store {store} audit entry {}: {} {} {}",
            std::process::id(),
            e.seq,
            e.event,
            e.outcome,
            e.detail
        );
        if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
            let _ = sock.send_to(msg.as_bytes(), dev);
        }
    }
    #[cfg(not(unix))]
    let _ = (store, e);
}

#[derive(Serialize, Deserialize)]
struct WitnessFile {
    format: String,
    store: String,
    seq: i64,
    hash: String,
    keys: String,
    mac: String,
}

fn witness_mac(audit_key: &[u8], store: &str, head: &Head) -> String {
    hex::encode_upper(hmac(
        audit_key,
        &[b"witness", store.as_bytes(), &head.seq.to_be_bytes(), head.hash.as_bytes(), head.keys.as_bytes()],
    ))
}

/// Writes the witness of `head` (a temporary file renamed over the old one).
pub(crate) fn witness_write(path: &Path, audit_key: &[u8], store: &str, head: &Head) -> Result<()> {
    let w = WitnessFile {
        format: WITNESS_FORMAT.into(),
        store: store.into(),
        seq: head.seq,
        hash: head.hash.clone(),
        keys: head.keys.clone(),
        mac: witness_mac(audit_key, store, head),
    };
    let mut text = serde_json::to_string(&w).map_err(|e| Error::Integrity(format!("witness: {e}")))?;
    text.push('\n');
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        f.sync_data().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The store id and head the witness at `path` has seen, authenticated (`None` if there is no
/// witness file).
pub(crate) fn witness_read(path: &Path, audit_key: &[u8]) -> Result<Option<(String, Head)>> {
    let text = match card_core::read_limited_string(path, MAX_WITNESS_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_failed(path, e)),
    };
    let shown = path.display();
    let w: WitnessFile = serde_json::from_str(text.trim())
        .ok()
        .filter(|w: &WitnessFile| w.format == WITNESS_FORMAT)
        .ok_or_else(|| Error::Integrity(format!("the witness {shown} is not a keymgmt witness")))?;
    let head = Head { seq: w.seq, hash: w.hash, keys: w.keys };
    if !card_core::crypto::ct_eq(witness_mac(audit_key, &w.store, &head).as_bytes(), w.mac.as_bytes()) {
        return Err(Error::Integrity(format!(
            "the witness {shown} was changed, or was not written with this store's KBPK"
        )));
    }
    Ok(Some((w.store, head)))
}
