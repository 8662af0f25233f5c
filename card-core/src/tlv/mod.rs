//! TLV data: BER-TLV with bounds (the FCI of a SELECT) and the card's simple record TLV.
//!
//! - [`parse_ber`] checks the input against [`Limits`] with an iterative pre-scan, then hands it
//!   to the `iso7816-tlv` crate, whose parser recurses once per nesting level without a limit;
//!   [`find`] and [`find_all`] search the result. [`parse_fci`] reads a SELECT response.
//! - [`RecordTlv`]: one record of a linear EF (CARD-PROFILE §2: 1-byte tag, 1-byte length,
//!   value), sequences of them, and constructed `B-TLV(...)` items (§2.2).

mod ber;
mod record;

pub use ber::{find, find_all, parse_ber, parse_fci, primitive_value, BerError, Fci, Limits};
pub use iso7816_tlv::ber::{Tag, Tlv, Value};
pub use record::RecordTlv;

/// TLV data that is malformed or exceeds its bounds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The input is longer than [`Limits::max_len`].
    #[error("TLV data of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("TLV at offset {offset} is nested deeper than {max} levels")]
    TooDeep {
        /// Offset of the first TLV that is too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// More data objects than [`Limits::max_items`].
    #[error("more than {max} TLV data objects")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// A tag field that is `00`, runs past the end, or is longer than 3 bytes (ISO/IEC 7816-4).
    #[error("invalid tag field at offset {offset}")]
    BadTag {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// A length field of the indefinite form `80` (not allowed in ISO/IEC 7816-4) or with more
    /// than 4 length bytes.
    #[error("invalid length field at offset {offset}")]
    BadLength {
        /// Offset of the length field.
        offset: usize,
    },
    /// A data object whose length field or value runs past the end of its container.
    #[error("TLV at offset {offset} needs {needed} more bytes, only {available} remain")]
    Truncated {
        /// Offset of the data object's tag.
        offset: usize,
        /// Bytes the length (or length field) announces.
        needed: usize,
        /// Bytes left in the container.
        available: usize,
    },
    /// The `iso7816-tlv` crate refused data the pre-scan accepted.
    #[error("BER-TLV: {0}")]
    Ber(#[source] BerError),
    /// A SELECT response that is not one FCI template `6F`.
    #[error("not an FCI template: {reason}")]
    NotFci {
        /// What was found instead.
        reason: String,
    },
    /// A SELECT response whose FCI is malformed inside (CARD-PROFILE §4.2): a data object whose length runs past
    /// its template, an `A5` or `9F0C` whose content does not parse, an algorithm `86` that is not one byte or
    /// names no algorithm.
    #[error("malformed FCI: {reason}")]
    BadFci {
        /// What is wrong, and where.
        reason: String,
    },
    /// A record tag of `00` or `FF`, which are padding, never tags.
    #[error("invalid record tag {tag:02X} at offset {offset}")]
    BadRecordTag {
        /// Offset of the tag.
        offset: usize,
        /// The tag byte.
        tag: u8,
    },
    /// A record that holds no TLV: empty, or only `00`/`FF` padding.
    #[error("record holds no TLV (empty or only padding)")]
    BlankRecord,
    /// Bytes after a record's TLV other than `00`/`FF` padding.
    #[error("unexpected byte {byte:02X} at offset {offset} after the record's TLV")]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A record value longer than a 1-byte length can announce.
    #[error("record value of {len} bytes exceeds 255")]
    ValueTooLong {
        /// The value's length.
        len: usize,
    },
}
