//! HL7 FHIR R5 imports (`POST /fhir/Patient`, `POST /fhir/Procedure`): a treatment center's
//! Patient (`parse_patient`, then the vault's check of the identifying fields it keeps) and
//! an administration Procedure (`parse_administration`, then the `chain.administered`
//! request Autolog builds from it, through the events parser). Never a panic.
#![no_main]

use autolog_app::{check_personal_data_fields, parse_request};
use autolog_domain::identifiers::Coi;
use autolog_domain::Instant;
use autolog_interop::fhir::{parse_administration, parse_patient};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const NOW_MICROS: i64 = 1_893_456_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(resource) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(patient) = parse_patient(&resource) {
        if !patient.fields.is_empty() {
            let _ = check_personal_data_fields(&Value::Object(patient.fields.clone()));
        }
        if let Some(coi) = &patient.coi {
            let _ = Coi::parse("coi", coi);
        }
    }
    if let Ok(a) = parse_administration(&resource) {
        // As `fhir_import_administration` does once it knows the site's zone.
        let Ok(instant) = Instant::parse_rfc3339("occurrenceDateTime", &a.occurred) else {
            return;
        };
        let zone = jiff::tz::TimeZone::get("America/New_York").expect("bundled zone");
        let occurred_at = instant.timestamp().to_zoned(zone).to_string();
        let event = json!({
            "stream": "coi/CHA999926000001*",
            "occurred_at": occurred_at,
            "actor": "system/fuzz",
            "site": a.site_id,
            "source": {"system": "fuzz", "source_event_id": a.source_event_id},
            "body": {"type": "chain.administered", "version": 1, "data": {
                "step_code": a.step_code,
                "site_id": a.site_id,
                "administered_by": a.administered_by,
                "verified_by": a.verified_by,
                "unit": a.unit,
            }},
        });
        let now = Instant::from_micros(NOW_MICROS).expect("a valid instant");
        if let Err(e) = parse_request(event.to_string().as_bytes(), now, 300) {
            // The time Autolog wrote itself is refused only for being in the future.
            if let autolog_app::AppError::Invalid(f) = &e {
                if f.field == "occurred_at" {
                    assert!(
                        f.rule.contains("in the future"),
                        "{occurred_at}: {}",
                        f.rule
                    );
                }
            }
        }
    }
});
