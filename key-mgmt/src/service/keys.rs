//! Where the service's keys come from: a [`KeySource`] (the key store today, a hardware module later), and the
//! card's key versions from issuance-cli's journal ([`Journal`]).
//!
//! [`StoreKeys`] holds, for each configured region, the **region-level** keys `Div(issuer key, region factor)`
//! of every card key of the profile, in every version a card may still use: `active` (new cards) and `retired`
//! (cards in circulation), of every algorithm. Issuer keys are loaded, diversified and dropped (zeroized) at
//! once; a region-level row of the store (`derive-region`) is used as it is. All keys are
//! [`card_core::crypto::CardKey`]s: zeroized on drop, never printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use card_core::codec::RegionCode;
use card_core::crypto::{region_factor, Algorithm, CardKey};
use card_core::profile::Profile;
use card_core::security::{LocalKeys, SecurityModule};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::inventory::{key_defs, KeyState};
use crate::store::KeyStore;

/// Why a key cannot be had for a card.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// The region is not one the service holds keys of.
    #[error("region {0} is not served here")]
    RegionNotServed(String),
    /// No key of the card's algorithm at all.
    #[error("no {alg} keys are held for region {region}")]
    NoAlgorithm {
        /// Region.
        region: String,
        /// The card's algorithm.
        alg: &'static str,
    },
    /// The key (or the version the card needs) is not held.
    #[error("no usable {alg} key {name}{} for region {region}", .version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NoKey {
        /// Inventory name.
        name: String,
        /// The version needed (none: no active version).
        version: Option<u8>,
        /// Region.
        region: String,
        /// Algorithm.
        alg: &'static str,
    },
}

/// The keys chosen for one request: a security module holding them, and their versions by name.
pub struct Module {
    /// Computes with the chosen versions.
    pub sm: Box<dyn SecurityModule + Send + Sync>,
    /// The version of each key asked for, by name.
    pub versions: BTreeMap<String, u8>,
}

/// A source of keys for the service: the key store now ([`StoreKeys`]), a hardware module later.
pub trait KeySource: Send + Sync {
    /// The regions served.
    fn regions(&self) -> Vec<RegionCode>;

    /// A module holding `names` for cards of `region` and `alg`, each at the version given (the card's, from the
    /// journal) or else the highest `active` version of `alg`.
    fn module(&self, region: RegionCode, alg: Algorithm, names: &[(&str, Option<u8>)]) -> Result<Module, KeyRefusal>;

    /// What is held, for the start-up message: `name vN ALG state` per key and region (never a key).
    fn describe(&self) -> Vec<String>;
}

struct Held {
    version: u8,
    state: KeyState,
    key: CardKey,
}

/// Region keys taken from the key store at start (and at each SIGHUP).
pub struct StoreKeys {
    /// (region, name) → versions held.
    keys: BTreeMap<(RegionCode, String), Vec<Held>>,
    regions: Vec<RegionCode>,
}

impl StoreKeys {
    /// Loads the region keys of `regions` from the unlocked `store`; an audit entry of the store records what was
    /// loaded (names, versions, KCV methods — no key).
    pub fn load(store: &KeyStore, regions: &[RegionCode]) -> Result<StoreKeys> {
        let mut keys: BTreeMap<(RegionCode, String), Vec<Held>> = BTreeMap::new();
        let mut loaded = Vec::new();
        for region in regions {
            let factor = region_factor(region.as_str())?;
            for def in key_defs(Profile::builtin()).into_iter().filter(|d| d.is_card_key()) {
                let mut held: Vec<Held> = Vec::new();
                // region-level rows first: they are what `derive-region` stored for this region
                for level in [region.as_str(), ""] {
                    for rec in store.versions(&def.name, level)? {
                        if !matches!(rec.state, KeyState::Active | KeyState::Retired)
                            || held.iter().any(|h| h.version == rec.version)
                        {
                            continue;
                        }
                        let (_, key) = store.load_key(&def.name, rec.version, level)?;
                        let key = if level.is_empty() { key.div(&factor) } else { key };
                        loaded.push(format!("{}/{} v{} {}", region.as_str(), def.name, rec.version, rec.state));
                        held.push(Held { version: rec.version, state: rec.state, key });
                    }
                }
                if !held.is_empty() {
                    held.sort_by_key(|h| std::cmp::Reverse(h.version));
                    keys.insert((*region, def.name.clone()), held);
                }
            }
        }
        store.audit_ok("serve-load", serde_json::json!({ "regions": regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(), "keys": loaded.len() }))?;
        Ok(StoreKeys { keys, regions: regions.to_vec() })
    }
}

impl KeySource for StoreKeys {
    fn regions(&self) -> Vec<RegionCode> {
        self.regions.clone()
    }

    fn module(&self, region: RegionCode, alg: Algorithm, names: &[(&str, Option<u8>)]) -> Result<Module, KeyRefusal> {
        if !self.regions.contains(&region) {
            return Err(KeyRefusal::RegionNotServed(region.as_str().to_string()));
        }
        let any_of_alg = self
            .keys
            .range((region, String::new())..)
            .take_while(|((r, _), _)| *r == region)
            .any(|(_, v)| v.iter().any(|h| h.key.algorithm() == alg));
        if !any_of_alg {
            return Err(KeyRefusal::NoAlgorithm { region: region.as_str().to_string(), alg: alg.name() });
        }
        let mut local = LocalKeys::new(region);
        let mut versions = BTreeMap::new();
        for (name, wanted) in names {
            let held = self.keys.get(&(region, (*name).to_string()));
            let of_alg = held.into_iter().flatten().filter(|h| h.key.algorithm() == alg);
            let chosen = match wanted {
                Some(v) => of_alg.into_iter().find(|h| h.version == *v),
                None => of_alg.into_iter().find(|h| h.state == KeyState::Active),
            };
            let Some(h) = chosen else {
                return Err(KeyRefusal::NoKey {
                    name: (*name).to_string(),
                    version: *wanted,
                    region: region.as_str().to_string(),
                    alg: alg.name(),
                });
            };
            local.insert(*name, h.key.try_clone());
            versions.insert((*name).to_string(), h.version);
        }
        Ok(Module { sm: Box::new(local), versions })
    }

    fn describe(&self) -> Vec<String> {
        self.keys
            .iter()
            .flat_map(|((r, n), v)| {
                v.iter().map(move |h| format!("{}/{n} v{} {} {}", r.as_str(), h.version, h.key.algorithm(), h.state))
            })
            .collect()
    }
}

/// issuance-cli's journal, read-only: the key versions each card was personalized with. A SQLite file (one
/// desk's) or the city's PostgreSQL journal (`postgresql://…`, TLS as libpq's URL says: [`crate::pg`]).
pub struct Journal {
    source: Source,
}

enum Source {
    Sqlite(Mutex<Connection>),
    Postgres(Box<PgSource>),
}

struct PgSource {
    client: Mutex<Option<postgres::Client>>,
    config: postgres::Config,
    tls: crate::pg::TlsParams,
}

/// Whether `location` names a PostgreSQL journal.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

fn pg_error(e: crate::pg::ConnectError) -> Error {
    Error::InvalidInput(format!("journal: {e}"))
}

impl Journal {
    /// Opens `path` read-only (it must hold the `cards` table).
    pub fn open(path: &Path) -> Result<Journal> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.query_row("SELECT count(*) FROM cards WHERE 0", [], |_| Ok(()))
            .map_err(|e| Error::InvalidInput(format!("{}: not an issuance journal: {e}", path.display())))?;
        Ok(Journal { source: Source::Sqlite(Mutex::new(conn)) })
    }

    /// Connects to the PostgreSQL journal at `url` (no password in it; `password` if the server asks for one) and
    /// checks that it holds the `cards` table. Lost later, the connection is made again at the next lookup.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Journal> {
        let (config, tls) = crate::pg::config(url, password, "keymgmt serve").map_err(|e| match e {
            crate::pg::UrlError::PasswordInUrl => Error::InvalidInput(
                "the journal URL holds a password: give it in journal_password_file or PGPASSWORD".into(),
            ),
            crate::pg::UrlError::Malformed => {
                Error::InvalidInput("the journal URL is not a valid postgresql:// URL".into())
            }
            other => Error::InvalidInput(format!("journal URL: {other}")),
        })?;
        let mut client = crate::pg::connect(&config, &tls).map_err(pg_error)?;
        client
            .query_one("SELECT count(*) FROM cards WHERE false", &[])
            .map_err(|e| Error::InvalidInput(format!("{url}: not an issuance journal: {}", db_words(&e))))?;
        Ok(Journal { source: Source::Postgres(Box::new(PgSource { client: Mutex::new(Some(client)), config, tls })) })
    }

    /// The versions the card `card_id` (hex, upper case) was personalized with; `None` if the journal does not
    /// know the card.
    pub fn versions(&self, card_id: &str) -> Result<Option<BTreeMap<String, u8>>> {
        let text = match &self.source {
            Source::Sqlite(conn) => {
                let conn = conn.lock().map_err(|_| Error::Integrity("journal connection poisoned".into()))?;
                let text: Option<String> = conn
                    .prepare_cached("SELECT key_versions FROM cards WHERE card_id = ?1")?
                    .query_row([card_id], |r| r.get(0))
                    .optional()?;
                text
            }
            Source::Postgres(pg) => {
                let PgSource { client, config, tls } = &**pg;
                let lookup = || -> Result<Option<String>> {
                    let mut slot = client.lock().map_err(|_| Error::Integrity("journal connection poisoned".into()))?;
                    // a connection lost (a restart, a failover) is made again once
                    for attempt in 0..2 {
                        if slot.as_ref().is_none_or(postgres::Client::is_closed) {
                            *slot = Some(crate::pg::connect(config, tls).map_err(pg_error)?);
                        }
                        let Some(c) = slot.as_mut() else { continue };
                        match c.query_opt("SELECT key_versions FROM cards WHERE card_id = $1", &[&card_id]) {
                            Ok(row) => return row.map(|r| r.try_get(0)).transpose().map_err(pg_query),
                            Err(e) if attempt == 0 && crate::pg::is_connection_lost(&e) => *slot = None,
                            Err(e) => return Err(pg_query(e)),
                        }
                    }
                    Err(Error::Integrity("journal: the connection was lost twice".into()))
                };
                off_runtime(lookup)?
            }
        };
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| Error::Integrity(format!("journal: key_versions of card {card_id}: {e}"))),
        }
    }
}

/// The server's own words for a failed query (the crate's Display says only "db error").
fn db_words(e: &postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
}

fn pg_query(e: postgres::Error) -> Error {
    Error::Integrity(format!("journal: {}", db_words(&e)))
}

/// Runs `f`, which blocks on the sync PostgreSQL client (it runs a runtime of its own), off the service's async
/// workers when called from one.
pub(crate) fn off_runtime<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => Err(Error::Integrity("journal: a PostgreSQL journal needs the multi-threaded runtime".into())),
        Err(_) => f(),
    }
}
