//! Patients' journeys end to end across sites in three time zones (Los Angeles, Boston,
//! Frankfurt), clean and with injected faults: every fault is caught where it first shows.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use autolog_app::{AlertQuery, AppError, AppendResult, Autolog, ImportFile};
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
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[7u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let files: Vec<ImportFile> = files
        .iter()
        .map(|p| ImportFile {
            name: p.display().to_string(),
            content: std::fs::read(p).expect("read"),
            registry: None,
        })
        .collect();
    let report = app
        .import_reference(&files, "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
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
    envelope(
        p,
        id,
        hours,
        site,
        actor,
        json!({"type": kind, "version": 1, "data": data}),
    )
}

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
            "units": p.dins,
            "unit_count": p.dins.len(),
            "container_id": format!("DS-{}-{tag}", p.key),
            "seal_id": format!("SEAL-{}-{tag}", p.key),
            "expected_arrival_by": at(p.t0, expected, "UTC"),
            "temperature_range": {"min_celsius": range.0, "max_celsius": range.1},
        }),
    );
    let mut labels: Vec<Value> = p
        .dins
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let misread = fault == Some(Fault::MisreadCheckCharacter) && i == 0;
            json!({"unit": din_barcode(d, misread), "coi": p.coi})
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

fn manufacturing(p: &Patient) -> Vec<Value> {
    vec![
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
        step(
            p,
            "release",
            480,
            BOS,
            "P-0002",
            "chain.released",
            json!({
                "site_id": BOS.0, "released_by": "P-0002", "units": p.dins,
            }),
        ),
    ]
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
    Patient {
        key: key.to_string(),
        coi,
        dins: vec![new_din(), new_din()],
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
        result.to_json()
    );
}

async fn chain(app: &Autolog, coi: &str) -> Value {
    app.chain(coi, None, None).await.expect("chain")
}

async fn alerts_of(app: &Autolog, coi: &str) -> Vec<Value> {
    app.alerts(&AlertQuery {
        status: Some("all".into()),
        coi: Some(coi.to_string()),
        site_id: None,
    })
    .await
    .expect("alerts")
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
                "step_code": "INFUSE", "site_id": LAX.0, "administered_by": "P-0007", "verified_by": "P-0005", "unit": p.dins[0],
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
    let report = app.reconciliation().await.expect("report");
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
    assert_eq!(result.alerts.len(), 2, "{}", result.to_json());
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
    let findings = b_chain["holds"][0]["findings"].to_string();
    assert!(findings.contains("belongs to chain"), "{findings}");
    assert!(findings.contains("not scanned"), "{findings}");
    // The alerts were pushed to the subscriber at once.
    let pushed = subscriber.try_recv().expect("pushed");
    assert_eq!(pushed["severity"], "critical");
    // Any further step is refused while on hold.
    let next = manufacturing(&b).remove(0);
    match send(&app, &next).await {
        Err(AppError::Invalid(e)) => assert!(e.rule.contains("on hold"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A's own receipt cannot proceed either: A is on hold too.
    assert!(send(
        &app,
        &shipment(&a, Leg::ToManufacturing, None, None).receipt
    )
    .await
    .is_err());
    // The report shows both holds and the bag seen on two chains.
    let report = app.reconciliation().await.expect("report");
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
        Err(AppError::Invalid(e)) => assert!(e.field.contains("resolved_by"), "{e}"),
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
    assert_eq!(
        chain(&app, &b.coi).await["state"],
        "received_at_manufacturing"
    );
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
    let ack = app
        .handle_alert(
            &id,
            false,
            br#"{"person_id": "P-0008", "note": "investigating"}"#,
        )
        .await
        .expect("ack");
    assert_eq!(ack["status"], "acknowledged");
    let done = app
        .handle_alert(
            &id,
            true,
            br#"{"person_id": "P-0008", "note": "closed under DEV-0042"}"#,
        )
        .await
        .expect("resolve");
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
    assert_eq!(result.alerts.len(), 1, "{}", result.to_json());
    let alert = app
        .alert(
            result.alerts[0].event.body.data["alert_id"]
                .as_str()
                .expect("id"),
        )
        .await
        .expect("alert");
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
    assert_eq!(result.flags.len(), 1, "{}", result.to_json());
    assert_eq!(result.alerts.len(), 1);
    let alerts = alerts_of(&app, &p.coi).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["rule"], "time_zone.discrepancy");
    assert_eq!(alerts[0]["site_id"], LAX.0);
}

async fn refused_with(app: &Autolog, event: &Value) -> autolog_domain::FieldError {
    match send(app, event).await {
        Err(AppError::Invalid(e)) => e,
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
            "site_id": BOS.0, "released_by": "P-0002", "units": p.dins,
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
            "step_code": "INFUSE", "site_id": LAX.0, "administered_by": "P-0007", "verified_by": "P-0005", "unit": p.dins[0],
        }),
    );
    assert_eq!(refused_with(&app, &too_soon).await.field, "body.type");
}

#[tokio::test]
async fn in_one_batch_a_hold_placed_on_another_chain_stops_that_chains_next_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = network(&dir.path().join("batch.db")).await;
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
    let e = match app.append_json(batch.to_string().as_bytes()).await {
        Err(AppError::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(e.field, "[1].body.type", "{e}");
    assert!(e.rule.contains("on hold"), "{e}");
    // The batch is atomic: neither receipt was recorded.
    assert_eq!(chain(&app, &b.coi).await["state"], "in_transit");
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
