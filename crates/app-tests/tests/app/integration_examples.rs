//! The integration guide's example requests (examples/integration) stay valid: each is
//! read by the same parser that the API uses for its kind of request.

use serde_json::Value;

fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/integration")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("example file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_courier_examples_are_valid_epcis_documents_in_autologs_custody_profile() {
    for (name, step) in [
        (
            "courier-shipping.epcis.jsonld",
            "https://ref.gs1.org/cbv/BizStep-shipping",
        ),
        (
            "courier-receiving.epcis.jsonld",
            "https://ref.gs1.org/cbv/BizStep-receiving",
        ),
    ] {
        let document = autolog_interop::epcis::parse_document(&example(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(document.events.len(), 1, "{name}");
        let event = &document.events[0];
        assert_eq!(event.biz_step.as_deref(), Some(step), "{name}");
        assert!(event.hash_id.starts_with("ni:///sha-256;"), "{name}");
        for epc in &event.epcs {
            if let Some(label) = epc.strip_prefix("urn:isbt128:") {
                let label = label.strip_prefix("din:").unwrap_or(label);
                autolog_domain::identifiers::scan::parse_scan("epc", label)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn the_native_examples_are_valid_requests() {
    // The API fills `actor` with the authenticated sender (the LIMS's token).
    let mut result = example("lims-test-result.json");
    result["actor"] = serde_json::json!("system/lims-fra");
    let result = result.to_string();
    autolog_app::parse_request(
        result.as_bytes(),
        &autolog_app::SystemClock,
        365 * 24 * 3600,
    )
    .unwrap_or_else(|e| panic!("lims-test-result.json: {e}"));
    let enrolment = example("apheresis-enrolment.json");
    for field in [
        "patient_key",
        "product_code",
        "treatment_site_id",
        "source",
        "occurred_at",
    ] {
        assert!(
            enrolment.get(field).is_some(),
            "the enrolment names {field}"
        );
    }
    autolog_domain::OccurredAt::parse(
        "occurred_at",
        enrolment["occurred_at"].as_str().expect("time"),
    )
    .expect("an RFC 9557 time");
}

#[test]
fn the_treatment_center_examples_are_read_by_the_fhir_import() {
    let patient = autolog_interop::fhir::parse_patient(&example("treatment-patient.fhir.json"))
        .unwrap_or_else(|issues| panic!("treatment-patient.fhir.json: {issues:?}"));
    let _ = patient;
    autolog_interop::fhir::parse_administration(&example("treatment-procedure.fhir.json"))
        .unwrap_or_else(|issues| panic!("treatment-procedure.fhir.json: {issues:?}"));
}
