//! Time-zone discipline for sites: every site has an IANA zone; an instant's recorded
//! offset is checked against that zone; windows and clock skew are computed on instants.

use jiff::tz::TimeZone;

use crate::error::FieldError;
use crate::ledger::time::{Instant, OccurredAt, Offset};

/// Checks that `name` is an IANA zone in the bundled time-zone database.
pub fn check_zone(field: &str, name: &str) -> Result<TimeZone, FieldError> {
    match TimeZone::get(name) {
        Ok(tz) if tz.iana_name().is_some() && (name.contains('/') || name == "UTC") => Ok(tz),
        _ => Err(FieldError::new(
            field,
            name,
            "must be an IANA time zone name from the tz database, such as Europe/Paris",
        )),
    }
}

/// The UTC offset in force in `zone` at `instant` (DST included).
pub fn offset_at(zone: &TimeZone, instant: Instant) -> Offset {
    Offset(zone.to_offset(instant.timestamp()).seconds())
}

/// An instant recorded with an offset that is not the recording site's offset at that instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDiscrepancy {
    pub site_zone: String,
    pub instant: Instant,
    pub expected_offset: Offset,
    pub recorded_offset: Offset,
}

impl std::fmt::Display for ZoneDiscrepancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "time-zone discrepancy: recorded with offset {} but the site's zone {} was at {} on {}",
            self.recorded_offset, self.site_zone, self.expected_offset, self.instant
        )
    }
}

/// Flags an instant whose recorded offset disagrees with the site's zone at that instant.
/// The instant itself is exact either way; the flag says the sender's clock or zone is off.
pub fn site_offset_discrepancy(
    occurred: &OccurredAt,
    site_zone: &TimeZone,
    site_zone_name: &str,
) -> Option<ZoneDiscrepancy> {
    let expected = offset_at(site_zone, occurred.instant);
    (expected != occurred.offset).then(|| ZoneDiscrepancy {
        site_zone: site_zone_name.to_string(),
        instant: occurred.instant,
        expected_offset: expected,
        recorded_offset: occurred.offset,
    })
}

/// The instant shown in a zone's local time, RFC 9557 (`2026-03-08T03:30:00-04:00[America/New_York]`).
pub fn local_time(instant: Instant, zone: &TimeZone) -> String {
    instant.timestamp().to_zoned(zone.clone()).to_string()
}

/// Refuses an instant later than `now` plus the clock-skew tolerance.
pub fn check_clock_skew(
    field: &str,
    instant: Instant,
    now: Instant,
    tolerance_seconds: i64,
) -> Result<(), FieldError> {
    let limit = now
        .micros()
        .saturating_add(tolerance_seconds.saturating_mul(1_000_000));
    if instant.micros() > limit {
        return Err(FieldError::new(
            field,
            instant.to_string(),
            format!("is in the future: later than the server clock ({now}) by more than the {tolerance_seconds} s clock-skew tolerance"),
        ));
    }
    Ok(())
}

/// Elapsed time between two instants, in microseconds (never from wall-clock times).
pub fn elapsed_micros(from: Instant, to: Instant) -> i64 {
    to.micros() - from.micros()
}

/// A maximum time between two process steps, e.g. "collection to cryopreservation at most 48 h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max_micros: i64,
}

impl Window {
    pub fn hours(h: i64) -> Self {
        Window {
            max_micros: h * 3_600_000_000,
        }
    }

    pub fn minutes(m: i64) -> Self {
        Window {
            max_micros: m * 60_000_000,
        }
    }

    /// Whether `to` falls within the window after `from` (an end before the start is a breach).
    pub fn holds(&self, from: Instant, to: Instant) -> bool {
        let elapsed = elapsed_micros(from, to);
        (0..=self.max_micros).contains(&elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> OccurredAt {
        OccurredAt::parse("t", text).expect("valid time")
    }

    fn zone(name: &str) -> TimeZone {
        check_zone("time_zone", name).expect("IANA zone")
    }

    #[test]
    fn zones_come_from_the_tz_database() {
        for name in [
            "America/New_York",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "UTC",
        ] {
            assert!(check_zone("z", name).is_ok(), "{name}");
        }
        for name in ["Mars/Olympus", "CET+1", "", "+05:30", "europe/paris "] {
            let e = check_zone("time_zone", name).expect_err(name);
            assert_eq!(e.field, "time_zone");
        }
    }

    /// The offsets each zone had at instants around its changes; a sender that recorded
    /// any other offset is flagged.
    #[test]
    fn offsets_are_checked_against_the_site_zone_across_dst() {
        let cases = [
            // New York: DST starts 2026-03-08 02:00 local (07:00Z), ends 2026-11-01 02:00 local (06:00Z)
            (
                "America/New_York",
                "2026-03-08T01:59:00-05:00[America/New_York]",
                "-05:00",
            ),
            (
                "America/New_York",
                "2026-03-08T03:00:00-04:00[America/New_York]",
                "-04:00",
            ),
            (
                "America/New_York",
                "2026-11-01T01:30:00-04:00[America/New_York]",
                "-04:00",
            ),
            (
                "America/New_York",
                "2026-11-01T01:30:00-05:00[America/New_York]",
                "-05:00",
            ),
            (
                "Europe/Berlin",
                "2026-03-29T01:59:00+01:00[Europe/Berlin]",
                "+01:00",
            ),
            (
                "Europe/Berlin",
                "2026-03-29T03:00:00+02:00[Europe/Berlin]",
                "+02:00",
            ),
            (
                "Asia/Kolkata",
                "2026-06-01T12:00:00+05:30[Asia/Kolkata]",
                "+05:30",
            ),
            // Lord Howe: a 30-minute shift; DST ends 2026-04-05 02:00 (+11:00 -> +10:30)
            (
                "Australia/Lord_Howe",
                "2026-04-05T01:45:00+11:00[Australia/Lord_Howe]",
                "+11:00",
            ),
            (
                "Australia/Lord_Howe",
                "2026-04-05T01:45:00+10:30[Australia/Lord_Howe]",
                "+10:30",
            ),
            (
                "Australia/Lord_Howe",
                "2026-07-01T12:00:00+10:30[Australia/Lord_Howe]",
                "+10:30",
            ),
        ];
        for (site, text, offset) in cases {
            let occurred = t(text);
            assert_eq!(occurred.offset.to_string(), offset, "{text}");
            assert_eq!(
                site_offset_discrepancy(&occurred, &zone(site), site),
                None,
                "{text} at a {site} site"
            );
        }
        // Recorded in the right offset for another zone: the instant is exact, but flagged.
        let occurred = t("2026-03-08T03:30:00-05:00[America/Chicago]");
        let flag =
            site_offset_discrepancy(&occurred, &zone("America/New_York"), "America/New_York")
                .expect("flagged");
        assert_eq!(flag.expected_offset.to_string(), "-04:00");
        assert_eq!(flag.recorded_offset.to_string(), "-05:00");
        assert!(flag.to_string().contains("America/New_York"));
        let occurred = t("2026-06-01T12:00:00+05:45[Asia/Kathmandu]");
        assert!(
            site_offset_discrepancy(&occurred, &zone("Asia/Kolkata"), "Asia/Kolkata").is_some()
        );
    }

    #[test]
    fn local_time_is_shown_in_the_site_zone() {
        let at = t("2026-03-08T07:30:00+00:00[UTC]").instant;
        assert_eq!(
            local_time(at, &zone("America/New_York")),
            "2026-03-08T03:30:00-04:00[America/New_York]"
        );
        assert_eq!(
            local_time(at, &zone("Australia/Lord_Howe")),
            "2026-03-08T18:30:00+11:00[Australia/Lord_Howe]"
        );
    }

    #[test]
    fn windows_are_measured_on_instants_across_dst() {
        // Wall clocks say 47 h 30 min, but the spring-forward night was an hour short: 46 h 30 min.
        let collected = t("2026-03-06T20:00:00-05:00[America/New_York]").instant;
        let frozen = t("2026-03-08T19:30:00-04:00[America/New_York]").instant;
        assert_eq!(
            elapsed_micros(collected, frozen),
            (46 * 60 + 30) * 60_000_000
        );
        assert!(Window::hours(47).holds(collected, frozen));
        // In autumn the same wall-clock span is an hour longer than it looks.
        let collected = t("2026-10-31T00:00:00-04:00[America/New_York]").instant;
        let frozen = t("2026-11-01T23:30:00-05:00[America/New_York]").instant;
        assert!(
            !Window::hours(48).holds(collected, frozen),
            "48 h 30 min is a breach"
        );
        // Thaw to infusion across the Lord Howe half-hour shift.
        let thawed = t("2026-04-05T01:50:00+11:00[Australia/Lord_Howe]").instant;
        let infused = t("2026-04-05T01:55:00+10:30[Australia/Lord_Howe]").instant;
        assert_eq!(elapsed_micros(thawed, infused), 35 * 60_000_000);
        assert!(!Window::minutes(30).holds(thawed, infused));
    }

    #[test]
    fn windows_are_measured_on_instants_across_the_date_line() {
        // Shipped from Auckland on the 10th, received in Los Angeles "earlier" on the 10th.
        let shipped = t("2026-06-10T09:00:00+12:00[Pacific/Auckland]").instant;
        let received = t("2026-06-10T08:00:00-07:00[America/Los_Angeles]").instant;
        assert_eq!(elapsed_micros(shipped, received), 18 * 3_600_000_000);
        assert!(Window::hours(24).holds(shipped, received));
        // Kiritimati (+14) to Pago Pago (-11): a day apart on the calendar, one hour in time.
        let a = t("2026-06-11T00:30:00+14:00[Pacific/Kiritimati]").instant;
        let b = t("2026-06-09T23:30:00-11:00[Pacific/Pago_Pago]").instant;
        assert_eq!(elapsed_micros(a, b), 0);
        assert!(
            !Window::hours(1).holds(b, t("2026-06-09T23:00:00-11:00[Pacific/Pago_Pago]").instant),
            "an end before the start is a breach"
        );
    }

    #[test]
    fn clocks_skewed_into_the_future_are_refused() {
        let now = t("2026-06-01T12:00:00+00:00[UTC]").instant;
        assert!(check_clock_skew(
            "occurred_at",
            t("2026-06-01T12:04:59+00:00[UTC]").instant,
            now,
            300
        )
        .is_ok());
        let e = check_clock_skew(
            "occurred_at",
            t("2026-06-01T14:05:01+02:00[Europe/Berlin]").instant,
            now,
            300,
        )
        .expect_err("skewed");
        assert_eq!(e.field, "occurred_at");
        assert!(e.rule.contains("clock-skew tolerance"));
    }
}
