//! The agent's configuration: a TOML file, overridden by `serve` flags.
//!
//! ```toml
//! port = 17788                                  # loopback only; 127.0.0.1 and ::1
//! allowed_origins = ["https://counter.example.gov.cn"]
//! reader = "Virtual PCD"                        # preferred reader (name, unique part or index) for index-free clients
//! terminal_no = "371700000001"                  # 终端机编号
//! device_no = "SIM-READER-01"                   # 终端设备号
//! audit_log = "/var/log/sscard/agent-audit.jsonl"
//! token_key_file = "/etc/sscard/agent-token.key" # HMAC-SHA256 key of the counter back end (hex), or token_key = "…"
//! header_read_timeout_ms = 10000                 # slow or idle connections are closed after this
//! card_timeout_ms = 10000                        # a card call (one APDU) that takes longer answers 504
//! spent_tokens_file = "/var/lib/sscard/agent-spent-tokens"  # default: agent-spent-tokens beside this file
//! page_idle_secs = 120                           # the counter page clears the holder's data after this idle time
//!
//! [readers]                                     # the national function table's iType (GET /v1/national)
//! contact = "Virtual PCD 00 00"                 # iType 1 (3, 4 automatic); default: `reader`, else the first reader
//! contactless = "Virtual PCD 00 01"             # iType 2; none: iType 2 answers −13, 3 and 4 use the contact one
//!
//! [keys]
//! mode = "two-step"                             # the back end's HSM answers; the agent holds no keys
//! # mode = "local", keystore = "keys.db", passphrase_file = "pass", region = "371700"
//! # mode = "local", key_file = "fixtures/cards/test-keys.toml", region = "371700"   (tests and demos)
//! # mode = "key-service", urls = ["https://keys1.example:8443", "https://keys2.example:8443"],
//! #   ca_file = "province-ca.pem", cert_file = "terminal.pem", key_file = "terminal-key.pem"
//! ```
//!
//! With `mode = "key-service"` the agent holds no keys and asks the province's key service (`keymgmt serve`)
//! itself: a generation 3 card's basic information and every write go through the two-step exchange, Step 1 →
//! the service → Step 2 inside the card's transaction; with several URLs it fails over when a replica is down.
//! The terminal number (`terminal_no`) must be the one of the client certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// How long the counter page shows a holder's data without the clerk's activity, unless configured.
pub const DEFAULT_PAGE_IDLE: Duration = Duration::from_secs(120);

/// The port the agent listens on unless told otherwise (documented in the README and the OpenAPI file).
pub const DEFAULT_PORT: u16 = 17788;

/// Where the agent's keys come from.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeyMode {
    /// No keys in the agent: reads that need a key go through the two-step operations, answered by the back end's
    /// HSM (generation 1 and 2 basic reads need no key at all).
    #[default]
    TwoStep,
    /// Keys held locally: a key-mgmt store (with its passphrase file) or a key file (tests, demos).
    Local {
        /// key-mgmt store.
        #[serde(default)]
        keystore: Option<PathBuf>,
        /// The store's passphrase, first line of this file.
        #[serde(default)]
        passphrase_file: Option<PathBuf>,
        /// A key file (`sscard-test-keys` or `sscard-region-keys`).
        #[serde(default)]
        key_file: Option<PathBuf>,
        /// The region whose keys to use.
        #[serde(default = "default_region")]
        region: String,
    },
    /// No keys in the agent: it asks the key service (`keymgmt serve`) over mutual TLS.
    KeyService {
        /// The replicas' base URLs, tried in order (failover).
        urls: Vec<String>,
        /// The CA of the service's certificate (PEM).
        ca_file: PathBuf,
        /// The terminal's client certificate (PEM).
        #[serde(default)]
        cert_file: Option<PathBuf>,
        /// Its private key (PEM).
        #[serde(default)]
        key_file: Option<PathBuf>,
        /// The longest wait for one replica, in milliseconds (default 5000).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

impl KeyMode {
    /// The key service client of a `key-service` mode (its files are read here); `None` for the other modes.
    pub fn key_service_client(
        &self,
        terminal_no: &str,
    ) -> Result<Option<card_core::security::key_client::KeyServiceClient>, ConfigError> {
        let KeyMode::KeyService { urls, ca_file, cert_file, key_file, timeout_ms } = self else {
            return Ok(None);
        };
        let client_cert = match (cert_file, key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => return Err(ConfigError::Invalid("keys: cert_file and key_file go together".into())),
        };
        let config = card_core::security::key_client::ClientConfig {
            urls: urls.clone(),
            terminal: terminal_no.to_owned(),
            ca_file: ca_file.clone(),
            client_cert,
            timeout: Duration::from_millis(timeout_ms.unwrap_or(5000)),
        };
        card_core::security::key_client::KeyServiceClient::new(&config)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("keys: {e}")))
    }
}

fn default_region() -> String {
    "371700".into()
}

/// The configuration file, as read (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    port: Option<u16>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    reader: Option<String>,
    terminal_no: Option<String>,
    device_no: Option<String>,
    audit_log: Option<PathBuf>,
    token_key: Option<String>,
    token_key_file: Option<PathBuf>,
    spent_tokens_file: Option<PathBuf>,
    token_max_ttl_secs: Option<u64>,
    queue_wait_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    two_step_timeout_secs: Option<u64>,
    card_timeout_ms: Option<u64>,
    pin_attempts_per_minute: Option<u32>,
    max_body_bytes: Option<usize>,
    page_idle_secs: Option<u64>,
    readers: Option<ReaderRoles>,
    keys: Option<KeyMode>,
}

/// The `[readers]` table: which reader is which for the national function table's `iType`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReaderRoles {
    contact: Option<String>,
    contactless: Option<String>,
}

/// The agent's effective configuration.
pub struct Config {
    /// TCP port on 127.0.0.1 and ::1 (0: any free port, for tests).
    pub port: u16,
    /// Origins allowed to call the API (scheme://host[:port], compared exactly; no wildcard).
    pub allowed_origins: Vec<String>,
    /// The preferred reader.
    pub reader: Option<String>,
    /// 终端机编号 (also the terminal a token must name).
    pub terminal_no: String,
    /// 终端设备号.
    pub device_no: String,
    /// The audit log (JSON lines); none: audit lines go to stderr.
    pub audit_log: Option<PathBuf>,
    /// The HMAC key of operation tokens; none: writes and PIN operations are refused.
    pub token_key: Option<Zeroizing<Vec<u8>>>,
    /// Where spent tokens are kept until they expire, so that a restart does not make them good again; none: in
    /// memory only. A configuration file with a token key defaults to `agent-spent-tokens` beside it.
    pub spent_tokens: Option<PathBuf>,
    /// The longest lifetime a token may claim.
    pub token_max_ttl: Duration,
    /// How long a request waits for its reader before `busy`.
    pub queue_wait: Duration,
    /// How long a connection may take to send a request's headers, and stay idle between requests, before it
    /// is closed.
    pub header_read_timeout: Duration,
    /// How long a two-step step 1 holds the card for its step 2.
    pub two_step_timeout: Duration,
    /// The longest wait for one PC/SC call on a card (connecting, one APDU): a mute card's request is answered
    /// `504 card_timeout` after it, and its connection abandoned.
    pub card_timeout: Duration,
    /// PIN operations per reader per minute.
    pub pin_attempts_per_minute: u32,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// How long the counter page keeps the holder's data (fields and photo) on screen without the clerk's
    /// activity (a key, a click) before it clears them.
    pub page_idle: Duration,
    /// The contact reader of the national function table (`iType` 1; name, unique part or index); none: the
    /// preferred `reader`, else the first reader.
    pub contact_reader: Option<String>,
    /// The contactless reader (`iType` 2); none: `iType` 2 answers −13.
    pub contactless_reader: Option<String>,
    /// Key mode.
    pub keys: KeyMode,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("allowed_origins", &self.allowed_origins)
            .field("reader", &self.reader)
            .field("terminal_no", &self.terminal_no)
            .field("device_no", &self.device_no)
            .field("audit_log", &self.audit_log)
            .field("token_key", &self.token_key.as_ref().map(|_| "REDACTED"))
            .field("contact_reader", &self.contact_reader)
            .field("contactless_reader", &self.contactless_reader)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: DEFAULT_PORT,
            allowed_origins: Vec::new(),
            reader: None,
            terminal_no: String::new(),
            device_no: String::new(),
            audit_log: None,
            token_key: None,
            spent_tokens: None,
            token_max_ttl: Duration::from_secs(300),
            queue_wait: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            two_step_timeout: Duration::from_secs(30),
            card_timeout: card_core::transport::DEFAULT_CARD_TIMEOUT,
            pin_attempts_per_minute: 5,
            max_body_bytes: 16 * 1024,
            page_idle: DEFAULT_PAGE_IDLE,
            contact_reader: None,
            contactless_reader: None,
            keys: KeyMode::TwoStep,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line the parser stopped at (1-based).
        line: usize,
        /// The column in that line (1-based, in characters).
        column: usize,
        /// The parser's message (never the file's text: a line may hold the token key).
        message: String,
    },
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// An allowed origin must be `scheme://host[:port]`, without path, query or wildcard.
pub fn check_origin(origin: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("allowed origin {origin:?}: {why}"));
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains('*') {
        return Err(bad("no wildcards"));
    }
    if rest.contains(['/', '?', '#', ' ', '@']) {
        return Err(bad("scheme://host[:port] only, no path, user or query"));
    }
    Ok(())
}

fn parse_hex_key(text: &str, what: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let key = Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| ConfigError::Invalid(format!("{what}: the token key must be hex")))?,
    );
    if key.len() < 16 {
        return Err(ConfigError::Invalid(format!("{what}: the token key must be at least 16 bytes")));
    }
    Ok(key)
}

/// The 1-based line and column (in characters) of a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Largest configuration file read (a configuration is a few hundred bytes).
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;
/// Largest token key file read (hex of a key, with room for whitespace).
pub const MAX_TOKEN_KEY_FILE: u64 = 4096;

impl Config {
    /// Reads a configuration file; absent fields keep their defaults. The file, and the token key file it names,
    /// are read with a size limit ([`card_core::read_limited`]): `/dev/zero`, a FIFO or a huge file is refused.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = Zeroizing::new(
            card_core::read_limited_string(path, MAX_CONFIG_FILE)
                .map_err(|source| ConfigError::Read { path: path.into(), source })?,
        );
        let file: File = toml::from_str(&text).map_err(|e| {
            let (line, column) = line_and_column(&text, e.span().map_or(0, |s| s.start));
            ConfigError::Parse { path: path.into(), line, column, message: e.message().trim_end().to_owned() }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let mut c = Config::default();
        if let Some(p) = file.port {
            c.port = p;
        }
        c.allowed_origins = file.allowed_origins;
        c.reader = file.reader;
        c.terminal_no = file.terminal_no.unwrap_or_default();
        c.device_no = file.device_no.unwrap_or_default();
        c.audit_log = file.audit_log.map(resolve);
        c.token_key = match (file.token_key, file.token_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid("token_key and token_key_file: give one of them".into()));
            }
            (Some(k), None) => Some(parse_hex_key(&Zeroizing::new(k), "token_key")?),
            (None, Some(f)) => {
                let f = resolve(f);
                let text = Zeroizing::new(
                    card_core::read_limited_string(&f, MAX_TOKEN_KEY_FILE)
                        .map_err(|source| ConfigError::Read { path: f.clone(), source })?,
                );
                Some(parse_hex_key(&text, &f.display().to_string())?)
            }
            (None, None) => None,
        };
        c.spent_tokens = match file.spent_tokens_file {
            Some(f) => Some(resolve(f)),
            None if c.token_key.is_some() => Some(base.join("agent-spent-tokens")),
            None => None,
        };
        if let Some(s) = file.token_max_ttl_secs {
            c.token_max_ttl = Duration::from_secs(s);
        }
        if let Some(ms) = file.queue_wait_ms {
            c.queue_wait = Duration::from_millis(ms);
        }
        if let Some(ms) = file.header_read_timeout_ms {
            c.header_read_timeout = Duration::from_millis(ms);
        }
        if let Some(s) = file.two_step_timeout_secs {
            c.two_step_timeout = Duration::from_secs(s);
        }
        if let Some(ms) = file.card_timeout_ms {
            c.card_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = file.pin_attempts_per_minute {
            c.pin_attempts_per_minute = n;
        }
        if let Some(n) = file.max_body_bytes {
            c.max_body_bytes = n;
        }
        if let Some(s) = file.page_idle_secs {
            c.page_idle = Duration::from_secs(s);
        }
        if let Some(roles) = file.readers {
            c.contact_reader = roles.contact;
            c.contactless_reader = roles.contactless;
        }
        c.keys = match file.keys.unwrap_or_default() {
            KeyMode::TwoStep => KeyMode::TwoStep,
            KeyMode::Local { keystore, passphrase_file, key_file, region } => KeyMode::Local {
                keystore: keystore.map(resolve),
                passphrase_file: passphrase_file.map(resolve),
                key_file: key_file.map(resolve),
                region,
            },
            KeyMode::KeyService { urls, ca_file, cert_file, key_file, timeout_ms } => KeyMode::KeyService {
                urls,
                ca_file: resolve(ca_file),
                cert_file: cert_file.map(resolve),
                key_file: key_file.map(resolve),
                timeout_ms,
            },
        };
        Ok(c)
    }

    /// Checks the values that the file format cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for o in &self.allowed_origins {
            check_origin(o)?;
        }
        if let KeyMode::Local { keystore, passphrase_file, key_file, .. } = &self.keys {
            match (keystore, key_file) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ConfigError::Invalid("keys: mode local needs one of keystore or key_file".into()))
                }
                (Some(_), None) if passphrase_file.is_none() => {
                    return Err(ConfigError::Invalid("keys: a keystore needs its passphrase_file".into()))
                }
                _ => {}
            }
        }
        if let KeyMode::KeyService { urls, .. } = &self.keys {
            if urls.is_empty() {
                return Err(ConfigError::Invalid("keys: mode key-service needs at least one URL in urls".into()));
            }
            if self.terminal_no.is_empty() {
                return Err(ConfigError::Invalid(
                    "keys: mode key-service needs terminal_no (the terminal number of the client certificate)".into(),
                ));
            }
        }
        for (role, reader) in [("contact", &self.contact_reader), ("contactless", &self.contactless_reader)] {
            if reader.as_deref().is_some_and(|r| r.trim().is_empty()) {
                return Err(ConfigError::Invalid(format!("readers: {role} must name a reader or give its index")));
            }
        }
        if self.page_idle.is_zero() || self.page_idle > Duration::from_secs(3600) {
            return Err(ConfigError::Invalid("page_idle_secs must be 1…3600".into()));
        }
        if self.header_read_timeout.is_zero() {
            return Err(ConfigError::Invalid("header_read_timeout_ms must be at least 1".into()));
        }
        if self.pin_attempts_per_minute == 0 {
            return Err(ConfigError::Invalid("pin_attempts_per_minute must be at least 1".into()));
        }
        if self.card_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid("card_timeout_ms must be at least 100".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p).and_then(|c| c.validate().map(|()| c))
    }

    #[test]
    fn a_full_file_is_read() {
        let c = load(
            r#"port = 18000
allowed_origins = ["https://counter.example", "http://127.0.0.1:9000"]
terminal_no = "371700000001"
device_no = "D1"
token_key = "000102030405060708090a0b0c0d0e0f"
queue_wait_ms = 250
card_timeout_ms = 2500
[keys]
mode = "local"
key_file = "keys.toml"
"#,
        )
        .unwrap();
        assert_eq!(c.port, 18000);
        assert_eq!(c.allowed_origins.len(), 2);
        assert_eq!(c.queue_wait, Duration::from_millis(250));
        assert_eq!(c.card_timeout, Duration::from_millis(2500));
        assert!(matches!(&c.keys, KeyMode::Local { key_file: Some(p), .. } if p.ends_with("keys.toml")));
        assert!(!format!("{c:?}").contains("0001020304"), "the token key is redacted");
    }

    #[test]
    fn the_token_key_file_is_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.key"), "000102030405060708090a0b0c0d0e0f1011\n").unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "token_key_file = \"token.key\"\naudit_log = \"audit.jsonl\"").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.token_key.as_deref().map(Vec::len), Some(18));
        assert_eq!(c.audit_log.as_deref(), Some(dir.path().join("audit.jsonl").as_path()));
        std::fs::write(&p, "token_key_file = \"missing.key\"").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("missing.key"), "{e}");
        std::fs::write(&p, "token_key = \"00112233445566778899aabbccddeeff\"\ntoken_key_file = \"token.key\"").unwrap();
        assert!(Config::load(&p).unwrap_err().to_string().contains("give one of them"));
    }

    #[test]
    fn reader_roles_are_read_and_checked() {
        let c = load("[readers]\ncontact = \"Virtual PCD 00 00\"\ncontactless = \"1\"\n").unwrap();
        assert_eq!(c.contact_reader.as_deref(), Some("Virtual PCD 00 00"));
        assert_eq!(c.contactless_reader.as_deref(), Some("1"));
        let c = load("").unwrap();
        assert_eq!((c.contact_reader, c.contactless_reader), (None, None));
        let e = load("[readers]\ncontactless = \" \"\n").unwrap_err().to_string();
        assert!(e.contains("contactless"), "{e}");
        let e = load("[readers]\ncontact_less = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn defaults_are_two_step_on_the_default_port() {
        let c = load("").unwrap();
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.keys, KeyMode::TwoStep);
        assert!(c.token_key.is_none());
    }

    #[test]
    fn bad_files_are_refused_precisely() {
        let e = load("allowed_origins = [\"*\"]").unwrap_err().to_string();
        assert!(e.contains("http://"), "{e}");
        let e = load("allowed_origins = [\"https://*.example\"]").unwrap_err().to_string();
        assert!(e.contains("wildcard"), "{e}");
        let e = load("allowed_origins = [\"https://a.example/path\"]").unwrap_err().to_string();
        assert!(e.contains("no path"), "{e}");
        let e = load("prot = 1").unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = load("token_key = \"zz\"").unwrap_err().to_string();
        assert!(e.contains("hex") && !e.contains("zz"), "{e}");
        let e = load("token_key = \"0011\"").unwrap_err().to_string();
        assert!(e.contains("16 bytes"), "{e}");
        let e = load("[keys]\nmode = \"local\"\nkeystore = \"k.db\"").unwrap_err().to_string();
        assert!(e.contains("passphrase_file"), "{e}");
        let e = load("[keys]\nmode = \"hsm\"").unwrap_err().to_string();
        assert!(e.contains("hsm") || e.contains("variant"), "{e}");
    }

    #[test]
    fn a_syntax_error_names_its_line_and_never_the_text() {
        // the README's old commented-out local mode, uncommented: several keys on one line
        let text = "port = 17788\ntoken_key = \"00112233445566778899aabbccddeeff\"\n[keys]\n\
                    mode = \"local\", keystore = \"keys.db\", passphrase_file = \"pass\"\n";
        let e = load(text).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { line: 4, .. }), "{e:?}");
        let shown = e.to_string();
        assert!(shown.contains("agent.toml:4:"), "{shown}");
        let e = load("token_key = \"00112233445566778899aabbccddeeff\" x\n").unwrap_err().to_string();
        assert!(e.contains(":1:") && !e.contains("00112233"), "{e}");
    }
}
