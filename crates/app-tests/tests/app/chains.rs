//! Enrolment and COI issuance: unique across tasks and instances sharing a database,
//! never reused after a cancellation, upstream COIs validated.

use std::collections::HashSet;
use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use autolog_domain::identifiers::Coi;
use autolog_domain::SigningKey;
use proptest::prelude::*;
use serde_json::{json, Value};

async fn instance(path: &std::path::Path) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(path)
        .await
        .expect("store");
    Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[7u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN")
}

async fn with_network(app: &Autolog) {
    autolog_test_support::import_examples(app).await;
}

fn enrolment(id: &str) -> Value {
    json!({
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005",
        "site": "S-LAX-01",
        "source": {"system": "emr-lax", "source_event_id": id},
        "patient_key": format!("PK-{id}"),
        "product_code": "CART-19",
        "treatment_site_id": "S-LAX-01",
        "collection_site_id": "S-PAR-01"
    })
}

async fn enrol(app: &Autolog, body: &Value) -> Result<String, AppError> {
    app.enrol(body.to_string().as_bytes())
        .await
        .map(|(coi, _)| coi)
}

fn refused(result: Result<String, AppError>) -> autolog_domain::FieldError {
    match result {
        Err(AppError::Invalid(f)) => f,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]
    /// Several tasks on two instances sharing one database issue COIs at once: no duplicate,
    /// each with a valid check character, each the key of its own chain.
    #[test]
    fn a_coi_is_never_issued_twice(tasks in 2usize..6, per_task in 1usize..8) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("a.db");
            let first = Arc::new(instance(&path).await);
            with_network(&first).await;
            let second = Arc::new(instance(&path).await);
            let mut handles = Vec::new();
            for t in 0..tasks {
                let app = if t % 2 == 0 { first.clone() } else { second.clone() };
                handles.push(tokio::spawn(async move {
                    let mut cois = Vec::new();
                    for i in 0..per_task {
                        cois.push(enrol(&app, &enrolment(&format!("t{t}-{i}"))).await.expect("enrol"));
                    }
                    cois
                }));
            }
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.await.expect("task"));
            }
            let distinct: HashSet<&String> = all.iter().collect();
            assert_eq!(distinct.len(), tasks * per_task, "{all:?}");
            for coi in &all {
                let parsed = Coi::parse("coi", coi).expect("a valid COI with its check character");
                assert_eq!(&parsed.to_string(), coi);
                assert!(coi.starts_with("CHA9999"));
                first.stream_state(&format!("coi/{coi}"), None, None).await.expect("its chain");
            }
        });
    }
}

#[tokio::test]
async fn a_cancelled_coi_is_never_issued_again_and_upstream_cois_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = instance(&dir.path().join("a.db")).await;
    with_network(&app).await;
    let cancelled = enrol(&app, &enrolment("c-1")).await.expect("enrol");
    let cancel = json!({
        "stream": format!("coi/{cancelled}"),
        "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005",
        "source": {"system": "emr-lax", "source_event_id": "c-1-cancel"},
        "body": {"type": "chain.cancelled", "version": 1, "data": {"cancellation_reason": "patient withdrew consent"}}
    });
    app.append_json(cancel.to_string().as_bytes())
        .await
        .expect("cancel");
    let mut later = HashSet::new();
    for i in 0..20 {
        later.insert(
            enrol(&app, &enrolment(&format!("c-after-{i}")))
                .await
                .expect("enrol"),
        );
    }
    assert!(!later.contains(&cancelled), "never issued again");
    // Sent as an upstream COI, it is refused too.
    let mut again = enrolment("c-2");
    again["coi"] = json!(cancelled);
    again["upstream_system"] = json!("emr-lax");
    let e = refused(enrol(&app, &again).await);
    assert_eq!(e.field, "coi");
    assert!(e.rule.contains("already issued"), "{e}");

    // An upstream COI: the check character is verified, then it is accepted once.
    let mut upstream = enrolment("u-1");
    upstream["coi"] = json!("CHA999926900001A");
    upstream["upstream_system"] = json!("emr-lax");
    let e = refused(enrol(&app, &upstream).await);
    assert!(e.rule.contains("check character is wrong"), "{e}");
    let good = Coi::parse("coi", "&/CHA999926900001")
        .expect("content")
        .to_string();
    upstream["coi"] = json!(good);
    assert_eq!(enrol(&app, &upstream).await.expect("accepted"), good);
    let mut no_system = enrolment("u-2");
    no_system["coi"] = json!(Coi::parse("coi", "&/CHA999926900002")
        .expect("content")
        .to_string());
    assert_eq!(
        refused(enrol(&app, &no_system).await).field,
        "upstream_system"
    );

    // Unknown product or site, a key that is not a code, a stray field: refused, nothing issued.
    let mut bad = enrolment("b-1");
    bad["product_code"] = json!("NOPE");
    assert_eq!(refused(enrol(&app, &bad).await).field, "product_code");
    let mut bad = enrolment("b-2");
    bad["patient_key"] = json!("Jane Doe 1980-01-01");
    assert_eq!(refused(enrol(&app, &bad).await).field, "patient_key");
    let mut bad = enrolment("b-3");
    bad["date_of_birth"] = json!("1980-01-01");
    assert_eq!(refused(enrol(&app, &bad).await).field, "date_of_birth");

    // Resent: the same chain, not a second COI.
    let first = enrol(&app, &enrolment("r-1")).await.expect("enrol");
    assert_eq!(enrol(&app, &enrolment("r-1")).await.expect("resend"), first);

    // An Autolog without an issuer FIN accepts upstream COIs only.
    let plain = Autolog::from_parts(app.store().clone(), SigningKey::from_bytes(&[7u8; 32]));
    let e = refused(enrol(&plain, &enrolment("n-1")).await);
    assert!(e.rule.contains("--coi-issuer-fin"), "{e}");
}

fn din(body13: &str) -> String {
    autolog_domain::identifiers::Din::parse("din", body13)
        .expect("DIN")
        .to_string()
}

fn collection(
    coi: &str,
    id: &str,
    site: &str,
    operator: &str,
    device: &str,
    dins: &[String],
) -> Value {
    json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-11-10T12:30:00+01:00[Europe/Paris]",
        "actor": format!("person/{operator}"),
        "site": site,
        "source": {"system": "aph-par", "source_event_id": id},
        "body": {"type": "chain.collected", "version": 1, "data": {
            "collection_site_id": site, "operator_id": operator, "device_id": device,
            "started_at": "2026-11-10T08:00:00+01:00", "ended_at": "2026-11-10T12:00:00+01:00",
            "dins": dins
        }}
    })
}

async fn append_refused(app: &Autolog, body: &Value) -> autolog_domain::FieldError {
    match app.append_json(body.to_string().as_bytes()).await {
        Err(AppError::Invalid(f)) => f,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_collection_checks_site_operator_and_device_and_links_each_din_forever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = instance(&dir.path().join("a.db")).await;
    with_network(&app).await;
    let a = enrol(&app, &enrolment("a")).await.expect("enrol A");
    let b = enrol(&app, &enrolment("b")).await.expect("enrol B");
    let bags = [din("A999926123456"), din("A999926123457")];
    let size = app.store().head().await.expect("head").position;

    let cases = [
        (
            collection(&a, "x1", "S-BOS-01", "P-0001", "APH-PAR-01", &bags),
            "body.data.collection_site_id",
            "is not this chain's collection site (S-PAR-01)",
        ),
        (
            collection(&a, "x2", "S-PAR-01", "P-0002", "APH-PAR-01", &bags),
            "body.data.operator_id",
            "no qualification at S-PAR-01",
        ),
        (
            collection(&a, "x3", "S-PAR-01", "P-0001", "CRF-BOS-01", &bags),
            "body.data.device_id",
            "not an apheresis_device",
        ),
        (
            collection(&a, "x4", "S-PAR-01", "P-0001", "APH-LAX-01", &bags),
            "body.data.device_id",
            "not at S-PAR-01",
        ),
        (
            collection(
                &a,
                "x5",
                "S-PAR-01",
                "P-0001",
                "APH-PAR-01",
                &[bags[0].clone(), bags[0].clone()],
            ),
            "body.data.dins[1]",
            "appears twice",
        ),
        (
            collection(
                &a,
                "x6",
                "S-PAR-01",
                "P-0001",
                "APH-PAR-01",
                &["A999926123456X".to_string()],
            ),
            "body.data.dins[0]",
            "check character",
        ),
    ];
    for (body, field, rule) in cases {
        let e = append_refused(&app, &body).await;
        assert_eq!(e.field, field, "{e}");
        assert!(e.rule.contains(rule), "{field}: {e}");
    }
    // Nothing is written on the chain; each refusal by a rule (not the malformed payloads)
    // is an alert, recorded on its own.
    let chain_events = app
        .store()
        .stream_events(&format!("coi/{a}"), autolog_domain::Instant::MAX)
        .await
        .expect("chain");
    assert_eq!(chain_events.len(), 1, "only the enrolment");
    assert_eq!(
        app.store().head().await.expect("head").position,
        size + 4,
        "four refusal alerts"
    );
    let alerts = app
        .alerts(&autolog_app::AlertQuery::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 4);
    assert!(alerts
        .iter()
        .all(|alert| alert.raised.rule == "chain.step_refused"
            && alert.raised.coi.as_deref() == Some(a.as_str())));

    // The treatment center sends patient C to another site: from then on only that site
    // collects, and only if it may perform the collection.
    let c = enrol(&app, &enrolment("c")).await.expect("enrol C");
    let assigned = json!({
        "stream": format!("coi/{c}"),
        "occurred_at": "2026-11-04T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005", "site": "S-LAX-01",
        "source": {"system": "emr-lax", "source_event_id": "c-assign"},
        "body": {"type": "chain.collection_site_assigned", "version": 1, "data": {
            "collection_site_id": "S-BOS-01", "reason": "Paris has no chair before day 20"}}
    });
    app.append_json(assigned.to_string().as_bytes())
        .await
        .expect("assigned");
    let other_bag = [din("A999926123459")];
    let e = append_refused(
        &app,
        &collection(&c, "z1", "S-PAR-01", "P-0001", "APH-PAR-01", &other_bag),
    )
    .await;
    assert!(e.rule.contains("collection site (S-BOS-01)"), "{e}");
    let e = append_refused(
        &app,
        &collection(&c, "z2", "S-BOS-01", "P-0001", "APH-PAR-01", &other_bag),
    )
    .await;
    assert_eq!(e.field, "body.data.collection_site_id", "{e}");
    assert!(e.rule.contains("may not perform step COLLECT"), "{e}");

    let done = app
        .append_json(
            collection(&a, "ok", "S-PAR-01", "P-0001", "APH-PAR-01", &bags)
                .to_string()
                .as_bytes(),
        )
        .await
        .expect("collected");
    assert_eq!(done.linked.len(), 2);
    let link = app
        .stream_state(&format!("din/{}", bags[0]), None, None)
        .await
        .expect("link");
    assert_eq!(link.state["coi"], json!(a));

    // The same bag on another chain is refused, naming the chain it belongs to.
    let e = append_refused(
        &app,
        &collection(
            &b,
            "y1",
            "S-PAR-01",
            "P-0001",
            "APH-PAR-01",
            &[bags[1].clone()],
        ),
    )
    .await;
    assert_eq!(e.field, "body.data.dins[0]");
    assert!(e.rule.contains(&a), "{e}");
    // Nobody but Autolog records a DIN link.
    let forged = json!({
        "stream": format!("din/{}", din("A999926123458")),
        "occurred_at": "2026-11-10T12:30:00+01:00[Europe/Paris]",
        "actor": "person/P-0001",
        "source": {"system": "aph-par", "source_event_id": "forged"},
        "body": {"type": "din.linked", "version": 1, "data": {"din": din("A999926123458"), "coi": b}}
    });
    assert_eq!(append_refused(&app, &forged).await.field, "body.type");
}

#[tokio::test]
async fn the_chain_as_known_before_a_correction_is_unchanged_by_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = instance(&dir.path().join("a.db")).await;
    with_network(&app).await;
    let coi = enrol(&app, &enrolment("k")).await.expect("enrol");
    let bags = [din("A999926223456")];
    app.append_json(
        collection(&coi, "k-col", "S-PAR-01", "P-0001", "APH-PAR-01", &bags)
            .to_string()
            .as_bytes(),
    )
    .await
    .expect("collected");
    let valid = "2026-11-20T00:00:00Z";
    let before = json!(app.chain(&coi, Some(valid), None).await.expect("chain"));
    assert_eq!(before["state"], "collected");
    assert_eq!(before["custodian_site_id"], "S-PAR-01");
    assert_eq!(before["units"][0]["din"], json!(bags[0]));
    assert_eq!(
        before["timeline"][1]["occurred_at_display"]["site_local"],
        "2026-11-10T12:30:00+01:00[Europe/Paris]"
    );
    let k1 = before["known_at"].as_str().expect("known_at").to_string();

    // Once collected, the chain's patient is fixed: a patient-key correction is refused.
    let rekey = json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005",
        "source": {"system": "emr-lax", "source_event_id": "k-fix"},
        "corrects": {"system": "emr-lax", "source_event_id": "k"},
        "reason": "patient key mistyped at enrolment",
        "body": {"type": "chain.enrolled", "version": 1, "data": {
            "coi": coi, "patient_key": "PK-k2", "product_code": "CART-19",
            "treatment_site_id": "S-LAX-01", "coi_source": "autolog"}}
    });
    let e = append_refused(&app, &rekey).await;
    assert_eq!(e.field, "body.data.patient_key", "{e}");
    // The collection's end was mistyped: restated by a correction (same bags).
    let mut fixed = collection(&coi, "k-col-fix", "S-PAR-01", "P-0001", "APH-PAR-01", &bags);
    fixed["corrects"] = json!({"system": "aph-par", "source_event_id": "k-col"});
    fixed["reason"] = json!("end of collection mistyped");
    fixed["body"]["data"]["ended_at"] = json!("2026-11-10T12:15:00+01:00");
    app.append_json(fixed.to_string().as_bytes())
        .await
        .expect("correction");
    let now = json!(app.chain(&coi, Some(valid), None).await.expect("chain"));
    assert!(
        now["timeline"][1]["superseded_by"].is_string(),
        "{}",
        now["timeline"]
    );
    assert_eq!(now["state"], "collected");
    let then = app
        .chain(&coi, Some(valid), Some(&k1))
        .await
        .expect("chain");
    assert_eq!(
        json!(then),
        before,
        "the chain as known at K1 is exactly what was answered at K1"
    );
    // Any form of the COI finds it; an unknown one is not found.
    let eye = Coi::parse("coi", &coi).expect("coi").eye_readable();
    assert_eq!(
        json!(app
            .chain(&eye, Some(valid), Some(&k1))
            .await
            .expect("chain")),
        before
    );
    let other = Coi::parse("coi", "&/CHA999926999999")
        .expect("coi")
        .to_string();
    assert!(matches!(
        app.chain(&other, None, None).await,
        Err(AppError::NotFound { .. })
    ));
}

/// The COI's year is the issuing instant's calendar year where the patient is enrolled:
/// 2026-12-31 at 23:30 in Los Angeles is already 2027 in UTC, and the COI says 26; an hour
/// later it says 27. Each year has its own sequence.
#[tokio::test]
async fn the_coi_year_is_the_enrolling_sites_calendar_year() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = autolog_domain::Instant::parse_rfc3339("start", "2026-12-31T23:30:00-08:00")
        .expect("valid");
    let clock = Arc::new(autolog_app::ManualClock::new(start));
    let app = instance(&dir.path().join("a.db"))
        .await
        .with_clock(clock.clone());
    with_network(&app).await;
    let mut late = enrolment("year-end");
    late["occurred_at"] = json!("2026-12-31T23:00:00-08:00[America/Los_Angeles]");
    let coi = enrol(&app, &late).await.expect("enrolled");
    assert!(coi.starts_with("CHA999926"), "{coi}");
    clock.advance_seconds(3600);
    let mut new_year = enrolment("new-year");
    new_year["occurred_at"] = json!("2027-01-01T00:15:00-08:00[America/Los_Angeles]");
    let coi = enrol(&app, &new_year).await.expect("enrolled");
    assert!(coi.starts_with("CHA999927000001"), "{coi}");
}

/// The rules read reference records through a cache kept while each record's stream head
/// is unchanged: a record changed after a rule read it is read again, at once.
#[tokio::test]
async fn a_qualification_granted_after_a_refusal_is_seen_by_the_next_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = instance(&dir.path().join("a.db")).await;
    with_network(&app).await;
    let a = enrol(&app, &enrolment("a")).await.expect("enrol A");
    let bags = [din("A999926123456")];
    let by_p2 = |id: &str| collection(&a, id, "S-PAR-01", "P-0002", "APH-PAR-01", &bags);
    for attempt in ["q1", "q2"] {
        let e = append_refused(&app, &by_p2(attempt)).await;
        assert!(e.rule.contains("no qualification at S-PAR-01"), "{e}");
    }
    let qualified = json!([{"person_id": "P-0002", "printed_name": "Daniel Okafor", "status": "active",
        "qualifications": [
            {"site_id": "S-BOS-01", "role": "manufacturing_operator", "valid_until": "2027-06-30T04:00:00Z"},
            {"site_id": "S-BOS-01", "role": "qa_releaser", "valid_until": "2027-06-30T04:00:00Z"},
            {"site_id": "S-PAR-01", "role": "apheresis_operator", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-12-31T23:00:00Z"}]}]);
    let file = autolog_app::ImportFile {
        name: "personnel.json".into(),
        content: qualified.to_string().into_bytes(),
        registry: Some("personnel".into()),
    };
    let report = app
        .import_reference(&[file], "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
    app.append_json(by_p2("q3").to_string().as_bytes())
        .await
        .expect("P-0002 is qualified at S-PAR-01 now");
}
