//! The modeled card time of the APDUs the host exchanges: through PC/SC the host cannot measure how long the
//! card took, but it can model it — the timing model of `card-sim` ([`card_core::timing`], one
//! implementation for both) applied to each command and response as sent and received. What the chip did
//! inside (block cipher operations, EEPROM pages programmed) is what the reference COS does for that command
//! with that outcome (`card-sim/COS.md`): [`reference_work`].
//!
//! The host does not see two things the card does: a key's or the PIN's try counter set back to its
//! maximum after a success that followed failures (one EEPROM page), and the exact length of a PIN sent
//! encrypted (PIN UNBLOCK; one page either way). A personalization and its verification have neither.

use std::time::Duration;

use card_core::apdu::{Command, Ins, StatusWord};
use card_core::crypto::Algorithm;
use card_core::timing::{CardWork, TimingModel};

/// Length of a key or PIN record of the reference COS (WRITE KEY data, card-sim `keys.rs`).
pub const KEY_RECORD_LEN: usize = 20;
/// EEPROM bytes the reference COS programs for CREATE FILE and ERASE DF (a file header).
pub const FILE_HEADER_WRITE: usize = 32;

fn block_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Tdes => 8,
        Algorithm::Sm4 | Algorithm::Aes128 => 16,
    }
}

/// Block operations of the line-protection MAC check (CARD-PROFILE §6.4) over the header `CLA INS P1 P2 Lc`
/// and `payload_len` bytes, with keys of `alg` (3DES: two more for the final triple-DES step).
fn mac_blocks(data_len: usize, payload_len: usize, alg: Algorithm) -> usize {
    let header = if data_len <= 255 { 5 } else { 7 };
    (header + payload_len + 1).div_ceil(block_len(alg)) + if alg == Algorithm::Tdes { 2 } else { 0 }
}

/// What the reference COS does for `command` when it answers `response` (data ‖ SW), on a card whose keys
/// are of `alg`: the block cipher operations and EEPROM writes of card-sim's command handlers for that
/// outcome (a refused command writes nothing, unless it counted a failed try).
pub fn reference_work(command: &[u8], response: &[u8], alg: Algorithm) -> CardWork {
    let mut w = CardWork::default();
    let Ok(cmd) = Command::parse(command) else { return w };
    let sw = match response {
        [.., a, b] => StatusWord(u16::from_be_bytes([*a, *b])),
        _ => return w,
    };
    let ok = sw == StatusWord::OK || sw.sw1() == 0x61;
    let failed_try = sw.0 & 0xFFF0 == 0x63C0;
    let mac_wrong = sw == StatusWord::MAC_WRONG;
    let data = cmd.data();
    let secured_len = data.len().saturating_sub(4);
    match (cmd.cla, cmd.ins) {
        (_, Ins::EXTERNAL_AUTHENTICATE) if ok || failed_try => {
            w.blocks(2);
            if failed_try {
                w.wrote(1);
            }
        }
        (_, Ins::INTERNAL_AUTHENTICATE) if ok => w.blocks(2),
        (_, Ins::CREATE_FILE | Ins::ERASE_DF) if ok => w.wrote(FILE_HEADER_WRITE),
        (_, Ins::END_PERSONALIZATION) if ok => w.wrote(1),
        (0x80, Ins::WRITE_KEY) if ok => w.wrote(KEY_RECORD_LEN),
        (0x84, Ins::WRITE_KEY) if ok || mac_wrong => {
            w.blocks(mac_blocks(data.len(), secured_len, alg));
            if ok {
                w.blocks(secured_len.div_ceil(block_len(alg)));
                w.wrote(KEY_RECORD_LEN);
            } else {
                w.wrote(1);
            }
        }
        (0x00, Ins::UPDATE_RECORD | Ins::UPDATE_BINARY) | (0x00, Ins(0xE2)) if ok => w.wrote(data.len()),
        (0x04, Ins::UPDATE_RECORD | Ins::UPDATE_BINARY) | (0x04, Ins(0xE2)) if ok || mac_wrong => {
            w.blocks(mac_blocks(data.len(), secured_len, alg));
            w.wrote(if ok { secured_len } else { 1 });
        }
        (_, Ins::VERIFY) if failed_try && !data.is_empty() => w.wrote(1),
        (_, Ins::CHANGE_RELOAD_PIN) if cmd.p1 == 0x01 && (ok || failed_try) => {
            // OLD ‖ FF ‖ NEW: the new PIN and its tries, or a failed try
            let new = data.iter().position(|b| *b == 0xFF).map_or(0, |sep| data.len() - sep - 1);
            w.wrote(if ok { new + 1 } else { 1 });
        }
        (_, Ins::CHANGE_RELOAD_PIN) if cmd.p1 == 0x00 && (ok || mac_wrong) => {
            // NEW ‖ MAC over NEW with a zero IV
            w.blocks((secured_len + 1).div_ceil(block_len(alg)));
            w.wrote(if ok { secured_len + 1 } else { 1 });
        }
        (_, Ins::PIN_UNBLOCK) if ok || mac_wrong => {
            w.blocks(mac_blocks(data.len(), secured_len, alg));
            if ok {
                w.blocks(secured_len.div_ceil(block_len(alg)));
            }
            w.wrote(1);
        }
        (_, Ins::APPLICATION_BLOCK | Ins::APPLICATION_UNBLOCK | Ins::CARD_BLOCK) if ok || mac_wrong => {
            w.blocks(mac_blocks(data.len(), 0, alg));
            // UNBLOCK of an application that is not blocked writes nothing; the host cannot tell: one page
            w.wrote(1);
        }
        _ => {}
    }
    w
}

/// The modeled card time of one exchange with the default model (9600 bit/s, T=0).
pub fn modeled(command: &[u8], response: &[u8], work: &CardWork) -> Duration {
    TimingModel::default().apdu_time(command.len(), response.len(), work)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(command: &str, response: &str, alg: Algorithm) -> CardWork {
        reference_work(&hex::decode(command).unwrap_or_default(), &hex::decode(response).unwrap_or_default(), alg)
    }

    #[test]
    fn work_of_commands_as_the_reference_cos_does_it() {
        let t = Algorithm::Tdes;
        // SELECT, GET CHALLENGE, READ: no work; a refused write: none either
        assert_eq!(work("00A40000023F00", "9000", t), CardWork::default());
        assert_eq!(work("0084000008", "01020304050607089000", t), CardWork::default());
        assert_eq!(work("00DC010C03010141", "6982", t), CardWork::default());
        // UPDATE RECORD of 70 bytes: two pages
        let long = format!("00DC010C46{}", "AB".repeat(70));
        assert_eq!(work(&long, "9000", t).eeprom_pages_written, 2);
        // EXTERNAL AUTHENTICATE: two blocks; a wrong cryptogram also counts the try (one page)
        let ea = format!("0082000010{}", "00".repeat(16));
        assert_eq!(work(&ea, "9000", t), CardWork { block_ops: 2, ..CardWork::default() });
        assert_eq!(work(&ea, "63C2", t), CardWork { block_ops: 2, eeprom_bytes_written: 1, eeprom_pages_written: 1 });
        // WRITE KEY (plain): a 20-byte record, one page
        let wk = format!("80D4010114{}", "00".repeat(20));
        assert_eq!(work(&wk, "9000", t).eeprom_pages_written, 1);
        // line-protected UPDATE BINARY (CLA 04) of 8 bytes + MAC: (5 + 8 + 1) / 8 blocks, + 2 for 3DES
        let ub = format!("04D681000C{}", "11".repeat(12));
        assert_eq!(work(&ub, "9000", t), CardWork { block_ops: 4, eeprom_bytes_written: 8, eeprom_pages_written: 1 });
        assert_eq!(work(&ub, "9000", Algorithm::Sm4).block_ops, 1);
        // a malformed command or response: nothing
        assert_eq!(work("00", "9000", t), CardWork::default());
        assert_eq!(work(&wk, "", t), CardWork::default());
    }
}
