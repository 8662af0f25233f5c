//! Status words (CARD-PROFILE §4.1).

use std::fmt;

/// A status word `SW1 SW2`. Open: every value is representable; `Display` names the meaning.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// `9000` success.
    pub const OK: StatusWord = StatusWord(0x9000);
    /// `6581` memory failure.
    pub const MEMORY_FAILURE: StatusWord = StatusWord(0x6581);
    /// `6700` wrong length.
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    /// `6982` security status not satisfied.
    pub const SECURITY_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    /// `6983` authentication method blocked.
    pub const BLOCKED: StatusWord = StatusWord(0x6983);
    /// `6984` challenge not present or already used.
    pub const NO_CHALLENGE: StatusWord = StatusWord(0x6984);
    /// `6985` conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    /// `6988` secure messaging data objects incorrect.
    pub const SM_DATA_WRONG: StatusWord = StatusWord(0x6988);
    /// `6A80` wrong data.
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    /// `6A81` function not supported / application blocked.
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    /// `6A82` file not found.
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    /// `6A83` record not found.
    pub const RECORD_NOT_FOUND: StatusWord = StatusWord(0x6A83);
    /// `6A84` not enough memory space.
    pub const NO_SPACE: StatusWord = StatusWord(0x6A84);
    /// `6A86` wrong P1-P2.
    pub const WRONG_P1P2: StatusWord = StatusWord(0x6A86);
    /// `6A88` referenced data / key not found.
    pub const DATA_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    /// `6B00` wrong parameters (offset outside the EF).
    pub const WRONG_OFFSET: StatusWord = StatusWord(0x6B00);
    /// `6D00` instruction not supported.
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    /// `6E00` class not supported.
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);
    /// `6F00` no precise diagnosis.
    pub const UNKNOWN_ERROR: StatusWord = StatusWord(0x6F00);
    /// `9302` MAC wrong.
    pub const MAC_WRONG: StatusWord = StatusWord(0x9302);
    /// `9303` application locked permanently.
    pub const APPLICATION_LOCKED: StatusWord = StatusWord(0x9303);
    /// `9403` key not found.
    pub const KEY_NOT_FOUND: StatusWord = StatusWord(0x9403);
    /// `9406` MAC not available.
    pub const MAC_NOT_AVAILABLE: StatusWord = StatusWord(0x9406);

    /// From the two status bytes.
    pub const fn from_bytes(sw1: u8, sw2: u8) -> Self {
        StatusWord(((sw1 as u16) << 8) | sw2 as u16)
    }

    /// The two status bytes.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        (self.0 & 0xFF) as u8
    }

    /// `9000`.
    pub const fn is_ok(self) -> bool {
        self.0 == 0x9000
    }

    /// For `63Cx`: the tries left `x`.
    pub const fn tries_left(self) -> Option<u8> {
        if self.sw1() == 0x63 && self.sw2() & 0xF0 == 0xC0 {
            Some(self.sw2() & 0x0F)
        } else {
            None
        }
    }

    /// The meaning of this status word, as CARD-PROFILE §4.1 and ISO/IEC 7816-4 name it.
    pub fn meaning(self) -> String {
        let fixed = match self.0 {
            0x9000 => "ok",
            0x6581 => "memory failure",
            0x6700 => "wrong length",
            0x6982 => "security status not satisfied",
            0x6983 => "blocked",
            0x6984 => "challenge not present or used",
            0x6985 => "conditions of use not satisfied",
            0x6988 => "secure messaging data wrong",
            0x6A80 => "wrong data",
            0x6A81 => "function not supported or application blocked",
            0x6A82 => "file not found",
            0x6A83 => "record not found",
            0x6A84 => "not enough memory space",
            0x6A86 => "wrong P1-P2",
            0x6A88 => "referenced data or key not found",
            0x6B00 => "wrong parameters (offset outside the file)",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6F00 => "no precise diagnosis",
            0x9302 => "MAC wrong",
            0x9303 => "application locked permanently",
            0x9403 => "key not found",
            0x9406 => "MAC not available",
            _ => "",
        };
        if !fixed.is_empty() {
            return fixed.to_owned();
        }
        match (self.sw1(), self.sw2()) {
            (0x61, n) => format!("{} more bytes available (GET RESPONSE)", if n == 0 { 256 } else { u16::from(n) }),
            (0x6C, n) => format!("wrong Le, {} expected", if n == 0 { 256 } else { u16::from(n) }),
            (0x63, n) if n & 0xF0 == 0xC0 => format!("verification failed, {} tries left", n & 0x0F),
            (0x62 | 0x63, _) => "warning".to_owned(),
            (0x64..=0x66, _) => "execution error".to_owned(),
            (0x67..=0x6F, _) => "checking error".to_owned(),
            _ => "unknown status".to_owned(),
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} {}", self.0, self.meaning())
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({:04X} {})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::StatusWord;

    #[test]
    fn display_names_the_meaning() {
        assert_eq!(StatusWord(0x6982).to_string(), "6982 security status not satisfied");
        assert_eq!(StatusWord(0x63C2).to_string(), "63C2 verification failed, 2 tries left");
        assert_eq!(StatusWord(0x6110).to_string(), "6110 16 more bytes available (GET RESPONSE)");
        assert_eq!(StatusWord(0x6C00).to_string(), "6C00 wrong Le, 256 expected");
        assert_eq!(StatusWord(0x9303).to_string(), "9303 application locked permanently");
        assert_eq!(StatusWord::from_bytes(0x6A, 0x82), StatusWord::FILE_NOT_FOUND);
        assert_eq!(StatusWord(0x63C0).tries_left(), Some(0));
        assert_eq!(StatusWord(0x6300).tries_left(), None);
    }
}
