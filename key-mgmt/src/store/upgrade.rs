//! The upgrade of a store written by the previous release (`keymgmt-store/1`: audit entries
//! hash-chained without MACs, head `seq|hash|mac`) to `keymgmt-store/2`, at its first unlock.
//!
//! The store is first checked as format 1 would have: the chain, the head's MAC, the head in
//! the chain, the key rows against their digest. Only then does every entry get its MAC, the
//! store an id, and the head its format 2 form; the upgrade itself is an audit entry. A store
//! that fails the check is not upgraded (integrity failure): blessing it with MACs would hide
//! the tampering.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use crate::audit;
use crate::error::{Error, Result};
use crate::secrets::{hmac, StoreKeys};

/// The format this module upgrades from.
pub(super) const FORMAT_V1: &str = "keymgmt-store/1";

fn head_mac_v1(audit_key: &[u8], seq: i64, hash: &str) -> String {
    hex::encode_upper(hmac(audit_key, &[b"audit-head", &seq.to_be_bytes(), hash.as_bytes()]))
}

fn refused(why: String) -> Error {
    Error::Integrity(format!("the store (format {FORMAT_V1}) is not upgraded: {why}"))
}

/// Checks a format 1 store and upgrades it in one transaction; returns the upgrade's audit detail.
/// `keys_digest_ok` says whether the key rows match their stored digest.
pub(super) fn run(
    conn: &Connection,
    keys: &StoreKeys,
    store_id: &str,
    store_id_row: &str,
    keys_digest_ok: bool,
) -> Result<serde_json::Value> {
    let ak = &keys.audit_key[..];
    let tx = conn.unchecked_transaction()?;
    audit::add_mac_column(&tx)?;
    let raw = audit::raw_entries(&tx)?;
    let hashes = audit::check_chain(&raw).map_err(|e| refused(e.to_string()))?;
    let head: Option<String> =
        tx.query_row("SELECT v FROM meta WHERE k = 'audit_head'", [], |r| r.get(0)).optional()?;
    let head = head.ok_or_else(|| refused("the sealed audit head is missing".into()))?;
    let parts: Vec<&str> = head.split('|').collect();
    let (seq, hash) = match parts.as_slice() {
        [s, h, m] => match s.parse::<i64>() {
            Ok(s) if card_core::crypto::ct_eq(head_mac_v1(ak, s, h).as_bytes(), m.as_bytes()) => (s, *h),
            _ => return Err(refused("the sealed audit head was changed".into())),
        },
        _ => return Err(refused("the sealed audit head is not in format 1".into())),
    };
    if seq > raw.len() as i64 || (seq > 0 && hashes.get((seq - 1) as usize).is_none_or(|h| h != hash)) {
        return Err(refused(format!("the audit log was cut or changed at its sealed head (entry {seq})")));
    }
    // Format 1 sealed entries written while locked (failed unlocks) at the next unlock: accept
    // those, and only those, after the head.
    if let Some(r) = raw.iter().find(|r| r.entry.seq > seq && r.entry.outcome != "fail") {
        return Err(refused(format!(
            "entry {} ({} {}) follows the sealed head but is not a failure written while locked",
            r.entry.seq, r.entry.event, r.entry.outcome
        )));
    }
    if !keys_digest_ok {
        return Err(refused("the set of key rows was changed (a row removed, added or replayed)".into()));
    }
    for r in &raw {
        audit::set_mac(&tx, ak, r.entry.seq, &r.entry.hash)?;
    }
    tx.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('store_id', ?1)", params![store_id_row])?;
    tx.execute("UPDATE meta SET v = ?1 WHERE k = 'format'", params![super::FORMAT])?;
    let detail = json!({
        "from": FORMAT_V1,
        "to": super::FORMAT,
        "entries": raw.len(),
        "sealed_then": seq,
        "store_id": store_id,
    });
    audit::append(&tx, "upgrade", "ok", &detail, Some(ak))?;
    let digest: String =
        tx.query_row("SELECT v FROM meta WHERE k = 'keys_digest'", [], |r| r.get(0)).optional()?.unwrap_or_default();
    audit::seal_first(&tx, ak, digest)?;
    tx.commit()?;
    Ok(detail)
}
