//! The revocation list: a text file of certificate serials in hex, one a line, `#` comments; colons and spaces
//! inside a serial are ignored, leading zeros too (`00:10:01` = `1001`). Reloaded without restart: at SIGHUP,
//! and when the file's modification time changes (checked every second). A list that does not parse at a reload
//! is refused and the previous one kept (said on stderr).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

/// The list could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a hex serial.
    #[error("{path}:{line}:1: not a certificate serial in hex: {text:?}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The line (at most 40 characters).
        text: String,
    },
}

/// Parses the list's text.
pub fn parse(text: &str, shown: &str) -> Result<HashSet<String>, RevocationError> {
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let hex: String = body.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
        if hex.len() > 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RevocationError::Line {
                path: shown.to_string(),
                line: i + 1,
                text: line.chars().take(40).collect(),
            });
        }
        let upper = hex.to_ascii_uppercase();
        let trimmed = upper.trim_start_matches('0');
        out.insert(if trimmed.is_empty() { "0".to_string() } else { trimmed.to_string() });
    }
    Ok(out)
}

struct Loaded {
    serials: HashSet<String>,
    mtime: Option<SystemTime>,
}

/// The revocation list in memory, with where it comes from.
pub struct Revocations {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<HashSet<String>, RevocationError> {
    let shown = path.display().to_string();
    let text = card_core::read_limited_string(path, 64 * 1024 * 1024)
        .map_err(|source| RevocationError::Read { path: shown.clone(), source })?;
    parse(&text, &shown)
}

impl Revocations {
    /// Loads `path` (none: nothing is revoked).
    pub fn load(path: Option<&Path>) -> Result<Revocations, RevocationError> {
        let (serials, m) = match path {
            Some(p) => (read(p)?, mtime(p)),
            None => (HashSet::new(), None),
        };
        Ok(Revocations { path: path.map(Path::to_path_buf), loaded: RwLock::new(Loaded { serials, mtime: m }) })
    }

    /// Whether `serial` (normalized, [`super::tls::normalize_serial`]) is revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        match self.loaded.read() {
            Ok(l) => l.serials.contains(serial),
            // a writer panicked mid-reload: refuse rather than serve on a list we cannot read
            Err(_) => true,
        }
    }

    /// Number of serials held.
    pub fn len(&self) -> usize {
        self.loaded.read().map(|l| l.serials.len()).unwrap_or(0)
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reloads the file if `force` or its modification time changed. `Ok(Some(n))`: reloaded, `n` serials;
    /// `Ok(None)`: unchanged; `Err`: the file is bad, the previous list is kept.
    pub fn reload(&self, force: bool) -> Result<Option<usize>, RevocationError> {
        let Some(path) = &self.path else { return Ok(None) };
        let now = mtime(path);
        let changed = self.loaded.read().map(|l| l.mtime != now).unwrap_or(true);
        if !force && !changed {
            return Ok(None);
        }
        let serials = match read(path) {
            Ok(s) => s,
            Err(e) => {
                // do not try again until the file changes again
                if let Ok(mut l) = self.loaded.write() {
                    l.mtime = now;
                }
                return Err(e);
            }
        };
        let n = serials.len();
        if let Ok(mut l) = self.loaded.write() {
            *l = Loaded { serials, mtime: now };
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn parses_serials_and_names_bad_lines() {
        let s = super::parse("# revoked\n00:10:01\n  ab0c  # lost at the counter\n\n", "r.txt").unwrap();
        assert!(s.contains("1001") && s.contains("AB0C") && s.len() == 2);
        let e = super::parse("1001\nnot-hex\n", "r.txt").unwrap_err().to_string();
        assert!(e.starts_with("r.txt:2:1:"), "{e}");
    }
}
