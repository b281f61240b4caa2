//! Genealogy as of any moment: backward from a unit to its patient, collections, batch,
//! lots and equipment; forward from a material lot to every batch, unit and patient.

use std::collections::BTreeSet;

use autolog_domain::catalogue::chain::ChainAdministeredV1;
use autolog_domain::catalogue::Payload;
use autolog_domain::identifiers::UnitId;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::StreamId;
use autolog_domain::{Event, FieldError, Instant};
use serde_json::{json, Value};

use crate::ledger::read::{parse_time, payload_of, text};
use crate::{AppError, Autolog};
use autolog_domain::ledger::fields::list as string_list;

fn data_of(events: &[&Event], event_type: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.body.event_type == event_type)
        .map(|e| {
            let mut d = e.body.data.clone();
            d["event_id"] = json!(e.event_id.to_string());
            d["occurred_at"] = json!(e.occurred_at.instant.to_string());
            d
        })
        .collect()
}

impl Autolog {
    /// Resolves `valid_at` / `known_at` as every bitemporal read does.
    async fn as_of(
        &self,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<(Instant, Instant), AppError> {
        let now = self.now();
        let valid_at = parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        Ok((valid_at, known_at))
    }

    /// Backward genealogy of a final unit (or a collection's DIN): its chain and source
    /// patient (pseudonymous key), the collections it came from, its batch with the steps,
    /// equipment, material lots and test results, its shipments and its administration.
    pub async fn genealogy_backward(
        &self,
        unit: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<BackwardGenealogy, AppError> {
        let (valid_at, known_at) = self.as_of(valid_at, known_at).await?;
        let compact: String = unit.chars().filter(|c| *c != ' ').collect();
        let (registry, canonical) = if compact.len() == 23 && compact.starts_with("CH") {
            ("unit", UnitId::parse("unit", unit)?.to_string())
        } else {
            let din = autolog_domain::identifiers::Din::parse("unit", unit).map_err(|e| {
                FieldError::new(
                    "unit",
                    unit,
                    format!("is neither a final unit identifier nor a DIN ({})", e.rule),
                )
            })?;
            ("din", din.to_string())
        };
        let link_events = self
            .store
            .stream_events(&format!("{registry}/{canonical}"), known_at)
            .await?;
        let Some(link) = link_events.first() else {
            return Err(AppError::NotFound {
                what: "unit",
                id: canonical,
            });
        };
        let coi = text(&link.body.data, "coi").to_string();
        let batch_id = text(&link.body.data, "batch_id").to_string();
        let events = self
            .store
            .stream_events(&StreamId::chain(&coi), known_at)
            .await?;
        let chain = effective_events(&events, valid_at, known_at);
        let enrolment = data_of(&chain, "chain.enrolled")
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        let batches = data_of(&chain, "batch.created");
        // A unit names its batch; a DIN went into the batch whose source_dins hold it.
        let batch = batches
            .iter()
            .find(|b| {
                if batch_id.is_empty() {
                    string_list(b, "source_dins").contains(&canonical)
                } else {
                    text(b, "batch_id") == batch_id
                }
            })
            .cloned()
            .unwrap_or(Value::Null);
        let batch_id = text(&batch, "batch_id").to_string();
        let source_dins: BTreeSet<String> = if registry == "din" {
            BTreeSet::from([canonical.clone()])
        } else {
            string_list(&batch, "source_dins").into_iter().collect()
        };
        let collections: Vec<Value> = data_of(&chain, "chain.collected")
            .into_iter()
            .filter(|c| {
                string_list(c, "dins")
                    .iter()
                    .any(|d| source_dins.contains(d))
            })
            .collect();
        let for_batch = |kind: &str| -> Vec<Value> {
            data_of(&chain, kind)
                .into_iter()
                .filter(|d| text(d, "batch_id") == batch_id)
                .collect()
        };
        let steps = data_of(&chain, "chain.step_performed");
        let equipment: BTreeSet<String> = collections
            .iter()
            .map(|c| text(c, "device_id").to_string())
            .chain(steps.iter().flat_map(|s| string_list(s, "equipment_ids")))
            .filter(|e| !e.is_empty())
            .collect();
        let shipments: Vec<Value> = data_of(&chain, "custody.handed_off")
            .into_iter()
            .filter(|h| string_list(h, "units").contains(&canonical))
            .collect();
        let administration: Vec<Value> = data_of(&chain, "chain.administered")
            .into_iter()
            .filter(|a| text(a, "unit") == canonical)
            .collect();
        Ok(BackwardGenealogy {
            unit: canonical,
            valid_at: valid_at.to_string(),
            known_at: known_at.to_string(),
            coi,
            patient_key: enrolment["patient_key"].as_str().map(str::to_string),
            product_code: enrolment["product_code"].as_str().map(str::to_string),
            collections,
            batch: (!batch.is_null()).then_some(batch),
            steps,
            equipment,
            materials: for_batch("batch.material_consumed"),
            test_results: for_batch("batch.test_result_recorded"),
            verdicts: for_batch("batch.test_result_evaluated"),
            release: for_batch("chain.released"),
            shipments,
            administration,
        })
    }

    /// The lot stream a lot argument names: `<material>/<lot>`, or a lot number that is
    /// unique across materials.
    async fn lot_stream(&self, lot: &str) -> Result<String, AppError> {
        if lot.contains('/') {
            return Ok(format!("lot/{lot}"));
        }
        let matches: Vec<String> = self
            .all_streams_with_prefix("lot/")
            .await?
            .into_iter()
            .filter(|s| s.rsplit('/').next() == Some(lot))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(AppError::NotFound {
                what: "material lot",
                id: lot.to_string(),
            }),
            many => Err(AppError::Invalid(FieldError::new(
                "lot",
                lot,
                format!(
                    "names lots of several materials ({}): give <material>/<lot>",
                    many.join(", ")
                ),
            ))),
        }
    }

    /// Forward genealogy of a material lot (the recall question): every batch made with
    /// it, the final units those batches yielded, and the patients who received one.
    pub async fn genealogy_forward(
        &self,
        lot: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<ForwardGenealogy, AppError> {
        let (valid_at, known_at) = self.as_of(valid_at, known_at).await?;
        let stream = self.lot_stream(lot).await?;
        let lot_events = self.store.stream_events(&stream, known_at).await?;
        if lot_events.is_empty() {
            return Err(AppError::NotFound {
                what: "material lot",
                id: lot.to_string(),
            });
        }
        let lot_effective = effective_events(&lot_events, valid_at, known_at);
        let mut uses: Vec<(String, String)> = Vec::new();
        for e in lot_effective {
            if let Payload::MaterialLotConsumed(used) = payload_of(e)? {
                let key = (used.coi, used.batch_id);
                if !uses.contains(&key) {
                    uses.push(key);
                }
            }
        }
        let mut batches = Vec::new();
        let mut received = Vec::new();
        for (coi, batch_id) in uses {
            let events = self
                .store
                .stream_events(&StreamId::chain(&coi), known_at)
                .await?;
            let mut patient = None;
            let mut units: Vec<String> = Vec::new();
            let mut given: Vec<(ChainAdministeredV1, Instant)> = Vec::new();
            for e in effective_events(&events, valid_at, known_at) {
                match payload_of(e)? {
                    Payload::ChainEnrolled(enrolled) if patient.is_none() => {
                        patient = Some(enrolled.patient_key);
                    }
                    Payload::BatchUnitsProduced(made) if made.batch_id == batch_id => {
                        units.extend(made.units);
                    }
                    Payload::ChainAdministered(a) => given.push((a, e.occurred_at.instant)),
                    _ => {}
                }
            }
            let administered: Vec<Administered> = given
                .into_iter()
                .filter(|(a, _)| units.contains(&a.unit))
                .map(|(a, at)| Administered {
                    unit: a.unit,
                    site_id: Some(a.site_id),
                    occurred_at: at.to_string(),
                })
                .collect();
            if !administered.is_empty() {
                received.push(PatientReceived {
                    coi: coi.clone(),
                    patient_key: patient.clone(),
                    units: administered.clone(),
                });
            }
            batches.push(BatchMadeWith {
                coi,
                batch_id,
                patient_key: patient,
                units,
                administered,
            });
        }
        Ok(ForwardGenealogy {
            lot: stream.trim_start_matches("lot/").to_string(),
            valid_at: valid_at.to_string(),
            known_at: known_at.to_string(),
            batches,
            patients_who_received: received,
        })
    }
}

/// Backward genealogy of a unit: each part is the payload of its event as recorded, with
/// the event's id and instant (`event_id`, `occurred_at`).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct BackwardGenealogy {
    pub unit: String,
    pub valid_at: String,
    pub known_at: String,
    pub coi: String,
    pub patient_key: Option<String>,
    pub product_code: Option<String>,
    pub collections: Vec<Value>,
    /// The batch the unit came from (`None` for a bag not yet in a batch).
    pub batch: Option<Value>,
    pub steps: Vec<Value>,
    pub equipment: BTreeSet<String>,
    pub materials: Vec<Value>,
    pub test_results: Vec<Value>,
    pub verdicts: Vec<Value>,
    pub release: Vec<Value>,
    pub shipments: Vec<Value>,
    pub administration: Vec<Value>,
}

/// Forward genealogy of a material lot: the recall question.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ForwardGenealogy {
    pub lot: String,
    pub valid_at: String,
    pub known_at: String,
    pub batches: Vec<BatchMadeWith>,
    pub patients_who_received: Vec<PatientReceived>,
}

/// A batch made with the lot, its final units, and which of them were administered.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct BatchMadeWith {
    pub coi: String,
    pub batch_id: String,
    pub patient_key: Option<String>,
    pub units: Vec<String>,
    pub administered: Vec<Administered>,
}

/// A patient who received a unit made with the lot.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PatientReceived {
    pub coi: String,
    pub patient_key: Option<String>,
    pub units: Vec<Administered>,
}

/// A final unit administered: where and when.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Administered {
    pub unit: String,
    pub site_id: Option<String>,
    pub occurred_at: String,
}
