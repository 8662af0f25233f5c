//! The key service's configuration: one TOML file (`keymgmt serve --config key-service.toml`).
//!
//! ```toml
//! listen = "0.0.0.0:8443"               # a replica's address (with --insecure-loopback: 127.0.0.1 only)
//! store = "/srv/keys/keys.db"           # else the global --store / KEYMGMT_STORE
//! passphrase_file = "/run/keys/pass"    # else the global --passphrase-file / --unlock-component-file
//! regions = ["371700", "371000"]        # the region keys derived and held; nothing else is served
//! journal = "/srv/issuance/journal.db"  # optional: the card's key versions (issuance-cli's journal, read-only)
//! audit_log = "/var/log/keymgmt/replica-1.jsonl"   # this replica's own log; its head in <audit_log>.head
//! revocation_list = "/etc/keymgmt/revoked.txt"     # optional: certificate serials (hex), one a line
//! max_body_bytes = 8192
//! handshake_timeout_secs = 10
//!
//! [tls]
//! cert = "server.pem"                   # the service's certificate chain (PEM)
//! key = "server.key"                    # its private key (PKCS#8, PKCS#1 or SEC1 PEM)
//! client_ca = "terminal-ca.pem"         # the province's terminal CA: only its certificates are accepted
//!
//! [limits]                              # token buckets: a rate per second and a burst
//! per_terminal_per_second = 20
//! per_terminal_burst = 40
//! global_per_second = 50000
//! global_burst = 50000
//!
//! [default]                             # terminals not listed below; leave out for "nothing"
//! operations = ["read"]
//! regions = ["*"]                       # "*": every region the service holds
//! dfs = ["SSSE"]
//!
//! [terminal.371700000001]              # the terminal number = the certificate's subject CN
//! operations = ["read", "write", "pin-reload", "pin-unblock"]
//! regions = ["371700"]
//! dfs = ["SSSE", "DF01"]
//! per_second = 5                        # optional: this terminal's own rate limit
//! burst = 10
//! ```
//!
//! Relative paths are taken from the configuration file's directory. Errors name `file:line:column`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use card_core::codec::RegionCode;
use card_core::profile::Profile;
use card_core::security::key_service::Operation;
use serde::Deserialize;

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid (TOML syntax, an unknown key, a bad value).
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// A region in the configuration: a 6-digit code, or `*` in a policy (every region held).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum RegionSel {
    /// Every region the service holds.
    Any,
    /// One region.
    One(RegionCode),
}

impl TryFrom<String> for RegionSel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "*" {
            return Ok(RegionSel::Any);
        }
        RegionCode::parse(&s).map(RegionSel::One).map_err(|_| format!("{s:?} is not a 6-digit region code (or \"*\")"))
    }
}

/// A DF name of the profile (`SSSE`, `DF01`, …).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct DfName(pub String);

impl TryFrom<String> for DfName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "*" || Profile::builtin().df(&s).is_some() {
            Ok(DfName(s))
        } else {
            Err(format!("{s:?} is not a DF of the profile (SSSE, DF01, DF02, …, or \"*\")"))
        }
    }
}

/// What a terminal may ask.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Operations allowed.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Regions allowed (`*`: all held).
    #[serde(default)]
    pub regions: Vec<RegionSel>,
    /// DFs whose keys may be used (`*`: all): `SSSE` for reads and PIN operations and SSSE files, `DF01`… for
    /// application files.
    #[serde(default)]
    pub dfs: Vec<DfName>,
    /// This terminal's own rate (requests per second), instead of `limits.per_terminal_per_second`.
    pub per_second: Option<f64>,
    /// This terminal's own burst.
    pub burst: Option<f64>,
}

/// Token-bucket rate limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests per second per terminal.
    pub per_terminal_per_second: f64,
    /// Burst per terminal.
    pub per_terminal_burst: f64,
    /// Requests per second for the whole replica.
    pub global_per_second: f64,
    /// Burst for the whole replica.
    pub global_burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_terminal_per_second: 20.0,
            per_terminal_burst: 40.0,
            global_per_second: 50_000.0,
            global_burst: 50_000.0,
        }
    }
}

/// TLS files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The service's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The terminal CA (PEM; several certificates allowed).
    pub client_ca: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_body() -> usize {
    8192
}
fn default_handshake() -> u64 {
    10
}

/// The configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The key store (else the global `--store`).
    pub store: Option<PathBuf>,
    /// The passphrase file (else the global options).
    pub passphrase_file: Option<PathBuf>,
    /// Regions whose keys are held.
    pub regions: Vec<RegionSel>,
    /// issuance-cli's journal (read-only), for the card's key versions: a SQLite file, or the city's PostgreSQL
    /// journal as a `postgresql://` URL (no password in it; TLS by `sslmode`/`sslrootcert`).
    pub journal: Option<PathBuf>,
    /// The PostgreSQL journal's password (first line); else PGPASSWORD.
    pub journal_password_file: Option<PathBuf>,
    /// This replica's audit log (JSON lines, hash-chained).
    pub audit_log: PathBuf,
    /// Revoked certificate serials.
    pub revocation_list: Option<PathBuf>,
    /// Largest request body.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default = "default_handshake")]
    pub handshake_timeout_secs: u64,
    /// TLS files (required unless `--insecure-loopback`).
    pub tls: Option<TlsFiles>,
    /// Rate limits.
    #[serde(default)]
    pub limits: Limits,
    /// The policy of terminals not listed (none: they may ask nothing).
    pub default: Option<PolicyConfig>,
    /// Policies by terminal number.
    #[serde(default)]
    pub terminal: BTreeMap<String, PolicyConfig>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

impl Config {
    /// Reads and checks `path`; relative paths in it are made relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = card_core::read_limited_string(path, 1024 * 1024)
            .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let mut config = Config::parse(&text, &shown)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let journal_is_url = config.journal.as_deref().and_then(Path::to_str).is_some_and(super::keys::is_postgres);
        for p in [
            &mut config.store,
            &mut config.passphrase_file,
            &mut config.journal_password_file,
            &mut config.revocation_list,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if !journal_is_url {
            if let Some(j) = &mut config.journal {
                fix(j);
            }
        }
        fix(&mut config.audit_log);
        if let Some(t) = &mut config.tls {
            fix(&mut t.cert);
            fix(&mut t.key);
            fix(&mut t.client_ca);
        }
        Ok(config)
    }

    /// Parses the text of a configuration file named `shown` (for messages).
    pub fn parse(text: &str, shown: &str) -> Result<Config, ConfigError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            ConfigError::Invalid { path: shown.to_string(), line, column, message }
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, e.message().trim().to_string())
        })?;
        let at = |needle: &str| text.find(needle).unwrap_or(0);
        if config.regions.is_empty() || config.regions.contains(&RegionSel::Any) {
            return Err(invalid(
                at("regions"),
                "`regions` lists the 6-digit codes whose keys are held (no \"*\")".into(),
            ));
        }
        let limits = [
            config.limits.per_terminal_per_second,
            config.limits.per_terminal_burst,
            config.limits.global_per_second,
            config.limits.global_burst,
        ];
        let terminal_limits = config.terminal.values().flat_map(|p| [p.per_second, p.burst]).flatten();
        if limits.into_iter().chain(terminal_limits).any(|x| !x.is_finite() || x <= 0.0) {
            return Err(invalid(at("[limits]"), "rates and bursts must be positive numbers".into()));
        }
        if config.max_body_bytes < 256 || config.max_body_bytes > 1024 * 1024 {
            return Err(invalid(at("max_body_bytes"), "max_body_bytes must be 256 to 1048576".into()));
        }
        for name in config.terminal.keys() {
            if name.is_empty() || name.len() > 64 {
                return Err(invalid(at(name), format!("terminal number {name:?} must be 1 to 64 characters")));
            }
        }
        Ok(config)
    }

    /// The regions held.
    pub fn region_codes(&self) -> Vec<RegionCode> {
        self.regions
            .iter()
            .filter_map(|r| match r {
                RegionSel::One(c) => Some(*c),
                RegionSel::Any => None,
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:0"
regions = ["371700"]
audit_log = "a.jsonl"
[tls]
cert = "s.pem"
key = "s.key"
client_ca = "ca.pem"
[default]
operations = ["read"]
regions = ["*"]
dfs = ["SSSE"]
[terminal.371700000001]
operations = ["read", "write"]
regions = ["371700"]
dfs = ["SSSE", "DF01"]
per_second = 2
"#;

    #[test]
    fn parses_and_names_line_and_column() {
        let c = Config::parse(GOOD, "k.toml").unwrap();
        assert_eq!(c.terminal["371700000001"].operations, vec![Operation::Read, Operation::Write]);
        let bad = GOOD.replace("dfs = [\"SSSE\", \"DF01\"]", "dfs = [\"SSSE\", \"DF99\"]");
        let e = Config::parse(&bad, "k.toml").unwrap_err().to_string();
        assert!(e.starts_with("k.toml:16:"), "{e}");
        assert!(e.contains("DF99"), "{e}");
        let e = Config::parse(&GOOD.replace("\"write\"", "\"debit\""), "k.toml").unwrap_err().to_string();
        assert!(e.starts_with("k.toml:14:"), "{e}");
        let e = Config::parse(&format!("{GOOD}\nfoo = 1\n"), "k.toml").unwrap_err().to_string();
        assert!(e.contains("foo") || e.contains("unknown"), "{e}");
        let e = Config::parse(&GOOD.replace("regions = [\"371700\"]\naudit", "regions = [\"3717\"]\naudit"), "k.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml:3:"), "{e}");
    }
}
