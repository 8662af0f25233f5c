//! [`ReplayTransport`]: plays a transcript written by [`super::RecordingTransport`].
//!
//! Format, one item per line (`#` starts a comment):
//!
//! ```text
//! atr 3B6D000000814E43238697159900BF7C7A
//! > 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00
//! < 6F...9000
//! > 0020000003 REDACTED(8)
//! < 9000
//! reset 3B6D000000814E43238697159900BF7C7A
//! ```
//!
//! A `REDACTED(n)` command matches any command of `n` bytes that starts with the bytes given.

use super::{CardTransaction, Hex, Transport, TransportError};
use crate::apdu::Sensitivity;

#[derive(Debug)]
enum Step {
    Apdu { line: usize, command: Vec<u8>, redacted_len: Option<usize>, response: Vec<u8> },
    Reset { line: usize, atr: Vec<u8> },
}

/// A transport that answers from a transcript and fails on the first deviation.
#[derive(Debug)]
pub struct ReplayTransport {
    atr: Vec<u8>,
    steps: Vec<Step>,
    next: usize,
    end_line: usize,
}

fn bad(line: usize, reason: impl Into<String>) -> TransportError {
    TransportError::BadTranscript { line, reason: reason.into() }
}

fn parse_hex(line: usize, s: &str) -> Result<Vec<u8>, TransportError> {
    hex::decode(s.split_whitespace().collect::<String>()).map_err(|e| bad(line, format!("bad hex: {e}")))
}

impl ReplayTransport {
    /// Parses a transcript.
    pub fn from_transcript(text: &str) -> Result<Self, TransportError> {
        let mut atr = Vec::new();
        let mut steps = Vec::new();
        let mut pending: Option<(usize, Vec<u8>, Option<usize>)> = None;
        let mut end_line = 1;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            end_line = line + 1;
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            if let Some(rest) = l.strip_prefix('>') {
                if pending.is_some() {
                    return Err(bad(line, "command without a response before it"));
                }
                let rest = rest.trim();
                let (hex_part, redacted_len) = match rest.split_once("REDACTED(") {
                    Some((h, n)) => {
                        let n = n.trim_end_matches(')').trim();
                        let n: usize = n.parse().map_err(|_| bad(line, "bad REDACTED length"))?;
                        (h, Some(n))
                    }
                    None => (rest, None),
                };
                pending = Some((line, parse_hex(line, hex_part)?, redacted_len));
            } else if let Some(rest) = l.strip_prefix('<') {
                let Some((cline, command, redacted_len)) = pending.take() else {
                    return Err(bad(line, "response without a command"));
                };
                let response = parse_hex(line, rest)?;
                if response.len() < 2 {
                    return Err(bad(line, "response shorter than a status word"));
                }
                steps.push(Step::Apdu { line: cline, command, redacted_len, response });
            } else if let Some(rest) = l.strip_prefix("reset") {
                steps.push(Step::Reset { line, atr: parse_hex(line, rest)? });
            } else if let Some(rest) = l.strip_prefix("atr") {
                atr = parse_hex(line, rest)?;
            } else {
                return Err(bad(line, "expected '>', '<', 'atr' or 'reset'"));
            }
        }
        if let Some((line, ..)) = pending {
            return Err(bad(line, "command without a response"));
        }
        Ok(ReplayTransport { atr, steps, next: 0, end_line })
    }

    /// Fails unless every step of the transcript was played.
    pub fn finish(&self) -> Result<(), TransportError> {
        match self.steps.get(self.next) {
            None => Ok(()),
            Some(Step::Apdu { line, .. } | Step::Reset { line, .. }) => {
                Err(TransportError::ReplayMismatch { line: *line, expected: "this step".into(), got: "nothing".into() })
            }
        }
    }

    /// Steps not played yet.
    pub fn remaining(&self) -> usize {
        self.steps.len() - self.next
    }
}

impl Transport for ReplayTransport {
    fn transaction(&mut self) -> Result<Box<dyn CardTransaction + '_>, TransportError> {
        Ok(Box::new(ReplayTx(self)))
    }
    fn atr(&self) -> &[u8] {
        &self.atr
    }
    fn name(&self) -> &str {
        "replay"
    }
}

struct ReplayTx<'a>(&'a mut ReplayTransport);

impl CardTransaction for ReplayTx<'_> {
    fn transmit(&mut self, command: &[u8], _: Sensitivity) -> Result<Vec<u8>, TransportError> {
        let r = &mut *self.0;
        let got = Hex(command).to_string();
        match r.steps.get(r.next) {
            None => Err(TransportError::ReplayExhausted { line: r.end_line, got }),
            Some(Step::Reset { line, .. }) => {
                Err(TransportError::ReplayMismatch { line: *line, expected: "reset".into(), got })
            }
            Some(Step::Apdu { line, command: expected, redacted_len, response }) => {
                let matches = match redacted_len {
                    None => expected.as_slice() == command,
                    Some(n) => command.len() == *n && command.starts_with(expected),
                };
                if !matches {
                    let expected = match redacted_len {
                        None => Hex(expected).to_string(),
                        Some(n) => format!("{} REDACTED({n})", Hex(expected)),
                    };
                    // never echo a sensitive command's data back in an error
                    let got = if redacted_len.is_some() { format!("{} bytes", command.len()) } else { got };
                    return Err(TransportError::ReplayMismatch { line: *line, expected, got });
                }
                let response = response.clone();
                r.next += 1;
                Ok(response)
            }
        }
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        let r = &mut *self.0;
        match r.steps.get(r.next) {
            Some(Step::Reset { atr, .. }) => {
                r.atr = atr.clone();
                r.next += 1;
                Ok(r.atr.clone())
            }
            Some(Step::Apdu { line, command, .. }) => Err(TransportError::ReplayMismatch {
                line: *line,
                expected: Hex(command).to_string(),
                got: "reset".into(),
            }),
            None => Err(TransportError::ReplayExhausted { line: r.end_line, got: "reset".into() }),
        }
    }

    fn atr(&self) -> &[u8] {
        &self.0.atr
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::apdu::{Command, Ins};
    use crate::transport::{CardTransactionExt, RecordingTransport};

    const T: &str = "# select then verify\natr 3B6D000000814E43238697159900BF7C7A\n\
        > 00A404000F7378312E73682EC9E7BBE1B1A3D5CF\n< 6110\n> 00C0000010\n< 6F0E840C7378312E73682EC9E7BBE1B19000\n\
        > 0020000003 REDACTED(8)\n< 9000\n";

    fn select() -> Command {
        Command::new(0, Ins::SELECT, 4, 0).with_data(hex::decode("7378312E73682EC9E7BBE1B1A3D5CF").unwrap()).unwrap()
    }

    #[test]
    fn replay_then_record_round_trip() {
        let replay = ReplayTransport::from_transcript(T).unwrap();
        let mut rec = RecordingTransport::new(replay);
        {
            let mut tx = rec.transaction().unwrap();
            let fci = tx.exchange_ok(&select()).unwrap();
            assert_eq!(fci.len(), 16);
            let verify = Command::new(0, Ins::VERIFY, 0, 0).with_data(vec![0x12, 0x34, 0x56]).unwrap().sensitive();
            tx.exchange_ok(&verify).unwrap();
        }
        rec.inner().finish().unwrap();
        let c = rec.counters();
        assert_eq!((c.apdus, c.transactions), (3, 1));
        assert_eq!(c.bytes_sent, 20 + 5 + 8);
        assert_eq!(c.bytes_received, 2 + 18 + 2);
        // the recording of the replay is the transcript itself, without comments
        let again = rec.transcript();
        assert!(!again.contains("123456"));
        let stripped: String = T.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        assert_eq!(again, stripped);
    }

    #[test]
    fn deviation_names_the_line() {
        let mut replay = ReplayTransport::from_transcript(T).unwrap();
        let mut tx = replay.transaction().unwrap();
        let other = Command::new(0, Ins::SELECT, 4, 0).with_data(vec![1, 2]).unwrap();
        let err = tx.exchange(&other).unwrap_err();
        assert!(err.to_string().contains("transcript line 3"), "{err}");
    }

    #[test]
    fn exhausted_and_unfinished() {
        let mut replay = ReplayTransport::from_transcript("atr 3B00\n> 00840000 08\n< 01020304050607089000\n").unwrap();
        // the GET CHALLENGE on line 2 was not played
        assert!(matches!(replay.finish(), Err(TransportError::ReplayMismatch { line: 2, .. })));
        {
            let mut tx = replay.transaction().unwrap();
            let gc = Command::new(0, Ins::GET_CHALLENGE, 0, 0).with_le(8).unwrap();
            tx.exchange_ok(&gc).unwrap();
            assert!(matches!(
                tx.exchange(&gc),
                Err(crate::Error::Transport(TransportError::ReplayExhausted { line: 4, .. }))
            ));
        }
        replay.finish().unwrap();
    }

    #[test]
    fn malformed_transcripts() {
        for (text, line) in [("> 00A4\n", 1), ("< 9000\n", 1), ("atr zz\n", 1), ("x\n", 1), ("> 00\n< 90\n", 2)] {
            match ReplayTransport::from_transcript(text) {
                Err(TransportError::BadTranscript { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
