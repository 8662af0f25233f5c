//! The timing model: how long a real card would take for an APDU.
//!
//! The model itself (transmission at the bit rate, 300 µs per APDU, 100 µs per block cipher operation,
//! 3 ms per 64-byte EEPROM page; see `COS.md` "Timing model") is [`card_core::timing`], so that the host
//! models the time of the APDUs it exchanges through PC/SC with the same implementation. The counts come
//! from this COS: [`crate::CardWork`] says how many block operations and EEPROM pages a command used.

pub use card_core::timing::TimingModel;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::CardWork;

    #[test]
    fn figures() {
        let m = TimingModel::default();
        // GET CHALLENGE: 5 command bytes + 8 + 2 response bytes + 1 procedure byte = 16 chars × 12 etu / 9600
        assert_eq!(m.apdu_time(5, 10, &CardWork::default()), Duration::from_micros(20_000 + 300));
        let w = CardWork { block_ops: 2, eeprom_bytes_written: 20, eeprom_pages_written: 1 };
        assert_eq!(m.apdu_time(4, 2, &w), Duration::from_micros(7_500 + 300 + 200 + 3_000));
        assert_eq!(TimingModel::with_bit_rate(115_200).transmission(96), Duration::from_micros(10_000));
    }
}
