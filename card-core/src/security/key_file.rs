//! Key files: the region keys of a test bench or a diagnosis terminal, as TOML, loaded into [`LocalKeys`].
//!
//! Two formats (both `version = 1`):
//! - `sscard-region-keys`: region-level keys by algorithm then name (`[keys.sm4] RKSSSE = "…"`), optionally with
//!   `region = "371700"` (must then be the region asked for);
//! - `sscard-test-keys`: the published issuer test keys of `fixtures/cards/test-keys.toml` (`[issuer.3des] …`),
//!   diversified here with the region factor (CARD-PROFILE §5.2). Test and diagnosis only: a counter keeps no
//!   issuer keys.
//!
//! Shared by the terminal agent (`--keys`, `[keys] key_file`) and the C library (`[keys] mode = "local"`).
//! Errors name the file and what is wrong, never a key's value: a TOML syntax error is reported by its line and
//! column only (the TOML parser's own message quotes the offending line, which may hold a key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::LocalKeys;
use crate::codec::RegionCode;
use crate::crypto::{Algorithm, CardKey, CryptoError};

/// Largest key file read (a TOML file of a region's keys is a few KiB).
pub const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Why a key file could not be used. No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file cannot be read (missing, not a regular file, too large).
    #[error("cannot read the key file")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (its message names the file).
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the key file shape.
    #[error("key file {}: {what}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what, without the file's text.
        what: String,
    },
    /// The format or version is not one of this module's.
    #[error("key file {}: unknown format {format:?} version {version}", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// `format`.
        format: String,
        /// `version`.
        version: u32,
    },
    /// A table names an algorithm other than `3des`, `sm4`, `aes`.
    #[error("key file {}: unknown algorithm {algorithm:?}", path.display())]
    UnknownAlgorithm {
        /// The file.
        path: PathBuf,
        /// The table's name.
        algorithm: String,
    },
    /// A key's value is not hex or not a key of its algorithm.
    #[error("key file {}: key {name} ({algorithm}) is not a valid key", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The key's name.
        name: String,
        /// Its algorithm table.
        algorithm: String,
        /// Why, when the key's bytes were hex (a length error; no bytes).
        #[source]
        source: Option<CryptoError>,
    },
    /// A region key file of another region.
    #[error("key file {}: keys of region {file_region}, not of {wanted}", path.display())]
    OtherRegion {
        /// The file.
        path: PathBuf,
        /// The file's region.
        file_region: String,
        /// The region asked for.
        wanted: String,
    },
    /// Diversifying the issuer keys for the region failed.
    #[error("key file {}: cannot derive the region keys", path.display())]
    Derive {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<crate::Error>,
    },
}

type KeyTable = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Deserialize)]
struct KeyFile {
    format: String,
    version: u32,
    region: Option<String>,
    /// sscard-test-keys: issuer keys by algorithm, then name.
    #[serde(default)]
    issuer: KeyTable,
    /// sscard-region-keys: region keys by algorithm, then name.
    #[serde(default)]
    keys: KeyTable,
    /// sscard-test-keys: the blank cards' transport key (not used here).
    #[serde(default, rename = "transport")]
    _transport: Option<String>,
}

/// The algorithm of a key table's name (`3des`, `sm4`, `aes`).
pub fn algorithm_of_table(name: &str) -> Option<Algorithm> {
    match name {
        "3des" => Some(Algorithm::Tdes),
        "sm4" => Some(Algorithm::Sm4),
        "aes" => Some(Algorithm::Aes128),
        _ => None,
    }
}

fn entries(path: &Path, table: &KeyTable) -> Result<Vec<(String, CardKey)>, KeyFileError> {
    let mut out = Vec::new();
    for (alg_name, keys) in table {
        let alg = algorithm_of_table(alg_name)
            .ok_or_else(|| KeyFileError::UnknownAlgorithm { path: path.to_owned(), algorithm: alg_name.clone() })?;
        for (name, hex_key) in keys {
            let bad = |source| KeyFileError::BadKey {
                path: path.to_owned(),
                name: name.clone(),
                algorithm: alg_name.clone(),
                source,
            };
            let bytes = Zeroizing::new(hex::decode(hex_key).map_err(|_| bad(None))?);
            let key = CardKey::new(alg, &bytes).map_err(|e| bad(Some(e)))?;
            out.push((name.clone(), key));
        }
    }
    Ok(out)
}

/// Line and column (1-based) of a byte offset of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Loads the key file at `path` as the keys of `region` (see the module documentation for the formats).
pub fn load(path: &Path, region: RegionCode) -> Result<LocalKeys, KeyFileError> {
    let text = Zeroizing::new(
        crate::read_limited_string(path, MAX_KEY_FILE)
            .map_err(|source| KeyFileError::Read { path: path.to_owned(), source })?,
    );
    let file: KeyFile = toml::from_str(&text).map_err(|e| {
        let what = match e.span() {
            Some(span) => {
                let (line, col) = line_col(&text, span.start);
                format!("line {line} column {col}: {}", e.message())
            }
            None => e.message().to_owned(),
        };
        KeyFileError::Syntax { path: path.to_owned(), what }
    })?;
    match (file.format.as_str(), file.version) {
        ("sscard-test-keys", 1) => LocalKeys::from_issuer_keys(region, entries(path, &file.issuer)?)
            .map_err(|e| KeyFileError::Derive { path: path.to_owned(), source: Box::new(e) }),
        ("sscard-region-keys", 1) => {
            if let Some(r) = file.region.as_deref().filter(|r| *r != region.as_str()) {
                return Err(KeyFileError::OtherRegion {
                    path: path.to_owned(),
                    file_region: r.to_owned(),
                    wanted: region.as_str().to_owned(),
                });
            }
            let mut local = LocalKeys::new(region);
            for (name, key) in entries(path, &file.keys)? {
                local.insert(name, key);
            }
            Ok(local)
        }
        (f, v) => Err(KeyFileError::UnknownFormat { path: path.to_owned(), format: f.to_owned(), version: v }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn region_keys_load_and_errors_hide_the_keys() {
        let region = RegionCode::parse("371700").unwrap();
        let key = "00112233445566778899AABBCCDDEEFF";
        let ok = write(&format!(
            "format = \"sscard-region-keys\"\nversion = 1\nregion = \"371700\"\n[keys.sm4]\nRKSSSE = \"{key}\"\n"
        ));
        let keys = load(ok.path(), region).unwrap();
        assert_eq!(keys.names(Algorithm::Sm4), vec!["RKSSSE"]);

        let other = load(ok.path(), RegionCode::parse("110100").unwrap()).unwrap_err();
        assert!(matches!(other, KeyFileError::OtherRegion { .. }), "{other}");

        // a syntax error on the key's own line: the message gives the place, not the line's text
        let broken = write(&format!("format = \"sscard-region-keys\"\nversion = 1\n[keys.sm4]\nRKSSSE = {key}\n"));
        let e = load(broken.path(), region).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(matches!(e, KeyFileError::Syntax { .. }) && shown.contains("line 4"), "{shown}");
        assert!(!shown.contains("00112233"), "{shown}");

        let short = write("format = \"sscard-region-keys\"\nversion = 1\n[keys.sm4]\nRKSSSE = \"0011\"\n");
        let e = load(short.path(), region).unwrap_err();
        assert!(matches!(&e, KeyFileError::BadKey { name, .. } if name == "RKSSSE"), "{e}");

        let unknown = write("format = \"sscard-other\"\nversion = 1\n");
        assert!(matches!(load(unknown.path(), region), Err(KeyFileError::UnknownFormat { .. })));
        assert!(matches!(load(Path::new("/nonexistent/keys.toml"), region), Err(KeyFileError::Read { .. })));
    }

    #[test]
    fn the_published_test_keys_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cards/test-keys.toml");
        let keys = load(&path, RegionCode::parse("371700").unwrap()).unwrap();
        assert!(keys.names(Algorithm::Sm4).contains(&"RKSSSE"));
        assert!(keys.names(Algorithm::Tdes).contains(&"IRK"));
    }
}
