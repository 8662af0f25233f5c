//! The timing model of a card: how long a real card would take for an APDU — one implementation for
//! card-sim (which knows what each command cost its chip) and for the host (which models the same from the
//! APDUs it exchanged through PC/SC, where the card's own time cannot be measured).
//!
//! `time = transmission + processing`, in whole nanoseconds, deterministic.
//!
//! **Transmission** (ISO/IEC 7816-3): the card runs at `bit_rate` bit/s (default 9600: the initial
//! rate, Fi = 372, Di = 1, with a 3.57 MHz clock ≈ 9600 etu/s; a negotiated rate after PPS is set with
//! [`TimingModel::with_bit_rate`]). Every character takes 12 etu in T=0 with the default guard time
//! (start bit, 8 data bits, parity, 2 etu guard time; §7.2). Characters per APDU: the command bytes,
//! the response bytes (data and SW1 SW2), and one procedure byte (the INS acknowledgement, §10.3.3)
//! when data flows in either direction.
//!
//! **Processing** (typical figures for 16-bit smart card controllers with a crypto coprocessor, taken
//! from the orders of magnitude vendors publish in product briefs; **not measured** on a chip):
//! - `command_overhead`: 300 µs per APDU (dispatch, file search, status).
//! - `block_op`: 100 µs per block cipher operation (one 3DES or SM4 or AES block), software-visible
//!   time including key schedule and coprocessor setup.
//! - `page_write`: 3 ms per EEPROM page ([`EEPROM_PAGE`], 64 bytes) programmed: erase + write cycle;
//!   datasheets of smart card EEPROMs quote 1.5–4 ms per page.
//!
//! The counts are a [`CardWork`]: how many block operations and EEPROM pages a command used (pages
//! counted per write, each write assumed page-aligned).

use std::time::Duration;

/// EEPROM page size used to count page writes.
pub const EEPROM_PAGE: u32 = 64;

/// What a command cost the chip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CardWork {
    /// Block cipher operations (one 3DES/SM4/AES block each).
    pub block_ops: u32,
    /// EEPROM bytes programmed (zero when the command was rolled back).
    pub eeprom_bytes_written: u32,
    /// EEPROM pages programmed ([`EEPROM_PAGE`] bytes; each write counted from a page boundary).
    pub eeprom_pages_written: u32,
}

impl CardWork {
    /// Counts an EEPROM write of `n` bytes: at least one page, each write from a page boundary.
    pub fn wrote(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.eeprom_bytes_written = self.eeprom_bytes_written.saturating_add(n);
        self.eeprom_pages_written = self.eeprom_pages_written.saturating_add(n.div_ceil(EEPROM_PAGE).max(1));
    }

    /// Counts `n` block cipher operations.
    pub fn blocks(&mut self, n: usize) {
        self.block_ops = self.block_ops.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Figures of the model. `Default` is the ISO 7816-3 initial rate and the processing figures above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingModel {
    /// Bits (etu) per second.
    pub bit_rate: u32,
    /// etu per character (12 for T=0 with the default guard time).
    pub etu_per_char: u32,
    /// Fixed time per APDU for the COS.
    pub command_overhead: Duration,
    /// Time per block cipher operation.
    pub block_op: Duration,
    /// Time to erase and program one EEPROM page.
    pub page_write: Duration,
}

impl Default for TimingModel {
    fn default() -> Self {
        TimingModel {
            bit_rate: 9600,
            etu_per_char: 12,
            command_overhead: Duration::from_micros(300),
            block_op: Duration::from_micros(100),
            page_write: Duration::from_millis(3),
        }
    }
}

impl TimingModel {
    /// The default model at another (negotiated) bit rate, e.g. 115 200 after PPS with Fi/Di = 372/12.
    pub fn with_bit_rate(bit_rate: u32) -> Self {
        TimingModel { bit_rate: bit_rate.max(1), ..TimingModel::default() }
    }

    /// Time on the wire for `chars` characters.
    pub fn transmission(&self, chars: u64) -> Duration {
        let etu = chars.saturating_mul(u64::from(self.etu_per_char));
        let ns = u128::from(etu) * 1_000_000_000 / u128::from(self.bit_rate.max(1));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Modeled time of one APDU: `cmd_len` command bytes, `resp_len` response bytes (SW included).
    pub fn apdu_time(&self, cmd_len: usize, resp_len: usize, work: &CardWork) -> Duration {
        let procedure = u64::from(cmd_len > 5 || resp_len > 2);
        let chars = cmd_len as u64 + resp_len as u64 + procedure;
        self.transmission(chars)
            + self.command_overhead
            + self.block_op * work.block_ops
            + self.page_write * work.eeprom_pages_written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        let m = TimingModel::default();
        // GET CHALLENGE: 5 command bytes + 8 + 2 response bytes + 1 procedure byte = 16 chars × 12 etu / 9600
        assert_eq!(m.apdu_time(5, 10, &CardWork::default()), Duration::from_micros(20_000 + 300));
        let w = CardWork { block_ops: 2, eeprom_bytes_written: 20, eeprom_pages_written: 1 };
        assert_eq!(m.apdu_time(4, 2, &w), Duration::from_micros(7_500 + 300 + 200 + 3_000));
        assert_eq!(TimingModel::with_bit_rate(115_200).transmission(96), Duration::from_micros(10_000));
    }

    #[test]
    fn pages_of_a_write() {
        let mut w = CardWork::default();
        w.wrote(1);
        w.wrote(64);
        w.wrote(65);
        w.blocks(3);
        assert_eq!(w, CardWork { block_ops: 3, eeprom_bytes_written: 130, eeprom_pages_written: 4 });
    }
}
