//! Host side of the national social security card (社会保障卡).
//!
//! Layers, each knowing only the one below it (see `docs/architecture.md`):
//!
//! - [`apdu`]: command and response APDUs, status words with their meanings (CARD-PROFILE §4).
//! - [`command`]: every card command of §4 built once, external authentication and line protection (§6) as
//!   layers over a transaction; [`reference_cos`]: the reference COS's personalization encoding (CREATE FILE
//!   data, key records, access bytes), shared by issuance (encoding) and card-sim (decoding).
//! - [`transport`]: the [`transport::Transport`] seam (PC/SC, in-process card, recording, replay)
//!   and the one APDU engine that does T=0 `61xx`/`6Cxx` handling.
//! - [`crypto`]: DES/3DES/SM4/AES blocks, ISO/IEC 9797-1 padding and MACs, CMAC,
//!   diversification, process keys, key check values (CARD-PROFILE §5–§6).
//! - [`codec`]: `cn`/`an`/`b`/`dec`/`hex` values, GBK text, dates, citizen ID, card number (§2.3).
//! - [`tlv`]: BER-TLV (FCI) with bounds, and the card's simple record TLV.
//! - [`profile`]: the card layout as data (files, items, access conditions, keys per generation).
//! - [`security`]: who computes cryptograms — [`security::LocalKeys`], the national two-step exchange.
//! - [`card`]: [`card::SocialSecurityCard`], the application: basic information and the national
//!   `iReadCardBas` string, items by national address, PINs, internal authentication.
//! - [`national`]: the national interface's error codes ↔ [`Error`] (CARD-PROFILE §7).
//! - [`timing`]: the modeled card time of APDUs (card-sim's timing model, for the host as well).
//! - [`files`]: [`read_limited`], reading a file the program is given with a size limit (never `/dev/zero`,
//!   a FIFO or a device).

pub mod apdu;
pub mod card;
pub mod codec;
pub mod command;
pub mod crypto;
pub mod error;
pub mod files;
pub mod national;
pub mod profile;
pub mod reference_cos;
pub mod security;
pub mod timing;
pub mod tlv;
pub mod transport;

pub use error::Error;
pub use files::{read_limited, read_limited_string};
