//! The FHIR R5 endpoint over HTTP against a running server: the public CapabilityStatement
//! (checked against the access table), reads in and out of a chain's scope, the Patient
//! with and without identifying data, imports refused as OperationOutcomes naming the
//! element (the shared HL7 examples included), and every answer through fhir.resources.

use std::sync::Arc;

use autolog_app::interop::fhir::{id, system};
use autolog_app::Autolog;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use autolog_test_support::{person, Credentials};
use reqwest::StatusCode;
use serde_json::{json, Value};

const LAX: &str = "S-LAX-01";
const FRA: &str = "S-FRA-01";
const PATIENT: &str = "PK-FHIR-HTTP";
const FHIR_JSON: &str = "application/fhir+json";

/// The HL7 R5 examples shared by the project (absent in a clone outside it).
const SHARED_EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/fhir");
/// The validator script, kept with the journey test that validates every resource.
const FHIR_VALIDATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../app-tests/tests/fhir_validate.py"
);

struct TestApp {
    base: String,
    app: Arc<Autolog>,
    coi: String,
    din: String,
}

/// A server with the example network and one chain enrolled and collected at Los Angeles
/// (nothing involves Frankfurt).
async fn spawn_app(target: &Target) -> TestApp {
    let s = crate::common::spawn_app(target, crate::common::Setup::examples()).await;
    let app = s.app;
    let coi = autolog_test_support::enrol_at_los_angeles(&app, PATIENT, "enrol-fhir").await;
    let din = autolog_domain::identifiers::Din::parse("din", "A999926000777")
        .expect("DIN")
        .to_string();
    let collection = json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-11-03T12:30:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005", "site": LAX,
        "source": {"system": "aph", "source_event_id": "collect-fhir"},
        "body": {"type": "chain.collected", "version": 1, "data": {
            "collection_site_id": LAX, "operator_id": "P-0005", "device_id": "APH-LAX-01",
            "started_at": "2026-11-03T08:00:00-08:00", "ended_at": "2026-11-03T12:00:00-08:00",
            "dins": [din]}},
    });
    app.append_json(collection.to_string().as_bytes())
        .await
        .expect("collection");
    TestApp {
        base: s.base,
        app,
        coi,
        din,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: Value,
}

async fn call(
    base: &str,
    who: Option<&Credentials>,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> Answer {
    let client = who.map_or_else(reqwest::Client::new, Credentials::client);
    let url = format!("{base}{path}");
    let request = match (method, body) {
        ("GET", _) => client.get(url),
        (_, Some((content_type, b))) => client
            .post(url)
            .header("content-type", content_type)
            .body(b),
        (_, None) => client.post(url),
    };
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let text = answer.text().await.expect("body");
    Answer {
        status,
        content_type,
        location,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// An OperationOutcome's issues as (code, expression).
fn issues(outcome: &Value) -> Vec<(String, String)> {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["code"].as_str().unwrap_or("").to_string(),
                i["expression"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn shared_example(name: &str) -> Option<Value> {
    let path = std::path::Path::new(SHARED_EXAMPLES).join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("example JSON")),
        Err(_) => {
            autolog_test_support::shared_data_absent(&path);
            None
        }
    }
}

/// fhir.resources over every answer kept: skipped with a message when it is missing,
/// unless AUTOLOG_REQUIRE_FHIR_VALIDATOR=1.
fn validate(resources: &[Value]) {
    let required = std::env::var("AUTOLOG_REQUIRE_FHIR_VALIDATOR").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, r) in resources.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i:03}.json")), r.to_string()).expect("write");
    }
    let output = match std::process::Command::new("python3")
        .arg(FHIR_VALIDATOR)
        .arg(dir.path())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !required,
                "python3 is needed to validate FHIR resources: {e}"
            );
            eprintln!("skipped: FHIR validation needs python3 ({e})");
            return;
        }
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => eprintln!("{report}"),
        Some(3) if !required => eprintln!("skipped: {report}"),
        _ => panic!("FHIR validation failed:\n{report}"),
    }
}

async fn the_fhir_endpoint(t: Target) {
    let s = spawn_app(&t).await;
    let base = s.base.as_str();
    let mut answers: Vec<Value> = Vec::new();

    // The CapabilityStatement: public, and exactly the /fhir routes of the access table.
    let metadata = call(base, None, "GET", "/fhir/metadata", None).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert!(
        metadata.content_type.starts_with(FHIR_JSON),
        "{}",
        metadata.content_type
    );
    assert_eq!(metadata.body["resourceType"], "CapabilityStatement");
    assert_eq!(metadata.body["fhirVersion"], "5.0.0");
    let mut stated: Vec<(String, String)> = vec![("GET".into(), "/fhir/metadata".into())];
    for resource in metadata.body["rest"][0]["resource"]
        .as_array()
        .expect("resources")
    {
        let t = resource["type"].as_str().expect("type");
        for interaction in resource["interaction"].as_array().expect("interactions") {
            stated.push(match interaction["code"].as_str() {
                Some("read") => ("GET".into(), format!("/fhir/{t}/{{id}}")),
                Some("create") => ("POST".into(), format!("/fhir/{t}")),
                other => panic!("{t}: interaction {other:?} is not served"),
            });
        }
    }
    let mut routed: Vec<(String, String)> = autolog_server::ROUTES
        .iter()
        .filter(|(_, p, _)| p.starts_with("/fhir/"))
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    stated.sort();
    routed.sort();
    assert_eq!(
        stated, routed,
        "the CapabilityStatement states exactly what is routed"
    );
    answers.push(metadata.body);

    let nurse = person(&s.app, "P-F01", &[("treatment_nurse", LAX)]).await;
    let stranger = person(&s.app, "P-F02", &[("treatment_nurse", FRA)]).await;
    let auditor = person(&s.app, "P-F03", &[("auditor", "*")]).await;

    // Reads in scope.
    let bundle_path = format!("/fhir/Bundle/{}", id::bundle(&s.coi));
    let reads = [
        bundle_path.clone(),
        format!(
            "/fhir/BiologicallyDerivedProduct/{}",
            id::collection(&s.din)
        ),
        format!("/fhir/Procedure/{}", id::apheresis(&s.din)),
        format!("/fhir/Patient/{PATIENT}"),
        "/fhir/Organization/S-LAX-01".to_string(),
        "/fhir/Location/S-LAX-01".to_string(),
        "/fhir/Practitioner/P-0005".to_string(),
    ];
    for path in &reads {
        let a = call(base, Some(&nurse), "GET", path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert!(a.content_type.starts_with(FHIR_JSON), "{path}");
        answers.push(a.body);
    }
    let bundle = &answers[1];
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["identifier"]["value"], json!(s.coi));

    // Out of scope: the chain's resources are refused (403, an OperationOutcome); reference
    // data is not the chain's.
    for path in &reads[..4] {
        let a = call(base, Some(&stranger), "GET", path, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.body);
        assert!(a.content_type.starts_with(FHIR_JSON), "{path}");
        assert_eq!(issues(&a.body)[0].0, "forbidden", "{}", a.body);
        answers.push(a.body);
    }
    let a = call(
        base,
        Some(&stranger),
        "GET",
        "/fhir/Organization/S-LAX-01",
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // Not signed in: 401, an OperationOutcome.
    let a = call(base, None, "GET", &bundle_path, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(issues(&a.body)[0].0, "login");
    answers.push(a.body);
    // Unknown ids: 404.
    let a = call(
        base,
        Some(&nurse),
        "GET",
        "/fhir/BiologicallyDerivedProduct/din-A999926999999",
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert_eq!(issues(&a.body)[0].0, "not-found");
    answers.push(a.body);
    let a = call(
        base,
        Some(&nurse),
        "GET",
        &format!("{bundle_path}?colour=red"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);

    // The Patient: identifying data from the vault for a caller who may read it and says
    // why (the read recorded first); pseudonymous without a purpose, and for an auditor.
    s.app
        .record_personal_data_via(
            Some(&s.coi),
            PATIENT,
            &json!({"name": "Wilhelmina Farquharson", "date_of_birth": "1949-07-30", "mrn": "MRN-3141592"}),
            "person/P-0005",
        )
        .await
        .expect("record");
    let patient = format!("/fhir/Patient/{PATIENT}");
    let a = call(
        base,
        Some(&nurse),
        "GET",
        &format!("{patient}?purpose=TREAT"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["name"][0]["text"], "Wilhelmina Farquharson");
    assert_eq!(a.body["birthDate"], "1949-07-30");
    answers.push(a.body);
    let audit = s
        .app
        .list_events(&autolog_app::ListQuery {
            stream: Some(format!("patient/{PATIENT}")),
            valid_at: None,
            known_at: None,
            after_position: None,
            limit: None,
        })
        .await
        .expect("audit trail");
    let audit = serde_json::to_string(&audit).expect("JSON");
    assert!(
        audit.contains("\"purpose\":\"TREAT\"") && audit.contains("P-F01"),
        "{audit}"
    );
    let a = call(base, Some(&nurse), "GET", &patient, None).await;
    assert!(a.body.get("name").is_none(), "{}", a.body);
    assert_eq!(a.body["meta"]["security"][0]["code"], "PSEUDED");
    for who in [&auditor] {
        let a = call(
            base,
            Some(who),
            "GET",
            &format!("{patient}?purpose=RECORDMGT"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(
            a.body.get("name").is_none() && a.body.get("birthDate").is_none(),
            "{}",
            a.body
        );
        assert_eq!(a.body["identifier"][0]["value"], PATIENT);
        answers.push(a.body);
        let a = call(
            base,
            Some(who),
            "GET",
            &format!("{bundle_path}?purpose=RECORDMGT"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(!a.body.to_string().contains("Farquharson"));
    }

    // Imports: refusals are OperationOutcomes naming the element; the access check's too
    // (an auditor records nothing).
    let a = call(
        base,
        Some(&auditor),
        "POST",
        "/fhir/Procedure",
        Some((FHIR_JSON, "{}".into())),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(issues(&a.body)[0].0, "forbidden", "{}", a.body);
    answers.push(a.body);
    let a = call(
        base,
        Some(&nurse),
        "POST",
        "/fhir/Patient",
        Some(("text/plain", "{}".into())),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    answers.push(a.body);
    let a = call(
        base,
        Some(&nurse),
        "POST",
        "/fhir/Procedure",
        Some((FHIR_JSON, "{not json".into())),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(issues(&a.body)[0].0, "structure");
    answers.push(a.body);
    if let Some(example) = shared_example("patient-example.json") {
        // As published: it names no Autolog patient key.
        let a = call(
            base,
            Some(&nurse),
            "POST",
            "/fhir/Patient",
            Some((FHIR_JSON, example.to_string())),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert_eq!(issues(&a.body)[0].1, "Patient.identifier", "{}", a.body);
        assert!(
            !a.body.to_string().contains("Chalmers"),
            "never repeats identifying data"
        );
        answers.push(a.body);
        // Naming the patient key: its identifying data goes to the vault.
        let mut named = example.clone();
        if let Some(list) = named["identifier"].as_array_mut() {
            list.push(json!({"system": system::PATIENT_KEY, "value": PATIENT}));
        }
        let a = call(
            base,
            Some(&stranger),
            "POST",
            "/fhir/Patient",
            Some((FHIR_JSON, named.to_string())),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        answers.push(a.body);
        let a = call(
            base,
            Some(&nurse),
            "POST",
            "/fhir/Patient",
            Some((FHIR_JSON, named.to_string())),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "replaced what was recorded: {}",
            a.body
        );
        assert_eq!(
            a.location.as_deref(),
            Some(format!("/fhir/Patient/{PATIENT}").as_str())
        );
        assert_eq!(a.body["resourceType"], "OperationOutcome");
        assert!(a.body.to_string().contains("Patient.address"), "{}", a.body);
        answers.push(a.body);
        let stored = s
            .app
            .read_personal_data(PATIENT, "person/P-F01", Some("TREAT"))
            .await
            .expect("vault");
        assert_eq!(stored.data["name"], "Peter James Chalmers");
        assert_eq!(stored.data["mrn"], "12345");
        assert_eq!(stored.data["date_of_birth"], "1974-12-25");
        let ledger = autolog_test_support::ledger_text(&s.app).await;
        assert!(
            !ledger.contains("Chalmers"),
            "identifying data never enters the ledger"
        );
    }
    if let Some(example) = shared_example("procedure-example.json") {
        // An appendectomy: no administration; every missing element is named.
        let a = call(
            base,
            Some(&nurse),
            "POST",
            "/fhir/Procedure",
            Some((FHIR_JSON, example.to_string())),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        let named: Vec<String> = issues(&a.body).into_iter().map(|(_, e)| e).collect();
        for element in [
            "Procedure.identifier",
            "Procedure.code",
            "Procedure.used",
            "Procedure.performer",
            "Procedure.location",
            "Procedure.occurrence",
        ] {
            assert!(named.iter().any(|n| n == element), "{element}: {named:?}");
        }
        answers.push(a.body);
        // Complete, but for a unit this chain never produced: refused naming `used`.
        let coi = autolog_domain::identifiers::Coi::parse("coi", &s.coi).expect("COI");
        let unit = autolog_domain::identifiers::UnitId::new(&coi, "S0001", "Z9")
            .expect("unit")
            .to_string();
        let mut administration = example.clone();
        administration["identifier"] = json!([{"value": "EMR-LAX-0001"}]);
        administration["code"] =
            json!({"coding": [{"system": system::PROCESS_STEP, "code": "INFUSE"}]});
        administration["subject"] = json!({"reference": format!("Patient/{PATIENT}")});
        administration["occurrenceDateTime"] = json!("2026-11-20T10:00:00-08:00");
        administration["performer"] = json!([
            {"function": {"coding": [{"system": system::PARTICIPATION_TYPE, "code": "PRF"}]}, "actor": {"reference": "Practitioner/P-0007"}},
            {"function": {"coding": [{"system": system::PARTICIPATION_TYPE, "code": "VRF"}]}, "actor": {"reference": "Practitioner/P-0005"}},
        ]);
        administration["location"] = json!({"reference": "Location/S-LAX-01"});
        administration["used"] = json!([{"reference": {"reference": format!("BiologicallyDerivedProduct/{}", id::unit(&unit))}}]);
        let a = call(
            base,
            Some(&nurse),
            "POST",
            "/fhir/Procedure",
            Some((FHIR_JSON, administration.to_string())),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert_eq!(
            issues(&a.body)[0],
            ("not-found".to_string(), "Procedure.used".to_string()),
            "{}",
            a.body
        );
        answers.push(a.body);
    }
    validate(&answers);
}

#[tokio::test]
async fn the_fhir_endpoint_reads_in_scope_and_refuses_with_operation_outcomes() {
    run_on(Backend::Sqlite, "fhir_http", the_fhir_endpoint).await;
}
