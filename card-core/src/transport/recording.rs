//! [`RecordingTransport`]: counts and records what crosses the wire.

use std::fmt::Write as _;
use std::ops::Sub;

use super::{CardTransaction, Hex, Transport, TransportError};
use crate::apdu::Sensitivity;

/// What crossed the wire, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command APDUs sent (GET RESPONSE and resends included).
    pub apdus: u64,
    /// Bytes of command APDUs.
    pub bytes_sent: u64,
    /// Bytes of response APDUs, status words included.
    pub bytes_received: u64,
    /// Warm resets.
    pub resets: u64,
    /// Transactions opened.
    pub transactions: u64,
}

impl Sub for Counters {
    type Output = Counters;
    /// The counts of one operation: `after - before`.
    fn sub(self, before: Counters) -> Counters {
        Counters {
            apdus: self.apdus.saturating_sub(before.apdus),
            bytes_sent: self.bytes_sent.saturating_sub(before.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(before.bytes_received),
            resets: self.resets.saturating_sub(before.resets),
            transactions: self.transactions.saturating_sub(before.transactions),
        }
    }
}

/// One command-response pair, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// A command and its response. A sensitive command keeps only its header and Lc.
    Apdu {
        /// Command bytes (only `CLA INS P1 P2 Lc` when `redacted`).
        command: Vec<u8>,
        /// Total length of the command actually sent.
        command_len: usize,
        /// Whether the data was withheld.
        redacted: bool,
        /// Response bytes (data ‖ SW).
        response: Vec<u8>,
    },
    /// A warm reset and the ATR that followed.
    Reset {
        /// The new ATR.
        atr: Vec<u8>,
    },
}

impl Exchange {
    /// The transcript lines of this exchange.
    pub fn to_lines(&self) -> String {
        match self {
            Exchange::Apdu { command, command_len, redacted: false, response } => {
                debug_assert_eq!(command.len(), *command_len);
                format!("> {}\n< {}\n", Hex(command), Hex(response))
            }
            Exchange::Apdu { command, command_len, redacted: true, response } => {
                format!("> {} REDACTED({})\n< {}\n", Hex(command), command_len, Hex(response))
            }
            Exchange::Reset { atr } => format!("reset {}\n", Hex(atr)),
        }
    }
}

#[derive(Default)]
struct Log {
    counters: Counters,
    exchanges: Vec<Exchange>,
    keep: bool,
}

/// Wraps any transport; counts APDUs and bytes and, unless built with
/// [`RecordingTransport::counting`], keeps every exchange for a transcript.
///
/// Sensitive commands (PIN, keys) are recorded as header and length only.
pub struct RecordingTransport<T> {
    inner: T,
    log: Log,
}

impl<T: Transport> RecordingTransport<T> {
    /// Records everything.
    pub fn new(inner: T) -> Self {
        RecordingTransport { inner, log: Log { keep: true, ..Log::default() } }
    }

    /// Counts only.
    pub fn counting(inner: T) -> Self {
        RecordingTransport { inner, log: Log::default() }
    }

    /// Totals since creation.
    pub fn counters(&self) -> Counters {
        self.log.counters
    }

    /// The exchanges recorded so far.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.log.exchanges
    }

    /// Takes the exchanges recorded so far, leaving none.
    pub fn take_exchanges(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.log.exchanges)
    }

    /// The transcript: an `atr` line, then one `> C-APDU` / `< R-APDU` line pair per exchange.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "atr {}", Hex(self.inner.atr()));
        for e in &self.log.exchanges {
            out.push_str(&e.to_lines());
        }
        out
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Transport> Transport for RecordingTransport<T> {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        let RecordingTransport { inner, log } = self;
        let tx = inner.transaction()?;
        log.counters.transactions += 1;
        Ok(Box::new(RecordingTx { tx, log }))
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

struct RecordingTx<'a> {
    tx: Box<dyn CardTransaction + 'a>,
    log: &'a mut Log,
}

impl CardTransaction for RecordingTx<'_> {
    fn transmit(&mut self, command: &[u8], sensitivity: Sensitivity) -> Result<Vec<u8>, TransportError> {
        let response = self.tx.transmit(command, sensitivity)?;
        let c = &mut self.log.counters;
        c.apdus += 1;
        c.bytes_sent += command.len() as u64;
        c.bytes_received += response.len() as u64;
        if self.log.keep {
            let redacted = sensitivity == Sensitivity::Sensitive && command.len() > 5;
            let kept = if redacted { &command[..5] } else { command };
            self.log.exchanges.push(Exchange::Apdu {
                command: kept.to_vec(),
                command_len: command.len(),
                redacted,
                response: response.clone(),
            });
        }
        Ok(response)
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        let atr = self.tx.reset()?;
        self.log.counters.resets += 1;
        if self.log.keep {
            self.log.exchanges.push(Exchange::Reset { atr: atr.clone() });
        }
        Ok(atr)
    }

    fn atr(&self) -> &[u8] {
        self.tx.atr()
    }

    /// Passed on; not an APDU the host sees, so neither counted nor kept in the transcript.
    fn control(&mut self, control: super::Control<'_>) -> Result<Vec<u8>, TransportError> {
        self.tx.control(control)
    }
}
