//! ISBT 128 data structures as a label encodes them (ICCBBA ST-001 v6.2.2 §2.4): each is
//! its data identifier followed by its content, exactly as a bar code or a 2-D symbol
//! carries it. Only what Autolog's labels use is built here; reading them back is
//! `identifiers::compound` and `identifiers::scan`.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::identifiers::{mod37_2_check, Coi, Din, UnitId};
use crate::ledger::time::Instant;

/// Type of donation (ST-001 §2.4.3, the product code's 6th data character): for
/// autologous use only.
pub const AUTOLOGOUS_ONLY: char = '1';

/// DS001: `=` + the 13 DIN characters + type 3 flags (60 + the MOD 37-2 checksum over
/// the DIN, §2.4.1), so a reader can check the DIN without a keyboard.
pub fn din(din: &Din) -> String {
    let checksum = din.check_character().to_digit(36).unwrap_or(36);
    format!("={}{}", din.as_str(), 60 + checksum)
}

/// DS003: `=<` + product description code (5) + type of donation + division (2).
pub fn product_code(code: &str, donation_type: char, division: &str) -> String {
    format!("=<{code}{donation_type}{division}")
}

/// DS032: `=,` + six digits, the container's number within its collection (§2.4.32; the
/// product code's divisions are then `99`).
pub fn divisions(number: u32) -> String {
    format!("=,{:06}", number.min(999_999))
}

/// DS005: `&>cyyjjjhhmm`, in the labelling facility's local time: c is the century
/// (0 for 2000-2099), yy the year, jjj the day of the year, hh:mm the time (§2.4.5).
pub fn expiry(at: Instant, zone: &TimeZone) -> String {
    let local = civil(at, zone);
    let century = (local.year() / 100 - 20).clamp(0, 9);
    format!(
        "&>{century}{:02}{:03}{:02}{:02}",
        local.year() % 100,
        local.day_of_year(),
        local.hour(),
        local.minute()
    )
}

/// What a flexible date and time (DS031) dates: its `TT` code (§2.4.31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dated {
    Expiry,
    Collection,
    Production,
}

impl Dated {
    fn code(self) -> &'static str {
        match self {
            Dated::Expiry => "01",
            Dated::Collection => "02",
            Dated::Production => "03",
        }
    }
}

/// DS031: `=(ZUTTYYYYMMDDhhmm` with Z = 1 (the local time of the facility assigning the
/// date), U = 0 (reserved) and TT what is dated.
pub fn flexible_date(what: Dated, at: Instant, zone: &TimeZone) -> String {
    let local = civil(at, zone);
    format!(
        "=(10{}{:04}{:02}{:02}{:02}{:02}",
        what.code(),
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute()
    )
}

/// DS040: `&/` + the COI's 15 content characters (its K is printed, never encoded).
pub fn coi(coi: &Coi) -> String {
    format!("&/{}", coi.content())
}

/// DS023: `=+aabbb` (the number of structures, message type 000: undefined) followed by
/// the structures, each with its data identifier.
pub fn compound(structures: &[String]) -> String {
    let mut message = format!("=+{:02}000", structures.len().min(99));
    for s in structures {
        message.push_str(s);
    }
    message
}

/// The DIN as printed under its bar code (§7.4.1): FIN, year and sequence grouped, the
/// flags not printed (type 3), and its keyboard check character, printed boxed.
pub fn din_text(din: &Din) -> (String, char) {
    let d = din.as_str();
    (
        format!("{} {} {}", &d[..5], &d[5..7], &d[7..]),
        din.check_character(),
    )
}

/// The COI as printed (`CH A9999 26 000001`) and its check character, printed boxed.
pub fn coi_text(coi: &Coi) -> (String, char) {
    let c = coi.content();
    (
        format!("{} {} {} {}", &c[..2], &c[2..7], &c[7..9], &c[9..]),
        coi.check_character(),
    )
}

/// A final unit's identifier as printed, and its check character (boxed).
pub fn unit_text(unit: &UnitId) -> (String, char) {
    let text = unit.eye_readable();
    let shown = text.rsplit_once(' ').map(|(t, _)| t.to_string());
    (shown.unwrap_or(text), unit.check_character())
}

/// The keyboard check character of any ISBT 128 content (ST-001 §7.5).
pub fn check_character(content: &str) -> Option<char> {
    mod37_2_check(content)
}

/// An instant as the label prints it (§7.4.4): day, three-letter month, year and 24-hour
/// time in the facility's zone, with the zone's abbreviation.
pub fn date_text(at: Instant, zone: &TimeZone) -> String {
    let zoned = at.timestamp().to_zoned(zone.clone());
    let month = MONTHS[usize::from(zoned.month().unsigned_abs().saturating_sub(1)).min(11)];
    format!(
        "{:02} {month} {:04} {:02}:{:02} {}",
        zoned.day(),
        zoned.year(),
        zoned.hour(),
        zoned.minute(),
        zoned
            .time_zone()
            .to_offset_info(at.timestamp())
            .abbreviation()
    )
}

/// The same instant in UTC, printed under a local time for products crossing zones.
pub fn utc_text(at: Instant) -> String {
    date_text(at, &TimeZone::UTC)
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

fn civil(at: Instant, zone: &TimeZone) -> DateTime {
    at.timestamp().to_zoned(zone.clone()).datetime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Instant {
        Instant::parse_rfc3339("at", text).expect("valid")
    }

    #[test]
    fn the_din_carries_type_3_flags_and_prints_its_check_character() {
        // ST-001 Appendix A: G1234 17 654321 has checksum 10 (K = A), flags 70.
        let d = Din::parse("din", "G123417654321").expect("valid");
        assert_eq!(din(&d), "=G12341765432170");
        assert_eq!(din_text(&d), ("G1234 17 654321".to_string(), 'A'));
    }

    #[test]
    fn dates_are_local_to_the_facility_with_their_flag() {
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        // 2026-12-31T22:59Z is 23:59 in Paris, day 365.
        let t = at("2026-12-31T22:59:00Z");
        assert_eq!(expiry(t, &paris), "&>0263652359");
        assert_eq!(
            flexible_date(Dated::Production, t, &paris),
            "=(1003202612312359"
        );
        assert_eq!(date_text(t, &paris), "31 DEC 2026 23:59 CET");
        assert_eq!(utc_text(t), "31 DEC 2026 22:59 UTC");
    }

    #[test]
    fn a_compound_message_counts_its_structures() {
        let c = Coi::parse("coi", "CHA999926000001*").expect("valid");
        let message = compound(&[coi(&c), product_code("S0001", '1', "A0"), divisions(2)]);
        assert_eq!(message, "=+03000&/CHA999926000001=<S00011A0=,000002");
        let read = crate::identifiers::compound::parse_compound(&message).expect("reads");
        assert_eq!(read.coi.as_deref(), Some("&/CHA999926000001"));
    }
}
