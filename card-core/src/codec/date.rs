//! Calendar dates as the card stores them: `YYYYMMDD`, `cn` 4 bytes (CARD-PROFILE §2.1).

use core::fmt;
use core::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::values::{decode_cn, encode_cn};
use super::CodecError;

/// A valid Gregorian calendar date, years 0001–9999.
///
/// Ordered chronologically. Displayed as `YYYYMMDD`; [`Date::to_iso`] gives `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A date from its parts; fails unless it exists (leap years included).
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, CodecError> {
        let valid =
            (1..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        if valid {
            Ok(Date { year, month, day })
        } else {
            Err(CodecError::InvalidDate { year, month, day })
        }
    }

    /// Parses exactly eight ASCII digits `YYYYMMDD`.
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        let count = text.chars().count();
        if count != 8 {
            return Err(CodecError::BadLength { expected: 8, found: count });
        }
        let mut digits = [0u16; 8];
        for (position, ch) in text.chars().enumerate() {
            match (ch, digits.get_mut(position)) {
                ('0'..='9', Some(d)) => *d = ch as u16 - u16::from(b'0'),
                _ => return Err(CodecError::NotDigit { ch, position }),
            }
        }
        let [y1, y2, y3, y4, m1, m2, d1, d2] = digits;
        let year = y1 * 1000 + y2 * 100 + y3 * 10 + y4;
        // At most 99: fits in u8.
        let month = (m1 * 10 + m2) as u8;
        let day = (d1 * 10 + d2) as u8;
        Date::new(year, month, day)
    }

    /// Decodes a `cn` date field (4 bytes BCD, e.g. `20101001`).
    pub fn from_cn(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() != 4 {
            return Err(CodecError::BadLength { expected: 4, found: bytes.len() });
        }
        Date::parse(&decode_cn(bytes)?)
    }

    /// Encodes as a `cn` date field (4 bytes BCD).
    pub fn to_cn(&self) -> [u8; 4] {
        let mut out = [0u8; 4];
        if let Ok(v) = encode_cn(&self.to_string(), 4) {
            out.copy_from_slice(&v);
        }
        out
    }

    /// Today's date in China Standard Time (UTC+8, the zone of the card's dates) from the
    /// system clock. A clock set before 1970 reads as 1970-01-01.
    pub fn today() -> Self {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let days = (secs + 8 * 3600) / 86_400;
        Date::from_days_since_epoch(days)
    }

    /// The civil date `days` days after 1970-01-01 (H. Hinnant's `civil_from_days`), capped at
    /// 9999-12-31.
    fn from_days_since_epoch(days: u64) -> Self {
        const MAX_DAYS: u64 = 2_932_896; // 9999-12-31
        let z = days.min(MAX_DAYS) + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + u64::from(month <= 2)) as u16;
        Date { year, month, day }
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// `YYYY-MM-DD` (ISO 8601).
    pub fn to_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Date {
    /// `YYYYMMDD`, as on the card.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = CodecError;

    /// As [`Date::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Date::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let d = Date::parse("20101001").unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (2010, 10, 1));
        assert_eq!(d.to_string(), "20101001");
        assert_eq!(d.to_iso(), "2010-10-01");
        assert_eq!(Date::from_cn(&[0x20, 0x20, 0x10, 0x01]).unwrap(), Date::parse("20201001").unwrap());
        assert_eq!(d.to_cn(), [0x20, 0x10, 0x10, 0x01]);
    }

    #[test]
    fn leap_years() {
        assert!(Date::parse("20000229").is_ok());
        assert!(Date::parse("20240229").is_ok());
        assert_eq!(Date::parse("19000229").unwrap_err(), CodecError::InvalidDate { year: 1900, month: 2, day: 29 });
        assert_eq!(Date::parse("20230229").unwrap_err(), CodecError::InvalidDate { year: 2023, month: 2, day: 29 });
        assert_eq!(Date::parse("20230431").unwrap_err(), CodecError::InvalidDate { year: 2023, month: 4, day: 31 });
        assert_eq!(Date::parse("20231301").unwrap_err(), CodecError::InvalidDate { year: 2023, month: 13, day: 1 });
        assert_eq!(Date::parse("20230100").unwrap_err(), CodecError::InvalidDate { year: 2023, month: 1, day: 0 });
        assert_eq!(Date::parse("00000101").unwrap_err(), CodecError::InvalidDate { year: 0, month: 1, day: 1 });
    }

    #[test]
    fn malformed_text() {
        assert_eq!(Date::parse("2010101").unwrap_err(), CodecError::BadLength { expected: 8, found: 7 });
        assert_eq!(Date::parse("2010-1-1").unwrap_err(), CodecError::NotDigit { ch: '-', position: 4 });
        // F padding inside a date leaves 7 digits; all padding none
        assert_eq!(
            Date::from_cn(&[0x20, 0x10, 0x10, 0x0F]).unwrap_err(),
            CodecError::BadLength { expected: 8, found: 7 }
        );
        assert_eq!(
            Date::from_cn(&[0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err(),
            CodecError::BadLength { expected: 8, found: 0 }
        );
    }

    #[test]
    fn civil_from_days() {
        assert_eq!(Date::from_days_since_epoch(0).to_string(), "19700101");
        assert_eq!(Date::from_days_since_epoch(11_016).to_string(), "20000229");
        assert_eq!(Date::from_days_since_epoch(19_723).to_string(), "20240101");
        assert_eq!(Date::from_days_since_epoch(u64::MAX).to_string(), "99991231");
        assert!(Date::today().year() >= 2025);
    }
}
