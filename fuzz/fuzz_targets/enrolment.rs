//! Enrolment request bodies (`POST /api/v1/chains`, `autolog_app::parse_enrolment`): never a
//! panic; an accepted request's `chain.enrolled` event is an append request that the events
//! parser reads without panicking (it may still refuse it, e.g. a missing field).
#![no_main]

use autolog_app::{parse_enrolment, parse_request};
use autolog_domain::Instant;
use libfuzzer_sys::fuzz_target;

const NOW_MICROS: i64 = 1_893_456_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_enrolment(data) else {
        return;
    };
    let coi = request
        .coi
        .as_ref()
        .map_or_else(|| "CHA999926000001*".to_string(), ToString::to_string);
    let event = request.event(&coi);
    let now = Instant::from_micros(NOW_MICROS).expect("a valid instant");
    if let Ok((drafts, single)) = parse_request(event.as_bytes(), now, 300) {
        assert!(single);
        assert_eq!(drafts.len(), 1);
        assert_eq!(drafts[0].stream, format!("coi/{coi}"));
        assert_eq!(drafts[0].body.event_type, "chain.enrolled");
    }
});
