//! The label identifiers and their check characters: COI, DIN, final unit id, GLN, FIN,
//! product code, MOD 37-2 and GS1 mod-10. Never a panic; whatever parses re-parses, in each
//! of its printed forms, to itself.
#![no_main]

use autolog_domain::identifiers::{
    check_product_code, gs1_check_digit, gs1_valid, mod37_2_check, mod37_2_valid, Coi, Din, Fin,
    Gln, UnitId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if let Ok(coi) = Coi::parse("coi", text) {
        let canonical = coi.to_string();
        assert_eq!(canonical.len(), 16, "{canonical}");
        assert!(mod37_2_valid(&canonical), "{canonical}");
        assert_eq!(Coi::parse("coi", &canonical).ok(), Some(coi.clone()));
        assert_eq!(
            Coi::parse("coi", &coi.eye_readable()).ok(),
            Some(coi.clone())
        );
        let barcode = format!("&/{}", coi.content());
        assert_eq!(Coi::parse("coi", &barcode).ok(), Some(coi.clone()));
    }

    if let Ok(din) = Din::parse("din", text) {
        let with_k = din.to_string();
        assert_eq!(with_k.len(), 14, "{with_k}");
        assert!(mod37_2_valid(&with_k), "{with_k}");
        assert_eq!(Din::parse("din", &with_k).ok(), Some(din.clone()));
        assert_eq!(Din::parse("din", din.as_str()).ok(), Some(din.clone()));
        assert!(Fin::parse("fin", din.fin()).is_ok());
    }

    if let Ok(unit) = UnitId::parse("unit", text) {
        let canonical = unit.to_string();
        assert_eq!(canonical.len(), 23, "{canonical}");
        assert!(mod37_2_valid(&canonical), "{canonical}");
        assert_eq!(UnitId::parse("unit", &canonical).ok(), Some(unit.clone()));
        assert_eq!(
            UnitId::parse("unit", &unit.eye_readable()).ok(),
            Some(unit.clone())
        );
        assert!(canonical.starts_with(unit.coi().content()));
    }

    if let Ok(gln) = Gln::parse("gln", text) {
        assert!(gs1_valid(gln.as_str()));
        assert_eq!(Gln::parse("gln", gln.as_str()).ok(), Some(gln));
    }

    if let Ok(fin) = Fin::parse("fin", text) {
        assert_eq!(Fin::parse("fin", fin.as_str()).ok(), Some(fin));
    }

    let _ = check_product_code("product_code", text);

    // Appending the computed check character always validates.
    let valid = mod37_2_valid(text);
    if let Some(k) = mod37_2_check(text) {
        if !text.is_empty() {
            assert!(mod37_2_valid(&format!("{text}{k}")), "{text}{k}");
        }
    }
    if valid {
        assert!(text.chars().count() >= 2);
    }
    if let Some(d) = gs1_check_digit(text) {
        if !text.is_empty() {
            assert!(gs1_valid(&format!("{text}{d}")), "{text}{d}");
        }
    }
    let _ = gs1_valid(text);
});
