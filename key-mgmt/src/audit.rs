//! The audit log: every event, failures included, in a SHA-256 hash chain.
//!
//! Entry `n` has `hash_n = SHA-256(hash_{n-1} ‖ n ‖ time ‖ event ‖ outcome ‖ detail)` (each field
//! length-prefixed; `hash_0` = 32 zero bytes). A changed, removed or reordered entry breaks
//! the chain. A cut tail does not, so the store keeps the **head** — the sequence number and
//! hash of the last entry — in a meta row authenticated with a key derived from the KBPK,
//! updated ("sealed") by every operation on the unlocked store. Entries written while the store
//! is locked (failed unlocks) are chained at once and sealed by the next successful unlock;
//! [`Verification::unsealed`] counts them.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secrets::hmac;

/// One audit entry. `detail` is JSON text without secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number from 1.
    pub seq: i64,
    /// Time (RFC 3339 UTC).
    pub time: String,
    /// What happened: `init`, `unlock`, `import`, `generate`, `activate`, …
    pub event: String,
    /// `ok` or `fail`.
    pub outcome: String,
    /// Details (names, versions, KCVs, reasons), JSON.
    pub detail: String,
    /// Hash of this entry, hex.
    pub hash: String,
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries in the log.
    pub entries: i64,
    /// Sequence number of the sealed head.
    pub sealed: i64,
    /// Entries after the sealed head (appended while the store was locked).
    pub unsealed: i64,
    /// Hash of the last entry, hex.
    pub head: String,
}

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL,
    detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)";

fn entry_hash(prev: &[u8], seq: i64, time: &str, event: &str, outcome: &str, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    for f in [time, event, outcome, detail] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().into()
}

/// Current time, RFC 3339 UTC, seconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Appends an entry (inside the caller's transaction if any).
pub(crate) fn append(conn: &Connection, event: &str, outcome: &str, detail: &serde_json::Value) -> Result<()> {
    let last: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, hex::decode(h).map_err(|_| Error::Integrity("audit entry hash is not hex".into()))?),
        None => (1, vec![0u8; 32]),
    };
    let time = now();
    let detail = detail.to_string();
    let hash = entry_hash(&prev, seq, &time, event, outcome, &detail);
    conn.execute(
        "INSERT INTO audit (seq, time, event, outcome, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![seq, time, event, outcome, detail, hex::encode_upper(&prev), hex::encode_upper(hash)],
    )?;
    Ok(())
}

fn head_mac(audit_key: &[u8], seq: i64, hash: &str) -> String {
    hex::encode_upper(hmac(audit_key, &[b"audit-head", &seq.to_be_bytes(), hash.as_bytes()]))
}

/// Whether the sealed head (if any) is authentic and still in the chain.
fn head_consistent(conn: &Connection, audit_key: &[u8]) -> Result<bool> {
    let head: Option<String> =
        conn.query_row("SELECT v FROM meta WHERE k = 'audit_head'", [], |r| r.get(0)).optional()?;
    let Some(head) = head else { return Ok(true) };
    let parts: Vec<&str> = head.split('|').collect();
    let [seq, hash, mac] = parts.as_slice() else { return Ok(false) };
    let Ok(seq) = seq.parse::<i64>() else { return Ok(false) };
    if !card_core::crypto::ct_eq(head_mac(audit_key, seq, hash).as_bytes(), mac.as_bytes()) {
        return Ok(false);
    }
    if seq == 0 {
        return Ok(true);
    }
    let at: Option<String> =
        conn.query_row("SELECT hash FROM audit WHERE seq = ?1", params![seq], |r| r.get(0)).optional()?;
    Ok(at.as_deref() == Some(*hash))
}

/// Seals the current head: stores (seq, hash, MAC) in the meta table. If the previous head is
/// no longer authentic or in the chain (the log was cut or edited), the old head is left in
/// place as evidence: `audit verify` keeps failing until the log is restored.
pub(crate) fn seal(conn: &Connection, audit_key: &[u8]) -> Result<()> {
    if !head_consistent(conn, audit_key)? {
        return Ok(());
    }
    let last: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, hash) = last.unwrap_or((0, hex::encode_upper([0u8; 32])));
    let v = format!("{seq}|{hash}|{}", head_mac(audit_key, seq, &hash));
    conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('audit_head', ?1)", params![v])?;
    Ok(())
}

/// Every entry, in order.
pub(crate) fn entries(conn: &Connection) -> Result<Vec<AuditEntry>> {
    let mut st = conn.prepare("SELECT seq, time, event, outcome, detail, hash FROM audit ORDER BY seq")?;
    let rows = st.query_map([], |r| {
        Ok(AuditEntry {
            seq: r.get(0)?,
            time: r.get(1)?,
            event: r.get(2)?,
            outcome: r.get(3)?,
            detail: r.get(4)?,
            hash: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Verifies the chain and the sealed head; the first problem found is an [`Error::Integrity`].
pub(crate) fn verify(conn: &Connection, audit_key: &[u8]) -> Result<Verification> {
    let mut st = conn.prepare("SELECT seq, time, event, outcome, detail, prev, hash FROM audit ORDER BY seq")?;
    let mut rows = st.query([])?;
    let mut prev = vec![0u8; 32];
    let mut expected_seq = 1i64;
    let mut hashes: Vec<String> = Vec::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let (time, event, outcome, detail): (String, String, String, String) =
            (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        let (stored_prev, stored_hash): (String, String) = (r.get(5)?, r.get(6)?);
        if seq != expected_seq {
            return Err(Error::Integrity(format!("audit: entry {expected_seq} is missing (next is {seq})")));
        }
        if !stored_prev.eq_ignore_ascii_case(&hex::encode(&prev)) {
            return Err(Error::Integrity(format!(
                "audit: entry {seq} does not follow entry {} (removed or reordered)",
                seq - 1
            )));
        }
        let h = entry_hash(&prev, seq, &time, &event, &outcome, &detail);
        if !stored_hash.eq_ignore_ascii_case(&hex::encode(h)) {
            return Err(Error::Integrity(format!("audit: entry {seq} was changed")));
        }
        prev = h.to_vec();
        hashes.push(hex::encode_upper(h));
        expected_seq += 1;
    }
    let count = expected_seq - 1;
    let head: Option<String> =
        conn.query_row("SELECT v FROM meta WHERE k = 'audit_head'", [], |r| r.get(0)).optional()?;
    let head = head.ok_or_else(|| Error::Integrity("audit: the sealed head is missing".into()))?;
    let mut parts = head.split('|');
    let (seq, hash, mac) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(h), Some(m), None) => {
            (s.parse::<i64>().map_err(|_| Error::Integrity("audit: bad head".into()))?, h, m)
        }
        _ => return Err(Error::Integrity("audit: bad head".into())),
    };
    if !card_core::crypto::ct_eq(head_mac(audit_key, seq, hash).as_bytes(), mac.as_bytes()) {
        return Err(Error::Integrity("audit: the sealed head was changed".into()));
    }
    if seq > count {
        return Err(Error::Integrity(format!(
            "audit: the log was cut: sealed head is entry {seq}, the log has {count}"
        )));
    }
    if seq > 0 && hashes.get((seq - 1) as usize).map(String::as_str) != Some(hash) {
        return Err(Error::Integrity(format!("audit: entry {seq} differs from the sealed head")));
    }
    Ok(Verification {
        entries: count,
        sealed: seq,
        unsealed: count - seq,
        head: hashes.last().cloned().unwrap_or_default(),
    })
}
