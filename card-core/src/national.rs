//! The error codes of the national terminal interface (CARD-PROFILE §7, LD/T 33) ↔ [`Error`], in one place.
//!
//! - [`code`]: the national code of an error (what `iReadCardBas` and friends return);
//! - [`error`]: an error from a national code (e.g. a back end's answer);
//! - [`message`]: the code's meaning, in Chinese as the interface documents it.
//!
//! A card status word comes back as **−(SW as a number)**: the 16-bit value of `SW1 SW2` taken as an
//! unsigned integer and negated, e.g. `6A82` → −27266, `6982` → −27010 \[P: the sources say only "−(SW)";
//! the decimal value of the hex status word is the one reading that keeps every SW distinct and
//! outside the range of the named codes\].
//!
//! Named codes: −1 wrong card type, −2 no card, −3 card not powered, −4 no answer, −11 reader connection,
//! −12 no connection, −13 unsupported, −14 bad parameter, −15 check failed, −20 bad card id, −21 internal
//! authentication failed, −22 data does not match the card, −23 illegal data, −24 key level insufficient,
//! −31…−36 PIN entry errors (which is which is this project's decision \[P\], the sources name only the range: −31
//! cancelled, −32 timed out, −33 the new PIN's entries differ, −34 a PIN length outside the limits, −35 no means of
//! PIN entry (no pad, no PIN dialog), −36 the pad or dialog failed), −41 illegal character, −42 illegal length, −51 PIN wrong, −52 PIN blocked,
//! −2201 no PSAM, −2202 algorithm unsupported, −2203 no RKSSSE, −2204 no HSM authentication needed.

use crate::apdu::StatusWord;
use crate::codec::CodecError;
use crate::crypto::CryptoError;
use crate::transport::{PinEntryError, TransportError};
use crate::Error;

/// Success.
pub const OK: i32 = 0;
/// −1 wrong card type.
pub const WRONG_CARD_TYPE: i32 = -1;
/// −2 no card.
pub const NO_CARD: i32 = -2;
/// −3 card not powered.
pub const NOT_POWERED: i32 = -3;
/// −4 no answer.
pub const NO_ANSWER: i32 = -4;
/// −11 reader connection error.
pub const READER_CONNECTION: i32 = -11;
/// −12 no connection (PC/SC service).
pub const NO_CONNECTION: i32 = -12;
/// −13 unsupported.
pub const UNSUPPORTED: i32 = -13;
/// −14 bad parameter.
pub const BAD_PARAMETER: i32 = -14;
/// −15 check failed.
pub const CHECK_FAILED: i32 = -15;
/// −20 bad card identifier.
pub const BAD_CARD_ID: i32 = -20;
/// −21 internal authentication failed.
pub const INTERNAL_AUTH_FAILED: i32 = -21;
/// −22 data does not match the card.
pub const CARD_MISMATCH: i32 = -22;
/// −23 illegal data.
pub const ILLEGAL_DATA: i32 = -23;
/// −24 key level insufficient.
pub const KEY_LEVEL: i32 = -24;
/// −31 PIN entry cancelled \[P\].
pub const PIN_ENTRY_CANCELLED: i32 = -31;
/// −32 PIN entry timed out \[P\].
pub const PIN_ENTRY_TIMEOUT: i32 = -32;
/// −33 the new PIN's two entries differ \[P\].
pub const PIN_ENTRY_MISMATCH: i32 = -33;
/// −34 the PIN entered is too short or too long \[P\].
pub const PIN_ENTRY_LENGTH: i32 = -34;
/// −35 no means of PIN entry: no PIN pad, no PIN dialog \[P\].
pub const PIN_ENTRY_UNAVAILABLE: i32 = -35;
/// −36 the PIN pad or dialog failed (refused the request, answered nonsense) \[P\].
pub const PIN_ENTRY_FAILED: i32 = -36;
/// −41 illegal character.
pub const ILLEGAL_CHAR: i32 = -41;
/// −42 illegal length.
pub const ILLEGAL_LENGTH: i32 = -42;
/// −51 PIN wrong.
pub const PIN_WRONG: i32 = -51;
/// −52 PIN blocked.
pub const PIN_BLOCKED: i32 = -52;
/// −2201 no PSAM.
pub const NO_PSAM: i32 = -2201;
/// −2202 algorithm unsupported.
pub const ALGORITHM_UNSUPPORTED: i32 = -2202;
/// −2203 no RKSSSE (a generation 3 card's holder data cannot be read).
pub const NO_RKSSSE: i32 = -2203;
/// −2204 no HSM authentication needed.
pub const NO_HSM_NEEDED: i32 = -2204;

/// −(SW): a card status word as a national code.
pub fn sw_code(sw: StatusWord) -> i32 {
    -i32::from(sw.0)
}

/// The national code of an error.
pub fn code(e: &Error) -> i32 {
    match e {
        Error::Transport(t) => match t {
            TransportError::NoCard(_) | TransportError::CardRemoved => NO_CARD,
            TransportError::CardReset => NOT_POWERED,
            TransportError::CardUnresponsive | TransportError::Timeout | TransportError::NoAnswer { .. } => NO_ANSWER,
            TransportError::NoService => NO_CONNECTION,
            TransportError::Unsupported(_) => UNSUPPORTED,
            _ => READER_CONNECTION,
        },
        Error::Card(sw) | Error::Blocked(sw) => sw_code(*sw),
        Error::PinEntry(p) => match p {
            PinEntryError::Cancelled => PIN_ENTRY_CANCELLED,
            PinEntryError::Timeout => PIN_ENTRY_TIMEOUT,
            PinEntryError::Mismatch => PIN_ENTRY_MISMATCH,
            PinEntryError::BadLength => PIN_ENTRY_LENGTH,
            PinEntryError::NoPinPad | PinEntryError::Unavailable(_) => PIN_ENTRY_UNAVAILABLE,
            PinEntryError::Refused | PinEntryError::Malformed(_) | PinEntryError::Failed(_) => PIN_ENTRY_FAILED,
        },
        Error::WrongPin { .. } => PIN_WRONG,
        Error::PinBlocked => PIN_BLOCKED,
        Error::AuthFailed { tries_left, .. } => sw_code(StatusWord(0x63C0 | u16::from((*tries_left).min(15)))),
        Error::UnknownCard(_) => WRONG_CARD_TYPE,
        Error::InternalAuthFailed => INTERNAL_AUTH_FAILED,
        Error::CardMismatch => CARD_MISMATCH,
        Error::MissingKey { key } if key == "RKSSSE" => NO_RKSSSE,
        Error::MissingKey { .. } => KEY_LEVEL,
        Error::BadParameter(_) | Error::Apdu(_) => BAD_PARAMETER,
        Error::Unsupported(_) => UNSUPPORTED,
        Error::Protocol(_) => NO_ANSWER,
        Error::Tlv(_) | Error::CardData(_) => ILLEGAL_DATA,
        Error::Codec(c) => match c {
            CodecError::TooLong { .. } | CodecError::BadLength { .. } | CodecError::OddHexLength { .. } => {
                ILLEGAL_LENGTH
            }
            CodecError::NotGbk { .. }
            | CodecError::NotDigit { .. }
            | CodecError::InvalidChar { .. }
            | CodecError::NotHex { .. } => ILLEGAL_CHAR,
            _ => ILLEGAL_DATA,
        },
        Error::Crypto(CryptoError::UnsupportedAlgorithm(_)) => ALGORITHM_UNSUPPORTED,
        Error::Crypto(_) => CHECK_FAILED,
        Error::National(c) => *c,
        Error::KeyService { code, .. } => *code,
    }
}

/// An error from a national code (`0` is not an error: it gives `None`).
///
/// `code(&error(c)) == c` for every named code and every −(SW).
pub fn error(code: i32) -> Option<Error> {
    let sw = u16::try_from(code.checked_neg()?).ok().filter(|v| *v >= 0x6000).map(StatusWord);
    Some(match (code, sw) {
        (OK, _) => return None,
        (_, Some(sw)) => match sw.tries_left() {
            Some(tries_left) => Error::AuthFailed { key: String::new(), tries_left },
            None => Error::Card(sw),
        },
        (WRONG_CARD_TYPE, _) => Error::UnknownCard("reported by the national interface".into()),
        (NO_CARD, _) => Error::Transport(TransportError::NoCard(String::new())),
        (NOT_POWERED, _) => Error::Transport(TransportError::CardReset),
        (NO_ANSWER, _) => Error::Transport(TransportError::CardUnresponsive),
        (READER_CONNECTION, _) => Error::Transport(TransportError::NoReaders),
        (NO_CONNECTION, _) => Error::Transport(TransportError::NoService),
        (UNSUPPORTED, _) => Error::Unsupported("reported by the national interface".into()),
        (BAD_PARAMETER, _) => Error::BadParameter("reported by the national interface".into()),
        (INTERNAL_AUTH_FAILED, _) => Error::InternalAuthFailed,
        (CARD_MISMATCH, _) => Error::CardMismatch,
        (NO_RKSSSE, _) => Error::MissingKey { key: "RKSSSE".into() },
        (KEY_LEVEL, _) => Error::MissingKey { key: String::new() },
        (PIN_ENTRY_CANCELLED, _) => Error::PinEntry(PinEntryError::Cancelled),
        (PIN_ENTRY_TIMEOUT, _) => Error::PinEntry(PinEntryError::Timeout),
        (PIN_ENTRY_MISMATCH, _) => Error::PinEntry(PinEntryError::Mismatch),
        (PIN_ENTRY_LENGTH, _) => Error::PinEntry(PinEntryError::BadLength),
        (PIN_ENTRY_UNAVAILABLE, _) => {
            Error::PinEntry(PinEntryError::Unavailable("reported by the national interface".into()))
        }
        (PIN_ENTRY_FAILED, _) => Error::PinEntry(PinEntryError::Refused),
        (PIN_WRONG, _) => Error::WrongPin { tries_left: 0 },
        (PIN_BLOCKED, _) => Error::PinBlocked,
        (ALGORITHM_UNSUPPORTED, _) => Error::Crypto(CryptoError::UnsupportedAlgorithm(0)),
        (other, _) => Error::National(other),
    })
}

/// The meaning of a national code (CARD-PROFILE §7).
pub fn message(code: i32) -> &'static str {
    match code {
        OK => "成功",
        WRONG_CARD_TYPE => "卡类型不对",
        NO_CARD => "无卡",
        NOT_POWERED => "卡未上电",
        NO_ANSWER => "卡无应答",
        READER_CONNECTION => "读卡器连接错",
        NO_CONNECTION => "未建立连接",
        UNSUPPORTED => "不支持该操作",
        BAD_PARAMETER => "参数错误",
        CHECK_FAILED => "校验失败",
        BAD_CARD_ID => "卡识别码错",
        INTERNAL_AUTH_FAILED => "内部认证失败",
        CARD_MISMATCH => "数据与卡不符",
        ILLEGAL_DATA => "非法数据",
        KEY_LEVEL => "密钥级别不够",
        -36..=-31 => "密码输入错误",
        ILLEGAL_CHAR => "非法字符",
        ILLEGAL_LENGTH => "长度错误",
        PIN_WRONG => "PIN错误",
        PIN_BLOCKED => "PIN锁定",
        NO_PSAM => "无PSAM卡",
        ALGORITHM_UNSUPPORTED => "算法不支持",
        NO_RKSSSE => "无RKSSSE密钥",
        NO_HSM_NEEDED => "无需加密机认证",
        c if (-0xFFFF..=-0x6000).contains(&c) => "卡片返回状态字",
        _ => "未知错误",
    }
}

/// Checks the shape of a national `pCardInfo` (`卡识别码|卡号|`, CARD-PROFILE §7) before any card is touched: the
/// card identifier as 32 hex digits ([`BAD_CARD_ID`], −20, otherwise), then the card number (may be empty), each
/// ending with `|` ([`Error::BadParameter`], −14, otherwise). [`crate::card::BasicInfo::check_card_info`] then
/// checks it against the card.
pub fn check_card_info_shape(card_info: &str) -> Result<(), Error> {
    let two_fields = || Error::BadParameter("pCardInfo is 卡识别码|卡号|: two fields, each ending with |".into());
    let body = card_info.strip_suffix('|').ok_or_else(two_fields)?;
    let (id, number) = body.split_once('|').ok_or_else(two_fields)?;
    if number.contains('|') {
        return Err(two_fields());
    }
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::National(BAD_CARD_ID));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_and_status_words_round_trip() {
        let named = [
            -1, -2, -3, -4, -11, -12, -13, -14, -15, -20, -21, -22, -23, -24, -31, -32, -33, -34, -35, -36, -41, -42,
            -51, -52, -2201, -2202, -2203, -2204,
        ];
        for c in named {
            let e = error(c);
            assert_eq!(e.as_ref().map(code), Some(c), "{c} -> {e:?}");
            assert_ne!(message(c), "未知错误", "{c}");
        }
        for sw in [0x6A82u16, 0x6982, 0x6983, 0x63C2, 0x9302, 0x6A81] {
            let c = -i32::from(sw);
            assert_eq!(error(c).as_ref().map(code), Some(c), "{sw:04X}");
        }
        assert_eq!(sw_code(StatusWord(0x6A82)), -27266);
        assert!(error(0).is_none());
    }

    #[test]
    fn errors_map_to_codes() {
        assert_eq!(code(&Error::MissingKey { key: "RKSSSE".into() }), NO_RKSSSE);
        assert_eq!(code(&Error::MissingKey { key: "UK_DF01".into() }), KEY_LEVEL);
        assert_eq!(code(&Error::WrongPin { tries_left: 2 }), PIN_WRONG);
        assert_eq!(code(&Error::PinBlocked), PIN_BLOCKED);
        assert_eq!(code(&Error::Transport(TransportError::CardRemoved)), NO_CARD);
        assert_eq!(code(&Error::Card(StatusWord::SECURITY_NOT_SATISFIED)), -0x6982);
        assert_eq!(code(&Error::Codec(CodecError::TooLong { len: 3, max: 2 })), ILLEGAL_LENGTH);
        assert_eq!(code(&Error::Crypto(CryptoError::UnsupportedAlgorithm(2))), ALGORITHM_UNSUPPORTED);
    }

    #[test]
    fn pin_entry_errors_are_the_31_to_36_codes() {
        let c = |p: PinEntryError| code(&Error::PinEntry(p));
        assert_eq!(c(PinEntryError::Cancelled), -31);
        assert_eq!(c(PinEntryError::Timeout), -32);
        assert_eq!(c(PinEntryError::Mismatch), -33);
        assert_eq!(c(PinEntryError::BadLength), -34);
        assert_eq!(c(PinEntryError::NoPinPad), -35);
        assert_eq!(c(PinEntryError::Unavailable("no pinentry".into())), -35);
        assert_eq!(c(PinEntryError::Refused), -36);
        assert_eq!(c(PinEntryError::Malformed("x")), -36);
        assert_eq!(c(PinEntryError::Failed("pinentry error 83886081".into())), -36);
        for p in [-31, -32, -33, -34, -35, -36] {
            assert_eq!(message(p), "密码输入错误");
            assert!(matches!(error(p), Some(Error::PinEntry(_))), "{p}");
        }
        // a wrong PIN and a blocked one stay −51 / −52
        assert_eq!(code(&Error::WrongPin { tries_left: 1 }), PIN_WRONG);
    }

    #[test]
    fn card_info_shape() {
        assert!(check_card_info_shape("371700D15600000500000000000000A2|A0000001T|").is_ok());
        assert!(check_card_info_shape("371700d15600000500000000000000a2||").is_ok());
        let c = |s: &str| check_card_info_shape(s).map_err(|e| code(&e)).unwrap_err();
        assert_eq!(c("371700D15600000500000000000000A2|A0000001T"), BAD_PARAMETER);
        assert_eq!(c("371700D15600000500000000000000A2|"), BAD_PARAMETER);
        assert_eq!(c("371700D15600000500000000000000A2|A|B|"), BAD_PARAMETER);
        assert_eq!(c("371700D1|A0000001T|"), BAD_CARD_ID);
        assert_eq!(c("371700D15600000500000000000000AZ|A0000001T|"), BAD_CARD_ID);
    }
}
