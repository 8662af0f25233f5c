//! The timing model: how long a real card would take for an APDU.
//!
//! The model itself (transmission at the bit rate, 300 µs per APDU, 100 µs per block cipher operation,
//! 3 ms per 64-byte EEPROM page; see `COS.md` "Timing model") is [`card_core::timing`] (tested there), so that
//! the host models the time of the APDUs it exchanges through PC/SC with the same implementation. The counts come
//! from this COS: [`crate::CardWork`] says how many block operations and EEPROM pages a command used.

pub use card_core::timing::TimingModel;
