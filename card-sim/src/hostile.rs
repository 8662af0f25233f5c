//! Hostile cards: a card that breaks the rules on the wire, so that hosts can be tested against it
//! ([`crate::SimTransport::set_hostile`], `card-sim --hostile KIND`). COS.md "Hostile cards" lists the kinds.
//!
//! The card executes every command as usual; [`Hostile`] then distorts the answer (or the ATR) on its way out.
//! The kinds are written on the command line as:
//!
//! | kind | the card |
//! |---|---|
//! | `non-gbk-name` | answers READ RECORD with the value of tag `09` (姓名) starting with `81 7F`, which is not GBK |
//! | `empty`, `empty:INS`, `empty-after:N` | answers with 0 bytes (no data, no status word): every command, commands with instruction byte `INS` (hex), or the Nth APDU and every later one |
//! | `long-tlv` | announces more bytes than it sends: READ RECORD records with their length byte raised by `40`, FCIs (`6F`) with their length byte `FF` |
//! | `oversized` | pads every answer that carries data to 298 data bytes (300 with the status word): more than a short Le allows |
//! | `endless-61` | answers every command, GET RESPONSE included, with 16 bytes and `6110` |
//! | `loop-6c` | answers every command with `6C10`, the resend with the Le it asked for too |
//! | `short-atr` | has an ATR with 4 historical bytes (`3B 64 00 00 53 53 gg 10`): no card factor |
//! | `one-byte` | answers every command with 1 byte (the first byte of its real answer) |
//! | `fci-86-length` | answers SELECT of a DF with an FCI whose algorithm `86` is 2 bytes (`86 02 <algorithm> 00`, the templates around it one byte longer) |
//! | `fci-86-unknown` | answers SELECT of a DF with an FCI whose algorithm `86` is `7F`, no algorithm's id |
//! | `fci-overrun` | answers SELECT with an FCI whose proprietary template `A5` announces `20` bytes more than its `6F` holds |

use std::fmt;
use std::str::FromStr;

use card_core::apdu::Ins;

/// When an `empty` card goes silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Every command.
    Always,
    /// Commands with this instruction byte.
    Ins(u8),
    /// The Nth APDU (1-based, counted since the card was made hostile) and every later one.
    FromApdu(u64),
}

/// One misbehaviour of a hostile card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hostile {
    /// READ RECORD answers tag `09` (姓名) with bytes that are not GBK (`81 7F` in front).
    NonGbkName,
    /// Answers of 0 bytes: no data, no status word.
    Empty(Trigger),
    /// TLV lengths beyond the bytes sent: records (length byte + `40`) and FCIs (length byte `FF`).
    LongTlv,
    /// Answers with data padded to 298 data bytes (300 bytes with the status word).
    Oversized,
    /// `61xx` for ever: every answer, GET RESPONSE included, is 16 bytes and `6110`.
    Endless61,
    /// `6Cxx` for ever: every answer is `6C10`.
    Loop6C,
    /// An ATR with 4 historical bytes, fewer than the 8 the card factor needs.
    ShortAtr,
    /// Answers of 1 byte.
    OneByte,
    /// FCIs whose algorithm `86` is 2 bytes long.
    Fci86Length,
    /// FCIs whose algorithm `86` is `7F`.
    Fci86Unknown,
    /// FCIs whose `A5` runs past their `6F`.
    FciOverrun,
}

/// Data bytes of an `oversized` answer.
pub const OVERSIZED_DATA: usize = 298;

impl Hostile {
    /// The answer the hostile card gives to `command` (the `n`th APDU since it became hostile) instead of
    /// `answer` (data ‖ SW1 SW2, as the COS produced it).
    pub fn distort(&self, command: &[u8], answer: Vec<u8>, n: u64) -> Vec<u8> {
        let ins = command.get(1).copied().unwrap_or_default();
        let Some(split) = answer.len().checked_sub(2) else { return answer };
        let (data, sw) = answer.split_at(split);
        let ok = sw == [0x90, 0x00];
        match *self {
            Hostile::NonGbkName if ins == Ins::READ_RECORD.0 && ok => [non_gbk_name(data), sw.to_vec()].concat(),
            Hostile::Empty(Trigger::Always) => Vec::new(),
            Hostile::Empty(Trigger::Ins(i)) if i == ins => Vec::new(),
            Hostile::Empty(Trigger::FromApdu(from)) if n >= from => Vec::new(),
            Hostile::LongTlv if ok && data.len() >= 2 => {
                let mut data = data.to_vec();
                if data[0] == 0x6F {
                    data[1] = 0xFF;
                } else if ins == Ins::READ_RECORD.0 {
                    data[1] = data[1].saturating_add(0x40);
                }
                [data, sw.to_vec()].concat()
            }
            Hostile::Oversized if !data.is_empty() => {
                let mut data = data.to_vec();
                data.resize(OVERSIZED_DATA.max(data.len()), 0xFF);
                [data, sw.to_vec()].concat()
            }
            Hostile::Endless61 => [vec![0u8; 16], vec![0x61, 0x10]].concat(),
            Hostile::Loop6C => vec![0x6C, 0x10],
            Hostile::OneByte => answer.get(..1).map(<[u8]>::to_vec).unwrap_or_default(),
            Hostile::Fci86Length | Hostile::Fci86Unknown | Hostile::FciOverrun
                if ins == Ins::SELECT.0 && ok && data.first() == Some(&0x6F) =>
            {
                match bad_fci(*self, data) {
                    Some(data) => [data, sw.to_vec()].concat(),
                    None => answer,
                }
            }
            _ => answer,
        }
    }

    /// The ATR the hostile card gives instead of `atr`.
    pub fn atr(&self, atr: Vec<u8>) -> Vec<u8> {
        match self {
            // TS, T0 = 6 (TB1, TC1) | 4 historical bytes, TB1, TC1, and the first 4 historical bytes (3B 6F 00 00 H1…)
            Hostile::ShortAtr => {
                let mut short = vec![0x3B, 0x64, 0x00, 0x00];
                short.extend(atr.iter().skip(4).take(4));
                short
            }
            _ => atr,
        }
    }
}

/// Every simple TLV with tag `09` in `data` (records back to back) gets `81 7F` as its first value bytes.
fn non_gbk_name(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while pos + 1 < out.len() {
        let (tag, len) = (out[pos], usize::from(out[pos + 1]));
        if tag == 0x00 || tag == 0xFF {
            pos += 1;
            continue;
        }
        if tag == 0x09 {
            for (i, b) in [0x81, 0x7F].into_iter().enumerate().take(len) {
                if let Some(slot) = out.get_mut(pos + 2 + i) {
                    *slot = b;
                }
            }
        }
        pos += 2 + len;
    }
    out
}

/// Where the `A5` of an FCI (`6F` with 1-byte lengths, as card-sim answers) starts, and where `9F0C 03 86 01` is.
fn fci_layout(fci: &[u8]) -> Option<(usize, Option<usize>)> {
    let (&len, _) = fci.get(1).zip(fci.first().filter(|t| **t == 0x6F))?;
    if len >= 0x80 || usize::from(len) + 2 != fci.len() {
        return None;
    }
    // the 6F's children: 1-byte tags (84, A5), 1-byte lengths
    let mut pos = 2;
    let a5 = loop {
        let (&tag, &l) = fci.get(pos).zip(fci.get(pos + 1))?;
        if l >= 0x80 {
            return None;
        }
        if tag == 0xA5 {
            break pos;
        }
        pos += 2 + usize::from(l);
    };
    let alg = fci.windows(5).position(|w| w == [0x9F, 0x0C, 0x03, 0x86, 0x01]).filter(|p| *p > a5);
    Some((a5, alg))
}

/// The FCI `fci` spoiled as `kind` says; `None` when it has no such place (no `A5`, no `86` for the `86` kinds).
fn bad_fci(kind: Hostile, fci: &[u8]) -> Option<Vec<u8>> {
    let (a5, alg) = fci_layout(fci)?;
    let mut out = fci.to_vec();
    match kind {
        Hostile::Fci86Length => {
            // 9F0C 03 86 01 aa → 9F0C 04 86 02 aa 00: the 9F0C, A5 and 6F one byte longer
            let alg = alg?;
            out[alg + 2] += 1;
            out[alg + 4] += 1;
            out.insert(alg + 6, 0x00);
            out[a5 + 1] += 1;
            out[1] += 1;
        }
        Hostile::Fci86Unknown => *out.get_mut(alg? + 5)? = 0x7F,
        Hostile::FciOverrun => out[a5 + 1] = out[a5 + 1].saturating_add(0x20),
        _ => return None,
    }
    Some(out)
}

/// The kind's name is not one of [`Hostile`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown hostile kind {0:?}: use non-gbk-name, empty, empty:INS, empty-after:N, long-tlv, oversized, endless-61, loop-6c, short-atr, one-byte, fci-86-length, fci-86-unknown or fci-overrun")]
pub struct UnknownKind(String);

impl FromStr for Hostile {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownKind(s.to_owned());
        Ok(match s {
            "non-gbk-name" => Hostile::NonGbkName,
            "empty" => Hostile::Empty(Trigger::Always),
            "long-tlv" => Hostile::LongTlv,
            "oversized" => Hostile::Oversized,
            "endless-61" => Hostile::Endless61,
            "loop-6c" => Hostile::Loop6C,
            "short-atr" => Hostile::ShortAtr,
            "one-byte" => Hostile::OneByte,
            "fci-86-length" => Hostile::Fci86Length,
            "fci-86-unknown" => Hostile::Fci86Unknown,
            "fci-overrun" => Hostile::FciOverrun,
            other => match other.split_once(':') {
                Some(("empty", ins)) => Hostile::Empty(Trigger::Ins(u8::from_str_radix(ins, 16).map_err(|_| bad())?)),
                Some(("empty-after", n)) => Hostile::Empty(Trigger::FromApdu(n.parse().map_err(|_| bad())?)),
                _ => return Err(bad()),
            },
        })
    }
}

impl fmt::Display for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hostile::NonGbkName => f.write_str("non-gbk-name"),
            Hostile::Empty(Trigger::Always) => f.write_str("empty"),
            Hostile::Empty(Trigger::Ins(ins)) => write!(f, "empty:{ins:02X}"),
            Hostile::Empty(Trigger::FromApdu(n)) => write!(f, "empty-after:{n}"),
            Hostile::LongTlv => f.write_str("long-tlv"),
            Hostile::Oversized => f.write_str("oversized"),
            Hostile::Endless61 => f.write_str("endless-61"),
            Hostile::Loop6C => f.write_str("loop-6c"),
            Hostile::ShortAtr => f.write_str("short-atr"),
            Hostile::OneByte => f.write_str("one-byte"),
            Hostile::Fci86Length => f.write_str("fci-86-length"),
            Hostile::Fci86Unknown => f.write_str("fci-86-unknown"),
            Hostile::FciOverrun => f.write_str("fci-overrun"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            "non-gbk-name",
            "empty",
            "empty:B2",
            "empty-after:3",
            "long-tlv",
            "oversized",
            "endless-61",
            "loop-6c",
            "short-atr",
            "one-byte",
            "fci-86-length",
            "fci-86-unknown",
            "fci-overrun",
        ] {
            assert_eq!(s.parse::<Hostile>().unwrap().to_string(), s);
        }
        for bad in ["empty:ZZ", "empty-after:x", "friendly"] {
            let e = bad.parse::<Hostile>().unwrap_err();
            assert!(e.to_string().starts_with(&format!("unknown hostile kind {bad:?}: use ")), "{e}");
        }
    }

    #[test]
    fn distortions() {
        let read = [0x00, 0xB2, 0x01, 0x34, 0x00];
        let name = hex::decode("0906D5C5C8FD00009000").unwrap();
        assert_eq!(hex::encode_upper(Hostile::NonGbkName.distort(&read, name.clone(), 1)), "0906817FC8FD00009000");
        assert_eq!(hex::encode_upper(Hostile::LongTlv.distort(&read, name.clone(), 1)), "0946D5C5C8FD00009000");
        assert_eq!(Hostile::Oversized.distort(&read, name.clone(), 1).len(), OVERSIZED_DATA + 2);
        assert!(Hostile::Empty(Trigger::Ins(0xB2)).distort(&read, name.clone(), 1).is_empty());
        assert_eq!(Hostile::Empty(Trigger::Ins(0xA4)).distort(&read, name.clone(), 1), name);
        assert_eq!(Hostile::Empty(Trigger::FromApdu(2)).distort(&read, name.clone(), 1), name);
        assert!(Hostile::Empty(Trigger::FromApdu(2)).distort(&read, name.clone(), 2).is_empty());
        assert_eq!(Hostile::OneByte.distort(&read, name.clone(), 1), [0x09]);
        assert_eq!(Hostile::Loop6C.distort(&read, name.clone(), 1), [0x6C, 0x10]);
        assert_eq!(Hostile::Endless61.distort(&read, name, 1).len(), 18);
        let atr = hex::decode("3B6F00005353021037170000000000000000A2").unwrap();
        assert_eq!(hex::encode_upper(Hostile::ShortAtr.atr(atr)), "3B64000053530210");
    }

    #[test]
    fn fci_distortions() {
        // the real card's FCI (CARD-PROFILE §4.2), as card-sim answers SELECT SSSE
        let select = hex::decode("00A404000F7378312E73682EC9E7BBE1B1A3D5CF00").unwrap();
        let aid = "840F7378312E73682EC9E7BBE1B1A3D5CF";
        let fci = hex::decode(format!("6F1C{aid}A50988011E9F0C038601039000")).unwrap();
        let spoilt = |k: Hostile| hex::encode_upper(k.distort(&select, fci.clone(), 1));
        assert_eq!(spoilt(Hostile::Fci86Length), format!("6F1D{aid}A50A88011E9F0C0486020300") + "9000");
        assert_eq!(spoilt(Hostile::Fci86Unknown), format!("6F1C{aid}A50988011E9F0C0386017F") + "9000");
        assert_eq!(spoilt(Hostile::FciOverrun), format!("6F1C{aid}A52988011E9F0C03860103") + "9000");
        // not SELECT, not an FCI, an FCI without 86: unchanged
        let read = [0x00, 0xB2, 0x01, 0x34, 0x00];
        assert_eq!(Hostile::FciOverrun.distort(&read, fci.clone(), 1), fci);
        let no_fci = hex::decode("9000").unwrap();
        assert_eq!(Hostile::Fci86Length.distort(&select, no_fci.clone(), 1), no_fci);
        let mf = hex::decode("6F09A50783023F008A01059000").unwrap();
        assert_eq!(Hostile::Fci86Unknown.distort(&select, mf.clone(), 1), mf);
        assert_eq!(hex::encode_upper(Hostile::FciOverrun.distort(&select, mf, 1)), "6F09A52783023F008A01059000");
    }
}
