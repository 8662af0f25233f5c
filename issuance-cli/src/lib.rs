//! `issuance`: turning a list of holders into working social security cards (社会保障卡) at a desk reader.
//!
//! The flow (docs/architecture.md "Issue a card"): holder records ([`holders`]) → validation → data
//! preparation ([`prepare`]: card id, card number, dates, card keys) → a personalization [`plan`] of
//! abstract steps → the COS adapter ([`cos`]) turns steps into APDUs → the card, every step journalled
//! ([`journal`]) before and after it runs ([`run`]) → read-back verification ([`verify`]) → issued.

pub mod cli;
pub mod cos;
pub mod holders;
pub mod journal;
pub mod plan;
pub mod prepare;
pub mod rekey;
pub mod replace;
pub mod run;
pub mod timing;
pub mod verify;

/// Everything that can go wrong in issuance, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: holder data, arguments, files.
    #[error("{0}")]
    Input(String),
    /// The card, the link to it, or the APDU layer failed.
    #[error(transparent)]
    Card(#[from] card_core::Error),
    /// The card answered something that makes no sense.
    #[error("malformed card answer: {0}")]
    Malformed(String),
    /// The card does not hold what was written (read-back, authentication).
    #[error("verification failed: {0}")]
    Verify(String),
    /// The key store refused or lacks a key.
    #[error(transparent)]
    KeyStore(#[from] key_mgmt::Error),
    /// A key the plan needs is missing.
    #[error("keys: {0}")]
    Keys(String),
    /// The profile is not usable for issuance.
    #[error("profile: {0}")]
    Profile(String),
    /// The journal (SQLite) failed.
    #[error("journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal content is inconsistent.
    #[error("journal: {0}")]
    Journal(String),
    /// A defect.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<card_core::apdu::ApduError> for Error {
    fn from(e: card_core::apdu::ApduError) -> Self {
        Error::Card(e.into())
    }
}

impl From<card_core::transport::TransportError> for Error {
    fn from(e: card_core::transport::TransportError) -> Self {
        Error::Card(e.into())
    }
}
