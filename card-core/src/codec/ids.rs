//! Identifiers on the card: citizen ID / social security number (GB 11643), card number,
//! region code.

use core::fmt;
use core::str::FromStr;

use super::check::{mod11_2_check, mod37_2_check};
use super::date::Date;
use super::CodecError;

fn require_digits(s: &str, offset: usize) -> Result<(), CodecError> {
    match s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, ch)) => Err(CodecError::NotDigit { ch, position: offset + i }),
        None => Ok(()),
    }
}

fn require_len(s: &str, expected: usize) -> Result<(), CodecError> {
    let found = s.chars().count();
    if found == expected {
        Ok(())
    } else {
        Err(CodecError::BadLength { expected, found })
    }
}

/// A 6-digit administrative division code (GB/T 2260), e.g. `371700`; the province part (first
/// two digits) is not `00`. Existence of the code is not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode([u8; 6]);

impl RegionCode {
    /// Parses six ASCII digits.
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        require_len(text, 6)?;
        require_digits(text, 0)?;
        let mut digits = [0u8; 6];
        digits.copy_from_slice(text.as_bytes());
        if digits.starts_with(b"00") {
            return Err(CodecError::InvalidRegion { code: text.to_owned() });
        }
        Ok(RegionCode(digits))
    }

    /// Decodes the 3-byte BCD form (EF05 tag 01 bytes 0–2, EF06 tag 0C).
    pub fn from_bcd(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() != 3 {
            return Err(CodecError::BadLength { expected: 3, found: bytes.len() });
        }
        RegionCode::parse(&super::values::decode_cn(bytes)?)
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 3-byte BCD form, e.g. `371700` → `37 17 00`.
    pub fn to_bcd(&self) -> [u8; 3] {
        let d = self.0.map(|c| c - b'0');
        [d[0] << 4 | d[1], d[2] << 4 | d[3], d[4] << 4 | d[5]]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RegionCode {
    type Err = CodecError;

    /// As [`RegionCode::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

/// Sex as encoded in a citizen ID (17th digit: odd male, even female).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Odd 17th digit.
    Male,
    /// Even 17th digit.
    Female,
}

/// A citizen identity number (公民身份号码, GB 11643), which is also the social security number
/// (EF06 tag 08).
///
/// 18 characters: 6-digit region, 8-digit birth date, 3-digit sequence (odd = male), and a
/// MOD 11-2 check character `0`–`9`/`X`. A lowercase `x` is accepted and stored as `X`.
/// The 15-digit numbers of the first generation are not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CitizenId {
    text: String,
    region: RegionCode,
    birth_date: Date,
}

impl CitizenId {
    /// Parses and validates against today's date ([`Date::today`]).
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        CitizenId::parse_at(text, Date::today())
    }

    /// Parses and validates: length, digits, region, birth date (a real date, year ≥ 1900, not
    /// after `today`), then the check character.
    pub fn parse_at(text: &str, today: Date) -> Result<Self, CodecError> {
        require_len(text, 18)?;
        let (body, check) = text.split_at(text.char_indices().nth(17).map_or(text.len(), |(i, _)| i));
        require_digits(body, 0)?;
        let found = match check.chars().next() {
            Some(c @ '0'..='9') => c,
            Some('X' | 'x') => 'X',
            Some(ch) => return Err(CodecError::InvalidChar { ch, position: 17, allowed: "0-9, X" }),
            None => return Err(CodecError::BadLength { expected: 18, found: 17 }),
        };
        let region = RegionCode::parse(&body[..6])?;
        let birth_date = Date::parse(&body[6..14])?;
        if birth_date.year() < 1900 || birth_date > today {
            return Err(CodecError::ImplausibleBirthDate { date: birth_date, today });
        }
        let expected = mod11_2_check(body)?;
        if expected != found {
            return Err(CodecError::BadCheck { expected, found });
        }
        let mut text = body.to_owned();
        text.push(found);
        Ok(CitizenId { text, region, birth_date })
    }

    /// The 18 characters, check character uppercase.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The region of first registration (digits 1–6).
    pub fn region(&self) -> RegionCode {
        self.region
    }

    /// The birth date (digits 7–14).
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The sex: odd 17th digit is male.
    pub fn sex(&self) -> Sex {
        match self.text.as_bytes().get(16) {
            Some(d) if d % 2 == 1 => Sex::Male,
            _ => Sex::Female,
        }
    }
}

impl fmt::Display for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CitizenId {
    type Err = CodecError;

    /// As [`CitizenId::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CitizenId::parse(s)
    }
}

/// The card number (卡号, EF05 tag 07, `an` 9): 8 characters `0-9A-Z` and a check character.
///
/// The check algorithm is not public; this profile uses ISO/IEC 7064 MOD 37-2 over the first 8
/// characters (CARD-PROFILE §2.1, a profile decision, marked \[P\]). [`CardNumber::parse`] enforces it;
/// [`CardNumber::parse_unverified`] checks only the form, for cards of issuers that use another
/// algorithm (the LD/T 33 sample number `X00000019`, for one, does not satisfy MOD 37-2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

impl CardNumber {
    /// Parses 9 characters and verifies the MOD 37-2 check character.
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        let number = CardNumber::parse_unverified(text)?;
        let (body, check) = number.0.split_at(8);
        let expected = mod37_2_check(body)?;
        let found = check.chars().next().unwrap_or(' ');
        if expected != found {
            return Err(CodecError::BadCheck { expected, found });
        }
        Ok(number)
    }

    /// Parses 9 characters: 8 of `0-9A-Z` and a ninth of `0-9A-Z*`; the check is not verified.
    pub fn parse_unverified(text: &str) -> Result<Self, CodecError> {
        require_len(text, 9)?;
        for (position, ch) in text.chars().enumerate() {
            let ok = ch.is_ascii_digit() || ch.is_ascii_uppercase() || (position == 8 && ch == '*');
            if !ok {
                let allowed = if position == 8 { "0-9, A-Z, *" } else { "0-9, A-Z" };
                return Err(CodecError::InvalidChar { ch, position, allowed });
            }
        }
        Ok(CardNumber(text.to_owned()))
    }

    /// A card number from its first 8 characters, with the MOD 37-2 check appended.
    pub fn with_check(body: &str) -> Result<Self, CodecError> {
        require_len(body, 8)?;
        let check = mod37_2_check(body)?;
        Ok(CardNumber(format!("{body}{check}")))
    }

    /// Whether the ninth character is the MOD 37-2 check of the first eight.
    pub fn has_valid_check(&self) -> bool {
        let (body, check) = self.0.split_at(8);
        mod37_2_check(body).is_ok_and(|c| check.starts_with(c))
    }

    /// The 9 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CardNumber {
    type Err = CodecError;

    /// As [`CardNumber::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CardNumber::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2025, 6, 1).unwrap()
    }

    #[test]
    fn citizen_id() {
        let id = CitizenId::parse_at("11010519491231002X", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.region().as_str(), "110105");
        assert_eq!(id.birth_date(), Date::new(1949, 12, 31).unwrap());
        assert_eq!(id.sex(), Sex::Female);
        let lower = CitizenId::parse_at("11010519491231002x", today()).unwrap();
        assert_eq!(lower, id);
        let sample = CitizenId::parse_at("111111198101011110", today()).unwrap();
        assert_eq!(sample.sex(), Sex::Male);
        assert!(CitizenId::parse("11010519491231002X").is_ok());
    }

    #[test]
    fn citizen_id_errors() {
        let t = today();
        assert_eq!(
            CitizenId::parse_at("110105194912310021", t).unwrap_err(),
            CodecError::BadCheck { expected: 'X', found: '1' }
        );
        assert_eq!(
            CitizenId::parse_at("11010519491231002", t).unwrap_err(),
            CodecError::BadLength { expected: 18, found: 17 }
        );
        assert_eq!(
            CitizenId::parse_at("1101051949123100AX", t).unwrap_err(),
            CodecError::NotDigit { ch: 'A', position: 16 }
        );
        assert!(matches!(
            CitizenId::parse_at("11010519491231002Y", t),
            Err(CodecError::InvalidChar { ch: 'Y', position: 17, .. })
        ));
        assert!(matches!(CitizenId::parse_at("001105194912310020", t), Err(CodecError::InvalidRegion { .. })));
        assert!(matches!(CitizenId::parse_at("110105194902300020", t), Err(CodecError::InvalidDate { .. })));
        // Born before 1900, or after `today`.
        let old = format!("11010518991231002{}", mod11_2_check("11010518991231002").unwrap());
        assert!(matches!(CitizenId::parse_at(&old, t), Err(CodecError::ImplausibleBirthDate { .. })));
        let future = format!("11010520250602002{}", mod11_2_check("11010520250602002").unwrap());
        assert!(matches!(CitizenId::parse_at(&future, t), Err(CodecError::ImplausibleBirthDate { .. })));
        let born_today = format!("11010520250601002{}", mod11_2_check("11010520250601002").unwrap());
        assert!(CitizenId::parse_at(&born_today, t).is_ok());
        // Multi-byte characters count as one and do not split inside a char.
        assert!(matches!(
            CitizenId::parse_at("11010519491231002张", t),
            Err(CodecError::InvalidChar { ch: '张', position: 17, .. })
        ));
        assert_eq!(
            CitizenId::parse_at("张张张张张张张张张张张张张张张张张张", t).unwrap_err(),
            CodecError::NotDigit { ch: '张', position: 0 }
        );
    }

    #[test]
    fn card_number() {
        let n = CardNumber::with_check("X0000001").unwrap();
        assert_eq!(n.as_str(), "X0000001O");
        assert_eq!(CardNumber::parse("X0000001O").unwrap(), n);
        assert_eq!(CardNumber::parse("X00000019").unwrap_err(), CodecError::BadCheck { expected: 'O', found: '9' });
        let sample = CardNumber::parse_unverified("X00000019").unwrap();
        assert!(!sample.has_valid_check());
        assert!(n.has_valid_check());
        assert!(matches!(CardNumber::parse_unverified("x00000019"), Err(CodecError::InvalidChar { position: 0, .. })));
        assert!(matches!(CardNumber::parse_unverified("X0000*019"), Err(CodecError::InvalidChar { position: 5, .. })));
        assert!(CardNumber::parse_unverified("X0000001*").is_ok());
        // 8 characters (10 bytes): counted as characters
        assert_eq!(
            CardNumber::parse_unverified("X000000张").unwrap_err(),
            CodecError::BadLength { expected: 9, found: 8 }
        );
    }

    #[test]
    fn region_code() {
        let r = RegionCode::parse("371700").unwrap();
        assert_eq!(r.to_bcd(), [0x37, 0x17, 0x00]);
        assert_eq!(RegionCode::from_bcd(&[0x63, 0x99, 0x00]).unwrap().as_str(), "639900");
        assert!(matches!(RegionCode::parse("001700"), Err(CodecError::InvalidRegion { .. })));
        assert!(matches!(RegionCode::parse("37170"), Err(CodecError::BadLength { .. })));
        assert!(matches!(RegionCode::parse("37A700"), Err(CodecError::NotDigit { position: 2, .. })));
        // F padding: 5 digits
        assert_eq!(
            RegionCode::from_bcd(&[0x37, 0x17, 0x0F]).unwrap_err(),
            CodecError::BadLength { expected: 6, found: 5 }
        );
    }
}
