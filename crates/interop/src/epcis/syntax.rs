//! The lexical forms EPCIS JSON relies on: URIs (RFC 3986), date-times (RFC 3339),
//! time-zone offsets, and the canonical text of numbers and instants used by the event hash.

/// Whether `s` is an absolute URI (RFC 3986 `URI`: scheme ":" then URI characters only),
/// the JSON schema's `format: uri`.
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let starts_with_letter = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter
        || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return false;
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut fragments = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex_pair = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !hex_pair {
                return false;
            }
            i += 3;
            continue;
        }
        if b == b'#' {
            fragments += 1;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?#[]".contains(&b);
        if !allowed || fragments > 1 {
            return false;
        }
        i += 1;
    }
    true
}

/// An RFC 3339 date-time, split into its parts (the fraction kept as its digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Fraction-of-second digits as written (may be empty, may be longer than 9).
    pub fraction: String,
    /// Offset from UTC in minutes (`Z` is 0).
    pub offset_minutes: i64,
}

fn digits(s: &str, from: usize, len: usize) -> Option<u32> {
    let part = s.get(from..from + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl DateTime {
    /// Parses an RFC 3339 `date-time` (`2020-03-04T11:00:30.5+01:00`, `...Z`); `T` and `Z`
    /// may be lower case. Anything else is `None`.
    pub fn parse(s: &str) -> Option<DateTime> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !matches!(b[10], b'T' | b't') {
            return None;
        }
        let year = i64::from(digits(s, 0, 4)?);
        let month = digits(s, 5, 2)?;
        let day = digits(s, 8, 2)?;
        let hour = digits(s, 11, 2)?;
        let minute = digits(s, 14, 2)?;
        let second = digits(s, 17, 2)?;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut rest = &s[19..];
        let mut fraction = String::new();
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            fraction = after_dot[..len].to_string();
            rest = &after_dot[len..];
        }
        let offset_minutes = if rest == "Z" || rest == "z" {
            0
        } else {
            parse_offset(rest)?
        };
        Some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            offset_minutes,
        })
    }

    /// Seconds since 1970-01-01T00:00:00Z of the whole second (fraction not included).
    fn epoch_seconds(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_minutes * 60
    }

    /// The fraction rounded half-up to `places` decimal digits, as an integer
    /// (e.g. `.1415` at 3 places is 142; a carry gives `10^places`).
    fn fraction_rounded(&self, places: usize) -> i64 {
        let mut value: i64 = 0;
        for i in 0..places {
            let d = self
                .fraction
                .as_bytes()
                .get(i)
                .map_or(0, |b| i64::from(b - b'0'));
            value = value * 10 + d;
        }
        let round_up = self
            .fraction
            .as_bytes()
            .get(places)
            .is_some_and(|b| *b >= b'5');
        if round_up {
            value += 1;
        }
        value
    }

    /// The instant in microseconds since the Unix epoch (fraction rounded half-up).
    pub fn utc_micros(&self) -> i64 {
        self.epoch_seconds() * 1_000_000 + self.fraction_rounded(6)
    }

    /// The CBV 2.0 hash form: UTC, exactly 3 decimals rounded half-up, `Z`
    /// (`2023-02-02T12:04:03.1415+01:00` -> `2023-02-02T11:04:03.142Z`).
    pub fn utc_millis_text(&self) -> String {
        let millis = self.epoch_seconds() * 1_000 + self.fraction_rounded(3);
        let seconds = millis.div_euclid(1_000);
        let ms = millis.rem_euclid(1_000);
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            in_day / 3_600,
            (in_day % 3_600) / 60,
            in_day % 60
        )
    }
}

/// Parses `+hh:mm` / `-hh:mm` into minutes east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = digits(s, 1, 2)?;
    let minutes = digits(s, 4, 2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 60 + minutes))
}

/// The schema's `eventTimeZoneOffset` pattern: `^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$`.
pub fn is_time_zone_offset(s: &str) -> bool {
    let Some(minutes) = parse_offset(s) else {
        return false;
    };
    let hours = s.get(1..3).and_then(|h| h.parse::<u32>().ok());
    matches!(hours, Some(0..=13)) || minutes.abs() == 14 * 60
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The schema's `version` pattern `^\d+(\.\d+)*$`.
pub fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// The schema's `uom` pattern `^[A-Z0-9]{2,3}$` (UN/ECE Rec. 20 codes).
pub fn is_uom(s: &str) -> bool {
    (2..=3).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The schema's `hexBinary` pattern `^[A-Fa-f0-9]+$`.
pub fn is_hex_binary(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The canonical text of a decimal number written in `s` (`+023.50` -> `23.5`, `1e3` -> `1000`,
/// `26.0` -> `26`), or `None` when `s` is not a decimal number.
pub fn canonical_number(s: &str) -> Option<String> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exp_text = &unsigned[at + 1..];
            let exp_digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
            if exp_digits.is_empty()
                || exp_digits.len() > 6
                || !exp_digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (&unsigned[..at], exp_text.parse::<i64>().ok()?)
        }
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the decimal point falls in them.
    let all_digits = format!("{int_part}{frac_part}");
    let point = i64::try_from(int_part.len()).ok()? + exponent;
    let trimmed_start = all_digits.trim_start_matches('0');
    let leading_zeros = i64::try_from(all_digits.len() - trimmed_start.len()).ok()?;
    let significant = trimmed_start.trim_end_matches('0');
    if significant.is_empty() {
        return Some(if negative { "-0".into() } else { "0".into() });
    }
    let point = point - leading_zeros; // position of the point relative to `significant`
    let len = i64::try_from(significant.len()).ok()?;
    let text = if point <= 0 {
        let zeros = usize::try_from(-point).ok()?;
        format!("0.{}{significant}", "0".repeat(zeros))
    } else if point >= len {
        let zeros = usize::try_from(point - len).ok()?;
        format!("{significant}{}", "0".repeat(zeros))
    } else {
        let at = usize::try_from(point).ok()?;
        format!("{}.{}", &significant[..at], &significant[at..])
    };
    Some(if negative { format!("-{text}") } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert!(is_uri("urn:epc:id:sgtin:0614141.107346.2017"));
        assert!(is_uri("https://id.gs1.org/01/09521141012345/21/2017"));
        assert!(is_uri("ex:myField"));
        assert!(is_uri("geo:50.94,6.92"));
        assert!(!is_uri("materialType"));
        assert!(!is_uri("transforming"));
        assert!(!is_uri("https://example.com/a b"));
        assert!(!is_uri("1ab:c"));
        assert!(!is_uri("x:%zz"));
    }

    #[test]
    fn date_times() {
        let t = DateTime::parse("2023-02-02T11:04:03.1415Z").expect("valid");
        assert_eq!(t.utc_millis_text(), "2023-02-02T11:04:03.142Z");
        let t = DateTime::parse("2023-02-02T11:04:03.1414Z").expect("valid");
        assert_eq!(t.utc_millis_text(), "2023-02-02T11:04:03.141Z");
        let t = DateTime::parse("2022-02-16T20:33:31.116000-06:00").expect("valid");
        assert_eq!(t.utc_millis_text(), "2022-02-17T02:33:31.116Z");
        let t = DateTime::parse("2019-12-31T23:59:59.9996Z").expect("valid");
        assert_eq!(t.utc_millis_text(), "2020-01-01T00:00:00.000Z");
        let t = DateTime::parse("1969-12-31T23:00:00+01:00").expect("valid");
        assert_eq!(t.utc_millis_text(), "1969-12-31T22:00:00.000Z");
        assert_eq!(t.utc_micros(), -7_200_000_000);
        let t = DateTime::parse("1970-01-01T00:00:01.0000005Z").expect("valid");
        assert_eq!(t.utc_micros(), 1_000_001);
        assert!(DateTime::parse("22-07-2026").is_none());
        assert!(DateTime::parse("2026-07-22T10:30:00").is_none());
        assert!(DateTime::parse("2026-02-30T10:30:00Z").is_none());
        assert!(DateTime::parse("2026-07-22T10:30:00.Z").is_none());
    }

    #[test]
    fn offsets() {
        assert!(is_time_zone_offset("+02:00"));
        assert!(is_time_zone_offset("-13:59"));
        assert!(is_time_zone_offset("+14:00"));
        assert!(!is_time_zone_offset("+14:30"));
        assert!(!is_time_zone_offset("02:00"));
        assert!(!is_time_zone_offset("+2:00"));
    }

    #[test]
    fn numbers() {
        assert_eq!(canonical_number("26.0").as_deref(), Some("26"));
        assert_eq!(canonical_number("200.5").as_deref(), Some("200.5"));
        assert_eq!(canonical_number("0.1").as_deref(), Some("0.1"));
        assert_eq!(canonical_number("+023.50").as_deref(), Some("23.5"));
        assert_eq!(canonical_number("1e3").as_deref(), Some("1000"));
        assert_eq!(canonical_number("1.5e-7").as_deref(), Some("0.00000015"));
        assert_eq!(canonical_number("0614141").as_deref(), Some("614141"));
        assert_eq!(canonical_number(".5").as_deref(), Some("0.5"));
        assert_eq!(canonical_number("0").as_deref(), Some("0"));
        assert_eq!(canonical_number("f0f0f0"), None);
        assert_eq!(canonical_number("2013-06-08"), None);
        assert_eq!(canonical_number("."), None);
        assert_eq!(canonical_number("+02:00"), None);
        assert_eq!(canonical_number(""), None);
    }
}
