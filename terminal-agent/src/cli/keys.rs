//! Where the keys of a read or write come from: none, a key file, or a key-mgmt store.

use std::path::PathBuf;

use card_core::codec::RegionCode;
use card_core::security::{key_file, LocalKeys, NoKeys, SecurityModule};
use secrecy::{ExposeSecret, SecretString};
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
            let keys = key_file::load(path, region).map_err(|e| Failure::Usage(card_core::error::chain(&e)))?;
            return Ok(Box::new(keys));
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
