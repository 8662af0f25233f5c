//! The key store: one SQLite file.
//!
//! - `meta`: format, the KBPK's check value and KCV, the passphrase wrap (Argon2id salt and
//!   parameters, the KBPK as a TR-31 block `K1` under the passphrase key), the sealed audit head;
//! - `keys`: one row per key version — metadata, the key as a TR-31 version `D` block under the
//!   KBPK (empty once destroyed), and an HMAC-SHA256 over all of it under a key derived from
//!   the KBPK, so that a changed row is detected before it is used;
//! - `audit`: the hash-chained log ([`crate::audit`]).
//!
//! The KBPK (AES-256) is never stored in clear: it is the XOR of 2 or 3 custodian components
//! given at `init`, and can also be wrapped under a passphrase for daily unlock.

mod keys;
mod ops;
mod transport;

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::audit;
use crate::components::{self, Secret};
use crate::error::{Error, Result};
use crate::secrets::{aes_kcv, passphrase_key, StoreKeys, ARGON2_PARAMS, KBPK_LEN};
use crate::tr31::{self, Exportability, Header, KeyUsage, ModeOfUse, Tr31Algorithm};

pub use ops::{Created, ProfileKeys, Skipped, VersionSelect};

/// Format tag in the `meta` table.
const FORMAT: &str = "keymgmt-store/1";

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
}

impl KeyStore {
    /// Opens an initialised store (locked).
    pub fn open(path: &Path) -> Result<KeyStore> {
        if !path.exists() {
            return Err(Error::NotInitialised);
        }
        let conn = connect(path)?;
        let store = KeyStore { conn, path: path.to_path_buf(), keys: None };
        if store.meta("format")?.as_deref() != Some(FORMAT) {
            return Err(Error::NotInitialised);
        }
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a store at `path` (ceremony): the KBPK is the XOR of `components` (2 or 3, 32
    /// bytes each, none trivial, no two equal); with `passphrase`, the KBPK is also wrapped
    /// under it. The store is returned unlocked.
    pub fn init(path: &Path, components: &[Secret], passphrase: Option<&[u8]>) -> Result<(KeyStore, InitReport)> {
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
        let mut store = KeyStore { conn, path: path.to_path_buf(), keys: None };
        {
            let tx = store.conn.transaction()?;
            for (k, v) in [
                ("format", FORMAT.to_string()),
                ("created", audit::now()),
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
                &json!({"components": components.len(), "component_kcvs": component_kcvs, "kbpk_kcv": kbpk_kcv, "passphrase": passphrase.is_some()}),
            )?;
            audit::seal(&tx, &keys.audit_key[..])?;
            tx.commit()?;
        }
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
        match result {
            Ok(keys) => {
                audit::append(&self.conn, "unlock", "ok", &json!({ "method": method }))?;
                audit::seal(&self.conn, &keys.audit_key[..])?;
                self.keys = Some(keys);
                Ok(())
            }
            Err(e) => {
                audit::append(&self.conn, "unlock", "fail", &json!({ "method": method, "reason": e.to_string() }))?;
                Err(e)
            }
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

    /// Appends a successful event and seals the audit head.
    pub(crate) fn audit_ok(&self, event: &str, detail: serde_json::Value) -> Result<()> {
        let keys = self.keys()?;
        audit::append(&self.conn, event, "ok", &detail)?;
        audit::seal(&self.conn, &keys.audit_key[..])
    }

    /// Records a failed operation (the reason is an error message: no secrets). Sealed if unlocked.
    pub fn audit_failure(&self, event: &str, reason: &str) -> Result<()> {
        audit::append(&self.conn, event, "fail", &json!({ "reason": reason }))?;
        if let Some(k) = &self.keys {
            audit::seal(&self.conn, &k.audit_key[..])?;
        }
        Ok(())
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<audit::AuditEntry>> {
        audit::entries(&self.conn)
    }

    /// Verifies the audit chain and its sealed head (needs the store unlocked).
    pub fn audit_verify(&self) -> Result<audit::Verification> {
        audit::verify(&self.conn, &self.keys()?.audit_key[..])
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
