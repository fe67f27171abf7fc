//! Times as gophercap prints them: RFC 3339 in UTC with a fixed number of fractional digits
//! (nanoseconds for captures, microseconds for tap's sessions, milliseconds for its wall
//! clock), written without allocating — a flow export or an HTTP message line carries two or
//! three of them, and a `String` each was a measurable part of writing millions.

use serde::{Serialize, Serializer};
use std::fmt;

/// Digits after the decimal point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Nanos,
    Micros,
    Millis,
}

impl Precision {
    fn digits(self) -> usize {
        match self {
            Precision::Nanos => 9,
            Precision::Micros => 6,
            Precision::Millis => 3,
        }
    }
}

/// Nanoseconds since the Unix epoch, shown as `2024-01-01T00:00:00.123456789Z` (digits beyond
/// the precision are cut, not rounded, as chrono does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    pub ns: i64,
    pub precision: Precision,
}

impl Timestamp {
    pub fn nanos(ns: i64) -> Self {
        Timestamp {
            ns,
            precision: Precision::Nanos,
        }
    }

    pub fn micros(ns: i64) -> Self {
        Timestamp {
            ns,
            precision: Precision::Micros,
        }
    }

    pub fn millis(ns: i64) -> Self {
        Timestamp {
            ns,
            precision: Precision::Millis,
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "00" to "99", for writing two digits at once.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The longest text a [`Timestamp`] writes.
const LONGEST: usize = 30;

impl Timestamp {
    /// The text in a buffer of its own and its length.
    fn text(&self) -> ([u8; LONGEST], usize) {
        let secs = self.ns.div_euclid(1_000_000_000);
        let nanos = self.ns.rem_euclid(1_000_000_000) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400) as u32;
        // i64 nanoseconds span the years 1677 to 2262: always four digits.
        let mut text = *b"0000-00-00T00:00:00.000000000Z";
        // Two digits at a time: a timestamp is written for every flow and message.
        let mut put = |at: usize, width: usize, mut value: u32| {
            let mut end = at + width;
            while end >= at + 2 {
                let pair = (value % 100) as usize * 2;
                text[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
                value /= 100;
                end -= 2;
            }
            if end > at {
                text[at] = b'0' + (value % 10) as u8;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 9, nanos);
        let digits = self.precision.digits();
        text[20 + digits] = b'Z';
        (text, 21 + digits)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, len) = self.text();
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (text, len) = self.text();
        let text = std::str::from_utf8(&text[..len]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// RFC 3339 UTC with nanoseconds, as a `String`.
pub fn format_ts(ts_ns: i64) -> String {
    Timestamp::nanos(ts_ns).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;
    use chrono::{DateTime, SecondsFormat};

    fn chrono_form(ns: i64, precision: SecondsFormat) -> String {
        DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(precision, true)
    }

    #[test]
    fn every_precision_matches_chrono_across_the_whole_range() {
        let mut rng = XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut samples = vec![0, -1, 1, i64::MIN, i64::MAX, 951_782_400_000_000_000];
        samples.extend((0..20_000).map(|_| rng.next() as i64));
        for ns in samples {
            assert_eq!(
                Timestamp::nanos(ns).to_string(),
                chrono_form(ns, SecondsFormat::Nanos)
            );
            assert_eq!(
                Timestamp::micros(ns).to_string(),
                chrono_form(ns, SecondsFormat::Micros)
            );
            assert_eq!(
                Timestamp::millis(ns).to_string(),
                chrono_form(ns, SecondsFormat::Millis)
            );
        }
    }

    #[test]
    fn leap_days_and_the_epoch() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_ts(951_782_400_000_000_000 + 86_399_999_999_999),
            "2000-02-29T23:59:59.999999999Z"
        );
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
