//! The crate's one error type, grouped by who is at fault (STYLE "Errors").
//!
//! No variant carries key material: names, versions, states and reasons only.

use crate::inventory::KeyState;
use crate::tr31::Tr31Error;

/// Errors of the key store and its operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the caller gave bad input (exit code 2) ----
    /// A key component was refused (trivial, duplicate, wrong length, not hex, …).
    #[error("component {index} refused: {reason}")]
    BadComponent {
        /// 1-based position of the component.
        index: usize,
        /// Why, e.g. "all bytes are the same".
        reason: String,
    },
    /// The number of components is not allowed.
    #[error("{got} components given; {allowed}")]
    ComponentCount {
        /// Number given.
        got: usize,
        /// What is allowed, e.g. "2 or 3 are required".
        allowed: &'static str,
    },
    /// A key name that is neither a profile key nor `TRANSPORT`/`KEK`.
    #[error("unknown key name {0:?} (see `keymgmt list --names`)")]
    UnknownKeyName(String),
    /// No such key (name, version, region) in the store.
    #[error("no key {name} version {version}{}", region_suffix(.region))]
    KeyNotFound {
        /// Key name.
        name: String,
        /// Version asked for (0 = any).
        version: u8,
        /// Region code, empty for the issuer level.
        region: String,
    },
    /// The key already exists in the store.
    #[error("key {name} version {version}{} already exists", region_suffix(.region))]
    KeyExists {
        /// Key name.
        name: String,
        /// Version.
        version: u8,
        /// Region code, empty for the issuer level.
        region: String,
    },
    /// A lifecycle transition that is not allowed.
    #[error("key {name} version {version}: illegal transition {from} → {to}")]
    IllegalTransition {
        /// Key name.
        name: String,
        /// Version.
        version: u8,
        /// Current state.
        from: KeyState,
        /// State asked for.
        to: KeyState,
    },
    /// The operation needs a key in another state (e.g. derive from a retired key).
    #[error("key {name} version {version} is {state}: {what}")]
    WrongState {
        /// Key name.
        name: String,
        /// Version.
        version: u8,
        /// Its state.
        state: KeyState,
        /// What was refused.
        what: &'static str,
    },
    /// Any other invalid argument (message without secrets).
    #[error("{0}")]
    InvalidInput(String),
    /// The store file already holds a store (`init` twice).
    #[error("the store is already initialised")]
    AlreadyInitialised,

    // ---- the store is locked or the unlock secret is wrong (exit code 3) ----
    /// The passphrase does not open the store.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The components do not form the store's key block protection key.
    #[error("the components do not form this store's key block protection key")]
    WrongComponents,
    /// The store has no passphrase wrap: unlock with components.
    #[error("this store has no passphrase; unlock with the KBPK components")]
    NoPassphrase,
    /// The store file holds no store yet (bad input, exit code 2).
    #[error("the store is not initialised (run `keymgmt init`)")]
    NotInitialised,
    /// No way to unlock was given (no passphrase file, no terminal for components).
    #[error("the store is locked: give --passphrase-file or enter the components at a terminal")]
    Locked,

    // ---- integrity failures (exit code 4) ----
    /// A row's authenticator does not match: the row was changed outside this program.
    #[error("integrity failure: {0}")]
    Integrity(String),
    /// A stored key block failed to unwrap.
    #[error("integrity failure: key block of {name} version {version}: {source}")]
    KeyBlock {
        /// Key name.
        name: String,
        /// Version.
        version: u8,
        /// What the key block layer said.
        #[source]
        source: Tr31Error,
    },

    // ---- everything else (exit code 1) ----
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key block given to `import-block` is malformed or does not authenticate under the KEK
    /// (bad input, exit code 2).
    #[error("key block: {0}")]
    Tr31(#[from] Tr31Error),
    /// A crypto primitive refused its input.
    #[error("crypto: {0}")]
    Crypto(#[from] card_core::crypto::CryptoError),
    /// Argon2 refused its parameters.
    #[error("passphrase key derivation failed")]
    Kdf,
}

fn region_suffix(region: &str) -> String {
    if region.is_empty() {
        String::new()
    } else {
        format!(" for region {region}")
    }
}

/// What kind of failure, for exit codes and scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: exit code 2.
    BadInput,
    /// Locked store, wrong passphrase or components: exit code 3.
    Locked,
    /// Integrity failure: exit code 4.
    Integrity,
    /// Anything else: exit code 1.
    Other,
}

impl ErrorKind {
    /// The process exit code (documented in `keymgmt --help`).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Locked => 3,
            ErrorKind::Integrity => 4,
        }
    }
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadComponent { .. }
            | Error::ComponentCount { .. }
            | Error::UnknownKeyName(_)
            | Error::KeyNotFound { .. }
            | Error::KeyExists { .. }
            | Error::IllegalTransition { .. }
            | Error::WrongState { .. }
            | Error::InvalidInput(_)
            | Error::AlreadyInitialised
            | Error::NotInitialised
            | Error::Tr31(_) => ErrorKind::BadInput,
            Error::WrongPassphrase | Error::WrongComponents | Error::NoPassphrase | Error::Locked => ErrorKind::Locked,
            Error::Integrity(_) | Error::KeyBlock { .. } => ErrorKind::Integrity,
            Error::Db(_) | Error::Io { .. } | Error::Crypto(_) | Error::Kdf => ErrorKind::Other,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
