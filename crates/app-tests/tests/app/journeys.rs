//! Patients' journeys end to end across sites in three time zones (Los Angeles, Boston,
//! Frankfurt), clean and with injected faults: every fault is caught where it first shows.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use autolog_app::RetentionStatus;
use autolog_app::{AlertQuery, AppError, AppendResult, Autolog};
use autolog_domain::identifiers::{mod37_2_check, Din};
use autolog_domain::SigningKey;
use jiff::{tz::TimeZone, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};

const LAX: (&str, &str) = ("S-LAX-01", "America/Los_Angeles");
const BOS: (&str, &str) = ("S-BOS-01", "America/New_York");
const FRA: (&str, &str) = ("S-FRA-01", "Europe/Berlin");
const MOD37: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

async fn network(path: &std::path::Path) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(path)
        .await
        .expect("store");
    network_on(Arc::new(store)).await
}

/// The example network on any store.
async fn network_on(store: Arc<dyn autolog_store::Store>) -> Autolog {
    let app = Autolog::from_parts(store, SigningKey::from_bytes(&[7u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN");
    autolog_test_support::import_examples(&app).await;
    for n in 1..=8 {
        app.set_signing_secret(&format!("P-{n:04}"), SECRET, "person/P-ADMIN")
            .await
            .expect("secret");
    }
    app
}

/// An instant `hours` after `t0`, in a site's zone, in the RFC 9557 form a source sends.
fn at(t0: Timestamp, hours: i64, zone: &str) -> String {
    let tz = TimeZone::get(zone).expect("zone");
    let ts = t0
        .checked_add(jiff::SignedDuration::from_hours(hours))
        .expect("in range");
    ts.to_zoned(tz).to_string()
}

/// A DIN's barcode data as scanned: `=` + DIN + type-3 flags (60 + its MOD 37-2 check).
fn din_barcode(din: &str, misread: bool) -> String {
    let body = &din[..13];
    let k = mod37_2_check(body).expect("alphabet");
    let mut index = MOD37.find(k).expect("in alphabet");
    if misread {
        index = (index + 1) % 37;
    }
    format!("={body}{}", 60 + index)
}

static NEXT_DIN: AtomicU32 = AtomicU32::new(100_000);

fn new_din() -> String {
    let n = NEXT_DIN.fetch_add(1, Ordering::SeqCst);
    Din::parse("din", &format!("A999926{n:06}"))
        .expect("DIN")
        .to_string()
}

/// What goes wrong in a journey (at most one fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Another patient's bag arrives in this shipment (and this patient's in theirs).
    SwappedBag,
    WrongCount,
    WrongSeal,
    UnknownSite,
    MisreadCheckCharacter,
    LateArrival,
    TemperatureExcursion,
}

/// The two custody legs: starting material to manufacturing, final product to the bedside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    ToManufacturing,
    ToTreatment,
}

struct Patient {
    key: String,
    coi: String,
    dins: Vec<String>,
    /// The final product units its batch yields (COI + product code S0001 + division).
    units: Vec<String>,
    t0: Timestamp,
}

fn envelope(
    p: &Patient,
    id: &str,
    hours: i64,
    site: (&str, &str),
    actor: &str,
    body: Value,
) -> Value {
    json!({
        "stream": format!("coi/{}", p.coi),
        "occurred_at": at(p.t0, hours, site.1),
        "actor": format!("person/{actor}"),
        "site": site.0,
        "source": {"system": "journey", "source_event_id": format!("{}/{id}", p.key)},
        "body": body,
    })
}

fn step(
    p: &Patient,
    id: &str,
    hours: i64,
    site: (&str, &str),
    actor: &str,
    kind: &str,
    data: Value,
) -> Value {
    let mut data = data;
    // Signed records are signed by the person they name, re-authenticating with the secret.
    if let Some(field) = autolog_domain::access::signature::signer_field(kind) {
        if data.get("signature").is_none() {
            data["signature"] = json!({"signer_id": data[field], "secret": SECRET});
        }
    }
    envelope(
        p,
        id,
        hours,
        site,
        actor,
        json!({"type": kind, "version": 1, "data": data}),
    )
}

/// Every person's signing secret in these tests.
const SECRET: &str = "correct horse battery staple";

/// A handoff (sender's manifest) and its receipt (what was scanned on arrival).
struct Shipment {
    handoff: Value,
    receipt: Value,
}

fn shipment(p: &Patient, leg: Leg, fault: Option<Fault>, foreign: Option<&str>) -> Shipment {
    let (from, to, ship_step, receive_step, sender, receiver, leave, range, log) = match leg {
        Leg::ToManufacturing => (
            LAX,
            BOS,
            "SHIP-OUT",
            "RECEIVE-MFG",
            "P-0005",
            "P-0002",
            6,
            (2.0, 8.0),
            (3.1, 6.8),
        ),
        Leg::ToTreatment => (
            BOS,
            LAX,
            "SHIP-TC",
            "RECEIVE-TC",
            "P-0002",
            "P-0005",
            21 * 24,
            (-196.0, -150.0),
            (-190.0, -172.5),
        ),
    };
    let tag = if leg == Leg::ToManufacturing {
        "out"
    } else {
        "tc"
    };
    let shipped = if leg == Leg::ToManufacturing {
        &p.dins
    } else {
        &p.units
    };
    let expected = if fault == Some(Fault::LateArrival) {
        leave + 12
    } else {
        leave + 30
    };
    let destination = if fault == Some(Fault::UnknownSite) {
        "S-XXX-99"
    } else {
        to.0
    };
    let handoff = step(
        p,
        &format!("handoff-{tag}"),
        leave,
        from,
        sender,
        "custody.handed_off",
        json!({
            "handoff_id": format!("H-{}-{tag}", p.key),
            "step_code": ship_step,
            "from_site_id": from.0,
            "handed_off_by": sender,
            "destination_site_id": destination,
            "courier": "WORLD-COURIER",
            "units": shipped,
            "unit_count": shipped.len(),
            "container_id": format!("DS-{}-{tag}", p.key),
            "seal_id": format!("SEAL-{}-{tag}", p.key),
            "expected_arrival_by": at(p.t0, expected, "UTC"),
            "temperature_range": {"min_celsius": range.0, "max_celsius": range.1},
        }),
    );
    let mut labels: Vec<Value> = shipped
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let misread = fault == Some(Fault::MisreadCheckCharacter) && i == 0;
            let scanned = match leg {
                Leg::ToManufacturing => din_barcode(d, misread),
                // A final unit's label: its identifier, the last character misread.
                Leg::ToTreatment if misread => {
                    let k = d.chars().last().unwrap_or('0');
                    format!("{}{}", &d[..22], if k == '7' { '8' } else { '7' })
                }
                Leg::ToTreatment => d.to_string(),
            };
            json!({"unit": scanned, "coi": p.coi})
        })
        .collect();
    if fault == Some(Fault::WrongCount) {
        labels.pop();
    }
    if let (Some(Fault::SwappedBag), Some(other)) = (fault, foreign) {
        labels[0] = json!({"unit": din_barcode(other, false)});
    }
    let seal = if fault == Some(Fault::WrongSeal) {
        format!("SEAL-{}-{tag}-X", p.key)
    } else {
        format!("SEAL-{}-{tag}", p.key)
    };
    let max = if fault == Some(Fault::TemperatureExcursion) {
        range.1 + 4.5
    } else {
        log.1
    };
    let receipt = step(
        p,
        &format!("receipt-{tag}"),
        leave + 24,
        to,
        receiver,
        "custody.received",
        json!({
            "handoff_id": format!("H-{}-{tag}", p.key),
            "step_code": receive_step,
            "receiving_site_id": to.0,
            "received_by": receiver,
            "scanned_labels": labels,
            "container_id": format!("DS-{}-{tag}", p.key),
            "seal_id": seal,
            "seal_intact": true,
            "temperature_log": {"min_celsius": log.0, "max_celsius": max, "logger_id": "TL-0042"},
        }),
    );
    Shipment { handoff, receipt }
}

/// A batch from the chain's collections (MES number joined through the crosswalk), the
/// viral vector lot consumed, manufacture and cryopreservation, two final units, QC at
/// Frankfurt with every release test, and the patient-specific release.
fn manufacturing(p: &Patient) -> Vec<Value> {
    manufacturing_with(p, "LV19-2026-014")
}

fn manufacturing_with(p: &Patient, vector_lot: &str) -> Vec<Value> {
    let batch = format!("B-{}", p.key);
    let mut events = vec![
        step(
            p,
            "batch",
            47,
            BOS,
            "P-0002",
            "batch.created",
            json!({
                "batch_id": batch, "site_id": BOS.0, "created_by": "P-0002", "source_dins": p.dins,
                "mes_system": "mes-bos", "mes_batch_number": format!("MES-{}", p.key),
            }),
        ),
        step(
            p,
            "manufacture",
            48,
            BOS,
            "P-0002",
            "chain.step_performed",
            json!({
                "step_code": "MANUFACTURE", "site_id": BOS.0, "performed_by": "P-0002",
                "equipment_ids": ["BIO-BOS-01"], "started_at": at(p.t0, 48, "UTC"), "ended_at": at(p.t0, 240, "UTC"),
            }),
        ),
        step(
            p,
            "vector",
            49,
            BOS,
            "P-0002",
            "batch.material_consumed",
            json!({
                "batch_id": batch, "material": "LV-CD19", "lot": vector_lot, "quantity": 2.5,
                "quantity_unit": "mL", "site_id": BOS.0, "recorded_by": "P-0002", "step_code": "MANUFACTURE",
            }),
        ),
        step(
            p,
            "cryo",
            242,
            BOS,
            "P-0002",
            "chain.step_performed",
            json!({
                "step_code": "CRYO", "site_id": BOS.0, "performed_by": "P-0002",
                "equipment_ids": ["CRF-BOS-01"], "started_at": at(p.t0, 242, "UTC"),
            }),
        ),
        step(
            p,
            "units",
            243,
            BOS,
            "P-0002",
            "batch.units_produced",
            json!({
                "batch_id": batch, "site_id": BOS.0, "recorded_by": "P-0002", "units": p.units,
            }),
        ),
        step(
            p,
            "qc",
            264,
            FRA,
            "P-0003",
            "chain.step_performed",
            json!({
                "step_code": "QC-TEST", "site_id": FRA.0, "performed_by": "P-0003",
                "started_at": at(p.t0, 264, "UTC"), "ended_at": at(p.t0, 400, "UTC"),
            }),
        ),
    ];
    for (code, result, unit) in passing_results() {
        events.push(test_result(p, &batch, code, result, unit));
    }
    events.push(release(p, &batch, &p.key));
    events
}

/// A result for each release test of CART-19, all within specification.
fn passing_results() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        ("VIABILITY", json!(86.5), Some("%")),
        ("CAR-EXPR", json!(41.0), Some("%")),
        ("VCN", json!(2.1), Some("copies/cell")),
        ("STERILITY", json!("negative"), None),
        ("ENDOTOXIN", json!(1.2), Some("EU/mL")),
        ("MYCOPLASMA", json!("not detected"), None),
    ]
}

fn test_result(p: &Patient, batch: &str, code: &str, result: Value, unit: Option<&str>) -> Value {
    let mut data = json!({
        "batch_id": batch, "test_code": code, "method": "per specification", "result": result,
        "site_id": FRA.0, "analyst_id": "P-0003",
    });
    if let Some(u) = unit {
        data["result_unit"] = json!(u);
    }
    let id = format!(
        "result-{code}-{}",
        result.to_string().replace(['"', ' ', '.'], "_")
    );
    step(
        p,
        &id,
        400,
        FRA,
        "P-0003",
        "batch.test_result_recorded",
        data,
    )
}

fn release(p: &Patient, batch: &str, intended: &str) -> Value {
    step(
        p,
        &format!("release-{intended}"),
        480,
        BOS,
        "P-0002",
        "chain.released",
        json!({
            "batch_id": batch, "intended_patient_key": intended, "site_id": BOS.0,
            "released_by": "P-0002", "units": p.units,
        }),
    )
}

async fn enrol(app: &Autolog, key: &str, t0: Timestamp) -> Patient {
    let body = json!({
        "occurred_at": at(t0, 0, LAX.1),
        "actor": "person/P-0005",
        "site": LAX.0,
        "source": {"system": "emr-lax", "source_event_id": format!("enrol/{key}")},
        "patient_key": key,
        "product_code": "CART-19",
        "treatment_site_id": LAX.0,
    });
    let (coi, _) = app.enrol(body.to_string().as_bytes()).await.expect("enrol");
    let parsed = autolog_domain::identifiers::Coi::parse("coi", &coi).expect("COI");
    let units = ["A0", "B0"]
        .iter()
        .map(|d| {
            autolog_domain::identifiers::UnitId::new(&parsed, "S0001", d)
                .expect("unit")
                .to_string()
        })
        .collect();
    Patient {
        key: key.to_string(),
        coi,
        dins: vec![new_din(), new_din()],
        units,
        t0,
    }
}

fn collection(p: &Patient) -> Value {
    step(
        p,
        "collect",
        5,
        LAX,
        "P-0005",
        "chain.collected",
        json!({
            "collection_site_id": LAX.0, "operator_id": "P-0005", "device_id": "APH-LAX-01",
            "started_at": at(p.t0, 1, LAX.1), "ended_at": at(p.t0, 5, LAX.1), "dins": p.dins,
        }),
    )
}

async fn send(app: &Autolog, event: &Value) -> Result<AppendResult, AppError> {
    app.append_json(event.to_string().as_bytes()).await
}

/// Sends an event that must be accepted without raising anything.
async fn clean(app: &Autolog, event: &Value) {
    let result = send(app, event).await.unwrap_or_else(|e| {
        panic!("{} refused: {e}", event["body"]["type"]);
    });
    assert!(
        result.alerts.is_empty(),
        "{}: {}",
        event["body"]["type"],
        json!(result)
    );
}

async fn chain(app: &Autolog, coi: &str) -> Value {
    json!(app.chain(coi, None, None).await.expect("chain"))
}

async fn alerts_of(app: &Autolog, coi: &str) -> Vec<Value> {
    let alerts = app
        .alerts(&AlertQuery {
            status: Some("all".into()),
            coi: Some(coi.to_string()),
            site_id: None,
        })
        .await
        .expect("alerts");
    alerts.iter().map(|a| json!(a)).collect()
}

fn t0() -> Timestamp {
    // Thirty days ago: every step (22 days long) has happened, none is in the future.
    Timestamp::from_second(Timestamp::now().as_second() - 30 * 24 * 3600).expect("in range")
}

#[tokio::test]
async fn clean_journeys_across_three_zones_reach_the_bedside_without_an_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("j.db")).await;
    let start = t0();
    let mut patients = Vec::new();
    for i in 0..3 {
        patients.push(enrol(&app, &format!("PK-E2E-{i}"), start).await);
    }
    // The chains advance interleaved, as they would in a real network.
    for p in &patients {
        clean(&app, &collection(p)).await;
    }
    for p in &patients {
        let s = shipment(p, Leg::ToManufacturing, None, None);
        clean(&app, &s.handoff).await;
        assert_eq!(chain(&app, &p.coi).await["state"], "in_transit");
        clean(&app, &s.receipt).await;
        let c = chain(&app, &p.coi).await;
        assert_eq!(c["state"], "received_at_manufacturing");
        assert_eq!(c["custodian_site_id"], BOS.0);
    }
    for p in &patients {
        for e in manufacturing(p) {
            clean(&app, &e).await;
        }
        assert_eq!(chain(&app, &p.coi).await["state"], "released_for_patient");
        let s = shipment(p, Leg::ToTreatment, None, None);
        clean(&app, &s.handoff).await;
        clean(&app, &s.receipt).await;
        let c = chain(&app, &p.coi).await;
        assert_eq!(c["state"], "received_at_treatment_center", "{c}");
        assert_eq!(c["custodian_site_id"], LAX.0);
        assert!(c["holds"].as_array().expect("holds").is_empty());
        // The timeline shows each step in its site's local time and in UTC.
        let qc = c["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .find(|e| e["body"]["data"]["step_code"] == "QC-TEST")
            .expect("QC step")
            .clone();
        assert!(qc["occurred_at_display"]["site_local"]
            .as_str()
            .expect("local")
            .contains("Europe/Berlin"));
        assert!(alerts_of(&app, &p.coi).await.is_empty());
    }
    // The loop closes for the first patient: thaw, administration, follow-up.
    let p = &patients[0];
    for e in [
        bedside(p, &p.units[0], &p.key, &p.coi, 23 * 24),
        step(
            p,
            "thaw",
            23 * 24,
            LAX,
            "P-0005",
            "chain.step_performed",
            json!({
                "step_code": "THAW", "site_id": LAX.0, "performed_by": "P-0005", "started_at": at(p.t0, 23 * 24, "UTC"),
            }),
        ),
        step(
            p,
            "infuse",
            23 * 24,
            LAX,
            "P-0007",
            "chain.administered",
            json!({
                "step_code": "INFUSE", "site_id": LAX.0, "administered_by": "P-0007", "verified_by": "P-0005", "unit": p.units[0],
            }),
        ),
        step(
            p,
            "ltfu-1",
            25 * 24,
            LAX,
            "P-0007",
            "chain.follow_up_recorded",
            json!({
                "site_id": LAX.0, "recorded_by": "P-0007", "visit_code": "D28", "outcome_code": "CR",
            }),
        ),
    ] {
        clean(&app, &e).await;
    }
    assert_eq!(chain(&app, &p.coi).await["state"], "in_follow_up");
    let report = serde_json::to_value(app.reconciliation().await.expect("report")).expect("json");
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["chains"], 3);
    // A step out of order is refused, naming the state and what it follows, and alerted.
    let q = &patients[1];
    let early = step(
        q,
        "ltfu-early",
        23 * 24,
        LAX,
        "P-0007",
        "chain.follow_up_recorded",
        json!({
            "site_id": LAX.0, "recorded_by": "P-0007", "visit_code": "D28", "outcome_code": "CR",
        }),
    );
    match send(&app, &early).await {
        Err(AppError::Invalid(e)) => {
            assert_eq!(e.field, "body.type");
            assert!(e.rule.contains("received_at_treatment_center"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let alerts = alerts_of(&app, &q.coi).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["rule"], "chain.step_refused");
}

#[tokio::test]
async fn a_bag_of_patient_a_in_patient_bs_shipment_holds_both_chains_until_qa_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("swap.db")).await;
    let start = t0();
    let a = enrol(&app, "PK-SWAP-A", start).await;
    let b = enrol(&app, "PK-SWAP-B", start).await;
    let mut subscriber = app.subscribe_alerts();
    for p in [&a, &b] {
        clean(&app, &collection(p)).await;
        clean(&app, &shipment(p, Leg::ToManufacturing, None, None).handoff).await;
    }
    // B's shipment holds A's first bag in place of B's.
    let receipt = shipment(
        &b,
        Leg::ToManufacturing,
        Some(Fault::SwappedBag),
        Some(&a.dins[0]),
    )
    .receipt;
    let result = send(&app, &receipt).await.expect("the receipt is recorded");
    assert_eq!(result.alerts.len(), 2, "{}", json!(result));
    for p in [&a, &b] {
        let c = chain(&app, &p.coi).await;
        assert_eq!(c["state"], "on_hold", "{}", p.key);
        let findings = c["holds"][0]["findings"].to_string();
        assert!(findings.contains(&a.dins[0]), "{findings}");
    }
    // Resent by a flaky source: the same answer, no second hold or alert.
    let resent = send(&app, &receipt).await.expect("resend");
    assert_eq!(resent.duplicates(), 1);
    assert!(resent.alerts.is_empty());
    assert_eq!(alerts_of(&app, &b.coi).await.len(), 1);
    let b_chain = chain(&app, &b.coi).await;
    assert_eq!(b_chain["resume_state"], "received_at_manufacturing");
    // The bag is at Boston, but custody of record stays with the sender until the
    // discrepancy is resolved.
    assert_eq!(b_chain["location_site_id"], BOS.0, "{b_chain}");
    assert_ne!(b_chain["custodian_site_id"], BOS.0, "{b_chain}");
    assert_eq!(b_chain["disputed_custody"]["receiving_site_id"], BOS.0);
    assert_eq!(
        b_chain["disputed_custody"]["hold_id"],
        b_chain["holds"][0]["hold_id"]
    );
    let findings = b_chain["holds"][0]["findings"].to_string();
    assert!(findings.contains("belongs to chain"), "{findings}");
    assert!(findings.contains("not scanned"), "{findings}");
    // The alerts were pushed to the subscriber at once.
    let pushed = json!(subscriber.try_recv().expect("pushed"));
    assert_eq!(pushed["severity"], "critical");
    // Any further step is refused while on hold.
    let next = manufacturing(&b).remove(0);
    match send(&app, &next).await {
        Err(AppError::Invalid(e)) => assert!(e.rule.contains("on hold"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A's own shipment arrives: a fact, recorded on the held chain (it reconciles, so
    // custody passes); A stays on hold and resumes past the receipt once released.
    send(
        &app,
        &shipment(&a, Leg::ToManufacturing, None, None).receipt,
    )
    .await
    .expect("a receipt on a held chain is recorded");
    let a_chain = chain(&app, &a.coi).await;
    assert_eq!(a_chain["state"], "on_hold", "{a_chain}");
    assert_eq!(a_chain["resume_state"], "received_at_manufacturing");
    assert_eq!(a_chain["custodian_site_id"], BOS.0);
    assert!(a_chain["disputed_custody"].is_null());
    // The report shows both holds and the bag seen on two chains.
    let report = serde_json::to_value(app.reconciliation().await.expect("report")).expect("json");
    assert_eq!(report["open_holds"].as_array().expect("holds").len(), 2);
    assert!(report["units_on_several_chains"]
        .to_string()
        .contains(&a.dins[0]));
    // Hold release: by a person qualified for it (qa_releaser at the site), with a reason.
    let hold_id = b_chain["holds"][0]["hold_id"]
        .as_str()
        .expect("hold id")
        .to_string();
    let release = |who: &str, id: &str| {
        step(
            &b,
            id,
            40,
            BOS,
            who,
            "chain.hold_released",
            json!({
                "hold_id": hold_id, "site_id": BOS.0, "resolved_by": who,
                "resolution_reason": "Bag A re-labelled and returned to chain A's custody under deviation DEV-0042",
            }),
        )
    };
    match send(&app, &release("P-0002-X", "rel-0")).await {
        // Nobody of that id can re-authenticate: the signature is not given.
        Err(AppError::Invalid(e)) => assert!(e.field.contains("signature"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let e = match send(&app, &release("P-0003", "rel-1")).await {
        Err(AppError::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(e.rule.contains("qa_releaser"), "{e}");
    send(&app, &release("P-0008", "rel-2"))
        .await
        .expect("released");
    let b_chain = chain(&app, &b.coi).await;
    assert_eq!(b_chain["state"], "received_at_manufacturing");
    // Resolved: custody of record passes to where the material is.
    assert_eq!(b_chain["custodian_site_id"], BOS.0);
    assert!(b_chain["disputed_custody"].is_null(), "{b_chain}");
    assert_eq!(chain(&app, &a.coi).await["state"], "on_hold");
    // Alerts are acknowledged and resolved by a person, with a note.
    let open = alerts_of(&app, &b.coi).await;
    let id = open
        .iter()
        .find(|x| x["rule"] == "custody.reconciliation_failed")
        .expect("the receipt's alert")["alert_id"]
        .as_str()
        .expect("id")
        .to_string();
    let ack = json!(app
        .handle_alert(
            &id,
            false,
            br#"{"person_id": "P-0008", "note": "investigating"}"#,
        )
        .await
        .expect("ack"));
    assert_eq!(ack["status"], "acknowledged");
    let done = json!(app
        .handle_alert(
            &id,
            true,
            br#"{"person_id": "P-0008", "note": "closed under DEV-0042"}"#,
        )
        .await
        .expect("resolve"));
    assert_eq!(done["status"], "resolved");
    assert!(app
        .handle_alert(&id, true, br#"{"person_id": "P-0008", "note": "again"}"#)
        .await
        .is_err());
    assert!(app
        .handle_alert(&id, false, br#"{"person_id": "NOBODY", "note": "x"}"#)
        .await
        .is_err());
}

/// Runs one journey with at most one fault; checks nothing is raised before the fault,
/// and the fault is caught at the first event where it can be seen.
async fn run_journey(app: &Autolog, n: u32, fault: Option<Fault>, leg: Leg) {
    let start = t0();
    let p = enrol(app, &format!("PK-P-{n}"), start).await;
    let partner = if fault == Some(Fault::SwappedBag) {
        let q = enrol(app, &format!("PK-P-{n}-partner"), start).await;
        clean(app, &collection(&q)).await;
        clean(app, &shipment(&q, Leg::ToManufacturing, None, None).handoff).await;
        Some(q)
    } else {
        None
    };
    // A swap is set on the first leg (where bags of two patients can meet).
    let leg = if partner.is_some() {
        Leg::ToManufacturing
    } else {
        leg
    };
    clean(app, &collection(&p)).await;
    let mut events = Vec::new();
    let out = shipment(
        &p,
        Leg::ToManufacturing,
        fault.filter(|_| leg == Leg::ToManufacturing),
        partner.as_ref().map(|q| q.dins[0].as_str()),
    );
    events.push(("handoff", out.handoff, leg == Leg::ToManufacturing));
    events.push(("receipt", out.receipt, leg == Leg::ToManufacturing));
    for e in manufacturing(&p) {
        events.push(("manufacturing", e, false));
    }
    let tc = shipment(
        &p,
        Leg::ToTreatment,
        fault.filter(|_| leg == Leg::ToTreatment),
        None,
    );
    events.push(("handoff", tc.handoff, leg == Leg::ToTreatment));
    events.push(("receipt", tc.receipt, leg == Leg::ToTreatment));
    let shows_at = match fault {
        None => None,
        Some(Fault::UnknownSite) => Some("handoff"),
        Some(_) => Some("receipt"),
    };
    for (what, event, on_faulty_leg) in events {
        let faulty = on_faulty_leg && shows_at == Some(what);
        if !faulty {
            clean(app, &event).await;
            continue;
        }
        let before = chain(app, &p.coi).await;
        match fault {
            Some(Fault::UnknownSite) | Some(Fault::MisreadCheckCharacter) => {
                let e = match send(app, &event).await {
                    Err(AppError::Invalid(e)) => e,
                    other => panic!("{fault:?}: expected a refusal, got {other:?}"),
                };
                let expected = if fault == Some(Fault::UnknownSite) {
                    "destination_site_id"
                } else {
                    "scanned_labels[0].unit"
                };
                assert!(e.field.contains(expected), "{fault:?}: {e}");
                let after = chain(app, &p.coi).await;
                assert_eq!(
                    before["timeline"], after["timeline"],
                    "a refusal changes nothing"
                );
            }
            Some(kind) => {
                let result = send(app, &event).await.expect("a receipt is recorded");
                assert!(!result.alerts.is_empty(), "{kind:?} raised an alert");
                let c = chain(app, &p.coi).await;
                assert_eq!(c["state"], "on_hold", "{kind:?}");
                let findings = c["holds"][0]["findings"].to_string();
                let needle = match kind {
                    Fault::SwappedBag => "belongs to chain",
                    Fault::WrongCount => "not scanned",
                    Fault::WrongSeal => "seal",
                    Fault::LateArrival => "late arrival",
                    Fault::TemperatureExcursion => "temperature excursion",
                    _ => unreachable!(),
                };
                assert!(findings.contains(needle), "{kind:?}: {findings}");
                if let Some(q) = &partner {
                    assert_eq!(chain(app, &q.coi).await["state"], "on_hold", "both chains");
                }
            }
            None => unreachable!(),
        }
        return;
    }
    assert!(fault.is_none(), "{fault:?} was never caught");
    let c = chain(app, &p.coi).await;
    assert_eq!(c["state"], "received_at_treatment_center");
    assert!(
        alerts_of(app, &p.coi).await.is_empty(),
        "a clean journey raises no alert"
    );
}

fn any_fault() -> impl Strategy<Value = Option<Fault>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Fault::SwappedBag)),
        1 => Just(Some(Fault::WrongCount)),
        1 => Just(Some(Fault::WrongSeal)),
        1 => Just(Some(Fault::UnknownSite)),
        1 => Just(Some(Fault::MisreadCheckCharacter)),
        1 => Just(Some(Fault::LateArrival)),
        1 => Just(Some(Fault::TemperatureExcursion)),
    ]
}

fn any_leg() -> impl Strategy<Value = Leg> {
    prop_oneof![Just(Leg::ToManufacturing), Just(Leg::ToTreatment)]
}

#[test]
fn every_injected_fault_is_caught_where_it_first_shows_and_clean_journeys_raise_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = runtime.block_on(network(&dir.path().join("faults.db")));
    let counter = AtomicU32::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &proptest::collection::vec((any_fault(), any_leg()), 1..4),
            |journeys| {
                runtime.block_on(async {
                    for (fault, leg) in journeys {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        run_journey(&app, n, fault, leg).await;
                    }
                });
                Ok(())
            },
        )
        .expect("every fault caught");
}

#[tokio::test]
async fn a_process_window_breach_raises_an_alert_and_keeps_what_happened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("window.db")).await;
    let p = enrol(&app, "PK-WINDOW", t0()).await;
    clean(&app, &collection(&p)).await;
    // Collection ends at +5 h; the process allows 48 h to receipt at manufacturing.
    let mut s = shipment(&p, Leg::ToManufacturing, None, None);
    s.handoff["body"]["data"]["expected_arrival_by"] = json!(at(p.t0, 80, "UTC"));
    s.receipt["occurred_at"] = json!(at(p.t0, 60, BOS.1));
    clean(&app, &s.handoff).await;
    let result = send(&app, &s.receipt).await.expect("recorded");
    assert_eq!(result.alerts.len(), 1, "{}", json!(result));
    let alert = json!(app
        .alert(
            result.alerts[0].event.body.data["alert_id"]
                .as_str()
                .expect("id"),
        )
        .await
        .expect("alert"));
    assert_eq!(alert["rule"], "process.window_breached");
    assert_eq!(alert["severity"], "major");
    assert_eq!(alert["evidence"]["from_step"], "COLLECT");
    assert_eq!(alert["evidence"]["to_step"], "RECEIVE-MFG");
    assert_eq!(alert["evidence"]["max_minutes"], 2880);
    assert_eq!(alert["evidence"]["elapsed_minutes"], 55 * 60);
    // A breach is raised, not a hold: the receipt matched its manifest.
    assert_eq!(
        chain(&app, &p.coi).await["state"],
        "received_at_manufacturing"
    );
}

#[tokio::test]
async fn a_clock_in_the_wrong_zone_is_flagged_and_alerted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("zone.db")).await;
    let p = enrol(&app, "PK-ZONE", t0()).await;
    // Collected in Los Angeles, but the device's clock says Paris.
    let mut event = collection(&p);
    let instant = Timestamp::from_second(p.t0.as_second() + 5 * 3600).expect("in range");
    event["occurred_at"] = json!(instant
        .to_zoned(TimeZone::get("Europe/Paris").expect("zone"))
        .to_string());
    let result = send(&app, &event).await.expect("recorded");
    assert_eq!(result.flags.len(), 1, "{}", json!(result));
    assert_eq!(result.alerts.len(), 1);
    let alerts = alerts_of(&app, &p.coi).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["rule"], "time_zone.discrepancy");
    assert_eq!(alerts[0]["site_id"], LAX.0);
}

async fn refused_with(app: &Autolog, event: &Value) -> autolog_domain::FieldError {
    match send(app, event).await {
        Err(AppError::Invalid(e)) => e,
        Err(AppError::Unmet(list)) if !list.is_empty() => list[0].clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn corrections_cannot_undo_a_hold_or_rewrite_custody_or_master_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("corrections.db")).await;
    let p = enrol(&app, "PK-CORR", t0()).await;
    clean(&app, &collection(&p)).await;
    let s = shipment(&p, Leg::ToManufacturing, Some(Fault::WrongSeal), None);
    clean(&app, &s.handoff).await;
    let held = send(&app, &s.receipt).await.expect("recorded");
    let hold = held
        .linked
        .iter()
        .find(|o| o.event.body.event_type == "chain.hold_placed")
        .expect("hold")
        .event
        .clone();
    // Superseding Autolog's hold with a note: refused.
    let mut undo = step(
        &p,
        "undo",
        31,
        BOS,
        "P-0002",
        "annotation.recorded",
        json!({"text": "seal fine"}),
    );
    undo["corrects"] = json!(hold.event_id.to_string());
    undo["reason"] = json!("hold entered by mistake");
    let e = refused_with(&app, &undo).await;
    assert_eq!(e.field, "corrects", "{e}");
    assert!(e.rule.contains("Autolog recorded"), "{e}");
    // Restating the receipt with the right seal: refused (custody is not corrected).
    let mut restated = s.receipt.clone();
    restated["source"]["source_event_id"] = json!("PK-CORR/receipt-out-fixed");
    restated["corrects"] = s.receipt["source"].clone();
    restated["reason"] = json!("seal number mistyped");
    restated["body"]["data"]["seal_id"] = json!("SEAL-PK-CORR-out");
    let e = refused_with(&app, &restated).await;
    assert!(e.rule.contains("custody"), "{e}");
    assert_eq!(chain(&app, &p.coi).await["state"], "on_hold");
    // A collection's DINs are master data: a correction may not change them.
    let mut recollected = collection(&p);
    recollected["source"]["source_event_id"] = json!("PK-CORR/collect-fixed");
    recollected["corrects"] = collection(&p)["source"].clone();
    recollected["reason"] = json!("bag list");
    recollected["body"]["data"]["dins"] = json!([new_din()]);
    let e = refused_with(&app, &recollected).await;
    assert_eq!(e.field, "body.data.dins", "{e}");
    // A correction still names a qualified person: an operator from another site is refused.
    let mut wrong_operator = collection(&p);
    wrong_operator["source"]["source_event_id"] = json!("PK-CORR/collect-operator");
    wrong_operator["corrects"] = collection(&p)["source"].clone();
    wrong_operator["reason"] = json!("operator mistyped");
    wrong_operator["body"]["data"]["operator_id"] = json!("P-0001");
    let e = refused_with(&app, &wrong_operator).await;
    assert_eq!(e.field, "body.data.operator_id", "{e}");
    // The hold is released only at its own site, by a qa_releaser there.
    let hold_id = chain(&app, &p.coi).await["holds"][0]["hold_id"].clone();
    // P-0008 is a qa_releaser in Los Angeles too, but the hold was placed in Boston.
    let elsewhere = step(
        &p,
        "release-lax",
        40,
        LAX,
        "P-0008",
        "chain.hold_released",
        json!({
            "hold_id": hold_id, "site_id": LAX.0, "resolved_by": "P-0008", "resolution_reason": "seal checked",
        }),
    );
    let e = refused_with(&app, &elsewhere).await;
    assert_eq!(e.field, "body.data.site_id", "{e}");
    assert!(e.rule.contains("S-BOS-01"), "{e}");
}

#[tokio::test]
async fn the_released_product_goes_only_to_its_patients_treatment_center() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("destination.db")).await;
    let p = enrol(&app, "PK-DEST", t0()).await;
    clean(&app, &collection(&p)).await;
    let s = shipment(&p, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    // A receipt dated before its handoff is refused.
    let mut early = s.receipt.clone();
    early["occurred_at"] = json!(at(p.t0, 5, BOS.1));
    let e = refused_with(&app, &early).await;
    assert_eq!(e.field, "occurred_at", "{e}");
    clean(&app, &s.receipt).await;
    for e in manufacturing(&p) {
        clean(&app, &e).await;
    }
    let mut astray = shipment(&p, Leg::ToTreatment, None, None).handoff;
    astray["body"]["data"]["destination_site_id"] = json!("S-LHI-01");
    let e = refused_with(&app, &astray).await;
    assert_eq!(e.field, "body.data.destination_site_id", "{e}");
    // Released twice, administered before arrival: refused.
    let again = step(
        &p,
        "release-2",
        481,
        BOS,
        "P-0002",
        "chain.released",
        json!({
            "batch_id": format!("B-{}", p.key), "intended_patient_key": p.key,
            "site_id": BOS.0, "released_by": "P-0002", "units": p.units,
        }),
    );
    assert_eq!(refused_with(&app, &again).await.field, "body.type");
    let too_soon = step(
        &p,
        "infuse-early",
        482,
        LAX,
        "P-0007",
        "chain.administered",
        json!({
            "step_code": "INFUSE", "site_id": LAX.0, "administered_by": "P-0007", "verified_by": "P-0005", "unit": p.units[0],
        }),
    );
    assert_eq!(refused_with(&app, &too_soon).await.field, "body.type");
}

/// The receipts of one delivery sent as one request, one of them failing reconciliation:
/// a reconciliation failure is an outcome, not a refusal. Both receipts are recorded, each
/// affected chain gets its hold and one alert naming the evidence, and the answer says per
/// event what happened; a step that moves a held chain on is still refused. (The request
/// was once refused whole: nothing recorded and no chain held.)
async fn one_delivery(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-BATCH-A", t0()).await;
    let b = enrol(&app, "PK-BATCH-B", t0()).await;
    for p in [&a, &b] {
        clean(&app, &collection(p)).await;
        clean(&app, &shipment(p, Leg::ToManufacturing, None, None).handoff).await;
    }
    // B's receipt scans A's bag; A's own receipt follows in the same request.
    let b_receipt = shipment(
        &b,
        Leg::ToManufacturing,
        Some(Fault::SwappedBag),
        Some(&a.dins[0]),
    )
    .receipt;
    let a_receipt = shipment(&a, Leg::ToManufacturing, None, None).receipt;
    let batch = Value::Array(vec![b_receipt, a_receipt]);
    let result = app
        .append_json(batch.to_string().as_bytes())
        .await
        .expect("both receipts are recorded");
    assert_eq!(result.appended(), 2, "{}", json!(result));
    let answer = json!(result);
    let holds: Vec<&Value> = answer["linked"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["body"]["type"] == "chain.hold_placed")
        .collect();
    assert_eq!(holds.len(), 2, "one hold per affected chain: {answer}");
    assert_eq!(
        result.alerts.len(),
        2,
        "one alert per affected chain: {answer}"
    );
    // Per event: B's receipt placed both holds and raised both alerts; A's nothing.
    assert_eq!(
        answer["results"][0]["holds"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    assert_eq!(
        answer["results"][0]["alerts"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(answer["results"][1].get("holds").is_none(), "{answer}");
    for p in [&a, &b] {
        let c = chain(&app, &p.coi).await;
        assert_eq!(c["state"], "on_hold", "{}: {c}", p.key);
        assert_eq!(c["resume_state"], "received_at_manufacturing", "{}", p.key);
        assert_eq!(c["location_site_id"], BOS.0, "{}", p.key);
        assert_eq!(alerts_of(&app, &p.coi).await.len(), 1, "{}", p.key);
    }
    // B's receipt failed: custody disputed. A's reconciled: custody passed.
    let b_chain = chain(&app, &b.coi).await;
    assert_eq!(b_chain["disputed_custody"]["receiving_site_id"], BOS.0);
    assert_ne!(b_chain["custodian_site_id"], BOS.0);
    assert_eq!(chain(&app, &a.coi).await["custodian_site_id"], BOS.0);
    // What moves a held chain on waits for the hold's resolution.
    let next = manufacturing(&a).remove(0);
    let e = refused_with(&app, &next).await;
    assert!(e.rule.contains("on hold"), "{e}");
}

#[tokio::test]
async fn the_receipts_of_one_delivery_are_recorded_with_their_holds_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "one_delivery",
        |t| async move { one_delivery(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn the_receipts_of_one_delivery_are_recorded_with_their_holds_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "one_delivery",
        |t| async move { one_delivery(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_din_twice_in_one_request_is_refused_at_its_second_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("batch.db")).await;
    // A DIN twice in one request, on two chains: refused at the second collection.
    let c = enrol(&app, "PK-BATCH-C", t0()).await;
    let d = enrol(&app, "PK-BATCH-D", t0()).await;
    let shared = new_din();
    let mut c_collect = collection(&c);
    c_collect["body"]["data"]["dins"] = json!([shared]);
    let mut d_collect = collection(&d);
    d_collect["body"]["data"]["dins"] = json!([shared]);
    let batch = Value::Array(vec![c_collect, d_collect]);
    let e = match app.append_json(batch.to_string().as_bytes()).await {
        Err(AppError::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(e.field, "[1].body.data.dins[0]", "{e}");
    assert!(e.rule.contains(&c.coi), "{e}");
}

/// Takes a patient to the treatment center (clean) and administers the first unit.
async fn to_the_bedside(app: &Autolog, p: &Patient, vector_lot: &str) {
    clean(app, &collection(p)).await;
    let s = shipment(p, Leg::ToManufacturing, None, None);
    clean(app, &s.handoff).await;
    clean(app, &s.receipt).await;
    for e in manufacturing_with(p, vector_lot) {
        clean(app, &e).await;
    }
    let s = shipment(p, Leg::ToTreatment, None, None);
    clean(app, &s.handoff).await;
    clean(app, &s.receipt).await;
}

fn bedside(p: &Patient, unit_scan: &str, patient_key: &str, wristband: &str, hours: i64) -> Value {
    step(
        p,
        &format!("bedside-{unit_scan}-{patient_key}"),
        hours,
        LAX,
        "P-0005",
        "chain.bedside_verified",
        json!({
            "unit_scan": unit_scan, "patient_key": patient_key, "wristband_coi": wristband,
            "site_id": LAX.0, "verified_by": "P-0005",
        }),
    )
}

fn administration(p: &Patient, unit: &str, hours: i64) -> Value {
    step(
        p,
        &format!("infuse-{unit}"),
        hours,
        LAX,
        "P-0007",
        "chain.administered",
        json!({
            "step_code": "INFUSE", "site_id": LAX.0, "administered_by": "P-0007", "verified_by": "P-0005", "unit": unit,
        }),
    )
}

#[tokio::test]
async fn a_refused_release_lists_every_unmet_condition_and_a_wrong_patient_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("release.db")).await;
    let a = enrol(&app, "PK-REL-A", t0()).await;
    let b = enrol(&app, "PK-REL-B", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let batch = format!("B-{}", a.key);
    // Everything up to the results: batch, vector, units.
    for e in manufacturing(&a).into_iter().take(6) {
        clean(&app, &e).await;
    }
    // VIABILITY fails, MYCOPLASMA is missing, the rest pass; a deviation is open.
    let results = passing_results();
    for (code, result, unit) in results.iter().filter(|(c, _, _)| *c != "MYCOPLASMA") {
        let result = if *code == "VIABILITY" {
            json!(64.0)
        } else {
            result.clone()
        };
        send(&app, &test_result(&a, &batch, code, result, *unit))
            .await
            .expect("recorded");
    }
    let deviation = step(
        &a,
        "dev-1",
        410,
        BOS,
        "P-0002",
        "deviation.opened",
        json!({
            "deviation_id": "DEV-1", "batch_id": batch, "site_id": BOS.0, "opened_by": "P-0002",
            "category": "process", "summary": "incubator alarm during expansion",
        }),
    );
    clean(&app, &deviation).await;
    // Released to patient B, by a QC analyst, with one of B's units: every condition listed.
    let mut wrong = step(
        &a,
        "release-wrong",
        480,
        BOS,
        "P-0003",
        "chain.released",
        json!({
            "batch_id": batch, "intended_patient_key": b.key, "site_id": BOS.0,
            "released_by": "P-0003", "units": [a.units[0], b.units[0]],
        }),
    );
    wrong["actor"] = json!("person/P-0003");
    let unmet = match send(&app, &wrong).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected unmet conditions, got {other:?}"),
    };
    let fields: Vec<&str> = unmet.iter().map(|c| c.field.as_str()).collect();
    for expected in [
        "body.data.intended_patient_key",
        "release_tests.VIABILITY",
        "release_tests.MYCOPLASMA",
        "deviations.DEV-1",
        "body.data.released_by",
        "body.data.units[1]",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    assert_eq!(unmet.len(), 6, "{unmet:?}");
    let viability = unmet
        .iter()
        .find(|c| c.field == "release_tests.VIABILITY")
        .expect("listed");
    assert!(
        viability.rule.contains("below the minimum 70"),
        "{viability}"
    );
    // The refusal is an alert too.
    assert!(alerts_of(&app, &a.coi)
        .await
        .iter()
        .any(|x| x["rule"] == "chain.step_refused"));
    // A deviation closed without permission to release still blocks; a retest that
    // passes, the missing result and a permitting closure clear the way.
    let close = |id: &str, disposition: &str| {
        step(
            &a,
            id,
            420,
            BOS,
            "P-0008",
            "deviation.closed",
            json!({
                "deviation_id": "DEV-1", "site_id": BOS.0, "closed_by": "P-0008",
                "disposition": disposition, "rationale": "alarm was a sensor fault; product unaffected",
            }),
        )
    };
    let mut retest = test_result(&a, &batch, "VIABILITY", json!(81.0), Some("%"));
    retest["source"]["source_event_id"] = json!("PK-REL-A/retest-viability");
    clean(&app, &retest).await;
    let (code, result, unit) = results
        .iter()
        .find(|(c, _, _)| *c == "MYCOPLASMA")
        .expect("test")
        .clone();
    clean(&app, &test_result(&a, &batch, code, result, unit)).await;
    clean(&app, &close("close-1", "release_not_permitted")).await;
    let unmet = match send(&app, &release(&a, &batch, &a.key)).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected unmet conditions, got {other:?}"),
    };
    let fields: Vec<&str> = unmet.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(unmet.len(), 2, "{unmet:?}");
    assert!(fields.contains(&"deviations.DEV-1"), "{fields:?}");
    // The first VIABILITY result failed: a pass on retest does not erase it.
    let oos = unmet
        .iter()
        .find(|c| c.field.starts_with("results."))
        .expect("the failure");
    assert!(oos.rule.contains("needs an investigation"), "{oos}");
    // A closed deviation stays closed.
    assert!(send(&app, &close("close-2", "release_permitted"))
        .await
        .is_err());
    let dev2 = step(
        &a,
        "dev-2",
        430,
        BOS,
        "P-0002",
        "deviation.opened",
        json!({
            "deviation_id": "DEV-2", "batch_id": batch, "site_id": BOS.0, "opened_by": "P-0002",
            "category": "documentation", "summary": "late batch record entry",
        }),
    );
    clean(&app, &dev2).await;
    let close2 = step(
        &a,
        "close-dev-2",
        440,
        BOS,
        "P-0008",
        "deviation.closed",
        json!({
            "deviation_id": "DEV-2", "site_id": BOS.0, "closed_by": "P-0008",
            "disposition": "release_permitted", "rationale": "documentation only",
        }),
    );
    clean(&app, &close2).await;
    // DEV-1 still forbids release: refused; the chain is unchanged.
    assert!(send(&app, &release(&a, &batch, &a.key)).await.is_err());
    assert_eq!(chain(&app, &a.coi).await["state"], "in_testing");
}

#[tokio::test]
async fn a_batch_is_made_only_from_its_patients_collections_and_released_lots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("batch-rules.db")).await;
    let a = enrol(&app, "PK-BR-A", t0()).await;
    let b = enrol(&app, "PK-BR-B", t0()).await;
    for p in [&a, &b] {
        clean(&app, &collection(p)).await;
        let s = shipment(p, Leg::ToManufacturing, None, None);
        clean(&app, &s.handoff).await;
        clean(&app, &s.receipt).await;
    }
    let created = |p: &Patient, id: &str, dins: Value| {
        step(
            p,
            id,
            47,
            BOS,
            "P-0002",
            "batch.created",
            json!({
                "batch_id": format!("B-{}", p.key), "site_id": BOS.0, "created_by": "P-0002", "source_dins": dins,
            }),
        )
    };
    // Two patients' collections in one batch: refused, naming the foreign bag.
    let e = refused_with(&app, &created(&a, "mixed", json!([a.dins[0], b.dins[0]]))).await;
    assert_eq!(e.field, "body.data.source_dins[1]", "{e}");
    assert!(e.rule.contains(&b.coi), "{e}");
    // A DIN that belongs to no chain.
    let e = refused_with(&app, &created(&a, "orphan", json!([new_din()]))).await;
    assert!(e.rule.contains("no chain"), "{e}");
    // None at all: refused by the payload's rules.
    let e = refused_with(&app, &created(&a, "empty", json!([]))).await;
    assert_eq!(e.field, "body.data.source_dins", "{e}");
    // The batch, with the MES number joined through the crosswalk.
    let mut good = created(&a, "good", json!(a.dins));
    good["body"]["data"]["mes_system"] = json!("mes-bos");
    good["body"]["data"]["mes_batch_number"] = json!("MES-77");
    clean(&app, &good).await;
    let resolved = app
        .resolve("mes-bos", "batch", "MES-77", None, None)
        .await
        .expect("resolves");
    assert_eq!(resolved, format!("B-{}", a.key));
    // B may not reuse A's batch id.
    let mut reuse = created(&b, "reuse", json!(b.dins));
    reuse["body"]["data"]["batch_id"] = json!(format!("B-{}", a.key));
    let e = refused_with(&app, &reuse).await;
    assert_eq!(e.field, "body.data.batch_id", "{e}");
    // Lots: quarantined refused, unknown refused.
    let consume = |id: &str, lot: &str| {
        step(
            &a,
            id,
            49,
            BOS,
            "P-0002",
            "batch.material_consumed",
            json!({
                "batch_id": format!("B-{}", a.key), "material": "LV-CD19", "lot": lot, "quantity": 2.5,
                "quantity_unit": "mL", "site_id": BOS.0, "recorded_by": "P-0002",
            }),
        )
    };
    let e = refused_with(&app, &consume("q", "LV19-2026-015")).await;
    assert!(e.rule.contains("quarantined"), "{e}");
    let e = refused_with(&app, &consume("u", "LV19-2099-001")).await;
    assert_eq!(e.field, "body.data.lot", "{e}");
    // Units: another patient's COI, or a product code that is not CART-19's.
    let produce = |id: &str, units: Value| {
        step(
            &a,
            id,
            243,
            BOS,
            "P-0002",
            "batch.units_produced",
            json!({
                "batch_id": format!("B-{}", a.key), "site_id": BOS.0, "recorded_by": "P-0002", "units": units,
            }),
        )
    };
    let e = refused_with(&app, &produce("foreign", json!([b.units[0]]))).await;
    assert!(e.rule.contains("carries COI"), "{e}");
    let coi = autolog_domain::identifiers::Coi::parse("coi", &a.coi).expect("coi");
    let other_product = autolog_domain::identifiers::UnitId::new(&coi, "S9999", "A0")
        .expect("unit")
        .to_string();
    let e = refused_with(&app, &produce("product", json!([other_product]))).await;
    assert!(e.rule.contains("S0001"), "{e}");
    clean(&app, &produce("ok", json!(a.units))).await;
    // A result for a test that is not in the product's release tests.
    let e = refused_with(
        &app,
        &test_result(
            &a,
            &format!("B-{}", a.key),
            "GLUCOSE",
            json!(5.0),
            Some("mM"),
        ),
    )
    .await;
    assert_eq!(e.field, "body.data.test_code", "{e}");
    // The verdict is Autolog's: a sender cannot send one.
    let mut forged = test_result(
        &a,
        &format!("B-{}", a.key),
        "VCN",
        json!(2.0),
        Some("copies/cell"),
    );
    forged["body"]["data"]["verdict"] = json!("pass");
    let e = refused_with(&app, &forged).await;
    assert!(e.rule.contains("verdict"), "{e}");
}

#[tokio::test]
async fn forward_genealogy_from_a_vector_lot_finds_exactly_the_patients_who_received_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("recall.db")).await;
    let a = enrol(&app, "PK-RC-A", t0()).await;
    let b = enrol(&app, "PK-RC-B", t0()).await;
    let c = enrol(&app, "PK-RC-C", t0()).await;
    to_the_bedside(&app, &a, "LV19-2026-014").await;
    to_the_bedside(&app, &b, "LV19-2026-014").await;
    to_the_bedside(&app, &c, "LV19-2026-016").await;
    for (p, unit) in [(&a, &a.units[0]), (&c, &c.units[0])] {
        clean(&app, &bedside(p, unit, &p.key, &p.coi, 23 * 24)).await;
        clean(&app, &administration(p, unit, 23 * 24)).await;
    }
    let before_b = app.chain(&a.coi, None, None).await.expect("chain").known_at;
    clean(&app, &bedside(&b, &b.units[1], &b.key, &b.coi, 23 * 24 + 1)).await;
    clean(&app, &administration(&b, &b.units[1], 23 * 24 + 2)).await;

    let recall = json!(app
        .genealogy_forward("LV19-2026-014", None, None)
        .await
        .expect("forward"));
    let patients: BTreeSet<String> = recall["patients_who_received"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["patient_key"].as_str().map(str::to_string))
        .collect();
    assert_eq!(patients, BTreeSet::from([a.key.clone(), b.key.clone()]));
    assert_eq!(recall["batches"].as_array().map(Vec::len), Some(2));
    // As known before B's infusion: only A had received it.
    let earlier = json!(app
        .genealogy_forward("LV-CD19/LV19-2026-014", None, Some(&before_b))
        .await
        .expect("forward as of"));
    assert_eq!(
        earlier["patients_who_received"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        earlier["patients_who_received"][0]["patient_key"],
        json!(a.key)
    );
    // Backward from C's unit: C, its collections, the other vector lot, the equipment.
    let back = json!(app
        .genealogy_backward(&c.units[0], None, None)
        .await
        .expect("backward"));
    assert_eq!(back["patient_key"], json!(c.key));
    assert_eq!(back["coi"], json!(c.coi));
    assert_eq!(back["materials"][0]["lot"], "LV19-2026-016");
    assert_eq!(back["collections"][0]["dins"], json!(c.dins));
    let equipment = back["equipment"].to_string();
    for e in ["APH-LAX-01", "BIO-BOS-01", "CRF-BOS-01"] {
        assert!(equipment.contains(e), "{equipment}");
    }
    assert_eq!(back["administration"].as_array().map(Vec::len), Some(1));
    assert!(app
        .genealogy_forward("NO-SUCH-LOT", None, None)
        .await
        .is_err());
    assert!(app
        .genealogy_backward("CHA999926000001S0001A0X", None, None)
        .await
        .is_err());
}

#[tokio::test]
async fn a_release_is_signed_by_re_authenticating_and_the_signature_binds_to_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("signatures.db")).await;
    let p = enrol(&app, "PK-SIG", t0()).await;
    clean(&app, &collection(&p)).await;
    let s = shipment(&p, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let mut events = manufacturing(&p);
    let release_event = events.pop().expect("release");
    for e in events {
        clean(&app, &e).await;
    }
    // A wrong secret, a missing component, someone else's name, a manifestation sent as is.
    let with_signature = |signature: Value| {
        let mut e = release_event.clone();
        e["body"]["data"]["signature"] = signature;
        e
    };
    let e = refused_with(
        &app,
        &with_signature(json!({"signer_id": "P-0002", "secret": "not the secret at all"})),
    )
    .await;
    assert_eq!(e.field, "body.data.signature.secret", "{e}");
    assert_eq!(e.value, "(not shown)");
    let failed = alerts_of(&app, &p.coi).await;
    assert!(
        failed
            .iter()
            .any(|a| a["rule"] == "signature.reauthentication_failed"
                && a["evidence"]["signer_id"] == "P-0002"),
        "{failed:?}"
    );
    assert!(!serde_json::to_string(&failed)
        .expect("json")
        .contains("not the secret at all"));
    let e = refused_with(&app, &with_signature(json!({"signer_id": "P-0002"}))).await;
    assert_eq!(e.field, "body.data.signature", "{e}");
    let e = refused_with(
        &app,
        &with_signature(json!({"signer_id": "P-0008", "secret": SECRET})),
    )
    .await;
    assert_eq!(e.field, "body.data.signature.signer_id", "{e}");
    let e = refused_with(
        &app,
        &with_signature(json!({"signer_id": "P-0002", "secret": SECRET, "meaning": "whatever"})),
    )
    .await;
    assert_eq!(e.field, "body.data.signature.meaning", "{e}");
    let mut unsigned = release_event.clone();
    unsigned["body"]["data"]
        .as_object_mut()
        .expect("data")
        .remove("signature");
    let e = refused_with(&app, &unsigned).await;
    assert!(e.field.contains("signature"), "{e}");
    // Signed: the ledger keeps who, when (site time with zone), meaning, and the binding.
    let result = send(&app, &release_event).await.expect("released");
    let recorded = &result.outcomes[0].event;
    let signature = &recorded.body.data["signature"];
    assert_eq!(signature["signer_id"], "P-0002");
    assert_eq!(signature["printed_name"], "Daniel Okafor");
    assert!(signature["signed_at"]
        .as_str()
        .expect("time")
        .ends_with("[America/New_York]"));
    assert_eq!(
        signature["meaning"],
        json!(format!(
            "approved for release of batch B-{} to patient {}",
            p.key, p.key
        ))
    );
    assert!(
        signature.get("secret").is_none(),
        "the secret never enters the ledger"
    );
    assert!(!recorded.to_json().to_string().contains(SECRET));
    // The manifestation copied onto another record, straight to the store: refused there.
    let q = enrol(&app, "PK-SIG-2", t0()).await;
    let mut copied = release(&q, &format!("B-{}", q.key), &q.key);
    copied["body"]["data"]["signature"] = signature.clone();
    let draft = autolog_domain::catalogue::parse_draft(&copied, autolog_domain::Uuid::now_v7())
        .expect("well-formed");
    let e = match app
        .store()
        .append(&[draft], &autolog_domain::Instant::now)
        .await
    {
        Err(autolog_store::StoreError::Rejected(f)) => f,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(e.field.contains("signature"), "{e}");
    // A manifestation sent in a request, however its key is spelt, is refused: only
    // Autolog writes one, after re-authentication.
    let mut forged = release(&q, &format!("B-{}", q.key), &q.key);
    forged["body"]["data"]["signature"] = signature.clone();
    let text = forged
        .to_string()
        .replace("\"signature\"", "\"sig\\u006eature\"");
    assert!(text.contains("sig\\u006eature"));
    let e = match app.append_json(text.as_bytes()).await {
        Err(AppError::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(e.field.starts_with("body.data.signature."), "{e}");
    // A bare string where a signature goes: refused without echoing it.
    let mut bare = release(&q, &format!("B-{}", q.key), &q.key);
    bare["body"]["data"]["signature"] = json!("my very secret phrase");
    let e = refused_with(&app, &bare).await;
    assert!(!e.to_string().contains("my very secret phrase"), "{e}");
    // Every setting of a secret is in the ledger, by whom; never the secret.
    let audit = app
        .store()
        .stream_events("person/P-0002", autolog_domain::Instant::MAX)
        .await
        .expect("person");
    let set = audit
        .iter()
        .find(|e| e.body.event_type == "signing_secret.set")
        .expect("audited");
    assert_eq!(set.actor, "person/P-ADMIN");
    assert!(!set.to_json().to_string().contains(SECRET));
    // A secret is set only for a registered person, and is long enough.
    assert!(app
        .set_signing_secret("P-9999", SECRET, "person/P-ADMIN")
        .await
        .is_err());
    assert!(app
        .set_signing_secret("P-0001", "short", "person/P-ADMIN")
        .await
        .is_err());
}

/// Two patients from collection to administration on one store; every attempt to swap
/// their units after manufacturing is stopped where it is made.
async fn two_patients_to_the_bedside(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let start = t0();
    let a = enrol(&app, "PK-E2E-A", start).await;
    let b = enrol(&app, "PK-E2E-B", start).await;
    for p in [&a, &b] {
        clean(&app, &collection(p)).await;
        let s = shipment(p, Leg::ToManufacturing, None, None);
        clean(&app, &s.handoff).await;
        clean(&app, &s.receipt).await;
    }
    // Manufacturing: B's units produced on A's batch, and a release of A's batch to B.
    let mut a_steps = manufacturing(&a);
    let a_release = a_steps.pop().expect("release");
    for e in a_steps {
        clean(&app, &e).await;
    }
    let mut b_steps = manufacturing(&b);
    let b_release = b_steps.pop().expect("release");
    for e in b_steps {
        clean(&app, &e).await;
    }
    let wrong_units = step(
        &a,
        "units-of-b",
        244,
        BOS,
        "P-0002",
        "batch.units_produced",
        json!({
            "batch_id": format!("B-{}", a.key), "site_id": BOS.0, "recorded_by": "P-0002", "units": [b.units[0]],
        }),
    );
    assert!(refused_with(&app, &wrong_units)
        .await
        .rule
        .contains("carries COI"));
    let to_b = release(&a, &format!("B-{}", a.key), &b.key);
    let e = refused_with(&app, &to_b).await;
    assert_eq!(
        e.field, "body.data.intended_patient_key",
        "a release to the wrong patient"
    );
    // A release of A's batch naming B's units.
    let mut mixed = a_release.clone();
    mixed["source"]["source_event_id"] = json!("PK-E2E-A/release-mixed");
    mixed["body"]["data"]["units"] = json!([a.units[0], b.units[1]]);
    mixed["body"]["data"]
        .as_object_mut()
        .expect("data")
        .remove("signature");
    mixed["body"]["data"]["signature"] = json!({"signer_id": "P-0002", "secret": SECRET});
    assert_eq!(refused_with(&app, &mixed).await.field, "body.data.units[1]");
    clean(&app, &a_release).await;
    clean(&app, &b_release).await;
    // Shipping: A's manifest listing B's unit is refused.
    let mut a_ship = shipment(&a, Leg::ToTreatment, None, None);
    let mut astray = a_ship.handoff.clone();
    astray["source"]["source_event_id"] = json!("PK-E2E-A/handoff-astray");
    astray["body"]["data"]["units"] = json!([a.units[0], b.units[0]]);
    assert_eq!(
        refused_with(&app, &astray).await.field,
        "body.data.units[1]"
    );
    // Receipt: B's unit arrives in A's shipper (and A's in B's): both chains held.
    let b_ship = shipment(&b, Leg::ToTreatment, None, None);
    clean(&app, &a_ship.handoff).await;
    clean(&app, &b_ship.handoff).await;
    a_ship.receipt["body"]["data"]["scanned_labels"][1] = json!({"unit": b.units[1], "coi": a.coi});
    let held = send(&app, &a_ship.receipt).await.expect("recorded, held");
    assert_eq!(held.alerts.len(), 2, "{}", json!(held));
    for p in [&a, &b] {
        assert_eq!(chain(&app, &p.coi).await["state"], "on_hold", "{}", p.key);
    }
    // QA at the treatment center finds and returns the bag; holds released with a signature.
    for p in [&a, &b] {
        let hold_id = chain(&app, &p.coi).await["holds"][0]["hold_id"].clone();
        clean(
            &app,
            &step(
                p,
                "release-hold",
                22 * 24 + 2,
                LAX,
                "P-0008",
                "chain.hold_released",
                json!({
                    "hold_id": hold_id, "site_id": LAX.0, "resolved_by": "P-0008",
                    "resolution_reason": "bags re-sorted and re-scanned under deviation DEV-77",
                }),
            ),
        )
        .await;
    }
    assert_eq!(
        chain(&app, &a.coi).await["state"],
        "received_at_treatment_center"
    );
    assert_eq!(chain(&app, &b.coi).await["state"], "in_transit");
    clean(&app, &b_ship.receipt).await;
    // Bedside: B's unit at A's bedside, A's wristband on B's chain: hard stops, alerted.
    let e = match send(&app, &bedside(&a, &b.units[0], &a.key, &a.coi, 23 * 24)).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected a hard stop, got {other:?}"),
    };
    assert!(
        e.iter().any(|c| c.rule.contains("belongs to chain")),
        "{e:?}"
    );
    let e = match send(&app, &bedside(&b, &b.units[0], &a.key, &a.coi, 23 * 24)).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected a hard stop, got {other:?}"),
    };
    let fields: Vec<&str> = e.iter().map(|c| c.field.as_str()).collect();
    assert!(
        fields.contains(&"body.data.wristband_coi") && fields.contains(&"body.data.patient_key"),
        "{fields:?}"
    );
    let stops = alerts_of(&app, &a.coi).await;
    assert!(stops
        .iter()
        .any(|x| x["rule"] == "bedside.mismatch" && x["severity"] == "critical"));
    // Administration without a bedside check, or of the other patient's unit: refused.
    let e = refused_with(&app, &administration(&a, &a.units[0], 23 * 24)).await;
    assert!(e.rule.contains("bedside"), "{e}");
    let e = refused_with(&app, &administration(&a, &b.units[0], 23 * 24)).await;
    assert_eq!(e.field, "body.data.unit", "{e}");
    // The right unit to the right patient: verified, administered, the loop closed.
    for p in [&a, &b] {
        clean(&app, &bedside(p, &p.units[0], &p.key, &p.coi, 23 * 24)).await;
        clean(&app, &administration(p, &p.units[0], 23 * 24 + 1)).await;
        assert_eq!(chain(&app, &p.coi).await["state"], "administered");
        let back = app
            .genealogy_backward(&p.units[0], None, None)
            .await
            .expect("genealogy");
        assert_eq!(back.patient_key.as_ref(), Some(&p.key));
        assert_eq!(back.administration.len(), 1);
    }
    let report = serde_json::to_value(app.reconciliation().await.expect("report")).expect("json");
    assert!(
        report["open_holds"].as_array().expect("list").is_empty(),
        "{report}"
    );

    // Turnaround: vein to vein from the start of collection (t0 + 1 h) to infusion
    // (t0 + 23 d + 1 h): 552 hours for both, whatever the zones the steps were in.
    let turnaround = app
        .turnaround(Some("CART-19"), None, None)
        .await
        .expect("turnaround");
    let v2v = &turnaround.by_product["CART-19"].vein_to_vein;
    assert_eq!(v2v.count, 2, "{turnaround:?}");
    assert_eq!(v2v.median_hours, Some(552.0), "{turnaround:?}");
    assert_eq!(v2v.p90_hours, Some(552.0));
    let by_site = &turnaround.vein_to_vein_by_treatment_site[0];
    assert_eq!(by_site.treatment_site_id, LAX.0);
    assert_eq!(by_site.summary.median_hours, Some(552.0));
    let receive = turnaround
        .by_step_and_site
        .iter()
        .find(|s| s.step_code == "RECEIVE-MFG" && s.site_id == BOS.0)
        .expect("receipt at Boston");
    assert_eq!(receive.summary.median_hours, Some(24.0), "{receive:?}");
    // The answer's JSON keeps the summary's fields beside the site's (flattened).
    let json = serde_json::to_value(&turnaround).expect("json");
    assert_eq!(
        json["vein_to_vein_by_treatment_site"][0]["median_hours"],
        552.0
    );
    // As of before any infusion: no vein-to-vein time yet.
    let before = app
        .turnaround(None, Some(&at(start, 23 * 24, "UTC")), None)
        .await
        .expect("turnaround as of");
    assert!(!before.by_product.contains_key("CART-19"), "{before:?}");
    // Retention: US (15 years) and EU (30 years, the Frankfurt laboratory) apply, from
    // administration: the records are kept 30 years from the infusion.
    let report = app.retention_report(None, None).await.expect("retention");
    let of = |report: &autolog_app::Retention, coi: &str| {
        report
            .chains
            .iter()
            .find(|c| c.coi == coi)
            .cloned()
            .expect("the chain is in the report")
    };
    let ra = of(&report, &a.coi);
    assert_eq!(ra.status, RetentionStatus::Retained, "{ra:?}");
    let jurisdictions: Vec<&str> = ra.jurisdictions.iter().map(String::as_str).collect();
    assert_eq!(jurisdictions, ["DE", "EU", "US"], "{ra:?}");
    let infused = at(start, 23 * 24 + 1, "UTC");
    let expected = autolog_domain::Instant::parse_rfc3339("t", &infused).expect("instant");
    let releasable = ra.releasable_at.clone().expect("date");
    assert_eq!(
        &releasable[..4],
        &(expected.to_string()[..4].parse::<i32>().expect("year") + 30).to_string()
    );
    assert_eq!(&releasable[4..], &expected.to_string()[4..], "{ra:?}");
    // A legal hold suspends it; released, the period runs again.
    let hold = |kind: &str, id: &str| {
        step(
            &a,
            id,
            24 * 24,
            LAX,
            "P-0008",
            kind,
            json!({
                "legal_hold_id": "LH-1", "person_id": "P-0008", "reason": "product liability claim",
            }),
        )
    };
    clean(&app, &hold("chain.legal_hold_placed", "lh-on")).await;
    assert!(send(&app, &hold("chain.legal_hold_placed", "lh-again"))
        .await
        .is_err());
    let far = format!(
        "{}-01-01T00:00:00Z",
        &releasable[..4].parse::<i32>().expect("year") + 1
    );
    let later = app
        .retention_report(Some(&far), None)
        .await
        .expect("retention");
    assert_eq!(
        of(&later, &a.coi).status,
        RetentionStatus::SuspendedByLegalHold
    );
    assert_eq!(of(&later, &b.coi).status, RetentionStatus::DueForErasure);
    let soon = app
        .retention_report(None, Some(365))
        .await
        .expect("retention");
    assert!(soon.chains.is_empty(), "{soon:?}");
    clean(&app, &hold("chain.legal_hold_released", "lh-off")).await;
    let later = app
        .retention_report(Some(&far), None)
        .await
        .expect("retention");
    assert_eq!(of(&later, &a.coi).status, RetentionStatus::DueForErasure);
}

#[tokio::test]
async fn two_patients_reach_administration_and_every_unit_swap_is_stopped_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "e2e_bedside",
        |t| async move { two_patients_to_the_bedside(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn two_patients_reach_administration_and_every_unit_swap_is_stopped_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "e2e_bedside",
        |t| async move { two_patients_to_the_bedside(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn an_out_of_specification_batch_is_released_only_on_a_physicians_request_and_two_signatures()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("exceptional.db")).await;
    let p = enrol(&app, "PK-OOS", t0()).await;
    clean(&app, &collection(&p)).await;
    let s = shipment(&p, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let batch = format!("B-{}", p.key);
    let mut events = manufacturing(&p);
    let normal = events.pop().expect("release");
    for e in events {
        clean(&app, &e).await;
    }
    // CAR expression below specification on a retest: the batch is out of specification.
    let mut oos = test_result(&p, &batch, "CAR-EXPR", json!(9.5), Some("%"));
    oos["source"]["source_event_id"] = json!("PK-OOS/car-expr-retest");
    let oos_id = send(&app, &oos).await.expect("recorded").outcomes[0]
        .event
        .event_id
        .to_string();
    let unmet = match send(&app, &normal).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected unmet conditions, got {other:?}"),
    };
    assert_eq!(unmet.len(), 1, "{unmet:?}");
    assert_eq!(unmet[0].field, "release_tests.CAR-EXPR");
    // Exceptional, without the physician's request: refused, naming it.
    let exceptional = |id: &str, second: &str| {
        let mut e = normal.clone();
        e["source"]["source_event_id"] = json!(format!("PK-OOS/{id}"));
        e["body"]["data"]["exceptional"] = json!(true);
        e["body"]["data"]["second_released_by"] = json!(second);
        e["body"]["data"]["second_signature"] = json!({"signer_id": second, "secret": SECRET});
        e["body"]["data"]["signature"] = json!({"signer_id": "P-0002", "secret": SECRET});
        e
    };
    let unmet = match send(&app, &exceptional("exc-1", "P-0008")).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected unmet conditions, got {other:?}"),
    };
    let fields: Vec<&str> = unmet.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"body.data.exceptional"), "{fields:?}");
    assert!(fields.contains(&"release_tests.CAR-EXPR"), "{fields:?}");
    // The request must come from a treating physician of the patient's center, signed.
    let request = |who: &str, id: &str| {
        step(
            &p,
            id,
            470,
            LAX,
            who,
            "chain.exceptional_release_requested",
            json!({
                "batch_id": batch, "intended_patient_key": p.key, "site_id": LAX.0, "requested_by": who, "result_event_ids": [oos_id],
            "result_event_ids": [oos_id],
                "justification": "no alternative therapy; benefit outweighs the risk of low CAR expression",
            }),
        )
    };
    let e = refused_with(&app, &request("P-0005", "req-nurse")).await;
    assert!(e.rule.contains("treatment_center_physician"), "{e}");
    let recorded = send(&app, &request("P-0007", "req-md"))
        .await
        .expect("requested");
    let request_signature = &recorded.outcomes[0].event.body.data["signature"];
    assert_eq!(request_signature["printed_name"], "Grace Kim");
    assert!(request_signature["meaning"]
        .as_str()
        .expect("meaning")
        .contains("exceptional"));
    // The same person cannot sign twice; a second person who is not a qa_releaser neither.
    let e = refused_with(&app, &exceptional("exc-2", "P-0002")).await;
    assert_eq!(e.field, "body.data.second_released_by", "{e}");
    let unmet = match send(&app, &exceptional("exc-3", "P-0003")).await {
        Err(AppError::Unmet(list)) => list,
        other => panic!("expected unmet conditions, got {other:?}"),
    };
    assert_eq!(unmet.len(), 1, "{unmet:?}");
    assert_eq!(unmet[0].field, "body.data.second_released_by");
    // Physician's request, two qualified signatures: released, both signatures recorded.
    let released = send(&app, &exceptional("exc-4", "P-0008"))
        .await
        .expect("released");
    let data = &released.outcomes[0].event.body.data;
    assert_eq!(data["signature"]["signer_id"], "P-0002");
    assert_eq!(data["second_signature"]["signer_id"], "P-0008");
    assert_eq!(data["second_signature"]["printed_name"], "Samuel Osei");
    assert_eq!(chain(&app, &p.coi).await["state"], "released_for_patient");
}

/// A writer of log lines into memory, for the log test.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The logs of a whole journey, at every level, hold the pseudonymous keys and none of the patient's identifying values,
/// nor a password: identifying data is recorded in and read from the vault, checked at
/// the bedside (a mismatch first), and the product is released, shipped and infused.
#[tokio::test]
async fn a_full_journey_logs_no_identifying_data_and_no_secret() {
    // The process-wide subscriber (a scoped one misses events whose call sites other
    // test threads registered first); other tests' lines land here too, harmlessly.
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let identity = json!({
        "name": "Ottoline Brackenridge-Vasquez",
        "date_of_birth": "1958-09-23",
        "mrn": "MRN-77341902",
        "contact": "+1 310 555 0199",
    });
    let journey = async {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = network(&dir.path().join("logs.db"))
            .await
            .with_vault_key(autolog_app::VaultKey::from_bytes([9u8; 32]));
        let p = enrol(&app, "PK-LOGS-1", t0()).await;
        app.record_personal_data(&p.key, &identity, "person/P-0005")
            .await
            .expect("record");
        app.read_personal_data(&p.key, "person/P-0005", Some("PATRQT"))
            .await
            .expect("read");
        to_the_bedside(&app, &p, "LV19-2026-014").await;
        let with_identifiers = |id: &str, identifiers: Value| {
            let mut e = bedside(&p, &p.units[0], &p.key, &p.coi, 23 * 24);
            e["source"]["source_event_id"] = json!(id);
            e["body"]["data"]["patient_identifiers"] = identifiers;
            e
        };
        let wrong = json!({"name": "Ottoline Brackenridge-Vasquez", "date_of_birth": "1958-09-32", "mrn": "MRN-77341902"});
        assert!(send(&app, &with_identifiers("bedside-wrong", wrong))
            .await
            .is_err());
        let wrong = json!({"name": "Ottoline Brackenridge-Vasquez", "date_of_birth": "1958-03-23", "mrn": "MRN-77341902"});
        assert!(send(&app, &with_identifiers("bedside-wrong-2", wrong))
            .await
            .is_err());
        let right = json!({"name": "Ottoline Brackenridge-Vasquez", "date_of_birth": "1958-09-23", "mrn": "MRN-77341902"});
        send(&app, &with_identifiers("bedside-right", right))
            .await
            .expect("bedside check");
        clean(&app, &administration(&p, &p.units[0], 23 * 24)).await;
        assert_eq!(chain(&app, &p.coi).await["state"], "administered");
    };
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");
    journey.await;
    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    assert!(
        text.contains("PK-LOGS-1"),
        "the logs name the pseudonymous key"
    );
    assert!(
        text.lines().count() > 20,
        "the journey was logged: {} lines",
        text.lines().count()
    );
    for value in [
        "Ottoline",
        "Brackenridge",
        "1958-09-23",
        "1958-09-32",
        "1958-03-23",
        "77341902",
        "555 0199",
        SECRET,
    ] {
        assert!(!text.contains(value), "{value} is in the logs");
    }
}

// --- HL7 FHIR R5: every resource a full journey produces, checked by an independent
// validator (fhir.resources 8.x) and, for what it does not check, here: code systems,
// identifier formats and reference targets. ---

/// The validator script (kept next to this file).
const FHIR_VALIDATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir_validate.py");

/// Runs fhir.resources over the JSON files in `dir`: `true` when every resource was
/// validated, `false` when the validator is missing (skipped, with a message), unless
/// `AUTOLOG_REQUIRE_FHIR_VALIDATOR=1`, which makes a missing validator a failure.
fn run_fhir_validator(dir: &std::path::Path) -> bool {
    let required = std::env::var("AUTOLOG_REQUIRE_FHIR_VALIDATOR").is_ok_and(|v| v == "1");
    let output = match std::process::Command::new("python3")
        .arg(FHIR_VALIDATOR)
        .arg(dir)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !required,
                "python3 is needed to validate FHIR resources: {e}"
            );
            eprintln!("skipped: FHIR validation needs python3 ({e})");
            return false;
        }
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => {
            eprintln!("{report}");
            true
        }
        Some(3) if !required => {
            eprintln!("skipped: {report}");
            false
        }
        _ => panic!("FHIR validation failed:\n{report}"),
    }
}

/// Where each kind of reference may point (FHIR R5; `None`: any resource).
const REFERENCE_TARGETS: &[(&str, Option<&[&str]>)] = &[
    (
        "BiologicallyDerivedProduct.parent",
        Some(&["BiologicallyDerivedProduct"]),
    ),
    (
        "BiologicallyDerivedProduct.processingFacility",
        Some(&["Organization"]),
    ),
    (
        "BiologicallyDerivedProduct.collection.collector",
        Some(&["Practitioner", "PractitionerRole"]),
    ),
    (
        "BiologicallyDerivedProduct.collection.source",
        Some(&["Patient", "Organization"]),
    ),
    (
        "BiologicallyDerivedProductDispense.product",
        Some(&["BiologicallyDerivedProduct"]),
    ),
    (
        "BiologicallyDerivedProductDispense.patient",
        Some(&["Patient"]),
    ),
    (
        "BiologicallyDerivedProductDispense.performer.actor",
        Some(&["Practitioner"]),
    ),
    (
        "BiologicallyDerivedProductDispense.location",
        Some(&["Location"]),
    ),
    (
        "BiologicallyDerivedProductDispense.destination",
        Some(&["Location"]),
    ),
    (
        "Procedure.subject",
        Some(&[
            "Patient",
            "Group",
            "Device",
            "Practitioner",
            "Organization",
            "Location",
        ]),
    ),
    (
        "Procedure.performer.actor",
        Some(&[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Patient",
            "RelatedPerson",
            "Device",
            "CareTeam",
            "HealthcareService",
        ]),
    ),
    ("Procedure.location", Some(&["Location"])),
    (
        "Procedure.used.reference",
        Some(&[
            "Device",
            "Medication",
            "Substance",
            "BiologicallyDerivedProduct",
        ]),
    ),
    ("Provenance.target", None),
    ("Provenance.patient", Some(&["Patient"])),
    ("Provenance.location", Some(&["Location"])),
    (
        "Provenance.agent.who",
        Some(&[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
            "Patient",
            "RelatedPerson",
            "Device",
        ]),
    ),
    (
        "Provenance.signature.who",
        Some(&[
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Patient",
            "Device",
            "Organization",
        ]),
    ),
    ("Provenance.entity.what", None),
    ("Location.managingOrganization", Some(&["Organization"])),
];

/// Every JSON object inside `value` with its element path (`Type.a.b`, no indices).
fn objects<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((path.clone(), value));
            for (k, v) in map {
                objects(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(list) => {
            for v in list {
                objects(v, path.clone(), out);
            }
        }
        _ => {}
    }
}

/// The identifier systems Autolog uses, with a check of the value each carries.
fn check_identifier(system: &str, value: &str) -> Result<(), String> {
    use autolog_app::interop::fhir::system as s;
    let ok = match system {
        s::DIN => value.len() == 13 && Din::parse("din", value).is_ok(),
        s::COI => autolog_domain::identifiers::Coi::parse("coi", value)
            .is_ok_and(|c| c.to_string() == value),
        s::FINAL_UNIT => autolog_domain::identifiers::UnitId::parse("unit", value)
            .is_ok_and(|u| u.to_string() == value),
        s::GLN => autolog_domain::identifiers::Gln::parse("gln", value).is_ok(),
        s::FIN => autolog_domain::identifiers::Fin::parse("fin", value).is_ok(),
        s::EVENT => autolog_domain::Uuid::parse_str(value).is_ok(),
        s::BATCH | s::PATIENT_KEY | s::SITE | s::PERSON => !value.is_empty(),
        other => return Err(format!("unknown identifier system {other}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{value} is not a valid {system} identifier"))
    }
}

/// Checks the codes and identifiers of a resource: every coding's system is one Autolog
/// uses (and, for external code systems, one of the codes it uses); every identifier's
/// value is valid for its system.
fn check_codes(resource: &Value) -> Vec<String> {
    let resource_type = resource["resourceType"].as_str().unwrap_or("?").to_string();
    let mut found = Vec::new();
    objects(resource, resource_type, &mut found);
    let mut problems = Vec::new();
    for (path, object) in found {
        let system = object.get("system").and_then(Value::as_str);
        if let (Some(system), Some(code)) = (system, object.get("code").and_then(Value::as_str)) {
            match autolog_app::interop::fhir::CODE_SYSTEMS
                .iter()
                .find(|(s, _)| *s == system)
            {
                None => problems.push(format!(
                    "{path}: code system {system} is not one Autolog uses"
                )),
                Some((_, Some(codes))) if !codes.contains(&code) => problems.push(format!(
                    "{path}: {code} is not a code of {system} Autolog uses"
                )),
                _ => {}
            }
        } else if let (Some(system), Some(value)) =
            (system, object.get("value").and_then(Value::as_str))
        {
            if path.ends_with(".telecom") {
                continue; // a ContactPoint: system is phone, email, other, ...
            }
            if let Err(e) = check_identifier(system, value) {
                problems.push(format!("{path}: {e}"));
            }
        }
    }
    problems
}

/// Checks that every reference of a Bundle resolves to one of its entries, of a type the
/// element allows, and says so in its `type`; only a Provenance's entity names its record
/// by identifier alone.
fn check_references(bundle: &Value) -> Vec<String> {
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let types: std::collections::HashMap<String, String> = entries
        .iter()
        .map(|e| {
            (
                e["fullUrl"].as_str().unwrap_or("").to_string(),
                e["resource"]["resourceType"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let mut problems = Vec::new();
    for entry in &entries {
        let resource = &entry["resource"];
        let mut found = Vec::new();
        objects(
            resource,
            resource["resourceType"].as_str().unwrap_or("?").to_string(),
            &mut found,
        );
        for (path, object) in found {
            let logical = object.get("identifier").is_some()
                && object.get("display").is_some()
                && object.get("system").is_none();
            let Some(reference) = object.get("reference").and_then(Value::as_str) else {
                if logical && path != "Provenance.entity.what" {
                    problems.push(format!(
                        "{path}: a logical reference ({object}) where a resource was expected"
                    ));
                }
                continue;
            };
            let Some((_, allowed)) = REFERENCE_TARGETS.iter().find(|(p, _)| *p == path) else {
                problems.push(format!("{path}: a reference where none is expected"));
                continue;
            };
            let Some(target) = types.get(reference) else {
                problems.push(format!("{path}: {reference} is not an entry of the Bundle"));
                continue;
            };
            if allowed.is_some_and(|a| !a.contains(&target.as_str())) {
                problems.push(format!("{path}: points at a {target}"));
            }
            if object.get("type").and_then(Value::as_str) != Some(target.as_str()) {
                problems.push(format!("{path}: its type is not {target}"));
            }
        }
    }
    problems
}

fn entry_of<'a>(bundle: &'a Value, resource_type: &str, id: &str) -> &'a Value {
    bundle["entry"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == resource_type && r["id"] == id)
        })
        .unwrap_or_else(|| panic!("{resource_type}/{id} is not in the Bundle"))
}

fn person_principal(person_id: &str, role: autolog_domain::access::Role) -> autolog_app::Principal {
    autolog_app::Principal {
        actor: format!("person/{person_id}"),
        kind: autolog_app::PrincipalKind::Person {
            person_id: person_id.to_string(),
            csrf_sha256: String::new(),
            session_sha256: String::new(),
        },
        grants: vec![autolog_domain::access::Grant {
            role,
            site_id: LAX.0.to_string(),
        }],
    }
}

/// A treatment center's administration Procedure for one of a patient's units.
fn administration_procedure(p: &Patient, unit: &str, hours: i64) -> Value {
    use autolog_app::interop::fhir::{id, system};
    json!({
        "resourceType": "Procedure",
        "identifier": [{"system": "urn:oid:1.2.3.4.5.6", "value": format!("EMR-LAX-INF-{}-{}", p.key, &unit[20..22])}],
        "status": "completed",
        "code": {"coding": [{"system": system::PROCESS_STEP, "code": "INFUSE"}]},
        "subject": {"reference": format!("Patient/{}", id::patient(&p.key))},
        "occurrenceDateTime": autolog_app::interop::fhir::date_time(&at(p.t0, hours, LAX.1)).expect("time"),
        "performer": [
            {"function": {"coding": [{"system": system::PARTICIPATION_TYPE, "code": "PRF"}]}, "actor": {"reference": "Practitioner/P-0007"}},
            {"function": {"coding": [{"system": system::PARTICIPATION_TYPE, "code": "VRF"}]}, "actor": {"identifier": {"system": system::PERSON, "value": "P-0005"}}},
        ],
        "location": {"reference": "Location/S-LAX-01"},
        "used": [{"reference": {"reference": format!("BiologicallyDerivedProduct/{}", id::unit(unit))}}],
    })
}

/// A full journey (identifying data imported as a FHIR Patient, the administration as a
/// FHIR Procedure): every resource Autolog renders, in the chain's Bundle (with and
/// without identifying data) and read one by one, passes fhir.resources, uses the right
/// code systems and identifiers, and refers only to resources of the Bundle of the right
/// types.
#[tokio::test]
async fn every_fhir_resource_of_a_full_journey_is_valid_r5_and_refers_within_its_bundle() {
    use autolog_app::interop::fhir::{self, id, system, ImportError, PersonalRead};
    use autolog_domain::access::Role;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("fhir.db"))
        .await
        .with_vault_key(autolog_app::VaultKey::from_bytes([9u8; 32]));
    let p = enrol(&app, "PK-FHIR-1", t0()).await;
    let nurse = person_principal("P-0005", Role::TreatmentNurse);
    let physician = person_principal("P-0007", Role::TreatmentPhysician);

    // The treatment center's Patient: identifying data to the vault, never the ledger.
    let imported = json!({
        "resourceType": "Patient",
        "identifier": [
            {"system": system::PATIENT_KEY, "value": p.key},
            {"system": system::COI, "value": p.coi},
            {"use": "usual", "type": {"coding": [{"system": system::IDENTIFIER_TYPE, "code": "MR"}]}, "value": "MRN-55012"},
        ],
        "name": [{"use": "official", "family": "Quennell", "given": ["Ada", "Mae"]}],
        "birthDate": "1967-03-14",
        "telecom": [{"system": "phone", "value": "+1 213 555 0142"}],
        "gender": "female",
    });
    let (outcome, new, patient_id) = app
        .fhir_import_patient(&nurse, &imported)
        .await
        .expect("patient imported");
    assert!(new);
    assert_eq!(patient_id, p.key);
    assert!(outcome.to_string().contains("Patient.gender"), "{outcome}");
    let ledger = autolog_test_support::ledger_text(&app).await;
    for value in ["Quennell", "MRN-55012", "1967-03-14", "555 0142"] {
        assert!(!ledger.contains(value), "{value} is in the ledger");
    }
    // A patient key no chain is enrolled with: refused, naming the identifier.
    let mut stranger = imported.clone();
    stranger["identifier"] = json!([{"system": system::PATIENT_KEY, "value": "PK-NOBODY"}]);
    match app.fhir_import_patient(&nurse, &stranger).await {
        Err(ImportError::Unprocessable(issues)) => {
            assert_eq!(issues[0].expression.as_deref(), Some("Patient.identifier"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    to_the_bedside(&app, &p, "LV19-2026-014").await;
    clean(&app, &bedside(&p, &p.units[0], &p.key, &p.coi, 23 * 24)).await;
    // Unit B0 had no bedside check: its administration is refused by the chain's rules.
    match app
        .fhir_import_administration(
            &physician,
            &administration_procedure(&p, &p.units[1], 23 * 24),
        )
        .await
    {
        Err(ImportError::Refused { element, error }) => {
            assert!(element.starts_with("Procedure"), "{element}: {error}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let before_infusion = chain(&app, &p.coi).await["known_at"]
        .as_str()
        .expect("known_at")
        .to_string();
    // Unit A0: recorded as chain.administered, through the same append path.
    let procedure = administration_procedure(&p, &p.units[0], 23 * 24);
    let (infusion, new) = app
        .fhir_import_administration(&physician, &procedure)
        .await
        .expect("administration imported");
    assert!(new);
    assert_eq!(infusion["id"], json!(id::infusion(&p.units[0])));
    assert_eq!(chain(&app, &p.coi).await["state"], "administered");
    let (_, new) = app
        .fhir_import_administration(&physician, &procedure)
        .await
        .expect("a resend is answered");
    assert!(!new, "a resend writes nothing");

    let bundle_id = id::bundle(&p.coi);
    let identified = app
        .fhir_bundle(
            &bundle_id,
            None,
            None,
            Some(PersonalRead {
                actor: "person/P-0005",
                purpose: "TREAT",
            }),
        )
        .await
        .expect("bundle");
    let pseudonymous = app
        .fhir_bundle(&bundle_id, None, None, None)
        .await
        .expect("bundle");
    // As Autolog knew the chain before the infusion: unit A0 still available, no infusion.
    let earlier = app
        .fhir_bundle(&bundle_id, None, Some(&before_infusion), None)
        .await
        .expect("bundle as of");
    assert_eq!(
        entry_of(
            &earlier,
            "BiologicallyDerivedProduct",
            &id::unit(&p.units[0])
        )["productStatus"]["code"],
        "available"
    );
    assert!(!earlier.to_string().contains(&id::infusion(&p.units[0])));
    assert_eq!(earlier["timestamp"], json!(before_infusion));
    // The Patient: identifying data only when asked for (and the read recorded).
    let named = entry_of(&identified, "Patient", &id::patient(&p.key));
    assert_eq!(named["name"][0]["family"], "Quennell");
    assert_eq!(named["birthDate"], "1967-03-14");
    let unnamed = entry_of(&pseudonymous, "Patient", &id::patient(&p.key));
    assert!(unnamed.get("name").is_none() && unnamed.get("birthDate").is_none());
    assert_eq!(unnamed["meta"]["security"][0]["code"], "PSEUDED");
    let audit = app
        .list_events(&autolog_app::ListQuery {
            stream: Some(format!("patient/{}", p.key)),
            valid_at: None,
            known_at: None,
            after_position: None,
            limit: None,
        })
        .await
        .expect("audit");
    let audit = serde_json::to_string(&audit).expect("JSON");
    assert!(audit.contains("\"purpose\":\"TREAT\""), "{audit}");

    // Genealogy: unit -> batch -> collections, the DIN as biological source event.
    let unit_a = entry_of(
        &pseudonymous,
        "BiologicallyDerivedProduct",
        &id::unit(&p.units[0]),
    );
    let unit_b = entry_of(
        &pseudonymous,
        "BiologicallyDerivedProduct",
        &id::unit(&p.units[1]),
    );
    let batch = entry_of(
        &pseudonymous,
        "BiologicallyDerivedProduct",
        &id::batch(&format!("B-{}", p.key)),
    );
    let bag = entry_of(
        &pseudonymous,
        "BiologicallyDerivedProduct",
        &id::collection(&p.dins[0]),
    );
    assert_eq!(
        unit_a["productStatus"]["code"], "unavailable",
        "administered"
    );
    assert_eq!(
        unit_b["productStatus"]["code"], "available",
        "released, at the bedside"
    );
    assert_eq!(
        bag["productStatus"]["code"], "unavailable",
        "made into the batch"
    );
    assert_eq!(
        unit_a["biologicalSourceEvent"]["value"],
        json!(&p.dins[0][..13])
    );
    assert_eq!(unit_a["division"], "A0");
    assert_eq!(unit_a["productCode"]["coding"][0]["code"], "S0001");
    assert_eq!(
        unit_a["storageTempRequirements"]["low"]["value"],
        json!(-196.0)
    );
    let full_url = |t: &str, i: &str| json!(fhir::full_url(t, i));
    assert_eq!(
        unit_a["parent"][0]["reference"],
        full_url(
            "BiologicallyDerivedProduct",
            &id::batch(&format!("B-{}", p.key))
        )
    );
    assert_eq!(batch["parent"].as_array().map(Vec::len), Some(2));
    let dispense = entry_of(
        &pseudonymous,
        "BiologicallyDerivedProductDispense",
        &id::release(&p.units[0]),
    );
    assert_eq!(dispense["status"], "issued");
    assert_eq!(
        dispense["originRelationshipType"]["coding"][0]["code"],
        "autologous"
    );
    let infusion = entry_of(&pseudonymous, "Procedure", &id::infusion(&p.units[0]));
    assert_eq!(infusion["code"]["coding"][0]["code"], "INFUSE");
    entry_of(&pseudonymous, "Procedure", &id::apheresis(&p.dins[0]));
    // The release's signature: signer, printed name, time, meaning and record digest.
    let provenances: Vec<&Value> = pseudonymous["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Provenance")
        .collect();
    assert_eq!(provenances.len(), 1, "one signed record: the release");
    let signature = &provenances[0]["signature"][0];
    assert_eq!(signature["who"]["display"], "Daniel Okafor");
    assert!(signature["when"].as_str().is_some_and(fhir::is_date_time));
    let extensions = signature["extension"].to_string();
    assert!(extensions.contains("approved for release"), "{extensions}");
    let digest = signature["extension"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["url"] == system::SIGNATURE_RECORD_DIGEST)
        })
        .and_then(|e| e["valueString"].as_str())
        .expect("digest");
    assert!(digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()));

    // Codes, identifiers and references, which the validator does not check.
    let mut problems = check_references(&identified);
    problems.extend(check_references(&pseudonymous));
    let out = tempfile::tempdir().expect("tempdir");
    let mut written = 0;
    let mut write = |name: &str, resource: &Value| {
        let path = out.path().join(format!("{written:03}-{name}.json"));
        std::fs::write(path, resource.to_string()).expect("write");
        written += 1;
    };
    write("bundle-identified", &identified);
    write("bundle-pseudonymous", &pseudonymous);
    let mut types = BTreeSet::new();
    for entry in identified["entry"].as_array().expect("entries") {
        let resource = &entry["resource"];
        let (t, i) = (
            resource["resourceType"].as_str().expect("type"),
            resource["id"].as_str().expect("id"),
        );
        types.insert(t.to_string());
        problems.extend(check_codes(resource));
        write(&format!("{t}-{i}"), resource);
        // Each resource reads on its own, under the same id.
        let read = match t {
            "Organization" | "Location" | "Practitioner" => app.fhir_reference_read(t, i).await,
            _ => app.fhir_read(t, i, None, None, None).await,
        }
        .unwrap_or_else(|e| panic!("{t}/{i}: {e}"));
        assert_eq!(
            (read["resourceType"].as_str(), read["id"].as_str()),
            (Some(t), Some(i))
        );
        problems.extend(check_codes(&read));
        write(&format!("read-{t}-{i}"), &read);
    }
    for t in [
        "Patient",
        "Organization",
        "Location",
        "Practitioner",
        "BiologicallyDerivedProduct",
        "BiologicallyDerivedProductDispense",
        "Procedure",
        "Provenance",
    ] {
        assert!(types.contains(t), "the journey's Bundle has no {t}");
    }
    write("capability", &fhir::capability_statement("0.1.0"));
    write("imported-patient-outcome", &outcome);
    write(
        "refusal",
        &fhir::operation_outcome(&[fhir::Issue::error("required", "Procedure.used", "no unit")]),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // AUTOLOG_FHIR_KEEP=<dir> keeps the resources for a look (or another validator).
    if let Ok(keep) = std::env::var("AUTOLOG_FHIR_KEEP") {
        std::fs::create_dir_all(&keep).expect("keep dir");
        for file in std::fs::read_dir(out.path()).expect("resources") {
            let file = file.expect("file");
            std::fs::copy(
                file.path(),
                std::path::Path::new(&keep).join(file.file_name()),
            )
            .expect("copy");
        }
    }
    if run_fhir_validator(out.path()) {
        // The validator is not vacuous: it refuses what R5 does not allow (a Coding given
        // as text, a Procedure without status and subject, an element R5 does not have).
        let bad = tempfile::tempdir().expect("tempdir");
        for (i, resource) in [
            json!({"resourceType": "BiologicallyDerivedProduct", "productStatus": "available"}),
            json!({"resourceType": "Procedure"}),
            json!({"resourceType": "Patient", "colour": "red"}),
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(bad.path().join(format!("{i}.json")), resource.to_string())
                .expect("write");
        }
        let output = std::process::Command::new("python3")
            .arg(FHIR_VALIDATOR)
            .arg(bad.path())
            .output()
            .expect("python3");
        let report = String::from_utf8_lossy(&output.stdout).to_string();
        assert_eq!(output.status.code(), Some(1), "{report}");
        assert_eq!(report.matches("INVALID").count(), 3, "{report}");
    }
}

/// Autolog's EPCIS profile (docs/integration.md) of a native custody request: the same
/// facts as a courier's system sends them, in GS1 EPCIS 2.0 with its own local codes.
fn epcis_of_custody(
    native: &Value,
    step_code: &str,
    person_code: &str,
    gln: &str,
    to_gln: Option<&str>,
) -> Value {
    let data = &native["body"]["data"];
    let occurred = native["occurred_at"].as_str().expect("occurred_at");
    let (time, _) = occurred.split_once('[').expect("RFC 9557");
    let offset = &time[time.len() - 6..];
    let shipping = native["body"]["type"] == "custody.handed_off";
    let epcs: Vec<Value> = if shipping {
        data["units"]
            .as_array()
            .expect("units")
            .iter()
            .map(|u| json!(format!("urn:isbt128:din:{}", u.as_str().expect("unit"))))
            .collect()
    } else {
        data["scanned_labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|l| {
                json!(format!(
                    "urn:isbt128:{}",
                    l["unit"].as_str().expect("label")
                ))
            })
            .collect()
    };
    let mut event = json!({
        "type": "ObjectEvent",
        "eventTime": time,
        "eventTimeZoneOffset": offset,
        "epcList": epcs,
        "action": "OBSERVE",
        "bizStep": if shipping { "shipping" } else { "receiving" },
        "disposition": if shipping { "in_transit" } else { "in_progress" },
        "readPoint": {"id": format!("https://id.gs1.org/414/{gln}")},
        "bizLocation": {"id": format!("https://id.gs1.org/414/{gln}")},
        "bizTransactionList": [{"type": "bol", "bizTransaction": format!("urn:epcglobal:cbv:bt:0614141000012:{}", data["handoff_id"].as_str().expect("id"))}],
        "autolog:stepCode": step_code,
        "autolog:containerID": data["container_id"],
        "autolog:sealID": data["seal_id"],
    });
    if shipping {
        event["destinationList"] = json!([{"type": "location", "destination": format!("https://id.gs1.org/414/{}", to_gln.expect("destination"))}]);
        event["autolog:handedOffBy"] = json!(person_code);
        event["autolog:expectedArrivalBy"] = data["expected_arrival_by"].clone();
        event["autolog:temperatureRange"] = data["temperature_range"].clone();
    } else {
        let log = &data["temperature_log"];
        event["autolog:receivedBy"] = json!(person_code);
        event["autolog:sealIntact"] = data["seal_intact"].clone();
        event["sensorElementList"] = json!([{
            "sensorMetadata": {"deviceID": format!("urn:epc:id:giai:4000001.{}", log["logger_id"].as_str().unwrap_or("1"))},
            "sensorReport": [
                {"type": "Temperature", "minValue": log["min_celsius"], "maxValue": log["max_celsius"], "uom": "CEL"}
            ]
        }]);
    }
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"autolog": "https://autolog.dev/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": time,
        "epcisBody": {"eventList": [event]},
    })
}

/// A courier's EPCIS shipping and receiving events drive the same custody handshake and
/// reconciliation as the native API: a clean leg moves the chain, a swapped bag holds both
/// chains with critical alerts, and an event naming a location nobody mapped is stored,
/// answered as unmapped and counted in the alignment report, never dropped.
#[tokio::test]
async fn a_couriers_epcis_events_drive_the_custody_handshake_and_its_reconciliation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("epcis.db")).await;
    // The courier's own codes for the people who hand over and receive are in the example
    // network's crosswalks (LAX-NURSE-5, BOS-OP-2).
    let issued = app
        .issue_token(
            "courier-cryo",
            &["S-LAX-01".into(), "S-BOS-01".into()],
            None,
            "person/P-ADMIN",
        )
        .await
        .expect("token");
    let courier = app
        .authenticate_token(&issued.token)
        .await
        .expect("courier");
    let (lax, bos) = ("0614141000029", "0614141000012");
    let capture = |doc: Value| {
        let app = &app;
        let courier = &courier;
        async move {
            app.epcis_capture(courier, doc.to_string().as_bytes())
                .await
                .expect("captured")
                .to_json()
        }
    };

    // A clean leg: the chain moves exactly as with the native API.
    let a = enrol(&app, "PK-EPCIS-A", t0()).await;
    let b = enrol(&app, "PK-EPCIS-B", t0()).await;
    clean(&app, &collection(&a)).await;
    clean(&app, &collection(&b)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    let answer = capture(epcis_of_custody(
        &s.handoff,
        "PICKUP",
        "LAX-NURSE-5",
        lax,
        Some(bos),
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    assert_eq!(answer["chain"][0]["event"]["actor"], "system/courier-cryo");
    assert_eq!(chain(&app, &a.coi).await["state"], "in_transit");
    let answer = capture(epcis_of_custody(
        &s.receipt,
        "DELIVERED",
        "BOS-OP-2",
        bos,
        None,
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    let c = chain(&app, &a.coi).await;
    assert_eq!(c["state"], "received_at_manufacturing", "{c}");
    assert_eq!(c["custodian_site_id"], BOS.0);
    assert!(alerts_of(&app, &a.coi).await.is_empty());
    // The same document again: stored once, recorded once.
    let again = capture(epcis_of_custody(
        &s.receipt,
        "DELIVERED",
        "BOS-OP-2",
        bos,
        None,
    ))
    .await;
    assert_eq!(again["duplicate"], true);

    // A swapped bag: A's bag arrives in B's shipment. Caught at the receipt, as natively.
    let s = shipment(
        &b,
        Leg::ToManufacturing,
        Some(Fault::SwappedBag),
        Some(&a.dins[0]),
    );
    let answer = capture(epcis_of_custody(
        &s.handoff,
        "PICKUP",
        "LAX-NURSE-5",
        lax,
        Some(bos),
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    let answer = capture(epcis_of_custody(
        &s.receipt,
        "DELIVERED",
        "BOS-OP-2",
        bos,
        None,
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    assert!(
        answer["chain"][0]["alerts"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "the mismatch raised alerts at once: {answer}"
    );
    for p in [&a, &b] {
        let c = chain(&app, &p.coi).await;
        assert_eq!(c["state"], "on_hold", "{}: {c}", p.key);
        assert!(
            alerts_of(&app, &p.coi)
                .await
                .iter()
                .any(|x| x["severity"] == "critical"),
            "{}",
            p.key
        );
    }

    // A full swap: D's receipt holds only E's bags. The receipt answers D's handoff, so
    // it is recorded on D's chain, and the mismatch holds both chains.
    let d = enrol(&app, "PK-EPCIS-D", t0()).await;
    let e = enrol(&app, "PK-EPCIS-E", t0()).await;
    clean(&app, &collection(&d)).await;
    clean(&app, &collection(&e)).await;
    let sd = shipment(&d, Leg::ToManufacturing, None, None);
    let se = shipment(&e, Leg::ToManufacturing, None, None);
    for s in [&sd, &se] {
        let answer = capture(epcis_of_custody(
            &s.handoff,
            "PICKUP",
            "LAX-NURSE-5",
            lax,
            Some(bos),
        ))
        .await;
        assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    }
    let mut swapped = sd.receipt.clone();
    swapped["body"]["data"]["scanned_labels"] =
        se.receipt["body"]["data"]["scanned_labels"].clone();
    let answer = capture(epcis_of_custody(
        &swapped,
        "DELIVERED",
        "BOS-OP-2",
        bos,
        None,
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    assert_eq!(
        answer["chain"][0]["stream"],
        format!("coi/{}", d.coi),
        "{answer}"
    );
    for p in [&d, &e] {
        assert_eq!(chain(&app, &p.coi).await["state"], "on_hold", "{}", p.key);
    }

    // Out of order: a receipt before its shipment is refused; resent once the shipment is
    // in, the same document is applied.
    let f = enrol(&app, "PK-EPCIS-F", t0()).await;
    clean(&app, &collection(&f)).await;
    let sf = shipment(&f, Leg::ToManufacturing, None, None);
    let early = epcis_of_custody(&sf.receipt, "DELIVERED", "BOS-OP-2", bos, None);
    let answer = capture(early.clone()).await;
    assert_eq!(answer["chain"][0]["status"], "refused", "{answer}");
    let answer = capture(epcis_of_custody(
        &sf.handoff,
        "PICKUP",
        "LAX-NURSE-5",
        lax,
        Some(bos),
    ))
    .await;
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    let answer = capture(early).await;
    assert_eq!(answer["duplicate"], true);
    assert_eq!(answer["chain"][0]["status"], "recorded", "{answer}");
    assert_eq!(
        chain(&app, &f.coi).await["state"],
        "received_at_manufacturing"
    );

    // An EPC of a form Autolog cannot read as a unit: the event is not applied at all
    // (no unit is left out of a handoff), and the EPC is counted.
    let g = enrol(&app, "PK-EPCIS-G", t0()).await;
    clean(&app, &collection(&g)).await;
    let sg = shipment(&g, Leg::ToManufacturing, None, None);
    let mut doc = epcis_of_custody(&sg.handoff, "PICKUP", "LAX-NURSE-5", lax, Some(bos));
    doc["epcisBody"]["eventList"][0]["epcList"]
        .as_array_mut()
        .expect("epcs")
        .push(json!("urn:example:bag:7"));
    let answer = capture(doc).await;
    assert_eq!(answer["chain"][0]["status"], "unmapped", "{answer}");
    assert_eq!(chain(&app, &g.coi).await["state"], "collected");

    // A location the courier never mapped: stored, answered as unmapped, counted.
    let c2 = enrol(&app, "PK-EPCIS-C", t0()).await;
    clean(&app, &collection(&c2)).await;
    let s = shipment(&c2, Leg::ToManufacturing, None, None);
    let mut doc = epcis_of_custody(&s.handoff, "PICKUP", "LAX-NURSE-5", lax, Some(bos));
    doc["epcisBody"]["eventList"][0]["bizLocation"]["id"] = json!("urn:example:courier:depot-9");
    doc["epcisBody"]["eventList"][0]["readPoint"]["id"] = json!("urn:example:courier:depot-9");
    let answer = capture(doc).await;
    assert_eq!(answer["eventCount"], 1, "stored");
    assert_eq!(answer["chain"][0]["status"], "unmapped", "{answer}");
    // The answer names the system, the kind and the code the steward must map.
    let location = answer["chain"][0]["unmapped"]
        .as_array()
        .expect("unmapped")
        .iter()
        .find(|u| u["field"] == "bizLocation.id")
        .expect("the location")
        .clone();
    assert_eq!(location["kind"], "site", "{location}");
    assert_eq!(
        location["code"], "urn:example:courier:depot-9",
        "{location}"
    );
    assert!(location["system"].is_string(), "{location}");
    assert_eq!(chain(&app, &c2.coi).await["state"], "collected");
    let report =
        serde_json::to_value(app.alignment_report(None).await.expect("alignment")).expect("json");
    assert!(
        report.to_string().contains("urn:example:courier:depot-9"),
        "the unmapped location is in the alignment report"
    );
    // Counted once per occurrence: the one capture is one occurrence.
    let counted: Vec<&Value> = report["unmapped_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|group| group["kind"] == "site")
        .flat_map(|group| group["codes"].as_array().into_iter().flatten())
        .filter(|u| u["code"] == "urn:example:courier:depot-9")
        .collect();
    assert_eq!(counted.len(), 1, "{report}");
    assert_eq!(counted[0]["count"], 1, "{report}");
}

/// A late entry is judged at its own time: a lot registered, then recalled at t0+100h; a
/// consumption dated t0+49h and entered after the recall used a released lot (accepted,
/// and forward genealogy finds it); one dated t0+120h is refused as recalled. A status
/// change dated before the lot's registration is refused naming both times. On both stores.
async fn late_entries(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-LATE-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let batch = format!("B-{}", a.key);
    clean(
        &app,
        &step(
            &a,
            "batch",
            47,
            BOS,
            "P-0002",
            "batch.created",
            json!({"batch_id": batch, "site_id": BOS.0, "created_by": "P-0002", "source_dins": a.dins}),
        ),
    )
    .await;
    let lot_stream = "lot/LV-CD19/LV-LATE-1";
    let lot_event = |id: &str, hours: i64, kind: &str, data: Value| {
        json!({
            "stream": lot_stream,
            "occurred_at": at(a.t0, hours, "UTC"),
            "actor": "person/P-ADMIN",
            "source": {"system": "qms", "source_event_id": id},
            "body": {"type": kind, "version": 1, "data": data},
        })
    };
    clean(
        &app,
        &lot_event(
            "lot-late",
            0,
            "material_lot.registered",
            json!({"material": "LV-CD19", "supplier": "Vector Biologics Inc.", "lot": "LV-LATE-1",
                   "expiry": "2099-12-31", "status": "released"}),
        ),
    )
    .await;
    clean(
        &app,
        &lot_event(
            "lot-recall",
            100,
            "material_lot.status_changed",
            json!({"status": "recalled"}),
        ),
    )
    .await;
    let consume = |id: &str, hours: i64| {
        step(
            &a,
            id,
            hours,
            BOS,
            "P-0002",
            "batch.material_consumed",
            json!({"batch_id": batch, "material": "LV-CD19", "lot": "LV-LATE-1", "quantity": 2.5,
                   "quantity_unit": "mL", "site_id": BOS.0, "recorded_by": "P-0002"}),
        )
    };
    // Recorded (the lot was released then), and the recall reaches the batch at once.
    let late = send(&app, &consume("late-before-recall", 49))
        .await
        .expect("a late entry dated before the recall is recorded");
    let rules: Vec<&Value> = late
        .alerts
        .iter()
        .map(|o| &o.event.body.data["rule"])
        .collect();
    assert_eq!(
        rules,
        [&json!("material_lot.recalled_after_use")],
        "{}",
        json!(late)
    );
    let e = refused_with(&app, &consume("after-recall", 120)).await;
    assert_eq!(e.field, "body.data.lot", "{e}");
    assert!(e.rule.contains("recalled"), "{e}");
    // The store checks the lot again under the ledger lock: a consumption that reached it
    // past the request's rules (a recall committed meanwhile) is refused there too.
    let raw = autolog_domain::catalogue::parse_draft(
        &consume("past-the-rules", 120),
        autolog_domain::Uuid::now_v7(),
    )
    .expect("draft");
    match app
        .store()
        .append(&[raw], &autolog_domain::Instant::now)
        .await
    {
        Err(autolog_store::StoreError::Rejected(e)) => {
            assert_eq!(e.field, "[0].body.data.lot", "{e}");
            assert!(e.rule.contains("under the ledger lock"), "{e}");
        }
        other => panic!("refused under the lock, got {other:?}"),
    }
    let genealogy = json!(app
        .genealogy_forward("LV-LATE-1", None, None)
        .await
        .expect("genealogy"));
    assert!(
        genealogy.to_string().contains(&a.coi),
        "the late entry is in the lot's forward genealogy: {genealogy}"
    );

    let e = refused_with(
        &app,
        &lot_event(
            "lot-before",
            -24,
            "material_lot.status_changed",
            json!({"status": "quarantined"}),
        ),
    )
    .await;
    assert_eq!(e.field, "occurred_at", "{e}");
    assert!(e.rule.contains("before the record's registration"), "{e}");
}

#[tokio::test]
async fn a_late_entry_is_judged_at_its_own_time_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "late_entries",
        |t| async move { late_entries(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_late_entry_is_judged_at_its_own_time_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "late_entries",
        |t| async move { late_entries(t.open().await).await },
    )
    .await;
}

/// Results can be amended: after the release, the laboratory corrects a result (with its
/// reason). The correction is recorded, the original kept; the chain as known at the
/// release shows what the releaser saw; the release relied on the result, so the chain
/// is held (it is not administered yet) with one critical alert until QA decides again.
async fn amended_results(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-AMEND-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let mut original = None;
    for e in manufacturing_with(&a, "LV19-2026-014") {
        let result = send(&app, &e).await.expect("manufacturing");
        if e["body"]["type"] == "batch.test_result_recorded"
            && e["body"]["data"]["test_code"] == "VIABILITY"
        {
            original = result.outcomes.first().map(|o| o.event.event_id);
        }
    }
    let original = original.expect("the viability result");
    let released = chain(&app, &a.coi).await;
    assert_eq!(released["state"], "released_for_patient", "{released}");
    let known_at_release = app.store().head().await.expect("head").recorded_at;

    let mut amended = test_result(
        &a,
        &format!("B-{}", a.key),
        "VIABILITY",
        json!(68.0),
        Some("%"),
    );
    amended["source"]["source_event_id"] = json!(format!("{}/viability-amended", a.key));
    amended["corrects"] = json!(original.to_string());
    amended["reason"] =
        json!("transcription error in the viable-cell count; re-read from the instrument");
    let result = send(&app, &amended)
        .await
        .expect("an amended result is recorded");
    assert_eq!(result.alerts.len(), 1, "{}", json!(result));
    let verdict = result
        .linked
        .iter()
        .find(|o| o.event.body.event_type == "batch.test_result_evaluated")
        .expect("the amended result is judged again");
    assert_eq!(
        verdict.event.body.data["verdict"], "fail",
        "68 % is below 70 %"
    );
    assert_eq!(result.alerts[0].event.body.data["severity"], "critical");
    assert_eq!(
        result.alerts[0].event.body.data["rule"],
        "decision.basis_corrected"
    );
    let held = chain(&app, &a.coi).await;
    assert_eq!(held["state"], "on_hold", "{held}");
    assert_eq!(held["resume_state"], "released_for_patient");
    assert_eq!(
        held["holds"][0]["rule"], "decision.basis_corrected",
        "{held}"
    );

    // As known at the release: the original result, in force.
    let known = known_at_release.expect("recorded").to_string();
    let then = app
        .chain(&a.coi, None, Some(&known))
        .await
        .expect("as known then");
    let timeline = json!(then.timeline).to_string();
    assert!(timeline.contains("86.5"), "the releaser saw 86.5");
    assert!(
        !timeline.contains("68.0") && !timeline.contains("\"68\""),
        "{timeline}"
    );
    // Now: the amendment is in force, the original kept and superseded.
    let now = chain(&app, &a.coi).await;
    let superseded = now["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["event_id"] == original.to_string())
        .expect("the original is kept");
    assert_eq!(superseded["in_force"], false);

    // A new result after the release (a sterility culture read late) is recorded too;
    // out of specification, it raises its own critical alert.
    let late = test_result(
        &a,
        &format!("B-{}", a.key),
        "STERILITY",
        json!("positive"),
        None,
    );
    let result = send(&app, &late)
        .await
        .expect("a result after release is recorded");
    let rules: Vec<&Value> = result
        .alerts
        .iter()
        .map(|o| &o.event.body.data["rule"])
        .collect();
    assert_eq!(
        rules,
        [&json!("result.failed_after_release")],
        "{}",
        json!(result)
    );
}

#[tokio::test]
async fn an_amended_result_after_release_is_recorded_and_holds_the_chain_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "amended_results",
        |t| async move { amended_results(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn an_amended_result_after_release_is_recorded_and_holds_the_chain_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "amended_results",
        |t| async move { amended_results(t.open().await).await },
    )
    .await;
}

/// Final units carry their expiry: produced with `expires_at`, shown with the unit; the
/// shipment of a unit past it is a hard stop with a critical alert; a signed QA decision
/// (and only that) extends it, and the shipment then goes. On both stores.
async fn unit_expiry(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-EXPIRY-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    for mut e in manufacturing_with(&a, "LV19-2026-014") {
        if e["body"]["type"] == "batch.units_produced" {
            e["body"]["data"]["expires_at"] = json!(at(a.t0, 490, BOS.1)
                .split('[')
                .next()
                .expect("offset form")
                .to_string());
        }
        clean(&app, &e).await;
    }
    let shown = chain(&app, &a.coi).await;
    assert!(
        shown["final_units"][0]["expires_at"].is_string(),
        "shown with the unit: {shown}"
    );

    let ship = shipment(&a, Leg::ToTreatment, None, None);
    let e = refused_with(&app, &ship.handoff).await;
    assert_eq!(e.field, "body.data.units", "{e}");
    assert!(e.rule.contains("expired"), "{e}");
    let alerts = alerts_of(&app, &a.coi).await;
    let expired: Vec<&Value> = alerts
        .iter()
        .filter(|x| x["rule"] == "unit.expired")
        .collect();
    assert_eq!(expired.len(), 1, "{alerts:?}");
    assert_eq!(expired[0]["severity"], "critical");

    // Extended by a signed QA decision, with its reason, unit by unit: the shipment goes.
    for (n, unit) in a.units.iter().enumerate() {
        let extend = step(
            &a,
            &format!("extend-expiry-{n}"),
            495,
            BOS,
            "P-0008",
            "unit.expiry_extended",
            json!({"unit": unit, "expires_at": at(a.t0, 2000, "UTC").split('[').next().expect("form"),
                   "site_id": BOS.0, "extended_by": "P-0008",
                   "reason": "stability data supports 60 days at -150 °C (QA decision QD-17)"}),
        );
        clean(&app, &extend).await;
    }
    clean(&app, &ship.handoff).await;
    assert_eq!(chain(&app, &a.coi).await["state"], "in_transit");
}

/// A unit that expired before its release is not released (an unmet condition naming the
/// unit and its expiry); a signed QA extension, and the release goes. On both stores.
async fn expired_before_release(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-EXPREL-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let mut events = manufacturing_with(&a, "LV19-2026-014");
    let release = events.pop().expect("the release comes last");
    for mut e in events {
        if e["body"]["type"] == "batch.units_produced" {
            e["body"]["data"]["expires_at"] = json!(at(a.t0, 470, "UTC")
                .split('[')
                .next()
                .expect("offset form")
                .to_string());
        }
        clean(&app, &e).await;
    }
    match send(&app, &release).await {
        Err(AppError::Unmet(unmet)) => {
            let expired = unmet
                .iter()
                .find(|f| f.field == "body.data.units[0]")
                .unwrap_or_else(|| panic!("the expired unit is named: {unmet:?}"));
            assert!(expired.rule.contains("expired at"), "{expired}");
        }
        other => panic!("an expired unit is not released, got {other:?}"),
    }
    for (n, unit) in a.units.iter().enumerate() {
        let extend = step(
            &a,
            &format!("extend-before-release-{n}"),
            475,
            BOS,
            "P-0008",
            "unit.expiry_extended",
            json!({"unit": unit, "expires_at": at(a.t0, 2000, "UTC").split('[').next().expect("form"),
                   "site_id": BOS.0, "extended_by": "P-0008",
                   "reason": "stability data supports 60 days at -150 °C (QA decision QD-18)"}),
        );
        clean(&app, &extend).await;
    }
    clean(&app, &release).await;
    assert_eq!(chain(&app, &a.coi).await["state"], "released_for_patient");
}

#[tokio::test]
async fn a_unit_expired_before_its_release_is_not_released_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "expired_release",
        |t| async move { expired_before_release(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_unit_expired_before_its_release_is_not_released_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "expired_release",
        |t| async move { expired_before_release(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn an_expired_unit_is_stopped_until_qa_extends_it_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "unit_expiry",
        |t| async move { unit_expiry(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn an_expired_unit_is_stopped_until_qa_extends_it_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "unit_expiry",
        |t| async move { unit_expiry(t.open().await).await },
    )
    .await;
}

/// A chain can start again: after a failed manufacture the patient is collected again
/// under a new COI that names the first (`previous_coi`, with a coded reason). The link is
/// in both chains; the first makes no more progress; DINs stay with their chain; the same
/// patient and product only, once, never after administration. On both stores.
async fn recollection(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-AGAIN-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;

    let again = |key: &str, previous: &str, id: &str| {
        json!({
            "occurred_at": at(a.t0, 200, LAX.1),
            "actor": "person/P-0005",
            "site": LAX.0,
            "source": {"system": "emr-lax", "source_event_id": id},
            "patient_key": key,
            "product_code": "CART-19",
            "treatment_site_id": LAX.0,
            "previous_coi": previous,
            "recollection_reason": "manufacturing_failure",
        })
    };
    match app
        .enrol(
            again("PK-SOMEONE-ELSE", &a.coi, "again-other")
                .to_string()
                .as_bytes(),
        )
        .await
    {
        Err(AppError::Invalid(e)) => {
            assert_eq!(e.field, "previous_coi", "{e}");
            assert!(e.rule.contains("patient_key"), "{e}");
        }
        other => panic!("another patient's chain: refused, got {other:?}"),
    }
    let (b_coi, _) = app
        .enrol(again(&a.key, &a.coi, "again-a").to_string().as_bytes())
        .await
        .expect("the re-collection is enrolled");
    let first = chain(&app, &a.coi).await;
    assert_eq!(first["succeeded_by"], b_coi.as_str(), "{first}");
    let second = chain(&app, &b_coi).await;
    assert_eq!(second["previous_coi"], a.coi.as_str(), "{second}");

    // The first episode makes no more progress; its DINs stay its own.
    let e = refused_with(&app, &manufacturing(&a).remove(0)).await;
    assert!(e.rule.contains(&b_coi), "{e}");
    let b = Patient {
        // (the key names the events' source ids; the patient is the same)
        key: format!("{}-2", a.key),
        coi: b_coi.clone(),
        dins: a.dins.clone(),
        units: Vec::new(),
        t0: a.t0,
    };
    let reused = refused_with(&app, &collection(&b)).await;
    assert!(
        reused.rule.contains(&a.coi),
        "a DIN belongs to one COI: {reused}"
    );
    let b = Patient {
        dins: vec![new_din()],
        ..b
    };
    clean(&app, &collection(&b)).await;
    // Once only.
    match app
        .enrol(again(&a.key, &a.coi, "again-twice").to_string().as_bytes())
        .await
    {
        Err(AppError::Invalid(e)) => assert!(e.rule.contains("already collected again"), "{e}"),
        other => panic!("a second re-collection of the same chain: refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_patient_is_collected_again_under_a_linked_coi_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "recollection",
        |t| async move { recollection(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_patient_is_collected_again_under_a_linked_coi_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "recollection",
        |t| async move { recollection(t.open().await).await },
    )
    .await;
}

/// A return is a fact a held chain records: the starting material arrives out of its
/// temperature range (the receipt fails reconciliation, the chain is held, custody stays
/// with the sender), and the manufacturing site sends it back. The return leaves from where
/// the material is for the custodian of record and is received there; the chain stays on
/// hold, back where it was before the shipment; anything else moving on is still refused,
/// and the patient is collected again under a linked chain. On both stores.
async fn returned_shipment(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-RETURN-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(
        &a,
        Leg::ToManufacturing,
        Some(Fault::TemperatureExcursion),
        None,
    );
    clean(&app, &s.handoff).await;
    let held = send(&app, &s.receipt)
        .await
        .expect("the receipt is recorded");
    assert_eq!(held.alerts.len(), 1, "{}", json!(held));
    let c = chain(&app, &a.coi).await;
    assert_eq!(c["state"], "on_hold", "{c}");
    assert_eq!(c["custodian_site_id"], LAX.0, "{c}");
    assert_eq!(c["location_site_id"], BOS.0, "{c}");
    // Per container: each bag and the shipper are at Boston, custody of record with LA.
    for bag in c["units"].as_array().expect("units") {
        assert_eq!(bag["at_site"], BOS.0, "{c}");
        assert_eq!(bag["custodian_site_id"], LAX.0, "{c}");
    }
    let shipper = format!("DS-{}-out", a.key);
    let shipper_of = |c: &Value| {
        c["shippers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["container_id"] == shipper.as_str())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(shipper_of(&c)["at_site"], BOS.0, "{c}");
    assert_eq!(shipper_of(&c)["custodian_site_id"], LAX.0, "{c}");
    assert_eq!(c["disputed_custody"]["units"], json!(a.dins), "{c}");

    let back = |id: &str, hours: i64, site: (&str, &str), kind: &str, data: Value| {
        step(&a, id, hours, site, "P-0002", kind, data)
    };
    let return_data = |from: &str, to: &str| {
        json!({"handoff_id": format!("H-{}-return", a.key), "step_code": "SHIP-TC",
               "from_site_id": from, "handed_off_by": "P-0002", "destination_site_id": to,
               "courier": "WORLD-COURIER", "units": a.dins, "unit_count": a.dins.len(),
               "container_id": format!("DS-{}-out", a.key), "seal_id": format!("SEAL-{}-return", a.key),
               "expected_arrival_by": at(a.t0, 60, "UTC"),
               "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0}})
    };
    // Anywhere but back to the custodian of record is onward shipment: refused on hold.
    let onward = back(
        "return-onward",
        40,
        BOS,
        "custody.handed_off",
        return_data(BOS.0, FRA.0),
    );
    let e = refused_with(&app, &onward).await;
    assert!(e.rule.contains("on hold"), "{e}");
    clean(
        &app,
        &back(
            "return",
            40,
            BOS,
            "custody.handed_off",
            return_data(BOS.0, LAX.0),
        ),
    )
    .await;
    let c = chain(&app, &a.coi).await;
    assert_eq!(c["state"], "on_hold", "{c}");
    assert!(
        c["disputed_custody"].is_null(),
        "settled by the return: {c}"
    );
    let receipt = json!({"handoff_id": format!("H-{}-return", a.key), "step_code": "RECEIVE-TC",
        "receiving_site_id": LAX.0, "received_by": "P-0005",
        "scanned_labels": a.dins.iter().map(|d| json!({"unit": din_barcode(d, false), "coi": a.coi})).collect::<Vec<_>>(),
        "container_id": format!("DS-{}-out", a.key), "seal_id": format!("SEAL-{}-return", a.key),
        "seal_intact": true,
        "temperature_log": {"min_celsius": 3.0, "max_celsius": 7.0, "logger_id": "TL-RETURN"}});
    clean(
        &app,
        &step(
            &a,
            "return-in",
            58,
            LAX,
            "P-0005",
            "custody.received",
            receipt,
        ),
    )
    .await;
    let c = chain(&app, &a.coi).await;
    assert_eq!(c["state"], "on_hold", "{c}");
    assert_eq!(c["resume_state"], "collected", "{c}");
    assert_eq!(c["custodian_site_id"], LAX.0, "{c}");
    assert_eq!(c["location_site_id"], LAX.0, "{c}");
    assert_eq!(shipper_of(&c)["at_site"], LAX.0, "back home: {c}");
    for bag in c["units"].as_array().expect("units") {
        assert_eq!(
            (&bag["at_site"], &bag["custodian_site_id"]),
            (&json!(LAX.0), &json!(LAX.0)),
            "{c}"
        );
    }
    // Nothing moves on while held.
    let e = refused_with(&app, &manufacturing(&a).remove(0)).await;
    assert!(e.rule.contains("on hold"), "{e}");

    // The patient is collected again, the link in both chains.
    let again = json!({
        "occurred_at": at(a.t0, 70, LAX.1), "actor": "person/P-0005", "site": LAX.0,
        "source": {"system": "emr-lax", "source_event_id": "again-returned"},
        "patient_key": a.key, "product_code": "CART-19", "treatment_site_id": LAX.0,
        "previous_coi": a.coi, "recollection_reason": "shipment_returned",
    });
    let (b_coi, _) = app
        .enrol(again.to_string().as_bytes())
        .await
        .expect("collected again");
    assert_eq!(chain(&app, &a.coi).await["succeeded_by"], b_coi.as_str());
}

#[tokio::test]
async fn a_returned_shipment_is_recorded_on_the_held_chain_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "returned_shipment",
        |t| async move { returned_shipment(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_returned_shipment_is_recorded_on_the_held_chain_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "returned_shipment",
        |t| async move { returned_shipment(t.open().await).await },
    )
    .await;
}

/// A source system's native events are resolved through its crosswalks, as its EPCIS
/// events are: the MES sends its own site, person, equipment and step codes and the
/// ledger records the canonical ids; a code it never mapped is refused and counted once
/// for the alignment report, with system, kind and code. On both stores.
async fn native_local_codes(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-LOCAL-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let s = shipment(&a, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let mes = autolog_app::Principal {
        actor: "system/mes-bos".into(),
        kind: autolog_app::PrincipalKind::System {
            system_id: "mes-bos".into(),
            token_id: autolog_domain::Uuid::now_v7(),
        },
        grants: vec![autolog_domain::access::Grant {
            role: autolog_domain::access::Role::ManufacturingOperator,
            site_id: BOS.0.to_string(),
        }],
    };
    let native = |id: &str, site: &str, kind: &str, data: Value| {
        json!({
            "stream": format!("coi/{}", a.coi),
            "occurred_at": at(a.t0, 47, BOS.1),
            "site": site,
            "source": {"system": "mes-bos", "source_event_id": id},
            "body": {"type": kind, "version": 1, "data": data},
        })
    };
    let batch = native(
        "mes-batch",
        "BOS1",
        "batch.created",
        json!({"batch_id": "B-LOCAL-A", "site_id": "BOS1", "created_by": "dokafor", "source_dins": a.dins}),
    );
    let recorded = app
        .append_json_as(&mes, batch.to_string().as_bytes())
        .await
        .expect("the MES's own codes are mapped");
    let event = &recorded.outcomes[0].event;
    assert_eq!(event.site.as_deref(), Some(BOS.0));
    assert_eq!(event.body.data["site_id"], BOS.0);
    assert_eq!(event.body.data["created_by"], "P-0002");
    let step = native(
        "mes-manufacture",
        "BOS1",
        "chain.step_performed",
        json!({"step_code": "OP-020", "site_id": "BOS1", "performed_by": "dokafor",
               "equipment_ids": ["BR-3"], "started_at": at(a.t0, 48, "UTC")}),
    );
    let recorded = app
        .append_json_as(&mes, step.to_string().as_bytes())
        .await
        .expect("step, person and equipment codes are mapped");
    let data = &recorded.outcomes[0].event.body.data;
    assert_eq!(data["step_code"], "MANUFACTURE");
    assert_eq!(data["performed_by"], "P-0002");
    assert_eq!(data["equipment_ids"], json!(["BIO-BOS-01"]));

    // Mapping never hides what the parser refuses: a duplicate key is still named.
    let text = step.to_string().replacen(
        "\"step_code\":\"OP-020\"",
        "\"step_code\":\"OP-020\",\"step_code\":\"OP-090\"",
        1,
    );
    assert!(text.contains("OP-090"), "{text}");
    match app.append_json_as(&mes, text.as_bytes()).await {
        Err(AppError::Invalid(e)) => assert!(e.to_string().contains("step_code"), "{e}"),
        other => panic!("a duplicate key is refused, got {other:?}"),
    }
    let unmapped = native(
        "mes-unmapped",
        BOS.0,
        "chain.step_performed",
        json!({"step_code": "OP-777", "site_id": BOS.0, "performed_by": "P-0002",
               "started_at": at(a.t0, 49, "UTC")}),
    );
    assert!(app
        .append_json_as(&mes, unmapped.to_string().as_bytes())
        .await
        .is_err());
    let report =
        serde_json::to_value(app.alignment_report(None).await.expect("alignment")).expect("json");
    let counted: Vec<&Value> = report["unmapped_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["system"] == "mes-bos" && g["kind"] == "process_step")
        .flat_map(|g| g["codes"].as_array().into_iter().flatten())
        .filter(|c| c["code"] == "OP-777")
        .collect();
    assert_eq!(counted.len(), 1, "{report}");
    assert_eq!(counted[0]["count"], 1, "counted once: {report}");
}

#[tokio::test]
async fn native_events_resolve_the_senders_local_codes_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "native_codes",
        |t| async move { native_local_codes(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn native_events_resolve_the_senders_local_codes_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "native_codes",
        |t| async move { native_local_codes(t.open().await).await },
    )
    .await;
}

/// Custody per container: of two bags collected, one is shipped and one kept back. The
/// chain shows where each bag is, and a batch is made only from the bag the manufacturing
/// site holds: naming the one kept back is refused, naming where it is. On both stores.
async fn partial_shipment(store: Arc<dyn autolog_store::Store>) {
    let app = network_on(store).await;
    let a = enrol(&app, "PK-PART-A", t0()).await;
    clean(&app, &collection(&a)).await;
    let shipped = Patient {
        key: a.key.clone(),
        coi: a.coi.clone(),
        dins: vec![a.dins[0].clone()],
        units: a.units.clone(),
        t0: a.t0,
    };
    let s = shipment(&shipped, Leg::ToManufacturing, None, None);
    clean(&app, &s.handoff).await;
    clean(&app, &s.receipt).await;
    let c = chain(&app, &a.coi).await;
    let at_site = |din: &str| {
        c["units"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["din"] == din)
            .map(|u| u["at_site"].clone())
            .unwrap_or_default()
    };
    assert_eq!(at_site(&a.dins[0]), json!(BOS.0), "{c}");
    assert_ne!(at_site(&a.dins[1]), json!(BOS.0), "kept back: {c}");
    assert!(at_site(&a.dins[1]).is_string(), "{c}");
    // Each bag has its own custodian: the shipped one passed to Boston with its
    // reconciled receipt, the one kept back is still the center's; the shipper is at Boston.
    let custodian = |din: &str| {
        c["units"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["din"] == din)
            .map(|u| u["custodian_site_id"].clone())
            .unwrap_or_default()
    };
    assert_eq!(custodian(&a.dins[0]), json!(BOS.0), "{c}");
    assert_eq!(custodian(&a.dins[1]), at_site(&a.dins[1]), "{c}");
    assert_eq!(c["shippers"][0]["at_site"], BOS.0, "{c}");
    assert_eq!(c["shippers"][0]["custodian_site_id"], BOS.0, "{c}");

    let batch = |id: &str, dins: Value| {
        step(
            &a,
            id,
            47,
            BOS,
            "P-0002",
            "batch.created",
            json!({"batch_id": format!("B-{}", a.key), "site_id": BOS.0, "created_by": "P-0002",
                   "source_dins": dins}),
        )
    };
    let e = refused_with(&app, &batch("both", json!(a.dins))).await;
    assert_eq!(e.field, "body.data.source_dins[1]", "{e}");
    assert!(e.rule.contains("not at S-BOS-01"), "{e}");
    clean(&app, &batch("shipped-only", json!([a.dins[0]]))).await;
}

#[tokio::test]
async fn a_partial_shipment_moves_only_what_it_lists_on_sqlite() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Sqlite,
        "partial_shipment",
        |t| async move { partial_shipment(t.open().await).await },
    )
    .await;
}

#[tokio::test]
async fn a_partial_shipment_moves_only_what_it_lists_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "partial_shipment",
        |t| async move { partial_shipment(t.open().await).await },
    )
    .await;
}
