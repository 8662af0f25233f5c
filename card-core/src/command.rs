//! Every card command of CARD-PROFILE §4, built in one place, and the two security layers that wrap commands:
//! external authentication (§6.2) and line protection (§6.4).
//!
//! The host programs (card-core's application, issuance's COS adapter and verification, card-sim's fixture
//! personalizer) build their APDUs here, so a command's bytes are written once. Each builder's doc comment starts
//! with its source. The reference COS's personalization commands (CREATE FILE, WRITE KEY, …) are in
//! [`crate::reference_cos`], with the data encoding they carry.

use crate::apdu::{ApduError, Command, Ins, Response};
use crate::crypto::Algorithm;
use crate::transport::{CardTransaction, CardTransactionExt};
use crate::Error;

/// Le `00`: up to 256 bytes.
const LE_ALL: u32 = 256;

/// CARD-PROFILE §4 SELECT by name: `00 A4 04 00 Lc AID 00` (the FCI in the answer).
pub fn select_by_name(aid: &[u8]) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid.to_vec())?.with_le(LE_ALL)
}

/// CARD-PROFILE §4 SELECT by name without asking for the FCI: `00 A4 04 00 Lc AID` (case 3); the FCI a card
/// answers anyway is not read, and a T=0 card's `61xx` is not fetched ([`Command::discarding_answer`]).
pub fn select_by_name_no_fci(aid: &[u8]) -> Result<Command, ApduError> {
    Ok(Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid.to_vec())?.discarding_answer())
}

/// CARD-PROFILE §4 SELECT by file id: `00 A4 00 00 02 FID` (the MF `3F00`, a DF). The FCI is not read (as
/// [`select_by_name_no_fci`]).
pub fn select_by_fid(fid: u16) -> Result<Command, ApduError> {
    Ok(Command::new(0x00, Ins::SELECT, 0x00, 0x00).with_data(fid.to_be_bytes().to_vec())?.discarding_answer())
}

/// CARD-PROFILE §4 SELECT of an EF under the current DF: `00 A4 02 00 02 FID` (`EF05` as vendor readers do).
pub fn select_ef(fid: u16) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::SELECT, 0x02, 0x00).with_data(fid.to_be_bytes().to_vec())
}

/// CARD-PROFILE §4 READ RECORD by number: `00 B2 rr SFI<<3|100 00`.
pub fn read_record(record: u8, sfi: u8) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::READ_RECORD, record, (sfi << 3) | 0b100).with_le(LE_ALL)
}

/// CARD-PROFILE §4 READ RECORD "all from `record`": `00 B2 rr SFI<<3|101 00` (optional on real cards).
pub fn read_records_from(record: u8, sfi: u8) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::READ_RECORD, record, (sfi << 3) | 0b101).with_le(LE_ALL)
}

/// CARD-PROFILE §4 UPDATE RECORD, plain (after external authentication): `00 DC rr SFI<<3|100 Lc TLV`.
pub fn update_record(record: u8, sfi: u8, tlv: Vec<u8>) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::UPDATE_RECORD, record, (sfi << 3) | 0b100).with_data(tlv)
}

/// CARD-PROFILE §4 READ BINARY of the current EF: `00 B0 off_hi off_lo Le`.
pub fn read_binary(offset: u16, le: u32) -> Result<Command, ApduError> {
    let [hi, lo] = offset.to_be_bytes();
    Command::new(0x00, Ins::READ_BINARY, hi, lo).with_le(le)
}

/// CARD-PROFILE §4 READ BINARY selecting the EF by its SFI (`P1 = 80 | SFI`, offset 0).
pub fn read_binary_sfi(sfi: u8, le: u32) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::READ_BINARY, 0x80 | sfi, 0).with_le(le)
}

/// CARD-PROFILE §4 UPDATE BINARY of the current EF: `00 D6 off_hi off_lo Lc data`.
pub fn update_binary(offset: u16, data: Vec<u8>) -> Result<Command, ApduError> {
    let [hi, lo] = offset.to_be_bytes();
    Command::new(0x00, Ins::UPDATE_BINARY, hi, lo).with_data(data)
}

/// CARD-PROFILE §4 UPDATE BINARY selecting the EF by its SFI (`P1 = 80 | SFI`, offset 0).
pub fn update_binary_sfi(sfi: u8, data: Vec<u8>) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::UPDATE_BINARY, 0x80 | sfi, 0).with_data(data)
}

/// CARD-PROFILE §4 GET CHALLENGE: `00 84 00 00 len` (8; 4 for a 3DES line-protection IV).
pub fn get_challenge(len: u32) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::GET_CHALLENGE, 0, 0).with_le(len)
}

/// CARD-PROFILE §4 EXTERNAL AUTHENTICATE: `00 82 00 kid 10 C ‖ X` (§6.2). Sensitive: never in a transcript.
pub fn external_authenticate(kid: u8, cryptogram: &[u8; 8], x: &[u8; 8]) -> Result<Command, ApduError> {
    Ok(Command::new(0x00, Ins::EXTERNAL_AUTHENTICATE, 0x00, kid).with_data([*cryptogram, *x].concat())?.sensitive())
}

/// CARD-PROFILE §4 INTERNAL AUTHENTICATE: `00 88 00 00 10 R1 ‖ R2 00` → 8 bytes (§6.3).
pub fn internal_authenticate(r1: &[u8; 8], r2: &[u8; 8]) -> Result<Command, ApduError> {
    Command::new(0x00, Ins::INTERNAL_AUTHENTICATE, 0x00, 0x00).with_data([*r1, *r2].concat())?.with_le(LE_ALL)
}

/// CARD-PROFILE §4 VERIFY PIN: `00 20 00 00 Lc PIN` (BCD, `F`-padded). Sensitive.
pub fn verify_pin(pin_bcd: &[u8]) -> Result<Command, ApduError> {
    Ok(Command::new(0x00, Ins::VERIFY, 0, 0).with_data(pin_bcd.to_vec())?.sensitive())
}

/// CARD-PROFILE §4 CHANGE PIN: `80 5E 01 00 Lc OLD ‖ FF ‖ NEW`. Sensitive.
pub fn change_pin(old_bcd: &[u8], new_bcd: &[u8]) -> Result<Command, ApduError> {
    let mut data = zeroize::Zeroizing::new(old_bcd.to_vec());
    data.push(0xFF);
    data.extend_from_slice(new_bcd);
    Ok(Command::new(0x80, Ins::CHANGE_RELOAD_PIN, 0x01, 0x00).with_data(data.to_vec())?.sensitive())
}

/// CARD-PROFILE §4 RELOAD PIN: `80 5E 00 00 Lc NEW ‖ MAC4` (MAC with RLK, IV zero, §6.4). Sensitive.
pub fn reload_pin(new_bcd: &[u8], mac: &[u8; 4]) -> Result<Command, ApduError> {
    let mut data = zeroize::Zeroizing::new(new_bcd.to_vec());
    data.extend_from_slice(mac);
    Ok(Command::new(0x80, Ins::CHANGE_RELOAD_PIN, 0x00, 0x00).with_data(data.to_vec())?.sensitive())
}

/// CARD-PROFILE §4 PIN UNBLOCK header (line-protected, secure data under PUK): `84 24 00 00`.
pub const PIN_UNBLOCK: [u8; 4] = [0x84, Ins::PIN_UNBLOCK.0, 0x00, 0x00];
/// CARD-PROFILE §4 APPLICATION BLOCK header (line-protected with STK): `84 1E 00 00`.
pub const APPLICATION_BLOCK: [u8; 4] = [0x84, Ins::APPLICATION_BLOCK.0, 0x00, 0x00];
/// CARD-PROFILE §4 APPLICATION UNBLOCK header (line-protected with STK): `84 18 00 00`.
pub const APPLICATION_UNBLOCK: [u8; 4] = [0x84, Ins::APPLICATION_UNBLOCK.0, 0x00, 0x00];

/// CARD-PROFILE §4 GET DATA key info (extension of this profile): `80 CA 00 C1 00`.
pub fn get_key_info() -> Result<Command, ApduError> {
    Command::new(0x80, Ins::GET_DATA, 0x00, 0xC1).with_le(LE_ALL)
}

/// Parses GET DATA key info: (kid, version, algorithm id, tries left) per key of the current DF.
pub fn parse_key_info(data: &[u8]) -> Result<Vec<[u8; 4]>, Error> {
    if !data.len().is_multiple_of(4) {
        return Err(crate::apdu::ProtocolError::Unexpected("key info is not a list of 4-byte entries").into());
    }
    Ok(data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect())
}

/// CARD-PROFILE §6.2 external authentication as one step: GET CHALLENGE (8), a fresh X, the cryptogram from
/// `cryptogram(R, X)` (a local key, a security module, the back end's answer), EXTERNAL AUTHENTICATE. The card's
/// answer is returned for the caller to judge (`63Cx`: tries left).
pub fn authenticate(
    tx: &mut (dyn CardTransaction + '_),
    kid: u8,
    cryptogram: impl FnOnce(&[u8; 8], &[u8; 8]) -> Result<[u8; 8], Error>,
) -> Result<Response, Error> {
    let r = challenge(tx, 8)?;
    let r: [u8; 8] = r.as_slice().try_into().map_err(|_| Error::BadParameter("challenge".into()))?;
    let x: [u8; 8] = rand::random();
    let c = cryptogram(&r, &x)?;
    tx.exchange(&external_authenticate(kid, &c, &x)?)
}

/// GET CHALLENGE of `len` bytes; an answer of another length is the card's fault.
pub fn challenge(tx: &mut (dyn CardTransaction + '_), len: u32) -> Result<Vec<u8>, Error> {
    let r = tx.exchange_ok(&get_challenge(len)?)?;
    if r.len() != len as usize {
        return Err(crate::apdu::ProtocolError::Unexpected("challenge of the wrong length").into());
    }
    Ok(r)
}

/// The challenge length of a line-protection MAC (CARD-PROFILE §6.4): 4 for 3DES, 8 for SM4 and AES.
pub fn mac_challenge_len(alg: Algorithm) -> u32 {
    if alg == Algorithm::Tdes {
        4
    } else {
        8
    }
}

/// CARD-PROFILE §6.4 line protection as a layer: a command `CLA INS P1 P2 Lc' data MAC4` under a fresh
/// challenge. `mac(challenge, input)` computes the MAC over `CLA INS P1 P2 Lc' ‖ data` (Lc' counts the MAC) with
/// the right key — a local key, or a security module. The command is marked sensitive when `sensitive`.
pub fn line_protected(
    tx: &mut (dyn CardTransaction + '_),
    alg: Algorithm,
    header: [u8; 4],
    data: &[u8],
    sensitive: bool,
    mac: impl FnOnce(&[u8], &[u8]) -> Result<[u8; 4], Error>,
) -> Result<Response, Error> {
    let challenge = challenge(tx, mac_challenge_len(alg))?;
    let lc = u8::try_from(data.len() + 4).map_err(|_| Error::BadParameter("line-protected data too long".into()))?;
    let mut input = header.to_vec();
    input.push(lc);
    input.extend_from_slice(data);
    let mac = mac(&challenge, &input)?;
    let [cla, ins, p1, p2] = header;
    let cmd = Command::new(cla, Ins(ins), p1, p2).with_data([data, &mac].concat())?;
    tx.exchange(&if sensitive { cmd.sensitive() } else { cmd })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(c: &Command) -> String {
        hex::encode_upper(c.to_bytes())
    }

    #[test]
    fn the_bytes_of_each_command() {
        let aid = hex::decode("7378312E73682EC9E7BBE1B1A3D5CF").unwrap();
        assert_eq!(hex(&select_by_name(&aid).unwrap()), "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00");
        assert_eq!(hex(&select_by_fid(0x3F00).unwrap()), "00A40000023F00");
        assert_eq!(hex(&select_ef(0xEF05).unwrap()), "00A4020002EF05");
        assert_eq!(hex(&read_record(1, 5).unwrap()), "00B2012C00");
        assert_eq!(hex(&read_records_from(1, 6).unwrap()), "00B2013500");
        assert_eq!(hex(&update_record(2, 6, vec![0x0A, 0x01, 0x31]).unwrap()), "00DC0234030A0131");
        assert_eq!(hex(&read_binary(0x0100, 256).unwrap()), "00B0010000");
        assert_eq!(hex(&update_binary_sfi(8, vec![0xFF]).unwrap()), "00D6880001FF");
        assert_eq!(hex(&get_challenge(4).unwrap()), "0084000004");
        let c = external_authenticate(0x0A, &[1; 8], &[2; 8]).unwrap();
        assert_eq!(hex(&c), "0082000A1001010101010101010202020202020202");
        assert_eq!(c.sensitivity(), crate::apdu::Sensitivity::Sensitive);
        assert_eq!(hex(&internal_authenticate(&[1; 8], &[2; 8]).unwrap()).len(), 2 * (5 + 16 + 1));
        assert_eq!(hex(&verify_pin(&[0x12, 0x34, 0x56]).unwrap()), "0020000003123456");
        assert_eq!(hex(&change_pin(&[0x12, 0x34, 0x56], &[0x65, 0x43, 0x21]).unwrap()), "805E010007123456FF654321");
        assert_eq!(hex(&reload_pin(&[0x12, 0x34, 0x56], &[9; 4]).unwrap()), "805E00000712345609090909");
        assert_eq!(hex(&get_key_info().unwrap()), "80CA00C100");
    }

    #[test]
    fn key_info_is_a_list_of_four_byte_entries() {
        assert_eq!(parse_key_info(&[0, 1, 3, 15, 4, 2, 3, 14]).unwrap(), vec![[0, 1, 3, 15], [4, 2, 3, 14]]);
        assert!(matches!(
            parse_key_info(&[0, 1, 3]),
            Err(Error::Protocol(crate::apdu::ProtocolError::Unexpected("key info is not a list of 4-byte entries")))
        ));
    }
}
