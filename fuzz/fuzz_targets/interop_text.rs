//! Short texts from partners' documents: EPC URNs and GS1 Digital Links, EPCIS date-times
//! and decimal numbers, FHIR dateTimes and ids. Never a panic; canonical forms are stable.
#![no_main]

use autolog_interop::epcis::{
    canonical_digital_link, canonical_gs1_uri, canonical_number, digital_link, is_uri, DateTime,
};
use autolog_interop::fhir::{date_time, id, is_date, is_date_time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let _ = is_uri(text);
    if let Some(link) = digital_link(text) {
        assert!(link.starts_with("https://"), "{text} -> {link}");
    }
    if let Some(canonical) = canonical_digital_link(text) {
        assert_eq!(
            canonical_digital_link(&canonical).as_deref(),
            Some(canonical.as_str()),
            "{text}"
        );
    }
    // An EPC URN's Digital Link is not always read back as a Digital Link (known, not yet
    // fixed; see fuzz/README.md), so only "no panic" is checked for URNs.
    let _ = canonical_gs1_uri(text);
    if let Some(t) = DateTime::parse(text) {
        let _ = t.utc_micros();
        let millis = t.utc_millis_text();
        assert!(DateTime::parse(&millis).is_some(), "{text} -> {millis}");
    }
    if text.len() <= 64 {
        if let Some(n) = canonical_number(text) {
            assert_eq!(
                canonical_number(&n).as_deref(),
                Some(n.as_str()),
                "{text} -> {n}"
            );
        }
    }
    let _ = is_date(text);
    let _ = is_date_time(text);
    if let Some(t) = date_time(text) {
        assert!(is_date_time(&t), "{text} -> {t}");
    }
    let made = id::of_code(text);
    if let Some(code) = id::to_code(&made) {
        assert_eq!(code, text);
    }
    let _ = id::to_code(text);
});
