//! `card-sim`: the reference COS of the virtual social security card (社会保障卡).
//!
//! It implements CARD-PROFILE §2–§6 and the personalization commands of §4, so that every program of the
//! project can be tested against a card that behaves like the profile says, without hardware:
//!
//! - [`Card`]: the card itself — file system ([`fs`]), access conditions ([`access`]), key file
//!   ([`keys`]), lifecycle, and the command interpreter ([`Card::process`]), which is atomic: a command
//!   changes the persistent state all or nothing.
//! - [`Card::atr`]: an ATR whose historical bytes carry the region code and the chip serial ([`atr`]).
//! - [`vpcd`]: the card side of the vsmartcard-vpcd socket protocol, so pcscd sees the card in a reader.
//! - [`fixture`]: test cards personalized through APDUs from the profile and documented test keys.
//! - Card images: the whole persistent state as readable JSON ([`Card::to_image`], [`Card::from_image`],
//!   [`Card::save`], [`Card::load`]).
//! - [`SimTransport`]: the card in process behind `card_core::transport::Transport`, with tearing
//!   ([`Tear`]) and the modeled card time ([`TimingModel`]), which can also be made a [`Hostile`] card (answers
//!   that break the protocol, card data that breaks its format).
//!
//! The exact encodings of this COS (CREATE FILE data, key records, PIN records, access-condition bytes,
//! the ATR) are documented in `card-sim/COS.md` and in the module docs.

pub mod access;
pub mod atr;
mod cos;
pub mod fixture;
pub mod fs;
mod hexfmt;
pub mod hostile;
mod image;
pub mod keys;
pub mod timing;
pub mod transport;
pub mod vpcd;

pub use cos::{BlankParams, Card, CardWork, Lifecycle, EEPROM_PAGE};
pub use hostile::Hostile;
pub use image::{IMAGE_FORMAT, IMAGE_VERSION, MAX_IMAGE_FILE};
pub use keys::{KeyAlgorithm, KeyType};
pub use timing::TimingModel;
pub use transport::{SimTransport, Tear, TearPoint};

/// Everything that can go wrong in `card-sim` outside the APDU interface (APDUs always get a status word).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The card image is not valid JSON or does not have the expected shape.
    #[error("card image is malformed: {0}")]
    ImageSyntax(#[source] serde_json::Error),
    /// The card image names another format or a version this crate does not read.
    #[error("not a card image of format {IMAGE_FORMAT:?} version {IMAGE_VERSION}: found {format:?} version {version}")]
    ImageFormat {
        /// The `format` field found.
        format: String,
        /// The `version` field found.
        version: u32,
    },
    /// The card image is well formed but its content is inconsistent.
    #[error("card image is inconsistent: {0}")]
    ImageInvalid(String),
    /// Reading or writing an image file failed.
    #[error("card image file {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The parameters of a new card are unusable (region code, generation, transport key).
    #[error("bad card parameters: {0}")]
    BadParams(&'static str),
}
