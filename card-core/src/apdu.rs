//! Command and response APDUs (ISO/IEC 7816-3 §12, ISO/IEC 7816-4 §5) and the
//! status words of CARD-PROFILE §4.1.
//!
//! A [`Command`] knows its case (1–4) from what it carries and encodes itself in
//! the short form when Lc ≤ 255 and Le ≤ 256, in the extended form otherwise.
//! [`Command::parse`] reads either form back and refuses ambiguous or truncated bytes.

use std::fmt;

use zeroize::Zeroizing;

mod status;
pub use status::StatusWord;

/// Largest Lc (number of data bytes) a command may carry (extended form).
pub const MAX_LC: usize = 65_535;
/// Largest Le a command may ask for (extended form, encoded as `0000`).
pub const MAX_LE: u32 = 65_536;

/// An instruction byte. Open: unknown values stay representable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ins(pub u8);

macro_rules! named_codes {
    ($ty:ident : $( $(#[$doc:meta])* $name:ident = $val:expr ),* $(,)?) => {
        impl $ty {
            $( $(#[$doc])* pub const $name: $ty = $ty($val); )*
            /// The profile's name of this code, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( $ty::$name => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

named_codes!(Ins:
    /// CARD-PROFILE §4 SELECT.
    SELECT = 0xA4,
    /// CARD-PROFILE §4 READ RECORD.
    READ_RECORD = 0xB2,
    /// CARD-PROFILE §4 READ BINARY.
    READ_BINARY = 0xB0,
    /// CARD-PROFILE §4 UPDATE RECORD.
    UPDATE_RECORD = 0xDC,
    /// CARD-PROFILE §4 UPDATE BINARY.
    UPDATE_BINARY = 0xD6,
    /// CARD-PROFILE §4 GET CHALLENGE.
    GET_CHALLENGE = 0x84,
    /// CARD-PROFILE §4 EXTERNAL AUTHENTICATE.
    EXTERNAL_AUTHENTICATE = 0x82,
    /// CARD-PROFILE §4 INTERNAL AUTHENTICATE.
    INTERNAL_AUTHENTICATE = 0x88,
    /// CARD-PROFILE §4 VERIFY PIN.
    VERIFY = 0x20,
    /// CARD-PROFILE §4 CHANGE PIN / RELOAD PIN (P1 selects).
    CHANGE_RELOAD_PIN = 0x5E,
    /// CARD-PROFILE §4 PIN UNBLOCK.
    PIN_UNBLOCK = 0x24,
    /// CARD-PROFILE §4 APPLICATION BLOCK.
    APPLICATION_BLOCK = 0x1E,
    /// CARD-PROFILE §4 APPLICATION UNBLOCK.
    APPLICATION_UNBLOCK = 0x18,
    /// CARD-PROFILE §4 CARD BLOCK.
    CARD_BLOCK = 0x16,
    /// CARD-PROFILE §4 GET DATA.
    GET_DATA = 0xCA,
    /// CARD-PROFILE §4 GET RESPONSE (T=0).
    GET_RESPONSE = 0xC0,
    /// CARD-PROFILE §4 CREATE FILE (reference COS).
    CREATE_FILE = 0xE0,
    /// CARD-PROFILE §4 WRITE KEY (reference COS).
    WRITE_KEY = 0xD4,
    /// CARD-PROFILE §4 ERASE DF (reference COS).
    ERASE_DF = 0x0E,
    /// CARD-PROFILE §4 END PERSONALIZATION (reference COS).
    END_PERSONALIZATION = 0xEA,
);

impl fmt::Debug for Ins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "Ins({:02X})", self.0),
        }
    }
}

/// Whether a command's data may appear in logs and transcripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sensitivity {
    /// The data may be logged.
    #[default]
    Plain,
    /// The data is a PIN, a key or a cryptogram input: logs print `REDACTED`.
    Sensitive,
}

/// The ISO/IEC 7816-3 case of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// No data, no Le.
    One,
    /// Le only.
    Two,
    /// Data only.
    Three,
    /// Data and Le.
    Four,
}

/// Length encoding of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Lc ≤ 255 and Le ≤ 256 in one byte each.
    Short,
    /// Three-byte Lc/Le fields (`00 hi lo`).
    Extended,
}

/// A command that cannot be built or encoded as asked, or bytes that are not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    /// Data longer than 65 535 bytes.
    #[error("command data of {0} bytes exceeds the maximum Lc of 65535")]
    DataTooLong(usize),
    /// Le outside 1..=65536.
    #[error("Le {0} outside 1..=65536")]
    LeOutOfRange(u32),
    /// The short form was required but the command needs the extended form.
    #[error("command needs the extended form (Lc {lc}, Le {le:?})")]
    NeedsExtended {
        /// Data length.
        lc: usize,
        /// Expected length, if any.
        le: Option<u32>,
    },
    /// Fewer than 4 header bytes.
    #[error("{0} bytes is too short for a command header")]
    TooShort(usize),
    /// The length fields do not match the number of bytes.
    #[error("length fields do not match the {len} bytes of the command")]
    LengthMismatch {
        /// Total length of the bytes parsed.
        len: usize,
    },
}

/// A command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction.
    pub ins: Ins,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    data: Zeroizing<Vec<u8>>,
    le: Option<u32>,
    sensitivity: Sensitivity,
    /// The caller reads no response data (see [`Command::discarding_answer`]).
    discard: bool,
}

impl Command {
    /// A case 1 command (header only).
    pub fn new(cla: u8, ins: Ins, p1: u8, p2: u8) -> Self {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
            sensitivity: Sensitivity::Plain,
            discard: false,
        }
    }

    /// Adds command data (Lc = its length, 1..=65535). Empty data leaves the case unchanged.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Result<Self, ApduError> {
        let data = data.into();
        if data.len() > MAX_LC {
            return Err(ApduError::DataTooLong(data.len()));
        }
        self.data = Zeroizing::new(data);
        Ok(self)
    }

    /// Sets the expected response length (1..=65536; 256 is `00` in the short form).
    pub fn with_le(mut self, le: u32) -> Result<Self, ApduError> {
        if le == 0 || le > MAX_LE {
            return Err(ApduError::LeOutOfRange(le));
        }
        self.le = Some(le);
        Ok(self)
    }

    /// Removes the expected length (turns case 2/4 into 1/3).
    pub fn without_le(mut self) -> Self {
        self.le = None;
        self
    }

    /// Marks the data as secret: logs and transcripts print `REDACTED`.
    pub fn sensitive(mut self) -> Self {
        self.sensitivity = Sensitivity::Sensitive;
        self
    }

    /// Marks a command whose response data nobody reads (a SELECT whose FCI the caller does not use). On the wire
    /// nothing changes; when the card answers `61xx` (T=0: the data waits for GET RESPONSE), the APDU engine takes
    /// that as the command's success, as ISO/IEC 7816-4 defines it ("normal processing, xx bytes still
    /// available"), and leaves the data unfetched: one GET RESPONSE less ([`crate::transport::exchange`]).
    pub fn discarding_answer(mut self) -> Self {
        self.discard = true;
        self
    }

    /// Whether the caller reads no response data ([`Command::discarding_answer`]).
    pub fn discards_answer(&self) -> bool {
        self.discard
    }

    /// The command data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The expected response length, if any.
    pub fn le(&self) -> Option<u32> {
        self.le
    }

    /// Whether the data is secret.
    pub fn sensitivity(&self) -> Sensitivity {
        self.sensitivity
    }

    /// The ISO/IEC 7816-3 case.
    pub fn case(&self) -> Case {
        match (self.data.is_empty(), self.le.is_some()) {
            (true, false) => Case::One,
            (true, true) => Case::Two,
            (false, false) => Case::Three,
            (false, true) => Case::Four,
        }
    }

    /// The form [`Command::to_bytes`] uses: short whenever it fits.
    pub fn form(&self) -> Form {
        if self.data.len() <= 255 && self.le.is_none_or(|le| le <= 256) {
            Form::Short
        } else {
            Form::Extended
        }
    }

    /// Encodes the command, short form when it fits, extended otherwise.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.form() {
            Form::Short => self.encode_short(),
            Form::Extended => self.encode_extended(),
        }
    }

    /// Encodes in the given form; the short form fails if the command does not fit it.
    pub fn encode(&self, form: Form) -> Result<Vec<u8>, ApduError> {
        match form {
            Form::Short if self.form() == Form::Extended => {
                Err(ApduError::NeedsExtended { lc: self.data.len(), le: self.le })
            }
            Form::Short => Ok(self.encode_short()),
            Form::Extended => Ok(self.encode_extended()),
        }
    }

    fn header(&self, extra: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + extra);
        out.extend_from_slice(&[self.cla, self.ins.0, self.p1, self.p2]);
        out
    }

    fn encode_short(&self) -> Vec<u8> {
        let mut out = self.header(2 + self.data.len());
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push((le & 0xFF) as u8); // 256 -> 00
        }
        out
    }

    fn encode_extended(&self) -> Vec<u8> {
        let mut out = self.header(5 + self.data.len());
        if !self.data.is_empty() {
            let lc = self.data.len() as u16;
            out.push(0);
            out.extend_from_slice(&lc.to_be_bytes());
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            if self.data.is_empty() {
                out.push(0);
            }
            out.extend_from_slice(&((le & 0xFFFF) as u16).to_be_bytes()); // 65536 -> 0000
        }
        out
    }

    /// Parses a command in either form (ISO/IEC 7816-3 §12.1.3 case detection).
    pub fn parse(bytes: &[u8]) -> Result<Command, ApduError> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(ApduError::TooShort(bytes.len()));
        };
        let cmd = Command::new(*cla, Ins(*ins), *p1, *p2);
        let mismatch = || ApduError::LengthMismatch { len: bytes.len() };
        let short_le = |b: u8| if b == 0 { 256 } else { u32::from(b) };
        let ext_le = |hi: u8, lo: u8| match u16::from_be_bytes([hi, lo]) {
            0 => MAX_LE,
            n => u32::from(n),
        };
        match body {
            [] => Ok(cmd),
            [le] => cmd.with_le(short_le(*le)),
            [0, hi, lo] => cmd.with_le(ext_le(*hi, *lo)),
            [0, lc_hi, lc_lo, rest @ ..] if !rest.is_empty() => {
                let lc = usize::from(u16::from_be_bytes([*lc_hi, *lc_lo]));
                if lc == 0 {
                    return Err(mismatch());
                }
                match rest.len().checked_sub(lc) {
                    Some(0) => cmd.with_data(rest.to_vec()),
                    Some(2) => {
                        let (data, le) = rest.split_at(lc);
                        cmd.with_data(data.to_vec())?.with_le(ext_le(le[0], le[1]))
                    }
                    _ => Err(mismatch()),
                }
            }
            [lc, rest @ ..] if *lc != 0 => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    Some(0) => cmd.with_data(rest.to_vec()),
                    Some(1) => cmd.with_data(rest[..lc].to_vec())?.with_le(short_le(rest[lc])),
                    _ => Err(mismatch()),
                }
            }
            _ => Err(mismatch()),
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Command");
        s.field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &self.ins)
            .field("p1", &format_args!("{:02X}", self.p1))
            .field("p2", &format_args!("{:02X}", self.p2));
        match self.sensitivity {
            Sensitivity::Plain => s.field("data", &format_args!("{}", hex::encode_upper(&*self.data))),
            Sensitivity::Sensitive => s.field("data", &format_args!("REDACTED ({} bytes)", self.data.len())),
        };
        s.field("le", &self.le).finish()
    }
}

impl fmt::Display for Command {
    /// Hex of the encoded command, with sensitive data replaced by `REDACTED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sensitivity {
            Sensitivity::Plain => write!(f, "{}", hex::encode_upper(self.to_bytes())),
            Sensitivity::Sensitive => write!(
                f,
                "{:02X}{:02X}{:02X}{:02X} REDACTED({})",
                self.cla,
                self.ins.0,
                self.p1,
                self.p2,
                self.data.len()
            ),
        }
    }
}

/// The card broke the transmission protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A response shorter than the two status bytes.
    #[error("response of {0} bytes has no status word")]
    ResponseTooShort(usize),
    /// More `61xx` rounds than any sane card needs.
    #[error("card kept answering 61xx after {0} GET RESPONSE commands")]
    EndlessGetResponse(usize),
    /// The card answered `6Cxx` to a command already resent with the Le it asked for.
    #[error("card answered 6Cxx again after the resend with the corrected Le")]
    Repeated6C,
    /// The chained response grew past the bound.
    #[error("response exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The bound that was exceeded.
        limit: usize,
    },
    /// The response's structure is not what the command defines.
    #[error("unexpected response: {0}")]
    Unexpected(&'static str),
}

/// A response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    data: Vec<u8>,
    sw: StatusWord,
}

impl Response {
    /// A response from parts.
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Response { data, sw }
    }

    /// Splits raw bytes into data and the trailing status word.
    pub fn from_bytes(raw: &[u8]) -> Result<Response, ProtocolError> {
        match raw {
            [data @ .., sw1, sw2] => Ok(Response { data: data.to_vec(), sw: StatusWord::from_bytes(*sw1, *sw2) }),
            _ => Err(ProtocolError::ResponseTooShort(raw.len())),
        }
    }

    /// Encodes data then the status word.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }

    /// The response data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the response, returning its data.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The status word.
    pub fn sw(&self) -> StatusWord {
        self.sw
    }

    /// Whether the status word is `9000`.
    pub fn is_ok(&self) -> bool {
        self.sw == StatusWord::OK
    }

    /// The data if the status word is `9000`, otherwise the matching [`crate::Error`].
    pub fn ok(self) -> Result<Vec<u8>, crate::Error> {
        if self.is_ok() {
            Ok(self.data)
        } else {
            Err(crate::Error::from_status(self.sw))
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} {})", hex::encode_upper(&self.data), self.sw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn select_ssse_by_name_short_case4() {
        let aid = h("7378312E73682EC9E7BBE1B1A3D5CF");
        let cmd = Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid).unwrap().with_le(256).unwrap();
        assert_eq!(cmd.case(), Case::Four);
        assert_eq!(cmd.to_bytes(), h("00A404000F7378312E73682EC9E7BBE1B1A3D5CF00"));
    }

    #[test]
    fn read_record_case2_le_256_is_00() {
        let cmd = Command::new(0x00, Ins::READ_RECORD, 0x01, 0x2C).with_le(256).unwrap();
        assert_eq!(cmd.to_bytes(), h("00B2012C00"));
        assert_eq!(Command::parse(&h("00B2012C00")).unwrap(), cmd);
    }

    #[test]
    fn extended_forms() {
        let data = vec![0xAB; 300];
        let c3 = Command::new(0x00, Ins::UPDATE_BINARY, 0, 0).with_data(data.clone()).unwrap();
        let b3 = c3.to_bytes();
        assert_eq!(&b3[..7], &h("00D6000000012C")[..]);
        assert_eq!(b3.len(), 7 + 300);
        assert_eq!(Command::parse(&b3).unwrap(), c3);

        let c4 = c3.clone().with_le(65536).unwrap();
        let b4 = c4.to_bytes();
        assert_eq!(&b4[b4.len() - 2..], &[0, 0]);
        assert_eq!(Command::parse(&b4).unwrap(), c4);

        let c2 = Command::new(0x00, Ins::READ_BINARY, 0, 0).with_le(1000).unwrap();
        assert_eq!(c2.to_bytes(), h("00B000000003E8"));
        assert_eq!(Command::parse(&h("00B000000003E8")).unwrap(), c2);
        assert!(matches!(c2.encode(Form::Short), Err(ApduError::NeedsExtended { lc: 0, le: Some(1000) })));
        // a short-capable command may still be sent extended
        let small = Command::new(0x00, Ins::READ_BINARY, 0, 0).with_le(16).unwrap();
        assert_eq!(small.encode(Form::Extended).unwrap(), h("00B00000000010"));
    }

    #[test]
    fn validation() {
        assert_eq!(Command::new(0, Ins::VERIFY, 0, 0).with_le(0).unwrap_err(), ApduError::LeOutOfRange(0));
        assert_eq!(Command::new(0, Ins::VERIFY, 0, 0).with_le(65537).unwrap_err(), ApduError::LeOutOfRange(65537));
        assert_eq!(
            Command::new(0, Ins::VERIFY, 0, 0).with_data(vec![0; 65536]).unwrap_err(),
            ApduError::DataTooLong(65536)
        );
        assert_eq!(Command::parse(&h("00A4")).unwrap_err(), ApduError::TooShort(2));
        // Lc says 3 but 2 bytes follow
        assert!(matches!(Command::parse(&h("00A40400031122")), Err(ApduError::LengthMismatch { .. })));
        // Lc says 1, data, then two extra bytes: neither case 3 nor 4
        assert!(matches!(Command::parse(&h("00A4040001110000")), Err(ApduError::LengthMismatch { .. })));
        // extended Lc of zero is not a command
        assert!(matches!(Command::parse(&h("00A4040000000011")), Err(ApduError::LengthMismatch { .. })));
    }

    #[test]
    fn sensitive_data_is_redacted() {
        let cmd = Command::new(0, Ins::VERIFY, 0, 0).with_data(h("123456")).unwrap().sensitive();
        assert!(!format!("{cmd:?}").contains("123456"));
        assert!(!format!("{cmd}").contains("123456"));
        assert!(format!("{cmd}").contains("REDACTED"));
    }

    #[test]
    fn response_split() {
        let r = Response::from_bytes(&h("01029000")).unwrap();
        assert_eq!(r.data(), &[1, 2]);
        assert!(r.is_ok());
        assert_eq!(Response::from_bytes(&[0x90]).unwrap_err(), ProtocolError::ResponseTooShort(1));
        assert!(matches!(
            Response::from_bytes(&h("63C2")).unwrap().ok(),
            Err(crate::Error::WrongPin { tries_left: 2 })
        ));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn command() -> impl Strategy<Value = Command> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            prop_oneof![Just(0usize), 1usize..=255, 256usize..=70_000],
            prop_oneof![Just(None), (1u32..=MAX_LE).prop_map(Some)],
        )
            .prop_map(|(cla, ins, p1, p2, n, le)| {
                let mut c = Command::new(cla, Ins(ins), p1, p2);
                if n > 0 && n <= MAX_LC {
                    c.data = Zeroizing::new(vec![0x5A; n]);
                }
                c.le = le;
                c
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every command survives encode → parse, in the form it chose and in the extended form.
        #[test]
        fn encode_parse_round_trip(cmd in command()) {
            prop_assert_eq!(Command::parse(&cmd.to_bytes()).ok(), Some(cmd.clone()));
            let ext = cmd.encode(Form::Extended).ok();
            prop_assert_eq!(ext.and_then(|b| Command::parse(&b).ok()), Some(cmd.clone()));
            if let Ok(short) = cmd.encode(Form::Short) {
                prop_assert!(short.len() <= 5 + 255);
                prop_assert_eq!(Command::parse(&short).ok(), Some(cmd));
            }
        }

        /// Arbitrary bytes either parse to a command that re-encodes to the same bytes, or fail cleanly.
        #[test]
        fn parse_is_total_and_exact(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(cmd) = Command::parse(&bytes) {
                let again = cmd.encode(if bytes.len() > 5 && bytes[4] == 0 && cmd.case() != Case::One { Form::Extended } else { cmd.form() });
                prop_assert_eq!(again.ok(), Some(bytes));
            }
        }

        /// Responses split into data and SW and join back.
        #[test]
        fn response_round_trip(bytes in prop::collection::vec(any::<u8>(), 2..300)) {
            let r = Response::from_bytes(&bytes);
            prop_assert_eq!(r.map(|r| r.to_bytes()).ok(), Some(bytes));
        }
    }
}
