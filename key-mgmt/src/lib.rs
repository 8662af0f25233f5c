//! `key-mgmt`: the key hierarchy of the social security card — key store, ceremonies,
//! rotation and audit (CARD-PROFILE §5; ARCHITECTURE "Rotate a key").
//!
//! - [`tr31`]: ANSI X9.143 / TR-31 key blocks, version D;
//! - [`store::KeyStore`]: one SQLite file, every key a TR-31 block under the store's KBPK,
//!   every row authenticated; unlock by passphrase (Argon2id) or by the KBPK's components;
//! - [`inventory`]: key names from the card profile, levels, lifecycle states;
//! - [`derive`]: region and card key sets for issuance and the terminal agent;
//! - [`audit`]: the hash-chained, MAC'd audit log;
//! - [`outside`]: the audit sink and the witness, outside the store's file;
//! - [`service`]: the key service (`keymgmt serve`): the national two-step answers over mutual TLS.
//!
//! ```no_run
//! # fn main() -> Result<(), key_mgmt::Error> {
//! use key_mgmt::{KeyStore, VersionSelect};
//! let mut store = KeyStore::open(std::path::Path::new("keys.db"))?;
//! store.unlock_with_passphrase(b"correct horse battery staple")?;
//! let card = store.card_keys("371700", &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x45], &VersionSelect::Active)?;
//! for (name, entry) in card.iter() {
//!     println!("{name} v{} {}", entry.version, entry.algorithm());
//! }
//! # Ok(()) }
//! ```

pub mod audit;
pub mod cli;
pub mod components;
pub mod derive;
mod error;
pub mod inventory;
pub mod outside;
pub mod pg;
pub mod secrets;
pub mod service;
pub mod store;
pub mod tr31;

pub use derive::{CardKeySet, KeyEntry, RegionKeySet, VersionSelect};
pub use error::{Error, ErrorKind, Result};
pub use store::{InitReport, KeyStore};
