//! Time texts from outside: RFC 9557 valid times (`OccurredAt::parse`), RFC 3339 instants
//! (`Instant::parse_rfc3339`) and UTC offsets. Never a panic; each printed form re-parses
//! to the same value.
#![no_main]

use autolog_domain::ledger::time::Offset;
use autolog_domain::{Instant, OccurredAt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if let Ok(t) = OccurredAt::parse("occurred_at", text) {
        let printed = t.to_rfc9557();
        match OccurredAt::parse("occurred_at", &printed) {
            Ok(again) => assert_eq!(again, t, "{text} -> {printed}"),
            Err(e) => panic!("{text} -> {printed} does not re-parse: {}", e.rule),
        }
        let rebuilt = OccurredAt::from_parts(t.instant.micros(), &t.zone, t.offset.0);
        assert_eq!(rebuilt.as_ref().ok(), Some(&t), "{text}");
    }

    if let Ok(instant) = Instant::parse_rfc3339("valid_at", text) {
        let printed = instant.to_string();
        match Instant::parse_rfc3339("valid_at", &printed) {
            Ok(again) => assert_eq!(again, instant, "{text} -> {printed}"),
            Err(e) => panic!("{text} -> {printed} does not re-parse: {}", e.rule),
        }
        assert_eq!(Instant::from_micros(instant.micros()).ok(), Some(instant));
    }

    if let Ok(offset) = text.parse::<Offset>() {
        let printed = offset.to_string();
        assert_eq!(
            printed.parse::<Offset>().ok(),
            Some(offset),
            "{text} -> {printed}"
        );
    }
});
