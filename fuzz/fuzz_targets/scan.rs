//! Barcode data as scanned (`autolog_domain::identifiers::scan::parse_scan`): ISBT 128 DIN data, the
//! eye-readable DIN, GS1 element strings (as scanned and parenthesised), final unit ids.
//! Never a panic; a DIN or unit read re-scans, from its canonical text, to itself.
#![no_main]

use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(scanned) = parse_scan("scan", &raw) else {
        return;
    };
    let id = scanned.unit_id();
    assert!(!id.is_empty());
    match &scanned {
        Scanned::Din { din, .. } => {
            // The eye-readable DIN with its check character reads as the same DIN.
            match parse_scan("scan", &din.to_string()) {
                Ok(Scanned::Din { din: again, flags }) => {
                    assert_eq!(&again, din);
                    assert!(flags.is_empty());
                }
                other => panic!("{din} re-scanned as {other:?}"),
            }
        }
        Scanned::Unit(unit) => match parse_scan("scan", &unit.to_string()) {
            Ok(Scanned::Unit(again)) => assert_eq!(&again, unit),
            other => panic!("{unit} re-scanned as {other:?}"),
        },
        Scanned::Gs1(elements) => {
            // The parenthesised form is ambiguous when a lot or serial holds `(NN)`:
            // only that it never panics is checked.
            let _ = parse_scan("scan", &elements.to_string());
        }
    }
});
