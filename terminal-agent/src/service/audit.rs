//! The audit log: one JSON line per operation — time, origin, operation, reader, card id, result, national code.
//! No PIN, no key, no token and no holder data ever enter it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audited operation.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 UTC time.
    pub time: String,
    /// The request's Origin (or `-` for none).
    pub origin: &'a str,
    /// The operation, e.g. `read-basic`, `pin-verify`.
    pub operation: &'a str,
    /// The reader's name, when the operation had one.
    pub reader: Option<&'a str>,
    /// The card identifier (hex), when known.
    pub card_id: Option<&'a str>,
    /// `ok` or `error`.
    pub result: &'a str,
    /// The error kind the client was told (`no_photo`, `pin_refused` …), for an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The national code the client was told (0 for success; −2203 for withheld holder data).
    pub code: i32,
}

/// Where audit lines go.
pub struct AuditLog {
    file: Option<Mutex<File>>,
}

impl AuditLog {
    /// Appends to `path` (created if absent, with its directory, readable by owner and group only); none: lines
    /// go to stderr.
    pub fn open(path: Option<&Path>) -> std::io::Result<AuditLog> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                    std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
                }
                Some(Mutex::new(OpenOptions::new().create(true).append(true).mode(0o640).open(p)?))
            }
            None => None,
        };
        Ok(AuditLog { file })
    }

    /// Writes one line; a failing audit log is reported on stderr (the operation has happened already).
    pub fn record(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else { return };
        line.push('\n');
        match &self.file {
            Some(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                    eprintln!("terminal-agent: cannot write the audit log: {e}");
                }
            }
            None => eprint!("audit {line}"),
        }
    }
}

/// The time now, RFC 3339 UTC to the millisecond.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
