//! The library's configuration: `/etc/sscard/sscard.toml`, or the file named by the environment variable
//! `SSCARD_CONFIG`.
//!
//! ```toml
//! [readers]
//! contact = "Virtual PCD 00 00"        # PC/SC reader name (exact, or a part of exactly one name), or an index
//! contactless = "Virtual PCD 00 01"    # optional: without it, iType 2 answers −13 and 3/4 use the contact one
//!
//! [terminal]
//! terminal_no = "371700000001"         # 终端机编号 (field 10 of iReadCardBas)
//! device_no = "SIM-READER-01"          # 终端设备号 (field 11)
//!
//! [keys]
//! mode = "none"                        # no keys: functions that need one answer −2203/−2201, callers use _HSM_
//! # mode = "local", key_file = "region-keys.toml", region = "371700"   (a test bench; path relative to this file)
//! # mode = "key-service", urls = ["https://keys1.example:8443"], ca_file = "ca.pem",
//! #   cert_file = "terminal.pem", key_file = "terminal.key", timeout_ms = 5000
//! #   (the province's `keymgmt serve` over mutual TLS: iReadCardBas reads a generation 3 card's holder data and
//! #   iWriteCard writes with no key at the counter; terminal.terminal_no must be the certificate's)
//!
//! [hsm]
//! timeout_secs = 60                    # how long _HSM_Step1 holds the card waiting for Step2
//!
//! [pin]
//! pinentry = "/usr/bin/pinentry"       # asks the holder's PIN when the reader has no PIN pad (and always for a
//!                                      # new PIN of iReloadPIN / iUnblockPIN); without it those functions answer −13
//! pinentry_args = ["--ttyname", "/dev/tty1"]   # optional: the program's arguments
//! timeout_secs = 60                    # how long pinentry waits for the holder
//! ```
//!
//! Every section and key is optional. With no `SSCARD_CONFIG` and no `/etc/sscard/sscard.toml` the defaults
//! hold: the first PC/SC reader is the contact reader, no contactless reader, empty terminal identifiers, no
//! keys. A file that is named but cannot be read or used is an error ([`ConfigError`]): the library then
//! answers every call with [`crate::CONFIG_ERROR`] and says why once on standard error. Messages never hold key
//! material.

use std::path::{Path, PathBuf};
use std::time::Duration;

use card_core::card::TerminalIds;
use card_core::codec::RegionCode;
use card_core::security::key_client::{ClientConfig, KeyServiceClient};
use card_core::security::key_file::{self, KeyFileError};
use card_core::security::{LocalKeys, NoKeys, SecurityModule};
use card_core::transport::ReaderSelector;
use serde::Deserialize;

/// The configuration file read when `SSCARD_CONFIG` is not set.
pub const DEFAULT_PATH: &str = "/etc/sscard/sscard.toml";
/// The environment variable naming another configuration file.
pub const ENV: &str = "SSCARD_CONFIG";
/// Largest configuration file read.
pub const MAX_CONFIG: u64 = 64 * 1024;
/// How long `_HSM_Step1` holds the card for Step2 unless configured.
pub const DEFAULT_HSM_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the configuration cannot be used. No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration")]
    Read(#[source] std::io::Error),
    /// Not TOML of the configuration's shape.
    #[error("configuration {}: {what}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what.
        what: String,
    },
    /// A value is not usable.
    #[error("configuration {}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The key file of `[keys]` cannot be used.
    #[error("configuration {}: [keys]", path.display())]
    Keys {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<KeyFileError>,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    readers: ReadersSection,
    #[serde(default)]
    terminal: TerminalSection,
    #[serde(default)]
    keys: KeysSection,
    #[serde(default)]
    hsm: HsmSection,
    #[serde(default)]
    pin: PinSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadersSection {
    contact: Option<String>,
    contactless: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TerminalSection {
    #[serde(default)]
    terminal_no: String,
    #[serde(default)]
    device_no: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeysSection {
    mode: Option<String>,
    key_file: Option<PathBuf>,
    region: Option<String>,
    urls: Option<Vec<String>>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HsmSection {
    timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PinSection {
    pinentry: Option<PathBuf>,
    #[serde(default)]
    pinentry_args: Vec<String>,
    timeout_secs: Option<u64>,
}

/// How long pinentry waits for the holder unless configured.
pub const DEFAULT_PIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The configuration in force.
pub struct Config {
    /// The contact reader (iType 1).
    pub contact: ReaderSelector,
    /// The contactless reader (iType 2), if any.
    pub contactless: Option<ReaderSelector>,
    /// 终端机编号 and 终端设备号 of the national strings.
    pub terminal: TerminalIds,
    /// Who computes the cryptograms of the plain functions.
    pub keys: Box<dyn SecurityModule + Send + Sync>,
    /// `keys.mode = "none"`: the library holds no keys at all (a function that needs one answers −2201 or −2203).
    pub no_keys: bool,
    /// `keys.mode = "key-service"`: the key service that computes for the counter.
    pub key_service: Option<KeyServiceClient>,
    /// How long `_HSM_Step1` holds the card for Step2.
    pub hsm_timeout: Duration,
    /// The pinentry program that asks the holder's PIN, if any.
    pub pinentry: Option<PathBuf>,
    /// Its arguments (e.g. `--ttyname /dev/tty1`, `--display :0`).
    pub pinentry_args: Vec<String>,
    /// How long pinentry waits for the holder.
    pub pin_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("contact", &self.contact)
            .field("contactless", &self.contactless)
            .field("terminal", &self.terminal)
            .field("no_keys", &self.no_keys)
            .field("key_service", &self.key_service)
            .field("hsm_timeout", &self.hsm_timeout)
            .field("pinentry", &self.pinentry)
            .field("pinentry_args", &self.pinentry_args)
            .field("pin_timeout", &self.pin_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            contact: ReaderSelector::Index(0),
            contactless: None,
            terminal: TerminalIds::default(),
            keys: Box::new(NoKeys),
            no_keys: true,
            key_service: None,
            hsm_timeout: DEFAULT_HSM_TIMEOUT,
            pinentry: None,
            pinentry_args: Vec::new(),
            pin_timeout: DEFAULT_PIN_TIMEOUT,
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn selector(text: &str, path: &Path, role: &str) -> Result<ReaderSelector, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Invalid { path: path.to_owned(), what: format!("readers.{role} is empty") });
    }
    // parsing a selector cannot fail (digits: an index; anything else: a name)
    Ok(text.parse().unwrap_or_else(|never: std::convert::Infallible| match never {}))
}

impl Config {
    /// The configuration of this process: the file of `SSCARD_CONFIG` if set (it must exist), else
    /// [`DEFAULT_PATH`] if it exists, else the defaults.
    pub fn from_environment() -> Result<Config, ConfigError> {
        match std::env::var_os(ENV) {
            Some(path) if !path.is_empty() => Config::load(Path::new(&path)),
            _ if Path::new(DEFAULT_PATH).exists() => Config::load(Path::new(DEFAULT_PATH)),
            _ => Ok(Config::default()),
        }
    }

    /// Reads the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = card_core::read_limited_string(path, MAX_CONFIG).map_err(ConfigError::Read)?;
        Config::parse(&text, path)
    }

    /// The configuration in `text`, read from `path` (relative key file paths are relative to its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let what = match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("line {line} column {col}: {}", e.message())
                }
                None => e.message().to_owned(),
            };
            ConfigError::Syntax { path: path.to_owned(), what }
        })?;
        let invalid = |what: String| ConfigError::Invalid { path: path.to_owned(), what };
        let mut c = Config::default();
        if let Some(contact) = &file.readers.contact {
            c.contact = selector(contact, path, "contact")?;
        }
        if let Some(contactless) = &file.readers.contactless {
            let sel = selector(contactless, path, "contactless")?;
            if sel == c.contact {
                return Err(invalid("readers.contact and readers.contactless name the same reader".into()));
            }
            c.contactless = Some(sel);
        }
        c.terminal =
            TerminalIds { terminal_no: file.terminal.terminal_no.clone(), device_no: file.terminal.device_no.clone() };
        for (name, value) in [("terminal_no", &c.terminal.terminal_no), ("device_no", &c.terminal.device_no)] {
            if value.contains(['|', '$']) || value.chars().any(char::is_control) {
                return Err(invalid(format!("terminal.{name} may not hold | $ or control characters")));
            }
        }
        let relative = |p: &PathBuf| match path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.clone(),
        };
        let k = &file.keys;
        let mode = k.mode.as_deref().unwrap_or("none");
        let service_fields = k.urls.is_some() || k.ca_file.is_some() || k.cert_file.is_some() || k.timeout_ms.is_some();
        if mode != "key-service" && service_fields {
            return Err(invalid(format!(
                "keys: urls, ca_file, cert_file and timeout_ms are of mode key-service, not {mode}"
            )));
        }
        c.keys = match (mode, &k.key_file) {
            ("none", None) => Box::new(NoKeys),
            ("none", Some(_)) => return Err(invalid("keys: mode none takes no key_file".into())),
            ("local", Some(key_path)) => {
                let region = k.region.as_deref().ok_or_else(|| invalid("keys: mode local needs region".into()))?;
                let region = RegionCode::parse(region).map_err(|e| invalid(format!("keys.region: {e}")))?;
                let keys: LocalKeys = key_file::load(&relative(key_path), region)
                    .map_err(|e| ConfigError::Keys { path: path.to_owned(), source: Box::new(e) })?;
                c.no_keys = false;
                Box::new(keys)
            }
            ("local", None) => return Err(invalid("keys: mode local needs key_file".into())),
            ("key-service", key_path) => {
                let urls = k.urls.clone().filter(|u| !u.is_empty());
                let urls = urls.ok_or_else(|| invalid("keys: mode key-service needs urls".into()))?;
                let ca = k.ca_file.as_ref().ok_or_else(|| invalid("keys: mode key-service needs ca_file".into()))?;
                if c.terminal.terminal_no.is_empty() {
                    return Err(invalid(
                        "keys: mode key-service needs terminal.terminal_no (the client certificate's)".into(),
                    ));
                }
                let client_cert = match (&k.cert_file, key_path) {
                    (Some(cert), Some(key)) => Some((relative(cert), relative(key))),
                    (None, None) => None,
                    _ => return Err(invalid("keys: cert_file and key_file go together".into())),
                };
                let client = KeyServiceClient::new(&ClientConfig {
                    urls,
                    terminal: c.terminal.terminal_no.clone(),
                    ca_file: relative(ca),
                    client_cert,
                    timeout: Duration::from_millis(k.timeout_ms.unwrap_or(5000).clamp(100, 60_000)),
                })
                .map_err(|e| invalid(format!("keys: {e}")))?;
                c.key_service = Some(client);
                Box::new(NoKeys)
            }
            (other, _) => {
                return Err(invalid(format!("keys.mode {other:?}: expected \"none\", \"local\" or \"key-service\"")))
            }
        };
        if let Some(secs) = file.hsm.timeout_secs {
            if !(1..=3600).contains(&secs) {
                return Err(invalid("hsm.timeout_secs must be 1…3600".into()));
            }
            c.hsm_timeout = Duration::from_secs(secs);
        }
        c.pinentry = file.pin.pinentry.as_ref().map(relative);
        if c.pinentry.is_none() && !file.pin.pinentry_args.is_empty() {
            return Err(invalid("pin.pinentry_args needs pin.pinentry".into()));
        }
        c.pinentry_args = file.pin.pinentry_args.clone();
        if let Some(secs) = file.pin.timeout_secs {
            if !(1..=600).contains(&secs) {
                return Err(invalid("pin.timeout_secs must be 1…600".into()));
            }
            c.pin_timeout = Duration::from_secs(secs);
        }
        Ok(c)
    }
}

/// An error and its sources, `: `-separated, for the one message on standard error.
pub fn describe(e: &dyn std::error::Error) -> String {
    card_core::error::chain(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/sscard/sscard.toml"))
    }

    #[test]
    fn defaults_and_sections() {
        let c = parse("").unwrap();
        assert_eq!(c.contact, ReaderSelector::Index(0));
        assert!(c.contactless.is_none());
        assert_eq!(c.hsm_timeout, DEFAULT_HSM_TIMEOUT);
        let c = parse(
            "[readers]\ncontact = \"Virtual PCD 00 00\"\ncontactless = \"Virtual PCD 00 01\"\n\
             [terminal]\nterminal_no = \"371700000001\"\ndevice_no = \"D1\"\n[hsm]\ntimeout_secs = 5\n",
        )
        .unwrap();
        assert_eq!(c.contact, ReaderSelector::Name("Virtual PCD 00 00".into()));
        assert_eq!(c.contactless, Some(ReaderSelector::Name("Virtual PCD 00 01".into())));
        assert_eq!(c.terminal.terminal_no, "371700000001");
        assert_eq!(c.hsm_timeout, Duration::from_secs(5));
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse("[readers]\ncontact = 3\n").err().unwrap();
        assert!(describe(&e).contains("line 2"), "{}", describe(&e));
        let e = parse("[reader]\ncontact = \"x\"\n").err().unwrap();
        assert!(matches!(e, ConfigError::Syntax { .. }), "unknown sections are refused: {e}");
        let e = parse("[keys]\nmode = \"local\"\nregion = \"371700\"\n").err().unwrap();
        assert!(describe(&e).contains("needs key_file"), "{}", describe(&e));
        let e = parse("[keys]\nmode = \"hsm\"\n").err().unwrap();
        assert!(describe(&e).contains("keys.mode"), "{}", describe(&e));
        let e = parse("[keys]\nmode = \"key-service\"\nca_file = \"ca.pem\"\n").err().unwrap();
        assert!(describe(&e).contains("needs urls"), "{}", describe(&e));
        let e = parse("[keys]\nmode = \"key-service\"\nurls = [\"https://localhost:1\"]\nca_file = \"ca.pem\"\n")
            .err()
            .unwrap();
        assert!(describe(&e).contains("terminal.terminal_no"), "{}", describe(&e));
        let e = parse("[keys]\nurls = [\"https://localhost:1\"]\n").err().unwrap();
        assert!(describe(&e).contains("of mode key-service"), "{}", describe(&e));
        let e = parse("[readers]\ncontact = \"A\"\ncontactless = \"A\"\n").err().unwrap();
        assert!(describe(&e).contains("same reader"), "{}", describe(&e));
        let e = parse("[terminal]\nterminal_no = \"1|2\"\n").err().unwrap();
        assert!(describe(&e).contains("terminal.terminal_no"), "{}", describe(&e));
        let e =
            parse("[keys]\nmode = \"local\"\nregion = \"371700\"\nkey_file = \"/nonexistent/k.toml\"\n").err().unwrap();
        assert!(describe(&e).contains("/nonexistent/k.toml"), "{}", describe(&e));
        assert!(matches!(Config::load(Path::new("/nonexistent/sscard.toml")), Err(ConfigError::Read(_))));
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let c = parse(include_str!("../sscard.toml.example")).unwrap();
        assert_eq!(c.contact, ReaderSelector::Name("Virtual PCD 00 00".into()));
        assert_eq!(c.terminal.device_no, "SIM-READER-01");
    }

    #[test]
    fn a_relative_key_file_is_next_to_the_configuration() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cards");
        let c = Config::parse(
            "[keys]\nmode = \"local\"\nregion = \"371700\"\nkey_file = \"test-keys.toml\"\n",
            &dir.join("sscard.toml"),
        )
        .unwrap();
        assert!(format!("{c:?}").starts_with("Config"));
    }
}
