//! GS1 EPCIS 2.0 capture and query over HTTP against a running server, with the GS1 example
//! documents and the invalid documents of `../shared/data/epcis` (skipped with a message when
//! that folder is absent): every example is captured and each event comes back unchanged,
//! every invalid document is refused naming the event and field and writes nothing, capture
//! is idempotent and atomic, the filters and paging work, and Autolog's chain events come
//! out as EPCIS events that pass the same rules.

use std::path::PathBuf;
use std::sync::Arc;

use autolog_app::Autolog;
use autolog_domain::identifiers::{mod37_2_check, Din};
use autolog_interop::epcis::{parse_document, DateTime};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use autolog_test_support::{person, system, Credentials};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MOD37: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

struct TestApp {
    base: String,
    app: Arc<Autolog>,
}

async fn spawn_app(target: &Target) -> TestApp {
    let s = crate::common::spawn_app(target, crate::common::Setup::examples()).await;
    TestApp {
        base: s.base,
        app: s.app,
    }
}

/// `../shared/data/epcis`, or `None` (with a message) in a clone outside the project.
fn epcis_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/epcis");
    if dir.join("examples").is_dir() {
        Some(dir)
    } else {
        autolog_test_support::shared_data_absent(&dir);
        None
    }
}

/// The files of a fixture folder, sorted, without licences and notes.
fn documents(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonld"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (name, std::fs::read_to_string(&p).expect("read fixture"))
        })
        .collect()
}

/// The GS1 example capture documents (the EPCISQueryDocument is an answer, not a capture).
fn examples(data: &std::path::Path) -> Vec<(String, String)> {
    documents(&data.join("examples"))
        .into_iter()
        .filter(|(name, _)| name != "EPCISQueryDocument.jsonld")
        .collect()
}

async fn capture(base: &str, who: &Credentials, body: &str) -> (StatusCode, Value) {
    let answer = who
        .client()
        .post(format!("{base}/epcis/capture"))
        .header("content-type", "application/ld+json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = answer.status();
    let text = answer.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// One query page: status, the document, and the next page's token.
async fn query_page(
    base: &str,
    who: &Credentials,
    params: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let answer = who
        .client()
        .get(format!("{base}/epcis/events"))
        .query(params)
        .send()
        .await
        .expect("request");
    let status = answer.status();
    if status == StatusCode::OK {
        assert_eq!(
            answer
                .headers()
                .get("gs1-epcis-version")
                .and_then(|v| v.to_str().ok()),
            Some("2.0.0")
        );
    }
    let link = answer
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = answer.text().await.expect("body");
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let token = link.as_deref().and_then(|l| {
        l.split("nextPageToken=")
            .nth(1)
            .and_then(|t| t.split(['&', '>']).next())
            .map(str::to_string)
    });
    (status, doc, token)
}

fn event_list(doc: &Value) -> Vec<Value> {
    doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every event the query answers, following `nextPageToken` page by page.
async fn query_all(base: &str, who: &Credentials, params: &[(&str, &str)]) -> Vec<Value> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if let Some(t) = &token {
            p.push(("nextPageToken", t.as_str()));
        }
        let (status, doc, next) = query_page(base, who, &p).await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        all.extend(event_list(&doc));
        match next {
            Some(n) => token = Some(n),
            None => return all,
        }
    }
    panic!("paging did not end");
}

fn sent_events(doc: &str) -> Vec<Value> {
    let value: Value = serde_json::from_str(doc).expect("fixture is JSON");
    value["epcisBody"]["eventList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Captures every GS1 example as one sender; each capture is new (201) with a hash id per
/// event, and the query gives back every event exactly as sent, in capture order. The
/// answered query document passes the EPCIS rules itself.
async fn every_example_comes_back_unchanged(t: Target) {
    let Some(data) = epcis_data() else {
        return;
    };
    let app = spawn_app(&t).await;
    let courier = system(&app.app, "courier-cryo", &[]).await;
    let mut expected: Vec<Value> = Vec::new();
    let mut failures = Vec::new();
    for (name, doc) in examples(&data) {
        let (status, answer) = capture(&app.base, &courier, &doc).await;
        let sent = sent_events(&doc);
        if status != StatusCode::CREATED {
            failures.push(format!("{name}: {status} {answer}"));
            continue;
        }
        let hashes = answer["events"].as_array().cloned().unwrap_or_default();
        assert_eq!(hashes.len(), sent.len(), "{name}: {answer}");
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(h["index"], json!(i));
            assert!(
                h["hashID"].as_str().is_some_and(
                    |id| id.starts_with("ni:///sha-256;") && id.ends_with("?ver=CBV2.0")
                ),
                "{name}: {h}"
            );
        }
        assert_eq!(answer["captureErrorBehaviour"], "rollback");
        expected.extend(sent);
    }
    assert!(
        failures.is_empty(),
        "refused examples:\n{}",
        failures.join("\n")
    );
    assert!(expected.len() > 40, "the examples hold events");

    let all = query_all(
        &app.base,
        &courier,
        &[("autologEvents", "captured"), ("perPage", "500")],
    )
    .await;
    assert_eq!(all.len(), expected.len());
    for (i, (got, sent)) in all.iter().zip(&expected).enumerate() {
        assert_eq!(got, sent, "event {i} comes back unchanged");
    }
    // The answer is a valid EPCISQueryDocument: every extension's namespace is declared.
    let (status, doc, _) = query_page(
        &app.base,
        &courier,
        &[("autologEvents", "captured"), ("perPage", "500")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["type"], "EPCISQueryDocument");
    let parsed = parse_document(&doc).unwrap_or_else(|e| panic!("query document: {e}"));
    assert_eq!(parsed.events.len(), expected.len());

    // Captured twice: stored once, the first capture answered.
    let (name, doc) = examples(&data).into_iter().next().expect("an example");
    let (status, again) = capture(&app.base, &courier, &doc).await;
    assert_eq!(status, StatusCode::OK, "{name}: {again}");
    assert_eq!(again["duplicate"], true);
    let recount = query_all(
        &app.base,
        &courier,
        &[("autologEvents", "captured"), ("perPage", "500")],
    )
    .await;
    assert_eq!(recount.len(), expected.len(), "stored once");
}

#[tokio::test]
async fn every_example_comes_back_unchanged_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "epcis_examples",
        every_example_comes_back_unchanged,
    )
    .await;
}

#[tokio::test]
async fn every_example_comes_back_unchanged_on_postgres() {
    run_on(
        Backend::Postgres,
        "epcis_examples_pg",
        every_example_comes_back_unchanged,
    )
    .await;
}

/// Every invalid document is refused with a 4xx naming the field (in its event), and
/// nothing is written; so is a valid document with one bad event.
#[tokio::test]
async fn invalid_documents_are_refused_and_write_nothing() {
    run_on(Backend::Sqlite, "epcis_invalid", |t| async move {
        let Some(data) = epcis_data() else {
            return;
        };
        let app = spawn_app(&t).await;
        let courier = system(&app.app, "courier-cryo", &[]).await;
        let invalid = documents(&data.join("invalid"));
        assert_eq!(invalid.len(), 15);
        for (name, doc) in &invalid {
            let (status, answer) = capture(&app.base, &courier, doc).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
            let field = answer["error"]["field"].as_str().unwrap_or_default();
            if name == "EPCISDocument_without_context.json" {
                assert_eq!(field, "@context", "{name}: {answer}");
            } else {
                assert!(
                    field.starts_with("epcisBody.eventList["),
                    "{name} names the event and field: {answer}"
                );
            }
            assert!(answer["error"]["rule"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
        }

        // A good document with one bad event: refused naming it, nothing stored.
        let (_, doc) = examples(&data)
            .into_iter()
            .find(|(n, _)| n == "Example_9.6.1-ObjectEvent.jsonld")
            .expect("example");
        let mut value: Value = serde_json::from_str(&doc).expect("json");
        value["epcisBody"]["eventList"][1]["action"] = json!("CREATE");
        let (status, answer) = capture(&app.base, &courier, &value.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], "epcisBody.eventList[1].action");

        // Not JSON: the line and column.
        let (status, answer) = capture(&app.base, &courier, "{\n  \"type\": ,\n}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["value"], "line 2 column 11", "{answer}");

        let stored = query_all(&app.base, &courier, &[("autologEvents", "captured")]).await;
        assert!(stored.is_empty(), "nothing was written: {stored:?}");
        let outcome = app
            .app
            .store()
            .epcis_events(&autolog_store::EpcisQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("read the store");
        assert!(outcome.is_empty());
    })
    .await;
}

fn time_of(event: &Value) -> i64 {
    DateTime::parse(event["eventTime"].as_str().unwrap_or_default())
        .expect("eventTime")
        .utc_micros()
}

fn biz_step_is(event: &Value, word: &str) -> bool {
    let b = event["bizStep"].as_str().unwrap_or_default();
    b == word
        || b == format!("https://ref.gs1.org/cbv/BizStep-{word}")
        || b == format!("urn:epcglobal:cbv:bizstep:{word}")
}

fn names_epc(event: &Value, fields: &[&str], epcs: &[&str]) -> bool {
    fields.iter().any(|f| match &event[*f] {
        Value::String(s) => epcs.contains(&s.as_str()),
        Value::Array(items) => items
            .iter()
            .any(|i| i.as_str().is_some_and(|s| epcs.contains(&s))),
        _ => false,
    })
}

/// The standard filters select what they say over the GS1 examples, paging by any size
/// gives the same events, and bad parameters are refused naming them.
#[tokio::test]
async fn filters_and_paging_over_the_examples() {
    run_on(Backend::Sqlite, "epcis_filters", |t| async move {
        let Some(data) = epcis_data() else {
            return;
        };
        let app = spawn_app(&t).await;
        let courier = system(&app.app, "courier-cryo", &[]).await;
        let mut sent: Vec<Value> = Vec::new();
        for (name, doc) in examples(&data) {
            let (status, answer) = capture(&app.base, &courier, &doc).await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {answer}");
            sent.extend(sent_events(&doc));
        }
        let base = [("autologEvents", "captured"), ("perPage", "500")];
        let sgtin = "urn:epc:id:sgtin:0614141.107346.2018";
        let sgtin_dl = "https://id.gs1.org/01/10614141073464/21/2018";
        let cutoff = "2020-01-01T00:00:00Z";
        let cutoff_us = DateTime::parse(cutoff).expect("time").utc_micros();
        type Pick = Box<dyn Fn(&Value) -> bool + Send + Sync>;
        let cases: Vec<(Vec<(&str, &str)>, Pick)> = vec![
            (
                vec![("eventType", "AggregationEvent")],
                Box::new(|e: &Value| e["type"] == "AggregationEvent"),
            ),
            (
                vec![("eventType", "TransformationEvent|AssociationEvent")],
                Box::new(|e: &Value| {
                    e["type"] == "TransformationEvent" || e["type"] == "AssociationEvent"
                }),
            ),
            (
                vec![("EQ_bizStep", "shipping")],
                Box::new(|e: &Value| biz_step_is(e, "shipping")),
            ),
            (
                vec![("EQ_bizStep", "https://ref.gs1.org/cbv/BizStep-receiving")],
                Box::new(|e: &Value| biz_step_is(e, "receiving")),
            ),
            (
                vec![("EQ_disposition", "in_transit")],
                Box::new(|e: &Value| {
                    let d = e["disposition"].as_str().unwrap_or_default();
                    d == "in_transit"
                        || d.ends_with("Disp-in_transit")
                        || d.ends_with("disp:in_transit")
                }),
            ),
            (
                vec![("MATCH_epc", sgtin)],
                Box::new(move |e: &Value| {
                    names_epc(e, &["epcList", "childEPCs"], &[sgtin, sgtin_dl])
                }),
            ),
            (
                vec![("MATCH_anyEPC", sgtin)],
                Box::new(move |e: &Value| {
                    names_epc(
                        e,
                        &[
                            "epcList",
                            "childEPCs",
                            "parentID",
                            "inputEPCList",
                            "outputEPCList",
                        ],
                        &[sgtin, sgtin_dl],
                    )
                }),
            ),
            (
                vec![("GE_eventTime", cutoff)],
                Box::new(move |e: &Value| time_of(e) >= cutoff_us),
            ),
            (
                vec![("LT_eventTime", cutoff)],
                Box::new(move |e: &Value| time_of(e) < cutoff_us),
            ),
            (
                vec![("GE_recordTime", "2000-01-01T00:00:00Z")],
                Box::new(|_: &Value| true),
            ),
            (
                vec![("LT_recordTime", "2000-01-01T00:00:00Z")],
                Box::new(|_: &Value| false),
            ),
        ];
        for (params, pick) in cases {
            let mut p = base.to_vec();
            p.extend(params.iter().copied());
            let got = query_all(&app.base, &courier, &p).await;
            let want: Vec<Value> = sent.iter().filter(|e| pick(e)).cloned().collect();
            let name = params[0].0;
            if name != "LT_recordTime" {
                assert!(!want.is_empty(), "{params:?} selects some example events");
            }
            if name != "GE_recordTime" {
                assert!(want.len() < sent.len(), "{params:?} leaves some out");
            }
            assert_eq!(got, want, "{params:?}");
        }
        // The MATCH_epc case selects something, and the DL form matches the URN.
        let by_urn = query_all(
            &app.base,
            &courier,
            &[("MATCH_epc", sgtin), ("autologEvents", "captured")],
        )
        .await;
        assert!(!by_urn.is_empty());
        let by_dl = query_all(
            &app.base,
            &courier,
            &[("MATCH_epc", sgtin_dl), ("autologEvents", "captured")],
        )
        .await;
        assert_eq!(
            by_urn, by_dl,
            "an EPC URN and its Digital Link match each other"
        );

        // Paging: any page size gives the same events, in the same order.
        for per_page in ["1", "7", "30"] {
            let paged = query_all(
                &app.base,
                &courier,
                &[("autologEvents", "captured"), ("perPage", per_page)],
            )
            .await;
            assert_eq!(paged, sent, "perPage={per_page}");
        }
        let (_, first, token) = query_page(
            &app.base,
            &courier,
            &[("autologEvents", "captured"), ("perPage", "5")],
        )
        .await;
        assert_eq!(event_list(&first).len(), 5);
        let token = token.expect("a next page");
        // A token with other filters is refused naming it.
        let (status, e, _) = query_page(
            &app.base,
            &courier,
            &[
                ("autologEvents", "captured"),
                ("EQ_bizStep", "shipping"),
                ("nextPageToken", &token),
            ],
        )
        .await;
        assert_eq!(
            (status, e["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("nextPageToken")),
            "{e}"
        );

        // Unknown parameters and bad values: 400 naming them.
        for (name, value) in [
            ("EQ_action", "ADD"),
            ("eventType", "QuantityEvent"),
            ("EQ_bizStep", "transforming"),
            ("EQ_disposition", "in_transport"),
            ("GE_eventTime", "22-07-2026"),
            ("perPage", "0"),
            ("perPage", "many"),
            ("MATCH_epc", "not a uri"),
            ("nextPageToken", "garbage"),
        ] {
            let (status, e, _) = query_page(&app.base, &courier, &[(name, value)]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}: {e}");
            assert_eq!(e["error"]["field"], name, "{e}");
        }

        // Discovery.
        let client = courier.client();
        let r = client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/epcis/capture", app.base),
            )
            .send()
            .await
            .expect("options");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["gs1-epcis-version"], "2.0.0");
        assert_eq!(r.headers()["gs1-capture-error-behaviour"], "rollback");
        let r = client
            .get(format!("{}/epcis/eventTypes", app.base))
            .send()
            .await
            .expect("event types");
        assert_eq!(r.status(), StatusCode::OK);
        let types: Value = r.json().await.expect("json");
        assert_eq!(types["member"].as_array().map(Vec::len), Some(5));
        let r = client
            .get(format!("{}/epcis", app.base))
            .send()
            .await
            .expect("top");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["gs1-cbv-version"], "2.0.0");
    })
    .await;
}

/// A DIN's barcode data as scanned: `=` + DIN + type-3 flags (60 + its MOD 37-2 check).
fn din_barcode(din: &str) -> String {
    let body = &din[..13];
    let k = mod37_2_check(body).expect("alphabet");
    format!("={body}{}", 60 + MOD37.find(k).expect("in alphabet"))
}

/// One chain through collection, shipment to Boston, receipt and a manufacturing step.
async fn a_chain(app: &Autolog) -> (String, Vec<String>) {
    let coi = autolog_test_support::enrol_at_los_angeles(app, "PK-EPCIS-1", "enrol-epcis").await;
    let dins: Vec<String> = ["A999926000301", "A999926000302"]
        .iter()
        .map(|d| Din::parse("din", d).expect("DIN").to_string())
        .collect();
    let event = |id: &str, occurred: &str, actor: &str, site: &str, kind: &str, data: Value| {
        json!({
            "stream": format!("coi/{coi}"), "occurred_at": occurred, "actor": format!("person/{actor}"),
            "site": site, "source": {"system": "journey", "source_event_id": format!("epcis/{id}")},
            "body": {"type": kind, "version": 1, "data": data},
        })
    };
    let events = [
        event(
            "collect",
            "2026-11-03T14:00:00-08:00[America/Los_Angeles]",
            "P-0005",
            "S-LAX-01",
            "chain.collected",
            json!({
                "collection_site_id": "S-LAX-01", "operator_id": "P-0005", "device_id": "APH-LAX-01",
                "started_at": "2026-11-03T10:00:00-08:00", "ended_at": "2026-11-03T14:00:00-08:00", "dins": dins,
            }),
        ),
        event(
            "handoff",
            "2026-11-03T15:00:00-08:00[America/Los_Angeles]",
            "P-0005",
            "S-LAX-01",
            "custody.handed_off",
            json!({
                "handoff_id": "H-EPCIS-1", "step_code": "SHIP-OUT", "from_site_id": "S-LAX-01", "handed_off_by": "P-0005",
                "destination_site_id": "S-BOS-01", "courier": "WORLD-COURIER", "units": dins, "unit_count": 2,
                "container_id": "DS-EPCIS-1", "seal_id": "SEAL-EPCIS-1", "expected_arrival_by": "2026-11-05T00:00:00Z",
                "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0},
            }),
        ),
        event(
            "receipt",
            "2026-11-04T18:00:00-05:00[America/New_York]",
            "P-0002",
            "S-BOS-01",
            "custody.received",
            json!({
                "handoff_id": "H-EPCIS-1", "step_code": "RECEIVE-MFG", "receiving_site_id": "S-BOS-01", "received_by": "P-0002",
                "scanned_labels": dins.iter().map(|d| json!({"unit": din_barcode(d), "coi": coi})).collect::<Vec<_>>(),
                "container_id": "DS-EPCIS-1", "seal_id": "SEAL-EPCIS-1", "seal_intact": true,
                "temperature_log": {"min_celsius": 3.1, "max_celsius": 6.8, "logger_id": "TL-0042"},
            }),
        ),
        event(
            "manufacture",
            "2026-11-05T09:00:00-05:00[America/New_York]",
            "P-0002",
            "S-BOS-01",
            "chain.step_performed",
            json!({
                "step_code": "MANUFACTURE", "site_id": "S-BOS-01", "performed_by": "P-0002",
                "equipment_ids": ["BIO-BOS-01"], "started_at": "2026-11-05T14:00:00Z",
            }),
        ),
    ];
    for e in &events {
        let result = app
            .append_json(e.to_string().as_bytes())
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e["body"]["type"]));
        assert!(result.alerts.is_empty(), "{}", serde_json::json!(result));
    }
    (coi, dins)
}

/// Autolog's chain events come out as EPCIS ObjectEvents that pass the EPCIS rules, for
/// those whose scope holds the chain; captured events only for their sender and
/// network-wide readers.
#[tokio::test]
async fn chain_events_are_exported_in_scope_and_captures_are_private() {
    run_on(Backend::Sqlite, "epcis_export", |t| async move {
        let app = spawn_app(&t).await;
        let (coi, dins) = a_chain(&app.app).await;
        let auditor = person(&app.app, "P-EPC-AUD", &[("auditor", "*")]).await;
        let nurse = person(&app.app, "P-EPC-LAX", &[("treatment_nurse", "S-LAX-01")]).await;
        let outsider = person(&app.app, "P-EPC-FRA", &[("qc_analyst", "S-FRA-01")]).await;

        let (status, doc, _) = query_page(&app.base, &nurse, &[("autologCOI", &coi)]).await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        let events = event_list(&doc);
        let steps: Vec<&str> = events.iter().map(|e| e["bizStep"].as_str().unwrap_or("")).collect();
        assert_eq!(steps, ["commissioning", "shipping", "receiving", "assembling"], "{doc}");
        let din_uris: Vec<Value> = dins.iter().map(|d| json!(format!("urn:isbt128:din:{d}"))).collect();
        for e in &events {
            assert_eq!(e["type"], "ObjectEvent");
            assert!(e["eventID"].as_str().is_some_and(|id| id.starts_with("urn:uuid:")), "{e}");
            assert_eq!(e["autolog:coi"], json!(coi));
            assert_eq!(e["epcList"], json!(din_uris), "{e}");
        }
        assert_eq!(events[0]["readPoint"]["id"], "https://id.gs1.org/414/0614141000029", "Los Angeles' GLN");
        assert_eq!(events[0]["eventTime"], "2026-11-03T14:00:00.000-08:00");
        assert_eq!(events[0]["eventTimeZoneOffset"], "-08:00");
        assert_eq!(events[1]["destinationList"][0]["destination"], "https://id.gs1.org/414/0614141000012");
        assert_eq!(events[2]["bizLocation"]["id"], "https://id.gs1.org/414/0614141000012", "Boston's GLN");
        // They pass the EPCIS rules, as a capture document and as the query document.
        let capture_doc = json!({
            "@context": doc["@context"], "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2026-11-27T00:00:00Z", "epcisBody": {"eventList": events},
        });
        let parsed = parse_document(&capture_doc).unwrap_or_else(|e| panic!("exported events: {e}"));
        assert_eq!(parsed.events.len(), 4);
        assert_eq!(
            parsed.events[1].biz_step.as_deref(),
            Some("https://ref.gs1.org/cbv/BizStep-shipping")
        );
        parse_document(&doc).unwrap_or_else(|e| panic!("query document: {e}"));
        // Filters apply to them too.
        let shipped = query_all(&app.base, &nurse, &[("autologCOI", &coi), ("EQ_bizStep", "shipping")]).await;
        assert_eq!(shipped.len(), 1);
        let dl = query_all(&app.base, &nurse, &[("autologEvents", "chain"), ("MATCH_epc", &format!("urn:isbt128:din:{}", dins[0]))]).await;
        assert_eq!(dl.len(), 4);

        // Outside the chain's sites: refused by COI, absent from the default query.
        let (status, e, _) = query_page(&app.base, &outsider, &[("autologCOI", &coi)]).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("autologCOI")), "{e}");
        assert!(query_all(&app.base, &outsider, &[]).await.is_empty());

        // Captured events: their sender and network-wide readers see them; no one else.
        let courier = system(&app.app, "courier-cryo", &[]).await;
        let mes = system(&app.app, "mes-bos", &[]).await;
        let doc = json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-11-20T10:00:00Z",
            "epcisBody": {"eventList": [{
                "type": "ObjectEvent", "eventTime": "2026-11-20T09:00:00.000+01:00", "eventTimeZoneOffset": "+01:00",
                "epcList": ["urn:epc:id:sscc:0614141.1234567890"], "action": "OBSERVE", "bizStep": "departing",
            }]},
        });
        let (status, answer) = capture(&app.base, &courier, &doc.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let captured = [("autologEvents", "captured")];
        assert_eq!(query_all(&app.base, &courier, &captured).await.len(), 1);
        assert_eq!(query_all(&app.base, &auditor, &captured).await.len(), 1);
        assert!(query_all(&app.base, &mes, &captured).await.is_empty());
        assert!(query_all(&app.base, &nurse, &captured).await.is_empty());
        // The auditor sees both kinds by default: the capture first, then the chain.
        let everything = query_all(&app.base, &auditor, &[("perPage", "2")]).await;
        assert_eq!(everything.len(), 5);
        assert_eq!(everything[0]["bizStep"], "departing");
        // An auditor records nothing: capture is refused.
        let (status, _) = capture(&app.base, &auditor, &doc.to_string()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    })
    .await;
}
