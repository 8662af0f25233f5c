//! The audit log: every event, failures included, in a SHA-256 hash chain whose entries each
//! carry a MAC under a key derived from the KBPK.
//!
//! Entry `n` has `hash_n = SHA-256(hash_{n-1} ‖ n ‖ time ‖ event ‖ outcome ‖ detail)` (each field
//! length-prefixed; `hash_0` = 32 zero bytes) and `mac_n = HMAC-SHA256(audit key, "audit-entry" ‖ n ‖
//! hash_n)` (the audit key is derived from the KBPK, [`crate::secrets`]). A changed, removed or
//! reordered entry breaks the chain; an entry added by someone without the KBPK has no valid MAC,
//! even with a correctly recomputed hash.
//!
//! A cut tail breaks neither, so the store keeps the **head** — the sequence number and hash of the
//! last entry, and the digest of the key rows at that point — in a meta row MAC'd the same way,
//! updated ("sealed") by every operation on the unlocked store. A missing head on a store with
//! entries, or a head that is no longer in the chain, is never sealed over: `audit verify` keeps
//! failing.
//!
//! Entries written while the store is locked (failed unlocks) cannot be MAC'd — the KBPK is not
//! there. They are also written to the audit sink outside the store ([`crate::outside`]); the next
//! successful unlock MACs those the sink confirms. An entry without a MAC that the sink does not
//! confirm was added outside `keymgmt`.

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
    /// Entries after the sealed head (written while the store was locked, confirmed by the sink).
    pub unsealed: i64,
    /// Hash of the last entry, hex.
    pub head: String,
    /// Entries of this store found in the audit sink (all present in the log).
    pub sink_entries: usize,
    /// The audit entry the witness has seen (`None`: no witness file).
    pub witness: Option<i64>,
}

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL,
    detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, mac TEXT NOT NULL DEFAULT '')";

/// Adds the `mac` column to an audit table made by format 1 (idempotent).
pub(crate) fn add_mac_column(conn: &Connection) -> Result<()> {
    let has: i64 =
        conn.query_row("SELECT count(*) FROM pragma_table_info('audit') WHERE name = 'mac'", [], |r| r.get(0))?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

pub(crate) fn entry_hash(prev: &[u8], seq: i64, time: &str, event: &str, outcome: &str, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    for f in [time, event, outcome, detail] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().into()
}

/// `HMAC(audit key, "audit-entry" ‖ seq ‖ hash)`, hex (the hash as stored, uppercase hex text).
pub(crate) fn entry_mac(audit_key: &[u8], seq: i64, hash: &str) -> String {
    hex::encode_upper(hmac(audit_key, &[b"audit-entry", &seq.to_be_bytes(), hash.to_ascii_uppercase().as_bytes()]))
}

/// Current time, RFC 3339 UTC, seconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Appends an entry (inside the caller's transaction if any), MAC'd when `audit_key` is given
/// (the store is unlocked). Returns the entry, for the audit sink.
pub(crate) fn append(
    conn: &Connection,
    event: &str,
    outcome: &str,
    detail: &serde_json::Value,
    audit_key: Option<&[u8]>,
) -> Result<AuditEntry> {
    let last: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, hex::decode(h).map_err(|_| Error::Integrity("audit entry hash is not hex".into()))?),
        None => (1, vec![0u8; 32]),
    };
    let time = now();
    let detail = detail.to_string();
    let hash = hex::encode_upper(entry_hash(&prev, seq, &time, event, outcome, &detail));
    let mac = audit_key.map(|k| entry_mac(k, seq, &hash)).unwrap_or_default();
    conn.execute(
        "INSERT INTO audit (seq, time, event, outcome, detail, prev, hash, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, time, event, outcome, detail, hex::encode_upper(&prev), hash, mac],
    )?;
    Ok(AuditEntry { seq, time, event: event.into(), outcome: outcome.into(), detail, hash })
}

/// Gives an entry written while the store was locked its MAC (the sink confirmed it).
pub(crate) fn set_mac(conn: &Connection, audit_key: &[u8], seq: i64, hash: &str) -> Result<()> {
    conn.execute("UPDATE audit SET mac = ?1 WHERE seq = ?2", params![entry_mac(audit_key, seq, hash), seq])?;
    Ok(())
}

/// The sealed head: the last entry when it was sealed, and the digest of the key rows then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    /// `keys_digest` of the meta table when sealed (empty for a store without keys).
    pub(crate) keys: String,
}

/// The head row as found.
pub(crate) enum HeadState {
    /// No head row.
    Missing,
    /// Not four fields, or its MAC does not match.
    Forged,
    /// Authentic.
    Sealed(Head),
}

fn head_mac(audit_key: &[u8], head: &Head) -> String {
    hex::encode_upper(hmac(
        audit_key,
        &[b"audit-head/2", &head.seq.to_be_bytes(), head.hash.as_bytes(), head.keys.as_bytes()],
    ))
}

/// Reads and authenticates the head row (`seq|hash|keys digest|mac`, format 2).
pub(crate) fn read_head(conn: &Connection, audit_key: &[u8]) -> Result<HeadState> {
    let v: Option<String> = conn.query_row("SELECT v FROM meta WHERE k = 'audit_head'", [], |r| r.get(0)).optional()?;
    let Some(v) = v else { return Ok(HeadState::Missing) };
    let parts: Vec<&str> = v.split('|').collect();
    let [seq, hash, keys, mac] = parts.as_slice() else { return Ok(HeadState::Forged) };
    let Ok(seq) = seq.parse::<i64>() else { return Ok(HeadState::Forged) };
    let head = Head { seq, hash: hash.to_string(), keys: keys.to_string() };
    if card_core::crypto::ct_eq(head_mac(audit_key, &head).as_bytes(), mac.as_bytes()) {
        Ok(HeadState::Sealed(head))
    } else {
        Ok(HeadState::Forged)
    }
}

fn last_entry(conn: &Connection) -> Result<Option<(i64, String)>> {
    Ok(conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

fn hash_at(conn: &Connection, seq: i64) -> Result<Option<String>> {
    Ok(conn.query_row("SELECT hash FROM audit WHERE seq = ?1", params![seq], |r| r.get(0)).optional()?)
}

/// The authentic head if it is still in the chain; `None` if missing, forged, or cut/edited away.
pub(crate) fn consistent_head(conn: &Connection, audit_key: &[u8]) -> Result<Option<Head>> {
    let HeadState::Sealed(head) = read_head(conn, audit_key)? else { return Ok(None) };
    if head.seq == 0 || hash_at(conn, head.seq)?.is_some_and(|h| h.eq_ignore_ascii_case(&head.hash)) {
        Ok(Some(head))
    } else {
        Ok(None)
    }
}

fn write_head(conn: &Connection, audit_key: &[u8], keys: String) -> Result<Head> {
    let (seq, hash) = last_entry(conn)?.unwrap_or((0, hex::encode_upper([0u8; 32])));
    let head = Head { seq, hash, keys };
    let v = format!("{}|{}|{}|{}", head.seq, head.hash, head.keys, head_mac(audit_key, &head));
    conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('audit_head', ?1)", params![v])?;
    Ok(head)
}

/// Seals the current head. If the previous head is missing, forged, or no longer in the chain
/// (the log was cut or edited), nothing is sealed and the evidence stays: `audit verify` keeps
/// failing until the log is restored. The digest of the key rows is carried over from the
/// previous head unless the caller just changed them (`new_keys`, computed under the KBPK): a
/// digest found in the meta table is never taken on trust. Returns the new head if sealed.
pub(crate) fn seal(conn: &Connection, audit_key: &[u8], new_keys: Option<String>) -> Result<Option<Head>> {
    let Some(previous) = consistent_head(conn, audit_key)? else { return Ok(None) };
    write_head(conn, audit_key, new_keys.unwrap_or(previous.keys)).map(Some)
}

/// Seals a log that has no format 2 head yet (`init`, the upgrade from format 1), with the
/// (checked) digest of the key rows.
pub(crate) fn seal_first(conn: &Connection, audit_key: &[u8], keys: String) -> Result<Head> {
    write_head(conn, audit_key, keys)
}

/// Every entry, in order.
pub(crate) fn entries(conn: &Connection) -> Result<Vec<AuditEntry>> {
    Ok(raw_entries(conn)?.into_iter().map(|r| r.entry).collect())
}

/// An entry with what the chain and the MAC need.
pub(crate) struct RawEntry {
    pub(crate) entry: AuditEntry,
    pub(crate) prev: String,
    pub(crate) mac: String,
}

pub(crate) fn raw_entries(conn: &Connection) -> Result<Vec<RawEntry>> {
    let mut st = conn.prepare("SELECT seq, time, event, outcome, detail, prev, hash, mac FROM audit ORDER BY seq")?;
    let rows = st.query_map([], |r| {
        Ok(RawEntry {
            entry: AuditEntry {
                seq: r.get(0)?,
                time: r.get(1)?,
                event: r.get(2)?,
                outcome: r.get(3)?,
                detail: r.get(4)?,
                hash: r.get(6)?,
            },
            prev: r.get(5)?,
            mac: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Checks the hash chain (numbering, links, hashes); returns the recomputed hashes, uppercase hex.
pub(crate) fn check_chain(raw: &[RawEntry]) -> Result<Vec<String>> {
    let mut prev = vec![0u8; 32];
    let mut hashes = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let e = &r.entry;
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return Err(Error::Integrity(format!("audit: entry {expected_seq} is missing (next is {})", e.seq)));
        }
        if !r.prev.eq_ignore_ascii_case(&hex::encode(&prev)) {
            return Err(Error::Integrity(format!(
                "audit: entry {} does not follow entry {} (removed or reordered)",
                e.seq,
                e.seq - 1
            )));
        }
        let h = entry_hash(&prev, e.seq, &e.time, &e.event, &e.outcome, &e.detail);
        if !e.hash.eq_ignore_ascii_case(&hex::encode(h)) {
            return Err(Error::Integrity(format!("audit: entry {} was changed", e.seq)));
        }
        prev = h.to_vec();
        hashes.push(hex::encode_upper(h));
    }
    Ok(hashes)
}

/// Verifies the chain, every entry's MAC and the sealed head; `sink` holds the entries the audit
/// sink recorded for this store (each must be in the log). The first problem found is an
/// [`Error::Integrity`].
pub(crate) fn verify(conn: &Connection, audit_key: &[u8], sink: &[AuditEntry]) -> Result<Verification> {
    let raw = raw_entries(conn)?;
    let hashes = check_chain(&raw)?;
    let count = raw.len() as i64;
    // MACs: a wrong one is a forgery; a missing one is allowed only after the head, for an entry
    // the sink confirms (written while locked).
    for r in raw.iter().filter(|r| !r.mac.is_empty()) {
        let e = &r.entry;
        if !card_core::crypto::ct_eq(entry_mac(audit_key, e.seq, &e.hash).as_bytes(), r.mac.as_bytes()) {
            return Err(Error::Integrity(format!(
                "audit: entry {} has a wrong MAC (added or changed without the KBPK)",
                e.seq
            )));
        }
    }
    let head = match read_head(conn, audit_key)? {
        HeadState::Missing if count > 0 => {
            return Err(Error::Integrity("audit: the sealed head is missing (removed outside keymgmt)".into()))
        }
        HeadState::Missing => Head { seq: 0, hash: hex::encode_upper([0u8; 32]), keys: String::new() },
        HeadState::Forged => return Err(Error::Integrity("audit: the sealed head was changed".into())),
        HeadState::Sealed(h) => h,
    };
    if head.seq > count {
        return Err(Error::Integrity(format!(
            "audit: the log was cut: sealed head is entry {}, the log has {count}",
            head.seq
        )));
    }
    if head.seq > 0 && !hashes.get((head.seq - 1) as usize).is_some_and(|h| h.eq_ignore_ascii_case(&head.hash)) {
        return Err(Error::Integrity(format!("audit: entry {} differs from the sealed head", head.seq)));
    }
    for r in &raw {
        let e = &r.entry;
        if r.mac.is_empty() {
            let confirmed = sink.iter().any(|s| s.seq == e.seq && s.hash.eq_ignore_ascii_case(&e.hash));
            if e.seq <= head.seq || !confirmed {
                return Err(Error::Integrity(format!(
                    "audit: entry {} ({} {}) has no MAC and the audit sink does not confirm it: added outside keymgmt",
                    e.seq, e.event, e.outcome
                )));
            }
        } else if e.seq > head.seq {
            return Err(Error::Integrity(format!(
                "audit: the sealed head (entry {}) is older than entry {}: the head was rolled back",
                head.seq, e.seq
            )));
        }
    }
    check_sink(&raw, sink)?;
    Ok(Verification {
        entries: count,
        sealed: head.seq,
        unsealed: count - head.seq,
        head: hashes.last().cloned().unwrap_or_default(),
        sink_entries: sink.len(),
        witness: None,
    })
}

/// The sink's entries that are not in the log (removed, or replaced by another entry).
pub(crate) fn missing_from_log<'a>(raw: &[RawEntry], sink: &'a [AuditEntry]) -> Vec<&'a AuditEntry> {
    sink.iter()
        .filter(|s| !raw.iter().any(|r| r.entry.seq == s.seq && r.entry.hash.eq_ignore_ascii_case(&s.hash)))
        .collect()
}

fn check_sink(raw: &[RawEntry], sink: &[AuditEntry]) -> Result<()> {
    match missing_from_log(raw, sink).first() {
        None => Ok(()),
        Some(m) => Err(Error::Integrity(format!(
            "audit: entry {} ({} {} at {}) is in the audit sink but not in the store: removed outside keymgmt",
            m.seq, m.event, m.outcome, m.time
        ))),
    }
}
