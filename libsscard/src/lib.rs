//! `libsscard.so`: the national social security card reader interface (LD/T 33, CARD-PROFILE §7) for counter
//! software written against the vendor DLLs — the same function names, parameters, buffers, GBK strings and
//! return codes, over card-core and PC/SC.
//!
//! - [`ffi`]: the C entry points (`iReadCardBas`, `iReadCard`, `iWriteCard`, their `_HSM_` steps, the PIN
//!   functions and their `_HSM_` steps, the vendor `iVerifyPin`/`iChangePin`), each behind `catch_unwind`; the
//!   only unsafe code of the crate.
//! - [`config`]: `/etc/sscard/sscard.toml` (or `SSCARD_CONFIG`): readers, terminal identifiers, keys.
//! - `library`: the process's one [`Library`]: the configuration and one slot per reader role, each a mutex
//!   around the reader's connected card, so one card operation per reader runs at a time.
//! - `text`: GBK in and out, and the published buffer sizes.
//!
//! The card logic is card-core's, as in the terminal agent: `SocialSecurityCard::read_basic`, `read_items`,
//! `write_items`, `begin_two_step`, the national strings (`BasicInfo::national`, `ItemValues::to_national`) and
//! the error codes (`card_core::national::code`).

pub mod config;
pub mod ffi;
mod library;
// the PIN dialog of the PIN functions for readers without a pad, and for a new PIN
pub(crate) mod pinentry;
mod text;

pub use library::{Failure, Library, Reply};

/// The code of every call while the configuration cannot be used: −12 (未建立连接, no connection established).
pub const CONFIG_ERROR: i32 = card_core::national::NO_CONNECTION;

/// The code of a call that failed inside the library (a panic caught at the C boundary, a worker thread that
/// could not start): −11, as the terminal agent answers its internal failures.
pub const INTERNAL_ERROR: i32 = card_core::national::READER_CONNECTION;
