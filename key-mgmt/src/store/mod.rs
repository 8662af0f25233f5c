//! The key store: one SQLite file.
//!
//! - `meta`: format, the store's id, the KBPK's check value and KCV, the passphrase wrap (Argon2id
//!   salt and parameters, the KBPK as a TR-31 block `K1` under the passphrase key), the digest of
//!   the key rows, the sealed audit head;
//! - `keys`: one row per key version — metadata, the key as a TR-31 version `D` block under the
//!   KBPK (empty once destroyed), and an HMAC-SHA256 over all of it under a key derived from
//!   the KBPK, so that a changed row is detected before it is used;
//! - `audit`: the hash-chained, MAC'd log ([`crate::audit`]).
//!
//! Outside the file ([`crate::outside`]): the audit sink (failed unlocks) and the witness of the
//! audit head (against rollback).
//!
//! The KBPK (AES-256) is never stored in clear: it is the XOR of 2 or 3 custodian components
//! given at `init`, and can also be wrapped under a passphrase for daily unlock.

mod keys;
mod ops;
mod transport;
mod upgrade;

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::audit::{self, AuditEntry, HeadState};
use crate::components::{self, Secret};
use crate::error::{Error, Result};
use crate::outside::{self, Outside};
use crate::secrets::{aes_kcv, hmac, passphrase_key, StoreKeys, ARGON2_PARAMS, KBPK_LEN};
use crate::tr31::{self, Exportability, Header, KeyUsage, ModeOfUse, Tr31Algorithm};

pub use ops::{Created, ProfileKeys, Skipped, VersionSelect};

/// Format tag in the `meta` table. Format 1 (the previous release) is upgraded at its first unlock.
const FORMAT: &str = "keymgmt-store/2";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    name TEXT NOT NULL, version INTEGER NOT NULL, region TEXT NOT NULL, level TEXT NOT NULL,
    algorithm TEXT NOT NULL, state TEXT NOT NULL, kcv TEXT NOT NULL, kcv_method TEXT NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL, parent TEXT, ceremony TEXT,
    block TEXT NOT NULL, mac TEXT NOT NULL,
    PRIMARY KEY (name, version, region));
";

/// What `init` reports: each component's KCV and the KBPK's (AES-CMAC KCVs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InitReport {
    /// KCV of each component, in order.
    pub component_kcvs: Vec<String>,
    /// KCV of the KBPK.
    pub kbpk_kcv: String,
    /// Whether the KBPK was also wrapped under a passphrase.
    pub passphrase: bool,
}

/// The key store. Opened locked; most operations need [`KeyStore::unlock_with_passphrase`] or
/// [`KeyStore::unlock_with_components`] first (else [`Error::Locked`]).
pub struct KeyStore {
    conn: Connection,
    path: PathBuf,
    keys: Option<StoreKeys>,
    outside: Outside,
    warnings: Vec<String>,
}

fn store_id_mac(audit_key: &[u8], id: &str) -> String {
    hex::encode_upper(hmac(audit_key, &[b"store-id", id.as_bytes()]))
}

fn new_store_id(audit_key: &[u8]) -> (String, String) {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    let id = hex::encode_upper(b);
    let row = format!("{id}|{}", store_id_mac(audit_key, &id));
    (id, row)
}

impl KeyStore {
    /// Opens an initialised store (locked), with its audit sink and witness beside it
    /// ([`Outside::beside`]).
    pub fn open(path: &Path) -> Result<KeyStore> {
        KeyStore::open_with(path, Outside::beside(path))
    }

    /// Opens an initialised store (locked) with its audit sink and witness at `outside`.
    pub fn open_with(path: &Path, outside: Outside) -> Result<KeyStore> {
        if !path.exists() {
            return Err(Error::NotInitialised);
        }
        let conn = connect(path)?;
        let store = KeyStore { conn, path: path.to_path_buf(), keys: None, outside, warnings: Vec::new() };
        match store.meta("format")?.as_deref() {
            Some(FORMAT) => {}
            // Failed unlocks before the upgrade are written with the format 2 columns.
            Some(upgrade::FORMAT_V1) => audit::add_mac_column(&store.conn)?,
            _ => return Err(Error::NotInitialised),
        }
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the audit sink and the witness are.
    pub fn outside(&self) -> &Outside {
        &self.outside
    }

    /// What the last unlock found worth telling (entries missing from the store that the audit
    /// sink recorded, unauthenticated entries, a witness created, an upgrade). Each is also audited.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Creates a store at `path` (ceremony): the KBPK is the XOR of `components` (2 or 3, 32
    /// bytes each, none trivial, no two equal); with `passphrase`, the KBPK is also wrapped
    /// under it. The store is returned unlocked. Its sink and witness are beside it.
    pub fn init(path: &Path, components: &[Secret], passphrase: Option<&[u8]>) -> Result<(KeyStore, InitReport)> {
        KeyStore::init_with(path, components, passphrase, Outside::beside(path))
    }

    /// [`KeyStore::init`] with the audit sink and witness at `outside`.
    pub fn init_with(
        path: &Path,
        components: &[Secret],
        passphrase: Option<&[u8]>,
        outside: Outside,
    ) -> Result<(KeyStore, InitReport)> {
        let kbpk = components::combine(components, KBPK_LEN, 2, 3, "2 or 3 are required")?;
        let component_kcvs = components.iter().map(|c| aes_kcv(c)).collect::<Result<Vec<_>>>()?;
        let conn = connect(path)?;
        let has_meta: bool =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", [], |r| {
                r.get::<_, i64>(0)
            })? > 0;
        if has_meta {
            return Err(Error::AlreadyInitialised);
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        let keys = StoreKeys::new(&kbpk)?;
        let kbpk_kcv = aes_kcv(&kbpk)?;
        let mut store = KeyStore { conn, path: path.to_path_buf(), keys: None, outside, warnings: Vec::new() };
        let (store_id, store_id_row) = new_store_id(&keys.audit_key[..]);
        let head = {
            let tx = store.conn.transaction()?;
            for (k, v) in [
                ("format", FORMAT.to_string()),
                ("created", audit::now()),
                ("store_id", store_id_row),
                ("kbpk_check", keys.check_value()),
                ("kbpk_kcv", kbpk_kcv.clone()),
                ("kbpk_components", components.len().to_string()),
            ] {
                tx.execute("INSERT INTO meta (k, v) VALUES (?1, ?2)", params![k, v])?;
            }
            if let Some(p) = passphrase {
                write_passphrase_wrap(&tx, &kbpk, p)?;
            }
            audit::append(
                &tx,
                "init",
                "ok",
                &json!({"components": components.len(), "component_kcvs": component_kcvs, "kbpk_kcv": kbpk_kcv, "passphrase": passphrase.is_some(), "store_id": store_id}),
                Some(&keys.audit_key[..]),
            )?;
            let head = audit::seal_first(&tx, &keys.audit_key[..], String::new())?;
            tx.commit()?;
            head
        };
        outside::witness_write(&store.outside.witness, &keys.audit_key[..], &store_id, &head)?;
        store.keys = Some(keys);
        Ok((store, InitReport { component_kcvs, kbpk_kcv, passphrase: passphrase.is_some() }))
    }

    /// Unlocks with the passphrase. A wrong one is audited and gives [`Error::WrongPassphrase`].
    pub fn unlock_with_passphrase(&mut self, passphrase: &[u8]) -> Result<()> {
        let result = self.try_passphrase(passphrase);
        self.finish_unlock(result, "passphrase")
    }

    fn try_passphrase(&self, passphrase: &[u8]) -> Result<StoreKeys> {
        let (salt, block) = match (self.meta("pass_salt")?, self.meta("pass_block")?) {
            (Some(s), Some(b)) => (s, b),
            _ => return Err(Error::NoPassphrase),
        };
        let params =
            self.meta("pass_params")?.ok_or_else(|| Error::Integrity("passphrase parameters missing".into()))?;
        let p: Vec<u32> = params.split(',').filter_map(|x| x.parse().ok()).collect();
        let (m, t, l) = match p.as_slice() {
            [m, t, l] => (*m, *t, *l),
            _ => return Err(Error::Integrity("bad passphrase parameters".into())),
        };
        let salt = hex::decode(salt).map_err(|_| Error::Integrity("bad passphrase salt".into()))?;
        let pk = passphrase_key(passphrase, &salt, (m, t, l))?;
        let (_, kbpk) = tr31::unwrap(&pk, &block).map_err(|e| match e {
            tr31::Tr31Error::MacMismatch => Error::WrongPassphrase,
            other => Error::Integrity(format!("passphrase-wrapped KBPK: {other}")),
        })?;
        let keys = StoreKeys::new(&kbpk)?;
        self.check_kbpk(&keys, Error::Integrity("the passphrase-wrapped KBPK is not this store's".into()))?;
        Ok(keys)
    }

    /// Unlocks with the KBPK components. Wrong ones are audited and give [`Error::WrongComponents`];
    /// malformed ones (trivial, duplicate, wrong length) give [`Error::BadComponent`].
    pub fn unlock_with_components(&mut self, components: &[Secret]) -> Result<()> {
        let result = components::combine(components, KBPK_LEN, 2, 3, "2 or 3 are required").and_then(|kbpk| {
            let keys = StoreKeys::new(&kbpk)?;
            self.check_kbpk(&keys, Error::WrongComponents)?;
            Ok(keys)
        });
        self.finish_unlock(result, "components")
    }

    fn check_kbpk(&self, keys: &StoreKeys, wrong: Error) -> Result<()> {
        let check = self.meta("kbpk_check")?.ok_or_else(|| Error::Integrity("KBPK check value missing".into()))?;
        if card_core::crypto::ct_eq(check.as_bytes(), keys.check_value().as_bytes()) {
            Ok(())
        } else {
            Err(wrong)
        }
    }

    fn finish_unlock(&mut self, result: Result<StoreKeys>, method: &str) -> Result<()> {
        self.warnings.clear();
        let keys = match result {
            Ok(k) => k,
            Err(e) => {
                self.record_locked_failure("unlock", json!({ "method": method, "reason": e.to_string() }))?;
                return Err(e);
            }
        };
        if let Err(e) = self.accept_unlock(&keys, method) {
            // The right KBPK, but the store is refused (rollback, tampering): the refusal goes to
            // the sink and the system log only, not into a store that is not to be trusted.
            let entry = AuditEntry {
                seq: 0,
                time: audit::now(),
                event: "unlock".into(),
                outcome: "refused".into(),
                detail: json!({ "method": method, "reason": e.to_string() }).to_string(),
                hash: String::new(),
            };
            self.record_outside(&entry);
            return Err(e);
        }
        self.keys = Some(keys);
        Ok(())
    }

    /// With the right KBPK: the store id, the witness (rollback), the upgrade from format 1, the
    /// audit sink against the log; then the unlock is audited and the head sealed and witnessed.
    fn accept_unlock(&mut self, keys: &StoreKeys, method: &str) -> Result<()> {
        let ak = &keys.audit_key[..];
        let mut detail = json!({ "method": method });
        let id = if self.meta("format")?.as_deref() == Some(upgrade::FORMAT_V1) {
            if let Some((_, w)) = outside::witness_read(&self.outside.witness, ak)? {
                return Err(Error::Integrity(format!(
                    "rollback: the store file is in format {} but the witness {} has seen this store in format 2 \
                     (audit entry {}): the file was restored from a copy made before its upgrade",
                    upgrade::FORMAT_V1,
                    self.outside.witness.display(),
                    w.seq
                )));
            }
            let (id, row) = new_store_id(ak);
            let digest_ok = self.keys_digest_matches(keys)?;
            upgrade::run(&self.conn, keys, &id, &row, digest_ok)?;
            self.warnings.push(format!(
                "the store was upgraded from format {} to {FORMAT} (audited); its witness is {}",
                upgrade::FORMAT_V1,
                self.outside.witness.display()
            ));
            id
        } else {
            let id = self.verified_store_id(ak)?;
            detail["witness"] = json!(if self.check_witness(ak, &id)?.is_some() { "checked" } else { "created" });
            if detail["witness"] == "created" {
                self.warnings.push(format!(
                    "no witness at {}: it is created now; rollback of the store is detected from now on",
                    self.outside.witness.display()
                ));
            }
            id
        };
        let (sink, bad) = match outside::sink_read(&self.outside.sink, &id) {
            Ok(x) => x,
            Err(e) => {
                self.warnings.push(format!("the audit sink cannot be read: {e}"));
                (Vec::new(), 0)
            }
        };
        if bad > 0 {
            self.warnings.push(format!(
                "{bad} line(s) of the audit sink {} are not keymgmt sink lines",
                self.outside.sink.display()
            ));
        }
        let tx = self.conn.unchecked_transaction()?;
        let raw = audit::raw_entries(&tx)?;
        let mut unconfirmed = Vec::new();
        let mut confirmed = 0;
        for r in raw.iter().filter(|r| r.mac.is_empty()) {
            let e = &r.entry;
            if sink.iter().any(|s| s.seq == e.seq && s.hash.eq_ignore_ascii_case(&e.hash)) {
                audit::set_mac(&tx, ak, e.seq, &e.hash)?;
                confirmed += 1;
            } else {
                unconfirmed.push(e.seq);
            }
        }
        let missing = audit::missing_from_log(&raw, &sink);
        if !missing.is_empty() {
            let list: Vec<String> =
                missing.iter().map(|m| format!("{} ({} {} at {})", m.seq, m.event, m.outcome, m.time)).collect();
            self.warnings.push(format!(
                "the audit sink {} holds entries the store does not: {} — removed outside keymgmt \
                 (`audit verify` fails while the sink holds them)",
                self.outside.sink.display(),
                list.join(", ")
            ));
            let brief: Vec<serde_json::Value> = missing
                .iter()
                .map(|m| json!({"seq": m.seq, "time": m.time, "event": m.event, "outcome": m.outcome, "hash": m.hash}))
                .collect();
            audit::append(
                &tx,
                "audit-sink",
                "fail",
                &json!({"missing": brief, "sink": self.outside.sink.display().to_string()}),
                Some(ak),
            )?;
        }
        if !unconfirmed.is_empty() {
            self.warnings.push(format!(
                "audit entries {unconfirmed:?} have no MAC and the audit sink does not confirm them: added outside \
                 keymgmt (or the sink was lost)"
            ));
            audit::append(&tx, "audit-check", "fail", &json!({ "unauthenticated": unconfirmed }), Some(ak))?;
        }
        if confirmed > 0 {
            detail["confirmed_by_sink"] = json!(confirmed);
        }
        audit::append(&tx, "unlock", "ok", &detail, Some(ak))?;
        let head = audit::seal(&tx, ak, None)?;
        tx.commit()?;
        match head {
            Some(h) => outside::witness_write(&self.outside.witness, ak, &id, &h)?,
            None => self.warnings.push(
                "the sealed audit head is missing, changed or no longer in the log: not sealed; run `keymgmt audit \
                 verify`"
                    .into(),
            ),
        }
        Ok(())
    }

    /// The store id, its MAC checked.
    fn verified_store_id(&self, audit_key: &[u8]) -> Result<String> {
        let row = self.meta("store_id")?.unwrap_or_default();
        match row.split_once('|') {
            Some((id, mac)) if card_core::crypto::ct_eq(store_id_mac(audit_key, id).as_bytes(), mac.as_bytes()) => {
                Ok(id.to_string())
            }
            _ => Err(Error::Integrity("the store id is missing or was changed".into())),
        }
    }

    /// The store id as found (not checked: for sink lines written while locked).
    fn store_id_unchecked(&self) -> Result<String> {
        Ok(self.meta("store_id")?.unwrap_or_default().split('|').next().unwrap_or_default().to_string())
    }

    /// Compares the store with its witness, if there is one: the witness's head must be in the log
    /// and not newer than the sealed head (else the store was rolled back). Returns the witnessed
    /// head.
    fn check_witness(&self, audit_key: &[u8], id: &str) -> Result<Option<audit::Head>> {
        let shown = self.outside.witness.display();
        let Some((wid, w)) = outside::witness_read(&self.outside.witness, audit_key)? else { return Ok(None) };
        if wid != id {
            return Err(Error::Integrity(format!(
                "the witness {shown} belongs to store {wid}, not to this store ({id}): give its own witness"
            )));
        }
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?;
        let at: Option<String> =
            self.conn.query_row("SELECT hash FROM audit WHERE seq = ?1", params![w.seq], |r| r.get(0)).optional()?;
        match at {
            None => {
                return Err(Error::Integrity(format!(
                    "rollback: the store's audit log ends at entry {last} but the witness {shown} has seen entry {}: \
                     the store was restored from an older copy (or its log cut)",
                    w.seq
                )))
            }
            Some(h) if !h.eq_ignore_ascii_case(&w.hash) => {
                return Err(Error::Integrity(format!(
                    "rollback: the store does not hold the entry {} that the witness {shown} has seen: restored from \
                     an older copy and used since, or its log changed",
                    w.seq
                )))
            }
            Some(_) => {}
        }
        match audit::read_head(&self.conn, audit_key)? {
            HeadState::Sealed(h) if h.seq > w.seq => {}
            HeadState::Sealed(h) if h.seq == w.seq && h.keys == w.keys => {}
            HeadState::Sealed(h) if h.seq == w.seq => {
                return Err(Error::Integrity(format!(
                    "rollback: the key rows sealed at audit entry {} differ from those the witness {shown} has seen",
                    w.seq
                )))
            }
            HeadState::Sealed(h) => {
                return Err(Error::Integrity(format!(
                    "rollback: the store's sealed audit head (entry {}) is older than the witness's {shown} (entry {})",
                    h.seq, w.seq
                )))
            }
            HeadState::Missing | HeadState::Forged => {
                return Err(Error::Integrity(format!(
                    "the store's sealed audit head is missing or changed; the witness {shown} has seen entry {}",
                    w.seq
                )))
            }
        }
        Ok(Some(w))
    }

    /// Records a failure while the store is locked: an entry without MAC in the log, a line in the
    /// audit sink and (if enabled) the system log. A sink that cannot be written is a warning.
    fn record_locked_failure(&mut self, event: &str, detail: serde_json::Value) -> Result<()> {
        let entry = audit::append(&self.conn, event, "fail", &detail, None)?;
        self.record_outside(&entry);
        Ok(())
    }

    /// Writes `entry` to the audit sink and (if enabled) the system log; a failure is a warning.
    fn record_outside(&mut self, entry: &AuditEntry) {
        let id = self.store_id_unchecked().unwrap_or_default();
        if self.outside.syslog {
            outside::syslog(&id, entry);
        }
        if let Err(e) = outside::sink_append(&self.outside.sink, &id, entry) {
            self.warnings.push(format!(
                "audit entry {} could not be written to the audit sink ({e}): the next unlock will report it as \
                 unauthenticated",
                entry.seq
            ));
        }
    }

    /// Wraps the KBPK under a (new) passphrase, replacing any previous one.
    pub fn set_passphrase(&mut self, passphrase: &[u8]) -> Result<()> {
        let kbpk = Zeroizing::new(self.keys()?.kbpk.expose_secret().to_vec());
        let tx = self.conn.transaction()?;
        write_passphrase_wrap(&tx, &kbpk, passphrase)?;
        tx.commit()?;
        self.audit_ok("set-passphrase", json!({}))
    }

    /// Whether the store is unlocked.
    pub fn is_unlocked(&self) -> bool {
        self.keys.is_some()
    }

    /// KCV of the KBPK (AES-CMAC), from the meta table.
    pub fn kbpk_kcv(&self) -> Result<String> {
        self.meta("kbpk_kcv")?.ok_or_else(|| Error::Integrity("KBPK KCV missing".into()))
    }

    pub(crate) fn keys(&self) -> Result<&StoreKeys> {
        self.keys.as_ref().ok_or(Error::Locked)
    }

    fn meta(&self, k: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT v FROM meta WHERE k = ?1", params![k], |r| r.get(0)).optional()?)
    }

    /// Appends a successful event (MAC'd) and seals the audit head, inside `conn`'s transaction;
    /// `keys_changed`: the event wrote key rows (their new digest is sealed). Returns the head to
    /// witness once committed ([`KeyStore::witness`]).
    pub(crate) fn log_ok(
        &self,
        conn: &Connection,
        event: &str,
        detail: &serde_json::Value,
        keys_changed: bool,
    ) -> Result<Option<audit::Head>> {
        let ak = &self.keys()?.audit_key[..];
        audit::append(conn, event, "ok", detail, Some(ak))?;
        let digest = if keys_changed { Some(self.keys_digest(conn)?) } else { None };
        audit::seal(conn, ak, digest)
    }

    /// Writes the witness of a head just sealed and committed.
    pub(crate) fn witness(&self, head: Option<audit::Head>) -> Result<()> {
        let Some(head) = head else { return Ok(()) };
        let ak = &self.keys()?.audit_key[..];
        outside::witness_write(&self.outside.witness, ak, &self.verified_store_id(ak)?, &head)
    }

    /// Appends a successful event, seals the audit head and witnesses it.
    pub(crate) fn audit_ok(&self, event: &str, detail: serde_json::Value) -> Result<()> {
        let head = self.log_ok(&self.conn, event, &detail, false)?;
        self.witness(head)
    }

    /// Records a failed operation (the reason is an error message: no secrets). Sealed (and
    /// witnessed) if unlocked; otherwise written without MAC and to the audit sink.
    pub fn audit_failure(&mut self, event: &str, reason: &str) -> Result<()> {
        let detail = json!({ "reason": reason });
        match &self.keys {
            Some(k) => {
                let ak = &k.audit_key[..];
                audit::append(&self.conn, event, "fail", &detail, Some(ak))?;
                let head = audit::seal(&self.conn, ak, None)?;
                self.witness(head)
            }
            None => self.record_locked_failure(event, detail),
        }
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<audit::AuditEntry>> {
        audit::entries(&self.conn)
    }

    /// Verifies the audit log (needs the store unlocked): the chain, every entry's MAC, the
    /// sealed head, the audit sink's entries (each must be in the log) and the witness (the store
    /// must not be older than it).
    pub fn audit_verify(&self) -> Result<audit::Verification> {
        let ak = &self.keys()?.audit_key[..];
        let id = self.verified_store_id(ak)?;
        let (sink, _) = outside::sink_read(&self.outside.sink, &id)?;
        let mut v = audit::verify(&self.conn, ak, &sink)?;
        v.witness = self.check_witness(ak, &id)?.map(|h| h.seq);
        Ok(v)
    }
}

/// Opens the SQLite file with `secure_delete` on, so that a replaced key block (destroy) is
/// overwritten with zeros rather than left in a free page.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA secure_delete = ON;")?;
    Ok(conn)
}

fn write_passphrase_wrap(conn: &Connection, kbpk: &[u8], passphrase: &[u8]) -> Result<()> {
    if passphrase.len() < 8 {
        return Err(Error::InvalidInput("the passphrase must have at least 8 characters".into()));
    }
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let pk = passphrase_key(passphrase, &salt, ARGON2_PARAMS)?;
    let header = Header::new(KeyUsage::K1, Tr31Algorithm::AES, ModeOfUse::B, 0, Exportability::N);
    let block = tr31::wrap(&pk, &header, kbpk, None)?;
    let (m, t, p) = ARGON2_PARAMS;
    for (k, v) in
        [("pass_salt", hex::encode_upper(salt)), ("pass_params", format!("{m},{t},{p}")), ("pass_block", block)]
    {
        conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)", params![k, v])?;
    }
    Ok(())
}
