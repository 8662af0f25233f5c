//! Where the keys of a read or write come from: none, a key file, or a key-mgmt store.

use std::path::PathBuf;

use card_core::codec::RegionCode;
use card_core::crypto::{Algorithm, CardKey};
use card_core::security::{LocalKeys, NoKeys, SecurityModule};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Failure;

/// Key options shared by the card commands.
#[derive(clap::Args, Default)]
pub struct KeyArgs {
    /// A key file: region keys (`format = "sscard-region-keys"`), or the published issuer test keys of
    /// `fixtures/cards/test-keys.toml` (`sscard-test-keys`, diversified here for `--region`). Test and
    /// diagnosis only: a counter keeps no issuer keys.
    #[arg(long, value_name = "FILE", conflicts_with = "keystore")]
    keys: Option<PathBuf>,
    /// A key-mgmt store, unlocked with --passphrase-file; its active region keys for --region are used.
    #[arg(long, value_name = "PATH", requires = "passphrase_file")]
    keystore: Option<PathBuf>,
    /// The store's passphrase, first line of this file (never on the command line).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// The region whose keys to use (6 digits).
    #[arg(long, default_value = "371700")]
    region: String,
}

#[derive(Deserialize)]
struct KeyFile {
    format: String,
    version: u32,
    region: Option<String>,
    /// sscard-test-keys: issuer keys by algorithm, then name.
    #[serde(default)]
    issuer: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// sscard-region-keys: region keys by algorithm, then name.
    #[serde(default)]
    keys: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    #[serde(default, rename = "transport")]
    _transport: Option<String>,
}

fn algorithm(name: &str) -> Result<Algorithm, Failure> {
    match name {
        "3des" => Ok(Algorithm::Tdes),
        "sm4" => Ok(Algorithm::Sm4),
        "aes" => Ok(Algorithm::Aes128),
        other => Err(Failure::Usage(format!("key file: unknown algorithm {other:?}"))),
    }
}

fn entries(
    table: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
) -> Result<Vec<(String, CardKey)>, Failure> {
    let mut out = Vec::new();
    for (alg, keys) in table {
        let alg = algorithm(alg)?;
        for (name, hex_key) in keys {
            let bytes = Zeroizing::new(
                hex::decode(hex_key).map_err(|_| Failure::Usage(format!("key file: key {name} is not hex")))?,
            );
            let key = CardKey::new(alg, &bytes).map_err(|e| Failure::Usage(format!("key file: {name}: {e}")))?;
            out.push((name.clone(), key));
        }
    }
    Ok(out)
}

impl KeyArgs {
    /// Options from the service's configuration: a key file, or a store with its passphrase file, for `region`.
    pub fn local(
        keys: Option<PathBuf>,
        keystore: Option<PathBuf>,
        passphrase_file: Option<PathBuf>,
        region: String,
    ) -> Self {
        KeyArgs { keys, keystore, passphrase_file, region }
    }

    /// The security module these options describe.
    pub fn module(&self) -> Result<Box<dyn SecurityModule + Send + Sync>, Failure> {
        let region = RegionCode::parse(&self.region).map_err(|e| Failure::Usage(format!("--region: {e}")))?;
        if let Some(path) = &self.keys {
            let text = Zeroizing::new(
                card_core::read_limited_string(path, MAX_KEY_FILE)
                    .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?,
            );
            let file: KeyFile =
                toml::from_str(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            return match (file.format.as_str(), file.version) {
                ("sscard-test-keys", 1) => Ok(Box::new(LocalKeys::from_issuer_keys(region, entries(&file.issuer)?)?)),
                ("sscard-region-keys", 1) => {
                    if file.region.as_deref().is_some_and(|r| r != region.as_str()) {
                        return Err(Failure::Usage(format!("{}: keys of another region", path.display())));
                    }
                    let mut local = LocalKeys::new(region);
                    for (name, key) in entries(&file.keys)? {
                        local.insert(name, key);
                    }
                    Ok(Box::new(local))
                }
                (f, v) => Err(Failure::Usage(format!("{}: unknown key file format {f} version {v}", path.display()))),
            };
        }
        if let Some(store_path) = &self.keystore {
            let pass_path = self.passphrase_file.as_ref().ok_or_else(|| Failure::Usage("--passphrase-file".into()))?;
            let passphrase = read_secret_line(pass_path)?;
            let mut store = key_mgmt::KeyStore::open(store_path).map_err(|e| Failure::Keys(e.to_string()))?;
            store
                .unlock_with_passphrase(passphrase.expose_secret().as_bytes())
                .map_err(|e| Failure::Keys(e.to_string()))?;
            let set = store.region_keys(region.as_str()).map_err(|e| Failure::Keys(e.to_string()))?;
            let mut local = LocalKeys::new(region);
            for (name, entry) in set.iter() {
                local.insert(name, entry.key.try_clone());
            }
            return Ok(Box::new(local));
        }
        Ok(Box::new(NoKeys))
    }
}

/// Largest key file read (a TOML file of a region's keys is a few KiB).
pub const MAX_KEY_FILE: u64 = 1024 * 1024;
/// Largest passphrase file read.
pub const MAX_PASSPHRASE_FILE: u64 = 4096;

/// The first line of a file, as a secret (passphrases), read with a size limit.
pub fn read_secret_line(path: &std::path::Path) -> Result<SecretString, Failure> {
    let text = Zeroizing::new(
        card_core::read_limited_string(path, MAX_PASSPHRASE_FILE)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(SecretString::from(text.lines().next().unwrap_or("").trim_end_matches('\r').to_owned()))
}
