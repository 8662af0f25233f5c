//! The PIN on the reader's pad: PC/SC part 10 ("IFDs with Secure PIN Entry Capabilities", v2.02.09).
//!
//! The host asks the reader for its features (`CM_IOCTL_GET_FEATURE_REQUEST`, answered with TLVs
//! `tag ‖ 04 ‖ control code (big-endian)`); a reader with `FEATURE_VERIFY_PIN_DIRECT` takes a
//! [`PinVerifyStructure`] (§2.5.2) holding the VERIFY APDU with a placeholder PIN block, lets the holder type the
//! PIN on its own keys, puts it in the APDU and answers the card's status word; `FEATURE_MODIFY_PIN_DIRECT` does the
//! same with a [`PinModifyStructure`] (§2.5.3) for CHANGE PIN. The PIN never reaches the host.
//!
//! The reader's own outcomes come as status words too (part 10 §2.5.2/2.5.3, the codes OpenSC's `pcsc_pin_cmd`
//! and libccid also use): `6400` timeout, `6401` cancelled, `6402` the new PIN entries differ, `6403` a PIN length
//! outside the limits, `6B80` a parameter of the structure refused; they become [`PinEntryError`]s.
//!
//! # This card's PIN in the structures (CARD-PROFILE §4)
//!
//! The card takes the PIN as packed BCD, left-justified in a block of the profile's length (3 bytes by default),
//! the unused nibbles `F`: `1234` → `12 34 FF`, `12345` → `12 34 5F` (what `Session::pin_bytes` sends). The part 10
//! structure can say "BCD, left-justified, in a block of 3 bytes at offset 0 of the data field", and the minimum and
//! maximum number of digits (4 and twice the block), but it has **no field for the padding nibble**. Readers
//! write the digits into the APDU template the host gives and leave the rest of the template as it is (the
//! template is the command "with the PIN block to be filled in": OpenSC sends its padding characters in it), so the
//! template's PIN block is `FF…FF`: the entered digits overwrite nibbles from the left, the rest stays `F`. That is
//! the closest exact encoding the structure allows; a reader that zero-fills the rest of a BCD block would send
//! `12 34 00` instead, and the card would count a wrong PIN (`63Cx`): such a reader needs the PIN entered
//! through the host instead.

use std::fmt;
use std::time::Duration;

use crate::apdu::StatusWord;
use crate::profile::PinSpec;
use crate::transport::{CardTransaction, TransportError};
use crate::Error;

/// A PC/SC part 10 feature tag (the `tag` of the feature request's TLVs). Unknown tags stay representable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Feature(pub u8);

macro_rules! features {
    ($($(#[$doc:meta])* $name:ident = $val:expr,)*) => {
        impl Feature {
            $( $(#[$doc])* pub const $name: Feature = Feature($val); )*

            /// The feature's name in PC/SC part 10, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Feature::$name => Some(concat!("FEATURE_", stringify!($name))), )*
                    _ => None,
                }
            }
        }
    };
}

features! {
    /// `FEATURE_VERIFY_PIN_START` (0x01).
    VERIFY_PIN_START = 0x01,
    /// `FEATURE_VERIFY_PIN_FINISH` (0x02).
    VERIFY_PIN_FINISH = 0x02,
    /// `FEATURE_MODIFY_PIN_START` (0x03).
    MODIFY_PIN_START = 0x03,
    /// `FEATURE_MODIFY_PIN_FINISH` (0x04).
    MODIFY_PIN_FINISH = 0x04,
    /// `FEATURE_GET_KEY_PRESSED` (0x05).
    GET_KEY_PRESSED = 0x05,
    /// `FEATURE_VERIFY_PIN_DIRECT` (0x06): VERIFY with the PIN typed on the reader.
    VERIFY_PIN_DIRECT = 0x06,
    /// `FEATURE_MODIFY_PIN_DIRECT` (0x07): CHANGE PIN with both PINs typed on the reader.
    MODIFY_PIN_DIRECT = 0x07,
    /// `FEATURE_MCT_READER_DIRECT` (0x08).
    MCT_READER_DIRECT = 0x08,
    /// `FEATURE_MCT_UNIVERSAL` (0x09).
    MCT_UNIVERSAL = 0x09,
    /// `FEATURE_IFD_PIN_PROPERTIES` (0x0A).
    IFD_PIN_PROPERTIES = 0x0A,
    /// `FEATURE_ABORT` (0x0B).
    ABORT = 0x0B,
    /// `FEATURE_SET_SPE_MESSAGE` (0x0C).
    SET_SPE_MESSAGE = 0x0C,
    /// `FEATURE_VERIFY_PIN_DIRECT_APP_ID` (0x0D).
    VERIFY_PIN_DIRECT_APP_ID = 0x0D,
    /// `FEATURE_MODIFY_PIN_DIRECT_APP_ID` (0x0E).
    MODIFY_PIN_DIRECT_APP_ID = 0x0E,
    /// `FEATURE_WRITE_DISPLAY` (0x0F).
    WRITE_DISPLAY = 0x0F,
    /// `FEATURE_GET_KEY` (0x10).
    GET_KEY = 0x10,
    /// `FEATURE_IFD_DISPLAY_PROPERTIES` (0x11).
    IFD_DISPLAY_PROPERTIES = 0x11,
    /// `FEATURE_GET_TLV_PROPERTIES` (0x12).
    GET_TLV_PROPERTIES = 0x12,
    /// `FEATURE_CCID_ESC_COMMAND` (0x13).
    CCID_ESC_COMMAND = 0x13,
    /// `FEATURE_EXECUTE_PACE` (0x20).
    EXECUTE_PACE = 0x20,
}

impl fmt::Debug for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Feature(0x{:02X})", self.0),
        }
    }
}

/// A reader control for [`CardTransaction::control`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Control<'a> {
    /// `CM_IOCTL_GET_FEATURE_REQUEST` (`SCARD_CTL_CODE(3400)`): the reader's features as TLVs.
    GetFeatureRequest,
    /// A feature's control code (as the reader announced it) with its input; the reader may take up to `wait` to
    /// answer (the holder typing a PIN).
    Feature {
        /// The control code from the feature request.
        code: u32,
        /// The input (a PIN structure).
        input: &'a [u8],
        /// The longest wait for the reader's answer.
        wait: Duration,
    },
}

/// What a reader announced in its answer to `CM_IOCTL_GET_FEATURE_REQUEST`: features and their control codes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderFeatures {
    features: Vec<(Feature, u32)>,
}

impl ReaderFeatures {
    /// Parses the feature request's answer (PC/SC part 10 §2.2): TLVs of `tag(1) ‖ 04 ‖ control code (4,
    /// big-endian)`. An empty answer is a reader without features; a length other than 4 or a truncated TLV is
    /// [`PinEntryError::Malformed`].
    pub fn parse(answer: &[u8]) -> Result<ReaderFeatures, PinEntryError> {
        let mut features = Vec::new();
        let mut rest = answer;
        while let [tag, len, tail @ ..] = rest {
            if *len != 4 {
                return Err(PinEntryError::Malformed("a feature's control code is not 4 bytes"));
            }
            let Some((value, tail)) = tail.split_first_chunk::<4>() else {
                return Err(PinEntryError::Malformed("the feature list is truncated"));
            };
            features.push((Feature(*tag), u32::from_be_bytes(*value)));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(PinEntryError::Malformed("the feature list is truncated"));
        }
        Ok(ReaderFeatures { features })
    }

    /// The control code of `feature`, if the reader has it (the first, should a reader announce one twice).
    pub fn code(&self, feature: Feature) -> Option<u32> {
        self.features.iter().find(|(f, _)| *f == feature).map(|(_, c)| *c)
    }

    /// Whether the reader has a PIN pad for VERIFY (`FEATURE_VERIFY_PIN_DIRECT`).
    pub fn has_pin_pad(&self) -> bool {
        self.code(Feature::VERIFY_PIN_DIRECT).is_some()
    }

    /// Every feature with its control code, in the reader's order.
    pub fn iter(&self) -> impl Iterator<Item = (Feature, u32)> + '_ {
        self.features.iter().copied()
    }

    /// Whether the reader announced nothing.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// A failure of PIN entry (on the reader's pad or through a PIN dialog): national −31…−36 (see
/// [`crate::national`]). Never carries PIN data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinEntryError {
    /// The holder cancelled the entry (`6401` from a pad, "Operation cancelled" from pinentry).
    #[error("PIN entry cancelled")]
    Cancelled,
    /// No PIN was entered in time (`6400` from a pad).
    #[error("PIN entry timed out")]
    Timeout,
    /// The two entries of the new PIN differ (`6402`).
    #[error("the two entries of the new PIN differ")]
    Mismatch,
    /// The PIN entered is too short or too long (`6403`).
    #[error("the PIN entered is too short or too long")]
    BadLength,
    /// The reader has no PIN pad (no `FEATURE_VERIFY_PIN_DIRECT`, or no `FEATURE_MODIFY_PIN_DIRECT` for a change):
    /// ask for the PIN another way.
    #[error("the reader has no PIN pad")]
    NoPinPad,
    /// No way to ask for a PIN: no pad and no PIN dialog configured or runnable.
    #[error("no means of PIN entry: {0}")]
    Unavailable(String),
    /// The reader refused the PIN entry request (`6B80`: a parameter of the structure).
    #[error("the reader refused the PIN entry request (6B80)")]
    Refused,
    /// The PIN dialog failed (an error of its own, ended early, broke its protocol).
    #[error("PIN entry failed: {0}")]
    Failed(String),
    /// The reader or the PIN dialog answered something that does not make sense.
    #[error("malformed answer to a PIN entry request: {0}")]
    Malformed(&'static str),
}

/// Part 10 outcome: timeout.
const SPE_TIMEOUT: StatusWord = StatusWord(0x6400);
/// Part 10 outcome: cancelled.
const SPE_CANCELLED: StatusWord = StatusWord(0x6401);
/// Part 10 outcome: the new PINs differ.
const SPE_MISMATCH: StatusWord = StatusWord(0x6402);
/// Part 10 outcome: PIN length outside the limits.
const SPE_LENGTH: StatusWord = StatusWord(0x6403);
/// Part 10 outcome: invalid parameter in the structure.
const SPE_INVALID: StatusWord = StatusWord(0x6B80);

/// The status word a pad answered: the reader's own outcomes (`64xx`, `6B80`) as [`PinEntryError`]s, the card's
/// status word otherwise (for [`crate::card`] to read `63Cx`, `6983`). Anything but two bytes is malformed.
pub fn pad_outcome(answer: &[u8]) -> Result<StatusWord, PinEntryError> {
    let [sw1, sw2] = answer else {
        return Err(PinEntryError::Malformed("a PIN pad answers two status bytes"));
    };
    match StatusWord::from_bytes(*sw1, *sw2) {
        SPE_TIMEOUT => Err(PinEntryError::Timeout),
        SPE_CANCELLED => Err(PinEntryError::Cancelled),
        SPE_MISMATCH => Err(PinEntryError::Mismatch),
        SPE_LENGTH => Err(PinEntryError::BadLength),
        SPE_INVALID => Err(PinEntryError::Refused),
        sw => Ok(sw),
    }
}

/// `bmFormatString` bit 7: system units are bytes.
const UNITS_BYTES: u8 = 0x80;
/// `bmFormatString` bits 1-0: BCD.
const FORMAT_BCD: u8 = 0x01;
/// `bEntryValidationCondition`: the validation key pressed.
const VALIDATION_KEY: u8 = 0x02;
/// `wLangId` Chinese (PRC), for a pad that shows messages.
pub const LANG_ZH_CN: u16 = 0x0804;
/// The fewest digits of a PIN (CARD-PROFILE §4; `Session::pin_bytes` refuses fewer).
pub const MIN_PIN_DIGITS: u8 = 4;

/// How long a pad waits for the holder: `first` for the first key, `between` after each key (0 = the reader's
/// default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadTimeouts {
    /// `bTimerOut`: seconds for the first key.
    pub first: u8,
    /// `bTimerOut2`: seconds after a key stroke.
    pub between: u8,
}

impl Default for PadTimeouts {
    /// 30 s for the first key, 15 s between keys.
    fn default() -> Self {
        PadTimeouts { first: 30, between: 15 }
    }
}

impl PadTimeouts {
    /// The longest the host waits for the pad's answer to `entries` PIN entries: every entry may take its full
    /// time (6 digits and the validation key after the first), plus `margin` for the card. A 0 timeout (the
    /// reader's default, unknown to the host) counts as 60 s.
    pub fn host_wait(self, entries: u32, max_digits: u8, margin: Duration) -> Duration {
        let secs = |t: u8| if t == 0 { 60 } else { u64::from(t) };
        let one = secs(self.first) + secs(self.between) * u64::from(max_digits);
        Duration::from_secs(one * u64::from(entries)) + margin
    }
}

/// `PIN_VERIFY_STRUCTURE` (PC/SC part 10 v2.02.09 §2.5.2): packed, little-endian fields, then the APDU template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinVerifyStructure {
    /// `bTimerOut` / `bTimerOut2`.
    pub timeouts: PadTimeouts,
    /// `bmFormatString`: bit 7 units (1 = bytes), bits 6-3 PIN position in the data field, bit 2 right
    /// justification, bits 1-0 format (00 binary, 01 BCD, 10 ASCII).
    pub format_string: u8,
    /// `bmPINBlockString`: bits 7-4 size in bits of a PIN length field, bits 3-0 PIN block size in bytes.
    pub pin_block_string: u8,
    /// `bmPINLengthFormat`: bit 4 units, bits 3-0 position of the PIN length field.
    pub pin_length_format: u8,
    /// `wPINMaxExtraDigit` high byte: the fewest digits.
    pub min_digits: u8,
    /// `wPINMaxExtraDigit` low byte: the most digits.
    pub max_digits: u8,
    /// `bEntryValidationCondition`.
    pub entry_validation: u8,
    /// `bNumberMessage`.
    pub number_message: u8,
    /// `wLangId`.
    pub lang_id: u16,
    /// `bMsgIndex`.
    pub msg_index: u8,
    /// `bTeoPrologue` (T=1 prologue; zeros).
    pub teo_prologue: [u8; 3],
    /// `abData`: the APDU with a placeholder PIN block (no PIN in it).
    pub apdu: Vec<u8>,
}

/// The fixed fields of `PIN_VERIFY_STRUCTURE` before `abData`.
pub const PIN_VERIFY_HEADER_LEN: usize = 19;
/// The fixed fields of `PIN_MODIFY_STRUCTURE` before `abData`.
pub const PIN_MODIFY_HEADER_LEN: usize = 24;

/// `ulDataLength` of an APDU template.
fn data_length(apdu: &[u8]) -> Result<[u8; 4], Error> {
    u32::try_from(apdu.len())
        .map(u32::to_le_bytes)
        .map_err(|_| Error::BadParameter("a PIN pad APDU template is too long".into()))
}

/// The card's PIN block in a template: `FF` × the profile's length (see the module documentation), and the
/// digits' limits.
fn card_pin(spec: &PinSpec) -> Result<(u8, u8), Error> {
    // bmPINBlockString has 4 bits for the block size; the block holds at least the fewest digits
    let block = u8::try_from(spec.length)
        .ok()
        .filter(|b| (2..=15).contains(b))
        .ok_or_else(|| Error::BadParameter("a PIN pad takes a PIN block of 2 to 15 bytes".into()))?;
    Ok((block, block * 2))
}

impl PinVerifyStructure {
    /// CARD-PROFILE §4 VERIFY PIN `00 20 00 00 Lc PIN` for this card's PIN ([`PinSpec`]): BCD, left-justified at
    /// the start of the data field, a block of `length` bytes pre-filled with `F`, 4 to `2 × length` digits, the
    /// validation key ends the entry, one message in Chinese.
    pub fn for_card(spec: &PinSpec, timeouts: PadTimeouts) -> Result<PinVerifyStructure, Error> {
        let (block, max_digits) = card_pin(spec)?;
        let mut apdu = vec![0x00, 0x20, 0x00, 0x00, block];
        apdu.resize(5 + usize::from(block), 0xFF);
        Ok(PinVerifyStructure {
            timeouts,
            format_string: UNITS_BYTES | FORMAT_BCD,
            pin_block_string: block,
            pin_length_format: 0x00,
            min_digits: MIN_PIN_DIGITS,
            max_digits,
            entry_validation: VALIDATION_KEY,
            number_message: 0x01,
            lang_id: LANG_ZH_CN,
            msg_index: 0x00,
            teo_prologue: [0; 3],
            apdu,
        })
    }

    /// The bytes for `SCardControl`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(PIN_VERIFY_HEADER_LEN + self.apdu.len());
        out.extend_from_slice(&[
            self.timeouts.first,
            self.timeouts.between,
            self.format_string,
            self.pin_block_string,
            self.pin_length_format,
        ]);
        out.extend_from_slice(&u16::from_be_bytes([self.min_digits, self.max_digits]).to_le_bytes());
        out.extend_from_slice(&[self.entry_validation, self.number_message]);
        out.extend_from_slice(&self.lang_id.to_le_bytes());
        out.push(self.msg_index);
        out.extend_from_slice(&self.teo_prologue);
        out.extend_from_slice(&data_length(&self.apdu)?);
        out.extend_from_slice(&self.apdu);
        Ok(out)
    }
}

/// `PIN_MODIFY_STRUCTURE` (PC/SC part 10 v2.02.09 §2.5.3): packed, little-endian fields, then the APDU template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinModifyStructure {
    /// `bTimerOut` / `bTimerOut2`.
    pub timeouts: PadTimeouts,
    /// `bmFormatString` (as in [`PinVerifyStructure::format_string`]).
    pub format_string: u8,
    /// `bmPINBlockString`.
    pub pin_block_string: u8,
    /// `bmPINLengthFormat`.
    pub pin_length_format: u8,
    /// `bInsertionOffsetOld`: where the current PIN goes, in bytes from the start of the data field.
    pub offset_old: u8,
    /// `bInsertionOffsetNew`: where the new PIN goes.
    pub offset_new: u8,
    /// `wPINMaxExtraDigit` high byte: the fewest digits.
    pub min_digits: u8,
    /// `wPINMaxExtraDigit` low byte: the most digits.
    pub max_digits: u8,
    /// `bConfirmPIN`: bit 0 the new PIN entered twice, bit 1 the current PIN asked for.
    pub confirm_pin: u8,
    /// `bEntryValidationCondition`.
    pub entry_validation: u8,
    /// `bNumberMessage`.
    pub number_message: u8,
    /// `wLangId`.
    pub lang_id: u16,
    /// `bMsgIndex1`, `bMsgIndex2`, `bMsgIndex3`.
    pub msg_index: [u8; 3],
    /// `bTeoPrologue`.
    pub teo_prologue: [u8; 3],
    /// `abData`: the APDU with placeholder PIN blocks.
    pub apdu: Vec<u8>,
}

impl PinModifyStructure {
    /// CARD-PROFILE §4 CHANGE PIN `80 5E 01 00 Lc OLD ‖ FF ‖ NEW` for this card's PIN: both blocks BCD as in
    /// [`PinVerifyStructure::for_card`], the old at offset 0, the new after the `FF` separator; the pad asks for the
    /// current PIN, the new one, and the new one again (`bConfirmPIN` 03, three messages).
    pub fn for_card(spec: &PinSpec, timeouts: PadTimeouts) -> Result<PinModifyStructure, Error> {
        let (block, max_digits) = card_pin(spec)?;
        // OLD ‖ FF ‖ NEW: the separator is FF like the placeholders, so the whole data field is FF
        let lc = block * 2 + 1;
        let mut apdu = vec![0x80, 0x5E, 0x01, 0x00, lc];
        apdu.resize(5 + usize::from(lc), 0xFF);
        Ok(PinModifyStructure {
            timeouts,
            format_string: UNITS_BYTES | FORMAT_BCD,
            pin_block_string: block,
            pin_length_format: 0x00,
            offset_old: 0,
            offset_new: block + 1,
            min_digits: MIN_PIN_DIGITS,
            max_digits,
            confirm_pin: 0x03,
            entry_validation: VALIDATION_KEY,
            number_message: 0x03,
            lang_id: LANG_ZH_CN,
            msg_index: [0x00, 0x01, 0x02],
            teo_prologue: [0; 3],
            apdu,
        })
    }

    /// How many times the holder types a PIN (for the host's wait).
    pub fn entries(&self) -> u32 {
        1 + u32::from(self.confirm_pin & 0x01) + u32::from((self.confirm_pin >> 1) & 0x01)
    }

    /// The bytes for `SCardControl`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(PIN_MODIFY_HEADER_LEN + self.apdu.len());
        out.extend_from_slice(&[
            self.timeouts.first,
            self.timeouts.between,
            self.format_string,
            self.pin_block_string,
            self.pin_length_format,
            self.offset_old,
            self.offset_new,
        ]);
        out.extend_from_slice(&u16::from_be_bytes([self.min_digits, self.max_digits]).to_le_bytes());
        out.extend_from_slice(&[self.confirm_pin, self.entry_validation, self.number_message]);
        out.extend_from_slice(&self.lang_id.to_le_bytes());
        out.extend_from_slice(&self.msg_index);
        out.extend_from_slice(&self.teo_prologue);
        out.extend_from_slice(&data_length(&self.apdu)?);
        out.extend_from_slice(&self.apdu);
        Ok(out)
    }
}

/// The card's wait beyond the holder's: what one APDU may take.
const CARD_MARGIN: Duration = Duration::from_secs(10);

/// The reader's features, within `tx`. A transport without reader controls (card-sim, a replay) and a reader
/// whose driver does not implement the feature request (pcscd's answer for vsmartcard-vpcd, see `PcscTransport`)
/// have none.
pub fn features(tx: &mut dyn CardTransaction) -> Result<ReaderFeatures, Error> {
    match tx.control(Control::GetFeatureRequest) {
        Ok(answer) => Ok(ReaderFeatures::parse(&answer)?),
        Err(TransportError::Unsupported(_)) => Ok(ReaderFeatures::default()),
        Err(e) => Err(e.into()),
    }
}

/// VERIFY with the PIN typed on the pad (`FEATURE_VERIFY_PIN_DIRECT`), within `tx`: the card's status word, or
/// [`PinEntryError::NoPinPad`] when the reader has no such feature.
pub fn verify_pin_direct(
    tx: &mut dyn CardTransaction,
    features: &ReaderFeatures,
    structure: &PinVerifyStructure,
) -> Result<StatusWord, Error> {
    let code = features.code(Feature::VERIFY_PIN_DIRECT).ok_or(PinEntryError::NoPinPad)?;
    let input = structure.to_bytes()?;
    let wait = structure.timeouts.host_wait(1, structure.max_digits, CARD_MARGIN);
    let answer = tx.control(Control::Feature { code, input: &input, wait })?;
    Ok(pad_outcome(&answer)?)
}

/// CHANGE PIN with both PINs typed on the pad (`FEATURE_MODIFY_PIN_DIRECT`), within `tx`: the card's status word,
/// or [`PinEntryError::NoPinPad`] when the reader has no such feature.
pub fn modify_pin_direct(
    tx: &mut dyn CardTransaction,
    features: &ReaderFeatures,
    structure: &PinModifyStructure,
) -> Result<StatusWord, Error> {
    let code = features.code(Feature::MODIFY_PIN_DIRECT).ok_or(PinEntryError::NoPinPad)?;
    let input = structure.to_bytes()?;
    let wait = structure.timeouts.host_wait(structure.entries(), structure.max_digits, CARD_MARGIN);
    let answer = tx.control(Control::Feature { code, input: &input, wait })?;
    Ok(pad_outcome(&answer)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> PinSpec {
        PinSpec { length: 3, max_tries: 3 }
    }

    #[test]
    fn feature_request_answer_parses() {
        // a pin pad reader: VERIFY_PIN_DIRECT 0x42330006, MODIFY_PIN_DIRECT 0x42330007, an unknown 0x77
        let answer = hex::decode("06044233000607044233000777040000ABCD").unwrap();
        let f = ReaderFeatures::parse(&answer).unwrap();
        assert!(f.has_pin_pad());
        assert_eq!(f.code(Feature::VERIFY_PIN_DIRECT), Some(0x4233_0006));
        assert_eq!(f.code(Feature::MODIFY_PIN_DIRECT), Some(0x4233_0007));
        assert_eq!(f.code(Feature(0x77)), Some(0xABCD));
        assert_eq!(f.code(Feature::GET_TLV_PROPERTIES), None);
        assert_eq!(f.iter().count(), 3);
        assert_eq!(format!("{:?}", Feature(0x06)), "FEATURE_VERIFY_PIN_DIRECT");
        assert_eq!(format!("{:?}", Feature(0x77)), "Feature(0x77)");
        // no features
        let none = ReaderFeatures::parse(&[]).unwrap();
        assert!(none.is_empty() && !none.has_pin_pad());
        // only a GET_TLV_PROPERTIES: no pad
        assert!(!ReaderFeatures::parse(&hex::decode("120442330012").unwrap()).unwrap().has_pin_pad());
    }

    #[test]
    fn malformed_feature_answers_are_errors() {
        for bad in
            ["06", "0604", "0604423300", "0602ABCD", "060442330006 07".replace(' ', "").as_str(), "0605423300060A"]
        {
            let bytes = hex::decode(bad).unwrap();
            assert!(matches!(ReaderFeatures::parse(&bytes), Err(PinEntryError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn pad_outcomes() {
        assert_eq!(pad_outcome(&[0x90, 0x00]), Ok(StatusWord::OK));
        assert_eq!(pad_outcome(&[0x63, 0xC2]), Ok(StatusWord(0x63C2)));
        assert_eq!(pad_outcome(&[0x64, 0x00]), Err(PinEntryError::Timeout));
        assert_eq!(pad_outcome(&[0x64, 0x01]), Err(PinEntryError::Cancelled));
        assert_eq!(pad_outcome(&[0x64, 0x02]), Err(PinEntryError::Mismatch));
        assert_eq!(pad_outcome(&[0x64, 0x03]), Err(PinEntryError::BadLength));
        assert_eq!(pad_outcome(&[0x6B, 0x80]), Err(PinEntryError::Refused));
        assert!(matches!(pad_outcome(&[]), Err(PinEntryError::Malformed(_))));
        assert!(matches!(pad_outcome(&[0x90]), Err(PinEntryError::Malformed(_))));
        assert!(matches!(pad_outcome(&[0x00, 0x90, 0x00]), Err(PinEntryError::Malformed(_))));
    }

    /// The card's structures, field by field (PC/SC part 10 §2.5.2/2.5.3 layout as pcsc-lite's `reader.h`
    /// declares it, packed; CARD-PROFILE §4 APDUs).
    #[test]
    fn this_cards_verify_structure() {
        let s = PinVerifyStructure::for_card(&spec(), PadTimeouts { first: 30, between: 15 }).unwrap();
        let bytes = s.to_bytes().unwrap();
        assert_eq!(
            hex::encode_upper(&bytes),
            concat!(
                "1E",       // bTimerOut 30 s
                "0F",       // bTimerOut2 15 s
                "81",       // bmFormatString: bytes, position 0, left, BCD
                "03",       // bmPINBlockString: no length field, block of 3 bytes
                "00",       // bmPINLengthFormat: no length field
                "0604",     // wPINMaxExtraDigit 0x0406 (4..6 digits), little-endian
                "02",       // bEntryValidationCondition: validation key
                "01",       // bNumberMessage
                "0408",     // wLangId 0x0804 zh-CN, little-endian
                "00",       // bMsgIndex
                "000000",   // bTeoPrologue
                "08000000", // ulDataLength 8
                "0020000003FFFFFF"
            )
        );
        assert_eq!(bytes.len(), PIN_VERIFY_HEADER_LEN + 8);
    }

    #[test]
    fn this_cards_modify_structure() {
        let s = PinModifyStructure::for_card(&spec(), PadTimeouts { first: 30, between: 15 }).unwrap();
        assert_eq!(s.entries(), 3);
        let bytes = s.to_bytes().unwrap();
        assert_eq!(
            hex::encode_upper(&bytes),
            concat!(
                "1E0F",
                "81",
                "03",
                "00",
                "00",   // bInsertionOffsetOld: data byte 0
                "04",   // bInsertionOffsetNew: after OLD(3) ‖ FF
                "0604", // 4..6 digits
                "03",   // bConfirmPIN: current PIN asked, new PIN twice
                "02",
                "03",     // validation key, three messages
                "0408",   // zh-CN
                "000102", // message indexes
                "000000",
                "0C000000", // ulDataLength 12
                "805E010007FFFFFFFFFFFFFF"
            )
        );
        assert_eq!(bytes.len(), PIN_MODIFY_HEADER_LEN + 12);
    }

    #[test]
    fn longer_pins_and_impossible_blocks() {
        let s = PinVerifyStructure::for_card(&PinSpec { length: 4, max_tries: 3 }, PadTimeouts::default()).unwrap();
        assert_eq!((s.min_digits, s.max_digits, s.pin_block_string), (4, 8, 4));
        assert_eq!(hex::encode_upper(&s.apdu), "0020000004FFFFFFFF");
        // a block the 4 bits of bmPINBlockString cannot say, or one too short for 4 digits
        for length in [0, 1, 16] {
            let spec = PinSpec { length, max_tries: 3 };
            assert!(PinVerifyStructure::for_card(&spec, PadTimeouts::default()).is_err(), "{length}");
            assert!(PinModifyStructure::for_card(&spec, PadTimeouts::default()).is_err(), "{length}");
        }
    }

    #[test]
    fn host_waits_for_every_entry() {
        let t = PadTimeouts { first: 30, between: 15 };
        assert_eq!(t.host_wait(1, 6, Duration::from_secs(10)), Duration::from_secs(30 + 90 + 10));
        assert_eq!(t.host_wait(3, 6, Duration::ZERO), Duration::from_secs(3 * 120));
        assert_eq!(PadTimeouts { first: 0, between: 0 }.host_wait(1, 0, Duration::ZERO), Duration::from_secs(60));
    }
}
