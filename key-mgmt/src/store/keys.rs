//! Key rows: authenticated metadata plus the key as a TR-31 block under the KBPK.

use card_core::crypto::{Algorithm, CardKey};
use card_core::profile::Profile;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::KeyStore;
use crate::audit::{self, HeadState};
use crate::error::{Error, Result};
use crate::inventory::{kcv_method, key_def, KeyRecord, KeyState};
use crate::secrets::{hmac, StoreKeys};
use crate::tr31::{self, Exportability, Header, Tr31Algorithm};

/// HMAC over every row's MAC in key order, under the row key.
fn keys_digest(conn: &Connection, row_key: &[u8]) -> Result<String> {
    let mut st = conn.prepare("SELECT mac FROM keys ORDER BY name, version, region")?;
    let macs = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    let mut parts: Vec<&[u8]> = vec![b"keys-digest"];
    parts.extend(macs.iter().map(|m| m.as_bytes()));
    Ok(hex::encode_upper(hmac(row_key, &parts)))
}

const COLUMNS: &str =
    "name, version, region, level, algorithm, state, kcv, kcv_method, created, updated, parent, ceremony, block, mac";

/// The TR-31 algorithm code of a card algorithm.
pub(crate) fn tr31_alg(alg: Algorithm) -> Tr31Algorithm {
    match alg {
        Algorithm::Tdes => Tr31Algorithm::TDES,
        Algorithm::Sm4 => Tr31Algorithm::SM4,
        Algorithm::Aes128 => Tr31Algorithm::AES,
    }
}

/// The card algorithm of a TR-31 algorithm code.
pub(crate) fn card_alg(code: Tr31Algorithm) -> Result<Algorithm> {
    match code {
        Tr31Algorithm::TDES => Ok(Algorithm::Tdes),
        Tr31Algorithm::SM4 => Ok(Algorithm::Sm4),
        Tr31Algorithm::AES => Ok(Algorithm::Aes128),
        other => {
            Err(Error::InvalidInput(format!("key block algorithm {other} is not a card algorithm (T, A or 3 = SM4)")))
        }
    }
}

/// The header a stored key of `name` carries.
pub(crate) fn header_for(name: &str, alg: Algorithm, version: u8) -> Result<Header> {
    let def = key_def(Profile::builtin(), name)?;
    let (usage, mode) = def.role.tr31();
    Ok(Header::new(usage, tr31_alg(alg), mode, version, Exportability::E))
}

fn row_to_record(r: &Row<'_>) -> rusqlite::Result<(KeyRecord, String, String, String, String)> {
    let level: String = r.get(3)?;
    let state: String = r.get(5)?;
    let rec = KeyRecord {
        name: r.get(0)?,
        version: r.get(1)?,
        region: r.get(2)?,
        level: crate::inventory::Level::Issuer,
        algorithm: r.get(4)?,
        state: KeyState::PreActive,
        kcv: r.get(6)?,
        kcv_method: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
        parent: r.get(10)?,
        ceremony: r.get(11)?,
    };
    Ok((rec, level, state, r.get(12)?, r.get(13)?))
}

impl KeyStore {
    fn row_mac(&self, rec: &KeyRecord, level: &str, state: &str, block: &str) -> Result<String> {
        let k = self.keys()?;
        let version = [rec.version];
        let parts: [&[u8]; 13] = [
            rec.name.as_bytes(),
            &version,
            rec.region.as_bytes(),
            level.as_bytes(),
            rec.algorithm.as_bytes(),
            state.as_bytes(),
            rec.kcv.as_bytes(),
            rec.kcv_method.as_bytes(),
            rec.created.as_bytes(),
            rec.updated.as_bytes(),
            rec.parent.as_deref().unwrap_or("\u{0}").as_bytes(),
            rec.ceremony.as_deref().unwrap_or("\u{0}").as_bytes(),
            block.as_bytes(),
        ];
        Ok(hex::encode_upper(hmac(&k.row_key[..], &parts)))
    }

    /// Writes (inserts or replaces) a row; `key` = `None` writes an empty block (destroyed).
    pub(crate) fn write_row(
        &self,
        conn: &Connection,
        rec: &KeyRecord,
        key: Option<&CardKey>,
        replace: bool,
    ) -> Result<()> {
        let block = match key {
            Some(k) => {
                let header = header_for(&rec.name, k.algorithm(), rec.version)?;
                tr31::wrap(&self.keys()?.kbpk, &header, k.expose_secret(), None)?
            }
            None => String::new(),
        };
        let mac = self.row_mac(rec, rec.level.as_str(), rec.state.as_str(), &block)?;
        let verb = if replace { "INSERT OR REPLACE" } else { "INSERT" };
        let sql = format!(
            "{verb} INTO keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        );
        conn.execute(
            &sql,
            params![
                rec.name,
                rec.version,
                rec.region,
                rec.level.as_str(),
                rec.algorithm,
                rec.state.as_str(),
                rec.kcv,
                rec.kcv_method,
                rec.created,
                rec.updated,
                rec.parent,
                rec.ceremony,
                block,
                mac
            ],
        )?;
        let digest = self.keys_digest(conn)?;
        conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('keys_digest', ?1)", params![digest])?;
        Ok(())
    }

    /// HMAC over every row's MAC in key order: a removed row, or a row replayed from an older
    /// copy of the file (e.g. a destroyed key brought back), changes it.
    pub(super) fn keys_digest(&self, conn: &Connection) -> Result<String> {
        keys_digest(conn, &self.keys()?.row_key[..])
    }

    /// The store's key stamp: the digest of every key row as the meta table keeps it (`""` for a store that never
    /// held a key). Every write of a key row — new version, rotation, state change, region derivation, destroy —
    /// goes through `write_row`, which replaces it, so a stamp that is unchanged means that no key row changed
    /// (in this process or another one on the same file). One indexed read, no key unwrapped: what a batch
    /// ([`crate::derive::RegionCache`]) checks before it serves a cached key.
    pub fn keys_stamp(&self) -> Result<String> {
        self.keys()?;
        Ok(self
            .conn
            .query_row("SELECT v FROM meta WHERE k = 'keys_digest'", [], |r| r.get::<_, String>(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Whether the key rows match the digest in the meta table (a store without keys has none).
    pub(super) fn keys_digest_matches(&self, keys: &StoreKeys) -> Result<bool> {
        let stored: Option<String> =
            self.conn.query_row("SELECT v FROM meta WHERE k = 'keys_digest'", [], |r| r.get(0)).optional()?;
        let expected = keys_digest(&self.conn, &keys.row_key[..])?;
        Ok(match stored {
            Some(s) => card_core::crypto::ct_eq(s.as_bytes(), expected.as_bytes()),
            None => self.conn.query_row("SELECT count(*) FROM keys", [], |r| r.get::<_, i64>(0))? == 0,
        })
    }

    /// The key rows against their digest, and the digest against the one sealed with the audit
    /// head: rolling the `keys` table back together with its digest (to a copy taken before a
    /// `destroy`, say) does not match the head.
    fn check_keys_digest(&self) -> Result<()> {
        let keys = self.keys()?;
        if !self.keys_digest_matches(keys)? {
            return Err(Error::Integrity("the set of key rows was changed (a row removed, added or replayed)".into()));
        }
        let stored: String = self
            .conn
            .query_row("SELECT v FROM meta WHERE k = 'keys_digest'", [], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
        match audit::read_head(&self.conn, &keys.audit_key[..])? {
            HeadState::Sealed(h) if card_core::crypto::ct_eq(h.keys.as_bytes(), stored.as_bytes()) => Ok(()),
            HeadState::Sealed(_) => Err(Error::Integrity(
                "the key rows are not those sealed with the audit head: rolled back or replayed from another copy"
                    .into(),
            )),
            HeadState::Missing | HeadState::Forged => Err(Error::Integrity(
                "the sealed audit head is missing or changed: the key rows cannot be trusted (see `keymgmt audit                  verify`)"
                    .into(),
            )),
        }
    }

    /// Reads rows matching `filter` (an SQL condition with `?1`…), checking each row's MAC.
    fn rows(&self, filter: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<(KeyRecord, String)>> {
        self.check_keys_digest()?;
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE {filter} ORDER BY name, region, version");
        let mut st = self.conn.prepare(&sql)?;
        let raw = st.query_map(args, row_to_record)?.collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(raw.len());
        for (mut rec, level, state, block, mac) in raw {
            let expected = self.row_mac(&rec, &level, &state, &block)?;
            if !card_core::crypto::ct_eq(expected.as_bytes(), mac.as_bytes()) {
                return Err(Error::Integrity(format!(
                    "the row of key {} version {} was changed",
                    rec.name, rec.version
                )));
            }
            rec.level = level.parse()?;
            rec.state = state.parse()?;
            out.push((rec, block));
        }
        Ok(out)
    }

    /// Every key version's metadata (rows authenticated), ordered by name, region, version.
    pub fn list(&self) -> Result<Vec<KeyRecord>> {
        Ok(self.rows("1", &[])?.into_iter().map(|(r, _)| r).collect())
    }

    /// All versions of `name` at `region` (`""` = issuer level).
    pub fn versions(&self, name: &str, region: &str) -> Result<Vec<KeyRecord>> {
        Ok(self.rows("name = ?1 AND region = ?2", &[&name, &region])?.into_iter().map(|(r, _)| r).collect())
    }

    /// The metadata of one key version.
    pub fn record(&self, name: &str, version: u8, region: &str) -> Result<KeyRecord> {
        self.row(name, version, region).map(|(r, _)| r)
    }

    fn row(&self, name: &str, version: u8, region: &str) -> Result<(KeyRecord, String)> {
        key_def(Profile::builtin(), name)?;
        self.rows("name = ?1 AND version = ?2 AND region = ?3", &[&name, &version, &region])?
            .into_iter()
            .next()
            .ok_or_else(|| Error::KeyNotFound { name: name.to_string(), version, region: region.to_string() })
    }

    /// Loads a key: row MAC, key block authenticator, header against metadata, KCV.
    pub(crate) fn load_key(&self, name: &str, version: u8, region: &str) -> Result<(KeyRecord, CardKey)> {
        let (rec, block) = self.row(name, version, region)?;
        if rec.state == KeyState::Destroyed {
            return Err(Error::WrongState {
                name: rec.name,
                version,
                state: rec.state,
                what: "its key material is gone",
            });
        }
        let kb_err = |source| Error::KeyBlock { name: rec.name.clone(), version, source };
        let (header, bytes) = tr31::unwrap(&self.keys()?.kbpk, &block).map_err(kb_err)?;
        let alg = rec.alg()?;
        if header != header_for(&rec.name, alg, version)? {
            return Err(Error::Integrity(format!(
                "key block header of {name} version {version} does not match its record"
            )));
        }
        let key = CardKey::new(alg, &bytes)?;
        if key.kcv(kcv_method(alg)).to_string() != rec.kcv {
            return Err(Error::Integrity(format!("KCV of {name} version {version} does not match its record")));
        }
        Ok((rec, key))
    }
}
