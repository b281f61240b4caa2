//! Instants and valid times: UTC microseconds, plus the IANA zone and UTC offset where
//! something happened. Text forms are fixed so that they hash the same everywhere.

use std::fmt;
use std::str::FromStr;

use jiff::fmt::temporal::Pieces;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FieldError;

/// A point in time, in whole microseconds since the Unix epoch (UTC).
/// Text form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always six fraction digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    pub const MIN: Instant = Instant(i64::MIN);
    /// Later than every instant (a bound for queries, never stored).
    pub const MAX: Instant = Instant(i64::MAX);

    pub fn from_micros(micros: i64) -> Result<Self, String> {
        Timestamp::from_microsecond(micros)
            .map(|_| Instant(micros))
            .map_err(|e| format!("{micros} microseconds is not a representable instant: {e}"))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// The start of this instant's week: Monday, 00:00 UTC (ISO 8601 weeks), the bucket
    /// trends are counted in.
    pub fn week_start(self) -> Instant {
        const DAY: i64 = 86_400_000_000;
        let day = self.0.div_euclid(DAY);
        // 1970-01-01, day 0, was a Thursday: 3 days after a Monday.
        let monday = day - (day + 3).rem_euclid(7);
        Instant(monday.saturating_mul(DAY))
    }

    /// The current time of this machine's clock, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_timestamp(Timestamp::now())
    }

    fn from_timestamp(ts: Timestamp) -> Self {
        // Truncation towards negative infinity keeps ordering exact.
        Instant(ts.as_microsecond())
    }

    pub fn timestamp(self) -> Timestamp {
        // Every Instant was built from a valid Timestamp or checked in from_micros.
        Timestamp::from_microsecond(self.0).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The next representable instant (one microsecond later).
    pub fn next(self) -> Self {
        Instant(self.0.saturating_add(1))
    }

    /// Parses an RFC 3339 instant with an offset (`Z` or `+hh:mm`); a time without an
    /// offset is refused because it does not name one instant.
    pub fn parse_rfc3339(field: &str, text: &str) -> Result<Self, FieldError> {
        check_no_leap_second(field, text)?;
        let pieces = Pieces::parse(text).map_err(|e| {
            FieldError::new(
                field,
                text,
                format!("must be an RFC 3339 instant with a UTC offset, e.g. 2026-03-01T08:30:00Z ({e})"),
            )
        })?;
        if pieces.offset().is_none() {
            return Err(FieldError::new(
                field,
                text,
                "must carry a UTC offset (Z or +hh:mm); a local time without an offset is ambiguous",
            ));
        }
        let ts = Timestamp::from_str(text)
            .map_err(|e| FieldError::new(field, text, format!("is not a valid instant: {e}")))?;
        check_micro_precision(field, text, ts)?;
        check_year(field, text, ts.to_zoned(TimeZone::UTC).year())?;
        Ok(Self::from_timestamp(ts))
    }
}

/// A second of 60 (a leap second, `23:59:60`) is refused, not read as 23:59:59 as the
/// parser would: two different texts would then name one instant, and the hash covers
/// the instant, not the text.
fn check_no_leap_second(field: &str, text: &str) -> Result<(), FieldError> {
    // YYYY-MM-DDTHH:MM:SS: the seconds are at 17..19 after the time's second colon.
    let seconds = text.get(10..19).filter(|t| {
        let b = t.as_bytes();
        matches!(b[0], b'T' | b't' | b' ') && b[3] == b':' && b[6] == b':'
    });
    if seconds.is_some_and(|t| &t[7..9] == "60") {
        return Err(FieldError::new(
            field,
            text,
            "has second 60 (a leap second): instants here have none; send 23:59:59 or the next minute",
        ));
    }
    Ok(())
}

/// Years 0001-9999 only, in UTC and in the offset given: the fixed text forms (and RFC 3339)
/// have four-digit years, so an instant outside them could not be written back and read
/// again (jiff reads `-002026-...`, an extended year, but prints `-2026-...`).
fn check_year(field: &str, text: &str, year: i16) -> Result<(), FieldError> {
    if !(1..=9999).contains(&year) {
        return Err(FieldError::new(
            field,
            text,
            "must be a time in the years 0001-9999 (a four-digit year, in UTC and in its offset)",
        ));
    }
    Ok(())
}

fn check_micro_precision(field: &str, text: &str, ts: Timestamp) -> Result<(), FieldError> {
    if ts.subsec_nanosecond() % 1000 != 0 {
        return Err(FieldError::new(
            field,
            text,
            "has more than microsecond precision; send at most 6 fraction digits",
        ));
    }
    Ok(())
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = self.timestamp();
        write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ"))
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Instant::parse_rfc3339("instant", &text).map_err(serde::de::Error::custom)
    }
}

/// When something happened in the world: the instant, the IANA time zone of the place
/// and the UTC offset in force there at that instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurredAt {
    pub instant: Instant,
    pub zone: String,
    pub offset: Offset,
}

impl OccurredAt {
    /// Parses an RFC 9557 time such as `2026-03-01T09:30:00+01:00[Europe/Paris]`.
    /// The offset and the bracketed IANA zone are both required, and must agree.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        const FORM: &str = "must be an RFC 9557 time with UTC offset and IANA zone, e.g. 2026-03-01T09:30:00+01:00[Europe/Paris]";
        check_no_leap_second(field, text)?;
        let pieces = Pieces::parse(text)
            .map_err(|e| FieldError::new(field, text, format!("{FORM} ({e})")))?;
        if pieces.offset().is_none() {
            return Err(FieldError::new(
                field,
                text,
                format!("has no UTC offset; {FORM}"),
            ));
        }
        let Some(annotation) = pieces.time_zone_annotation() else {
            return Err(FieldError::new(
                field,
                text,
                format!("has no IANA time zone in brackets; {FORM}"),
            ));
        };
        let zone_name = match annotation.to_time_zone() {
            Ok(tz) => match tz.iana_name() {
                Some(name) => name.to_string(),
                None => {
                    return Err(FieldError::new(
                        field,
                        text,
                        "the bracketed time zone must be an IANA name such as Europe/Paris, not a fixed offset",
                    ))
                }
            },
            Err(e) => {
                return Err(FieldError::new(
                    field,
                    text,
                    format!("names a time zone that is not in the IANA database ({e})"),
                ))
            }
        };
        let zoned = Zoned::from_str(text).map_err(|e| {
            FieldError::new(
                field,
                text,
                format!("is not a valid time in that zone: {e}"),
            )
        })?;
        check_micro_precision(field, text, zoned.timestamp())?;
        check_year(field, text, zoned.year())?;
        check_year(
            field,
            text,
            zoned.timestamp().to_zoned(TimeZone::UTC).year(),
        )?;
        Ok(OccurredAt {
            instant: Instant::from_timestamp(zoned.timestamp()),
            zone: zone_name,
            offset: Offset(zoned.offset().seconds()),
        })
    }

    /// Rebuilds from stored parts (instant, zone name, offset seconds).
    pub fn from_parts(micros: i64, zone: &str, offset_seconds: i32) -> Result<Self, String> {
        let instant = Instant::from_micros(micros)?;
        TimeZone::get(zone).map_err(|e| format!("unknown time zone {zone:?}: {e}"))?;
        Ok(OccurredAt {
            instant,
            zone: zone.to_string(),
            offset: Offset(offset_seconds),
        })
    }

    /// The RFC 9557 text form, in the recorded offset and zone.
    pub fn to_rfc9557(&self) -> String {
        let local = self.instant.timestamp().to_zoned(TimeZone::fixed(
            jiff::tz::Offset::from_seconds(self.offset.0).unwrap_or(jiff::tz::Offset::UTC),
        ));
        format!(
            "{}{}[{}]",
            local.strftime("%Y-%m-%dT%H:%M:%S%.f"),
            self.offset,
            self.zone
        )
    }
}

/// A UTC offset in seconds; text form `+hh:mm` (or `+hh:mm:ss` for historical offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(pub i32);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let total = self.0.unsigned_abs();
        let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
        if s == 0 {
            write!(f, "{sign}{h:02}:{m:02}")
        } else {
            write!(f, "{sign}{h:02}:{m:02}:{s:02}")
        }
    }
}

impl FromStr for Offset {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an offset of the form +hh:mm or +hh:mm:ss");
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let mut secs = 0i32;
        for (i, p) in parts.iter().enumerate() {
            let n: i32 = p.parse().map_err(|_| bad())?;
            secs += n * [3600, 60, 1][i];
        }
        if secs > 25 * 3600 {
            return Err(bad());
        }
        Ok(Offset(sign * secs))
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leap_second_is_refused_not_read_as_59() {
        for text in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5+00:00"] {
            let e = Instant::parse_rfc3339("at", text).expect_err(text);
            assert!(e.rule.contains("leap second"), "{e}");
        }
        let e = OccurredAt::parse("occurred_at", "2016-12-31T23:59:60+00:00[UTC]").expect_err("60");
        assert!(e.rule.contains("leap second"), "{e}");
        assert!(Instant::parse_rfc3339("at", "2016-12-31T23:59:59Z").is_ok());
        assert!(Instant::parse_rfc3339("at", "2016-12-31T23:60:00Z").is_err());
    }

    #[test]
    fn occurred_at_keeps_instant_zone_and_offset() {
        let t = OccurredAt::parse("occurred_at", "2026-03-01T09:30:00+01:00[Europe/Paris]")
            .expect("valid");
        assert_eq!(t.instant.to_string(), "2026-03-01T08:30:00.000000Z");
        assert_eq!(t.zone, "Europe/Paris");
        assert_eq!(t.offset.to_string(), "+01:00");
        assert_eq!(t.to_rfc9557(), "2026-03-01T09:30:00+01:00[Europe/Paris]");
    }

    #[test]
    fn occurred_at_without_offset_is_refused() {
        let e = OccurredAt::parse("occurred_at", "2026-03-01T09:30:00[Europe/Paris]")
            .expect_err("no offset");
        assert_eq!(e.field, "occurred_at");
        assert!(e.rule.contains("no UTC offset"), "{}", e.rule);
        let e = OccurredAt::parse("occurred_at", "2026-03-01T09:30:00").expect_err("no offset");
        assert!(e.rule.contains("no UTC offset"), "{}", e.rule);
    }

    #[test]
    fn occurred_at_without_zone_or_with_wrong_offset_is_refused() {
        let e = OccurredAt::parse("t", "2026-03-01T09:30:00+01:00").expect_err("no zone");
        assert!(e.rule.contains("IANA time zone"), "{}", e.rule);
        let e = OccurredAt::parse("t", "2026-03-01T09:30:00+02:00[Europe/Paris]")
            .expect_err("offset disagrees with the zone in winter");
        assert!(
            e.rule.contains("not a valid time in that zone"),
            "{}",
            e.rule
        );
        let e = OccurredAt::parse("t", "2026-03-01T09:30:00+01:00[Mars/Olympus]")
            .expect_err("unknown zone");
        assert!(e.rule.contains("IANA"), "{}", e.rule);
    }

    #[test]
    fn impossible_dates_are_refused() {
        for text in [
            "2026-02-30T09:30:00+01:00[Europe/Paris]",
            "2026-03-01T25:30:00+01:00[Europe/Paris]",
            "not a time",
        ] {
            assert!(OccurredAt::parse("t", text).is_err(), "{text}");
        }
    }

    #[test]
    fn sub_microsecond_precision_is_refused() {
        let e = OccurredAt::parse("t", "2026-03-01T09:30:00.1234567+01:00[Europe/Paris]")
            .expect_err("nanoseconds");
        assert!(e.rule.contains("microsecond"), "{}", e.rule);
        assert!(OccurredAt::parse("t", "2026-03-01T09:30:00.123456+01:00[Europe/Paris]").is_ok());
    }

    #[test]
    fn years_outside_0001_to_9999_are_refused() {
        // Found by fuzzing: jiff reads extended years, which the text forms cannot print
        // back (-002026 is printed -2026, which no RFC 3339 reader takes).
        for text in [
            "-002026-03-09T15:00:00Z",
            "-000001-12-31T23:00:00Z",
            "0000-12-31T23:00:00Z",
            "0001-01-01T00:30:00+01:00",
        ] {
            let e = Instant::parse_rfc3339("valid_at", text).expect_err(text);
            assert!(e.rule.contains("0001-9999"), "{text}: {}", e.rule);
        }
        for text in [
            "-002026-03-09T15:00:00-04:56:02[America/New_York]",
            "0001-01-01T00:30:00+01:00[Europe/Paris]",
            "9999-12-31T23:30:00-01:00[Atlantic/Azores]",
        ] {
            assert!(OccurredAt::parse("occurred_at", text).is_err(), "{text}");
        }
        let t = Instant::parse_rfc3339("valid_at", "0001-01-01T00:00:00Z").expect("year 1");
        assert_eq!(t.to_string(), "0001-01-01T00:00:00.000000Z");
        assert!(Instant::parse_rfc3339("valid_at", "9999-12-30T00:00:00Z").is_ok());
    }

    #[test]
    fn instants_need_an_offset() {
        assert!(Instant::parse_rfc3339("valid_at", "2026-03-01T08:30:00Z").is_ok());
        assert!(Instant::parse_rfc3339("valid_at", "2026-03-01T09:30:00+01:00").is_ok());
        let e = Instant::parse_rfc3339("valid_at", "2026-03-01T08:30:00").expect_err("local");
        assert_eq!(e.field, "valid_at");
    }

    #[test]
    fn offsets_round_trip() {
        for (text, secs) in [("+01:00", 3600), ("-05:30", -19800), ("+00:09:21", 561)] {
            let o: Offset = text.parse().expect("valid");
            assert_eq!(o.0, secs);
            assert_eq!(o.to_string(), text);
        }
        assert!("0100".parse::<Offset>().is_err());
    }

    #[test]
    fn a_week_starts_on_monday_at_midnight_utc() {
        let at = |text: &str| Instant::parse_rfc3339("at", text).expect(text);
        let monday = at("2026-11-30T00:00:00Z");
        for text in [
            "2026-11-30T00:00:00Z",
            "2026-12-02T13:45:10.5Z",
            "2026-12-06T23:59:59.999999Z",
            // Sunday evening in New York is already Monday in UTC: the next week.
            "2026-11-29T23:30:00-05:00",
        ] {
            assert_eq!(at(text).week_start(), monday, "{text}");
        }
        assert_eq!(
            at("2026-11-29T23:59:59Z").week_start(),
            at("2026-11-23T00:00:00Z")
        );
        // Before the epoch (a Thursday), too.
        assert_eq!(
            at("1969-12-31T12:00:00Z").week_start(),
            at("1969-12-29T00:00:00Z")
        );
    }
}
