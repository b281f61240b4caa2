//! The field's hard cases over HTTP, each sent by the system that sends it in the field,
//! with its own token, on the example network: one delivery's receipts in one batch with a
//! swapped label (both recorded, both chains held), a result corrected after the release,
//! a late consumption of a lot recalled since, a batch naming a bag kept back, the patient
//! collected again after a returned shipment, and an expired unit stopped at shipment. What
//! comes before each case is recorded as the other systems send it. SQLite and PostgreSQL.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use autolog_app::{AlertQuery, Autolog};
use autolog_domain::identifiers::{Coi, Din, UnitId};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::guide::{spawn, SIGNING_SECRET};

const LAX: &str = "S-LAX-01";
const BOS: &str = "S-BOS-01";
const FRA: &str = "S-FRA-01";

static NEXT_DIN: AtomicU32 = AtomicU32::new(5000);

/// One patient's chain and its identifiers.
pub(crate) struct Chain {
    pub(crate) key: String,
    pub(crate) coi: String,
    pub(crate) dins: Vec<String>,
    pub(crate) unit: String,
}

/// Enrols a patient at Los Angeles (the EMR's order) with `bags` DINs to collect.
pub(crate) async fn enrol(app: &Autolog, key: &str, bags: usize) -> Chain {
    let order = json!({
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]", "actor": "person/P-0007",
        "site": LAX, "source": {"system": "emr-lax", "source_event_id": format!("ORDER-{key}")},
        "patient_key": key, "product_code": "CART-19", "treatment_site_id": LAX,
    });
    let (coi, _) = app
        .enrol(order.to_string().as_bytes())
        .await
        .expect("enrol");
    let dins = (0..bags)
        .map(|_| {
            let n = NEXT_DIN.fetch_add(1, Ordering::SeqCst);
            Din::parse("din", &format!("A99992600{n:04}"))
                .expect("DIN")
                .to_string()
        })
        .collect();
    let unit = UnitId::new(&Coi::parse("coi", &coi).expect("COI"), "S0001", "A0")
        .expect("unit")
        .to_string();
    Chain {
        key: key.to_string(),
        coi,
        dins,
        unit,
    }
}

impl Chain {
    /// An event of this chain as `system` sends it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &self,
        system: &str,
        id: &str,
        at: &str,
        site: &str,
        actor: &str,
        kind: &str,
        data: Value,
    ) -> Value {
        let mut data = data;
        if let Some(field) = autolog_domain::access::signature::signer_field(kind) {
            data["signature"] = json!({"signer_id": data[field], "secret": SIGNING_SECRET});
        }
        json!({
            "stream": format!("coi/{}", self.coi), "occurred_at": at, "actor": format!("person/{actor}"),
            "site": site, "source": {"system": system, "source_event_id": format!("{}-{id}", self.key)},
            "body": {"type": kind, "version": 1, "data": data},
        })
    }

    pub(crate) fn collection(&self) -> Value {
        self.event("aph", "collect", "2026-11-10T12:00:00-08:00[America/Los_Angeles]", LAX, "P-0005", "chain.collected",
            json!({"collection_site_id": LAX, "operator_id": "P-0005", "device_id": "APH-LAX-01",
                   "started_at": "2026-11-10T08:00:00-08:00", "ended_at": "2026-11-10T12:00:00-08:00", "dins": self.dins}))
    }

    /// The starting material's handoff to Boston: `dins` in `container`.
    pub(crate) fn handoff(&self, dins: &[String], container: &str) -> Value {
        self.event("courier-cryo", "pickup", "2026-11-10T14:00:00-08:00[America/Los_Angeles]", LAX, "P-0005",
            "custody.handed_off",
            json!({"handoff_id": format!("H-{}", self.key), "step_code": "SHIP-OUT", "from_site_id": LAX,
                   "handed_off_by": "P-0005", "destination_site_id": BOS, "courier": "WORLD-COURIER",
                   "units": dins, "unit_count": dins.len(), "container_id": container, "seal_id": format!("SEAL-{container}"),
                   "expected_arrival_by": "2026-11-11T20:00:00Z",
                   "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0}}))
    }

    /// Its receipt at Boston, scanning `scanned` (DINs) from `container`.
    pub(crate) fn receipt(&self, scanned: &[String], container: &str) -> Value {
        let labels: Vec<Value> = scanned.iter().map(|d| json!({"unit": d})).collect();
        self.event("courier-cryo", "delivered", "2026-11-11T09:30:00-05:00[America/New_York]", BOS, "P-0002",
            "custody.received",
            json!({"handoff_id": format!("H-{}", self.key), "step_code": "RECEIVE-MFG", "receiving_site_id": BOS,
                   "received_by": "P-0002", "scanned_labels": labels, "container_id": container,
                   "seal_id": format!("SEAL-{container}"), "seal_intact": true,
                   "temperature_log": {"min_celsius": 3.1, "max_celsius": 6.8, "logger_id": "TL-BOM-07"}}))
    }

    fn batch_created(&self, dins: &[String]) -> Value {
        self.event("mes-bos", "batch", "2026-11-11T12:00:00-05:00[America/New_York]", BOS, "P-0002", "batch.created",
            json!({"batch_id": format!("B-{}", self.key), "site_id": BOS, "created_by": "P-0002", "source_dins": dins}))
    }

    fn consumption(&self, id: &str, lot: &str) -> Value {
        self.event("mes-bos", id, "2026-11-11T14:00:00-05:00[America/New_York]", BOS, "P-0002", "batch.material_consumed",
            json!({"batch_id": format!("B-{}", self.key), "material": "LV-CD19", "lot": lot, "quantity": 2.5,
                   "quantity_unit": "mL", "site_id": BOS, "recorded_by": "P-0002", "step_code": "MANUFACTURE"}))
    }

    pub(crate) fn result(&self, id: &str, code: &str, result: Value, unit: Option<&str>) -> Value {
        let mut data = json!({"batch_id": format!("B-{}", self.key), "test_code": code, "method": "per specification",
                              "result": result, "site_id": FRA, "analyst_id": "P-0003"});
        if let Some(u) = unit {
            data["result_unit"] = json!(u);
        }
        self.event(
            "lims-fra",
            id,
            "2026-11-20T10:00:00+01:00[Europe/Berlin]",
            FRA,
            "P-0003",
            "batch.test_result_recorded",
            data,
        )
    }

    /// Manufacturing to release: the batch from every bag, the steps, final unit `unit`
    /// (expiring at `expires_at`, if given), samples to Frankfurt, passing results and the
    /// signed release.
    pub(crate) fn to_release(&self, expires_at: Option<&str>) -> Vec<Value> {
        let batch = format!("B-{}", self.key);
        let mut units = json!({"batch_id": batch, "site_id": BOS, "recorded_by": "P-0002", "units": [self.unit]});
        if let Some(at) = expires_at {
            units["expires_at"] = json!(at);
        }
        let shipment = format!("SMP-{}", self.key);
        let mut events = vec![
            self.batch_created(&self.dins),
            self.event("mes-bos", "manufacture", "2026-11-11T13:00:00-05:00[America/New_York]", BOS, "P-0002",
                "chain.step_performed",
                json!({"step_code": "MANUFACTURE", "site_id": BOS, "performed_by": "P-0002", "equipment_ids": ["BIO-BOS-01"],
                       "started_at": "2026-11-11T13:00:00-05:00", "ended_at": "2026-11-18T09:00:00-05:00"})),
            self.consumption("vector", "LV19-2026-014"),
            self.event("mes-bos", "cryo", "2026-11-18T10:00:00-05:00[America/New_York]", BOS, "P-0002",
                "chain.step_performed",
                json!({"step_code": "CRYO", "site_id": BOS, "performed_by": "P-0002", "equipment_ids": ["CRF-BOS-01"],
                       "started_at": "2026-11-18T10:00:00-05:00"})),
            self.event("mes-bos", "units", "2026-11-18T11:00:00-05:00[America/New_York]", BOS, "P-0002",
                "batch.units_produced", units),
            self.event("mes-bos", "samples-out", "2026-11-18T12:00:00-05:00[America/New_York]", BOS, "P-0002",
                "sample.handed_off",
                json!({"shipment_id": shipment, "samples": [format!("{shipment}-QC")], "from_site_id": BOS,
                       "destination_site_id": FRA, "handed_off_by": "P-0002"})),
            self.event("lims-fra", "samples-in", "2026-11-19T09:00:00+01:00[Europe/Berlin]", FRA, "P-0003",
                "sample.received",
                json!({"shipment_id": shipment, "samples": [format!("{shipment}-QC")], "receiving_site_id": FRA,
                       "received_by": "P-0003"})),
        ];
        for (code, result, unit) in [
            ("VIABILITY", json!(91.5), Some("%")),
            ("CAR-EXPR", json!(41.0), Some("%")),
            ("VCN", json!(2.1), Some("copies/cell")),
            ("STERILITY", json!("negative"), None),
            ("ENDOTOXIN", json!(1.2), Some("EU/mL")),
            ("MYCOPLASMA", json!("not detected"), None),
        ] {
            events.push(self.result(&format!("LIMS-{code}"), code, result, unit));
        }
        events.push(self.event(
            "qms-net",
            "release",
            "2026-11-21T10:00:00-05:00[America/New_York]",
            BOS,
            "P-0008",
            "chain.released",
            json!({"batch_id": batch, "intended_patient_key": self.key, "site_id": BOS,
                   "released_by": "P-0008", "units": [self.unit]}),
        ));
        events
    }
}

/// Records events as their systems send them (the operator path): each must be accepted.
pub(crate) async fn record(app: &Autolog, events: &[Value]) {
    for e in events {
        let recorded = app
            .append_json(e.to_string().as_bytes())
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e["body"]["type"]));
        assert!(
            recorded.alerts.is_empty(),
            "{}",
            serde_json::json!(recorded)
        );
    }
}

/// A system's token at its sites.
pub(crate) async fn token(app: &Autolog, system: &str, sites: &[&str]) -> String {
    let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
    let issued = app
        .issue_token(system, &sites, None, "person/P-ADMIN")
        .await
        .expect("token");
    issued.token
}

/// Sends events as their system does: the ledger attributes them to the token's system,
/// so they carry no `actor` of their own.
pub(crate) async fn post(base: &str, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let mut body = body.clone();
    match &mut body {
        Value::Array(events) => events.iter_mut().for_each(|e| {
            e.as_object_mut().map(|o| o.remove("actor"));
        }),
        Value::Object(o) => {
            o.remove("actor");
        }
        _ => {}
    }
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn alert_rules(app: &Autolog, coi: &str) -> Vec<String> {
    app.alerts(&AlertQuery {
        status: Some("all".into()),
        coi: Some(coi.to_string()),
        site_id: None,
    })
    .await
    .expect("alerts")
    .iter()
    .map(|a| a.raised.rule.clone())
    .collect()
}

pub(crate) async fn state(app: &Autolog, coi: &str) -> Value {
    serde_json::json!(app.chain(coi, None, None).await.expect("chain"))
}

async fn the_hard_cases(t: Target) {
    let (app, base) = spawn(&t).await;
    consolidated_receipts_with_a_swapped_label(&app, &base).await;
    a_result_corrected_after_the_release(&app, &base).await;
    a_late_consumption_of_a_lot_recalled_since(&app, &base).await;
    a_batch_naming_a_bag_kept_back(&app, &base).await;
    an_expired_unit_at_shipment(&app, &base).await;
}

/// One shipper, two patients, their labels swapped: the courier's two receipts in one batch
/// request are both recorded, both chains held with alerts (an outcome, not a refusal);
/// the bags are at Boston with custody disputed. The EMR then orders a re-collection of the
/// first patient, linked to the held chain.
async fn consolidated_receipts_with_a_swapped_label(app: &Arc<Autolog>, base: &str) {
    let a = enrol(app, "PK-CONS-A", 1).await;
    let b = enrol(app, "PK-CONS-B", 1).await;
    let container = "DS-CONS-1";
    for c in [&a, &b] {
        record(app, &[c.collection(), c.handoff(&c.dins, container)]).await;
    }
    let courier = token(app, "courier-cryo", &[LAX, BOS]).await;
    let receipts = json!([a.receipt(&b.dins, container), b.receipt(&a.dins, container)]);
    let (status, answer) = post(base, &courier, "/api/v1/events", &receipts).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["appended"], 2, "both receipts recorded: {answer}");
    for c in [&a, &b] {
        let chain = state(app, &c.coi).await;
        assert_eq!(chain["state"], "on_hold", "{chain}");
        assert_eq!(chain["location_site_id"], BOS, "{chain}");
        assert_eq!(chain["custodian_site_id"], LAX, "custody disputed: {chain}");
        let rules = alert_rules(app, &c.coi).await;
        assert!(
            rules.iter().any(|r| r == "custody.reconciliation_failed"),
            "{rules:?}"
        );
    }

    // Boston sends the first patient's bag back: a return, recorded on the held chain.
    let mes = token(app, "mes-bos", &[BOS]).await;
    let back = a.event("mes-bos", "return", "2026-11-12T09:00:00-05:00[America/New_York]", BOS, "P-0002",
        "custody.handed_off",
        json!({"handoff_id": format!("H-{}-return", a.key), "step_code": "SHIP-TC", "from_site_id": BOS,
               "handed_off_by": "P-0002", "destination_site_id": LAX, "courier": "WORLD-COURIER",
               "units": a.dins, "unit_count": 1, "container_id": container, "seal_id": "SEAL-RETURN",
               "expected_arrival_by": "2026-11-13T20:00:00Z",
               "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0}}));
    let (status, answer) = post(base, &mes, "/api/v1/events", &back).await;
    assert_eq!(status, StatusCode::CREATED, "a return on hold: {answer}");
    let chain = state(app, &a.coi).await;
    assert_eq!(chain["state"], "on_hold", "{chain}");
    assert!(chain["disputed_custody"].is_null(), "{chain}");

    let emr = token(app, "emr-lax", &[LAX]).await;
    let again = json!({
        "occurred_at": "2026-11-14T09:00:00-08:00[America/Los_Angeles]", "site": LAX,
        "source": {"system": "emr-lax", "source_event_id": "ORDER-PK-CONS-A-2"},
        "patient_key": a.key, "product_code": "CART-19", "treatment_site_id": LAX,
        "previous_coi": a.coi, "recollection_reason": "shipment_returned",
    });
    let (status, answer) = post(base, &emr, "/api/v1/chains", &again).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let next = answer["coi"].as_str().expect("the new COI");
    assert_eq!(state(app, &a.coi).await["succeeded_by"], next);
    assert_eq!(state(app, next).await["previous_coi"], a.coi.as_str());
}

/// The LIMS corrects the viability result the release relied on: recorded (the original
/// kept), the chain held, a critical alert to those who sign.
async fn a_result_corrected_after_the_release(app: &Arc<Autolog>, base: &str) {
    let c = enrol(app, "PK-AMEND", 1).await;
    record(
        app,
        &[
            c.collection(),
            c.handoff(&c.dins, "DS-AMEND"),
            c.receipt(&c.dins, "DS-AMEND"),
        ],
    )
    .await;
    record(app, &c.to_release(None)).await;
    let lims = token(app, "lims-fra", &[FRA]).await;
    let mut amended = c.result("LIMS-VIABILITY-2", "VIABILITY", json!(64.5), Some("%"));
    amended["corrects"] =
        json!({"system": "lims-fra", "source_event_id": format!("{}-LIMS-VIABILITY", c.key)});
    amended["reason"] = json!("viable-cell count re-read from the instrument");
    let (status, answer) = post(base, &lims, "/api/v1/events", &amended).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["alerts"][0]["rule"], "decision.basis_corrected",
        "{answer}"
    );
    assert_eq!(answer["alerts"][0]["severity"], "critical", "{answer}");
    assert_eq!(state(app, &c.coi).await["state"], "on_hold");
}

/// The MES enters a consumption late, dated before the lot's recall: recorded (the lot
/// was released then), with the alert that brings the recall to this batch.
async fn a_late_consumption_of_a_lot_recalled_since(app: &Arc<Autolog>, base: &str) {
    let c = enrol(app, "PK-LATE", 1).await;
    record(
        app,
        &[
            c.collection(),
            c.handoff(&c.dins, "DS-LATE"),
            c.receipt(&c.dins, "DS-LATE"),
            c.batch_created(&c.dins),
        ],
    )
    .await;
    let lot = |id: &str, at: &str, kind: &str, data: Value| {
        json!({"stream": "lot/LV-CD19/LV19-LATE-1", "occurred_at": at, "actor": "person/P-ADMIN",
               "source": {"system": "qms-net", "source_event_id": id},
               "body": {"type": kind, "version": 1, "data": data}})
    };
    record(
        app,
        &[
            lot("LOT-LATE-1", "2026-11-01T00:00:00+00:00[UTC]", "material_lot.registered",
                json!({"material": "LV-CD19", "supplier": "Vector Biologics Inc.", "lot": "LV19-LATE-1",
                       "expiry": "2027-12-31", "status": "released"})),
            lot("LOT-LATE-1-RECALL", "2026-11-13T00:00:00+00:00[UTC]", "material_lot.status_changed",
                json!({"status": "recalled"})),
        ],
    )
    .await;
    let mes = token(app, "mes-bos", &[BOS]).await;
    let late = c.consumption("vector-late", "LV19-LATE-1");
    let (status, answer) = post(base, &mes, "/api/v1/events", &late).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["alerts"][0]["rule"], "material_lot.recalled_after_use",
        "{answer}"
    );
}

/// Of two bags one is shipped: the MES naming both in its batch is refused, naming the bag
/// kept back and where it is; the shipped one alone is accepted.
async fn a_batch_naming_a_bag_kept_back(app: &Arc<Autolog>, base: &str) {
    let c = enrol(app, "PK-PART", 2).await;
    let shipped = &c.dins[..1];
    record(
        app,
        &[
            c.collection(),
            c.handoff(shipped, "DS-PART"),
            c.receipt(shipped, "DS-PART"),
        ],
    )
    .await;
    let mes = token(app, "mes-bos", &[BOS]).await;
    let (status, answer) = post(base, &mes, "/api/v1/events", &c.batch_created(&c.dins)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["field"], "body.data.source_dins[1]",
        "{answer}"
    );
    assert!(
        answer["error"]["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("is at S-LAX-01"),
        "{answer}"
    );
    let mut resent = c.batch_created(shipped);
    resent["source"]["source_event_id"] = json!(format!("{}-batch-2", c.key));
    let (status, answer) = post(base, &mes, "/api/v1/events", &resent).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// A final unit past its expiry is not shipped: the MES's handoff is a hard stop naming the
/// unit, with a critical alert.
async fn an_expired_unit_at_shipment(app: &Arc<Autolog>, base: &str) {
    let c = enrol(app, "PK-EXPIRED", 1).await;
    record(
        app,
        &[
            c.collection(),
            c.handoff(&c.dins, "DS-EXP"),
            c.receipt(&c.dins, "DS-EXP"),
        ],
    )
    .await;
    record(app, &c.to_release(Some("2026-11-22T00:00:00Z"))).await;
    let mes = token(app, "mes-bos", &[BOS]).await;
    let ship = c.event("mes-bos", "ship-tc", "2026-11-25T09:00:00-05:00[America/New_York]", BOS, "P-0002",
        "custody.handed_off",
        json!({"handoff_id": format!("H-{}-tc", c.key), "step_code": "SHIP-TC", "from_site_id": BOS,
               "handed_off_by": "P-0002", "destination_site_id": LAX, "courier": "WORLD-COURIER",
               "units": [c.unit], "unit_count": 1, "container_id": "DS-EXP-TC", "seal_id": "SEAL-EXP-TC",
               "expected_arrival_by": "2026-11-28T00:00:00Z",
               "temperature_range": {"min_celsius": -196.0, "max_celsius": -150.0}}));
    let (status, answer) = post(base, &mes, "/api/v1/events", &ship).await;
    assert!(status.is_client_error(), "{status} {answer}");
    assert_eq!(answer["error"]["field"], "body.data.units", "{answer}");
    assert!(
        alert_rules(app, &c.coi)
            .await
            .iter()
            .any(|r| r == "unit.expired"),
        "a critical alert"
    );
    assert_eq!(state(app, &c.coi).await["state"], "released_for_patient");
}

#[tokio::test]
async fn the_fields_hard_cases_over_http_on_sqlite() {
    run_on(Backend::Sqlite, "hard_cases", the_hard_cases).await;
}

#[tokio::test]
async fn the_fields_hard_cases_over_http_on_postgres() {
    run_on(Backend::Postgres, "hard_cases", the_hard_cases).await;
}
