//! `issuance`: turning a list of holders into working social security cards (社会保障卡) at a desk reader.
//!
//! The flow (docs/architecture.md "Issue a card"): holder records ([`holders`]) → validation → data
//! preparation ([`prepare`]: card id, card number, dates, card keys) → a personalization [`plan`] of
//! abstract steps → the COS adapter ([`cos`]) turns steps into APDUs → the card, every step journalled
//! ([`journal`]) before and after it runs ([`run`]) → read-back verification ([`verify`]) → issued.

pub mod cli;
pub mod cos;
mod error;
pub mod files;
pub mod floor;
pub mod holders;
pub mod journal;
pub mod pin;
pub mod plan;
pub mod prepare;
pub mod rekey;
pub mod replace;
pub mod run;
pub mod timing;
pub mod verify;

pub use error::{
    Defect, Error, Fault, HolderFault, HolderProblem, InputError, JournalError, KeyError, Malformed, Mismatch,
    ProfileError, Row,
};
pub use pin::Pin;
