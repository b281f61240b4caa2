//! Enrolment and COI issuance: a patient (pseudonymous key) is enrolled for a product at a
//! treatment center, and the chain's COI is issued once, or an upstream COI accepted.

use autolog_domain::catalogue::Payload;
use autolog_domain::chain::ChainView;
use autolog_domain::identifiers::{Coi, Fin};
use autolog_domain::StreamId;
use autolog_domain::{Event, FieldError, Instant};
use serde_json::{json, Map, Value};

use crate::ledger::read::PresentedEvent;
use crate::{AppError, AppendResult, Autolog};

/// The fields of an enrolment request beyond the event envelope's.
const ENROLMENT_FIELDS: &[&str] = &[
    "patient_key",
    "product_code",
    "treatment_site_id",
    "collection_site_id",
    "coi",
    "upstream_system",
    "previous_coi",
    "recollection_reason",
];
/// The envelope fields an enrolment request carries through to its event.
const ENVELOPE_FIELDS: &[&str] = &["occurred_at", "actor", "site", "source", "reason"];

/// The largest sequence a 6-character COI sequence holds in decimal digits.
const MAX_SEQUENCE: u64 = 999_999;

impl Autolog {
    /// Sets the ISBT 128 FIN under which this Autolog issues COIs.
    pub fn with_coi_issuer(mut self, fin: &str) -> Result<Self, AppError> {
        let fin = Fin::parse("coi_issuer_fin", fin)
            .map_err(|e| AppError::Config(format!("COI issuer FIN {fin}: {}", e.rule)))?;
        self.coi_issuer = Some(fin);
        Ok(self)
    }

    /// Enrols a patient and issues the chain's COI (or accepts the upstream `coi` given),
    /// appending `chain.enrolled` to the new stream `coi/<COI>`. Returns the COI and the
    /// append result. A COI is never issued twice: a number handed out and not used (a
    /// refused request, a cancelled enrolment) is never handed out again.
    #[tracing::instrument(skip_all)]
    pub async fn enrol(&self, body: &[u8]) -> Result<(String, AppendResult), AppError> {
        let request = parse_enrolment(body)?;
        let coi = match &request.coi {
            Some(coi) => coi.clone(),
            None => self.issue_coi(request.treatment_site_id()).await?,
        };
        let coi = coi.to_string();
        let bytes = request.event(&coi);
        match self.append_json(bytes.as_bytes()).await {
            // A resent enrolment (same source) answers the chain it created the first time;
            // the number allocated for the resend stays unused, never to be issued.
            Ok(result) => {
                let issued = result
                    .outcomes
                    .first()
                    .and_then(|o| o.event.body.data.get("coi"))
                    .and_then(Value::as_str)
                    .map_or(coi, str::to_string);
                Ok((issued, result))
            }
            Err(AppError::Invalid(e)) if e.code == "already_registered" => {
                Err(AppError::Invalid(FieldError::new(
                    "coi",
                    &coi,
                    "was already issued; a COI is issued once and never reused, not even after a cancelled enrolment",
                )))
            }
            Err(AppError::Invalid(e)) => Err(AppError::Invalid(match e.field.strip_prefix("body.data.") {
                Some(field) => FieldError::new(field, e.value, e.rule),
                None => e,
            })),
            Err(other) => Err(other),
        }
    }

    /// A new COI under this Autolog's issuer FIN and the year of the issuing instant's
    /// calendar date where the patient is enrolled (the treatment site's zone; UTC when the
    /// site is unknown, and then the enrolment is refused anyway).
    async fn issue_coi(&self, treatment_site: Option<&str>) -> Result<Coi, AppError> {
        let Some(fin) = &self.coi_issuer else {
            return Err(AppError::Invalid(FieldError::new(
                "coi",
                "(absent)",
                "is required: this Autolog issues no COI of its own (start it with --coi-issuer-fin)",
            )));
        };
        let zone = match treatment_site {
            Some(site) => self.site_time_zone(site).await?,
            None => None,
        };
        let zone = zone
            .and_then(|z| jiff::tz::TimeZone::get(&z).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let year = self.now().timestamp().to_zoned(zone).year();
        let year = u16::try_from(year).map_err(|_| {
            AppError::Config(format!("the issuing year {year} is outside 0001-9999"))
        })?;
        let yy = u8::try_from(year % 100).unwrap_or_default();
        let sequence = self.store.next_coi_sequence(fin.as_str(), year).await?;
        if sequence > MAX_SEQUENCE {
            return Err(AppError::Config(format!(
                "the COI sequence of FIN {} for {year} is exhausted ({MAX_SEQUENCE} issued)",
                fin.as_str()
            )));
        }
        Ok(Coi::new(fin, yy, &format!("{sequence:06}"))?)
    }
}

/// An enrolment request, checked: its fields, and the upstream COI when it names one.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct EnrolmentRequest {
    fields: Map<String, Value>,
    /// The upstream COI the request gives (`None`: Autolog issues one).
    pub coi: Option<Coi>,
}

/// Parses an enrolment request body (`POST /api/v1/chains`): one JSON object of known
/// fields, its `coi`, when given, a valid COI. Pure: what `enrol` checks before it issues
/// a COI (public for the fuzz targets).
#[doc(hidden)]
pub fn parse_enrolment(body: &[u8]) -> Result<EnrolmentRequest, AppError> {
    let fields = crate::ledger::request::parse_object(body, "an enrolment")?;
    for key in fields.keys() {
        if !ENROLMENT_FIELDS.contains(&key.as_str()) && !ENVELOPE_FIELDS.contains(&key.as_str()) {
            return Err(AppError::Invalid(FieldError::new(
                key,
                autolog_domain::error::show(&fields[key]),
                format!(
                    "is not a field of an enrolment; fields are {}, {}",
                    ENVELOPE_FIELDS.join(", "),
                    ENROLMENT_FIELDS.join(", ")
                ),
            )));
        }
    }
    let coi = match fields.get("coi") {
        Some(Value::String(text)) => Some(Coi::parse("coi", text)?),
        Some(other) => {
            return Err(AppError::Invalid(FieldError::new(
                "coi",
                autolog_domain::error::show(other),
                "must be a COI as text, e.g. CHA999926000001*",
            )))
        }
        None => None,
    };
    Ok(EnrolmentRequest { fields, coi })
}

impl EnrolmentRequest {
    /// The `chain.enrolled` append request (JSON text) opening `coi/<coi>`.
    /// The treatment site the request names, if it names one as text.
    pub fn treatment_site_id(&self) -> Option<&str> {
        self.fields.get("treatment_site_id").and_then(Value::as_str)
    }

    pub fn event(&self, coi: &str) -> String {
        let fields = &self.fields;
        let coi_source = if self.coi.is_some() {
            "upstream"
        } else {
            "autolog"
        };
        let mut data = Map::new();
        data.insert("coi".into(), json!(coi));
        for key in [
            "patient_key",
            "product_code",
            "treatment_site_id",
            "collection_site_id",
        ] {
            if let Some(v) = fields.get(key) {
                data.insert(key.into(), v.clone());
            }
        }
        data.insert("coi_source".into(), json!(coi_source));
        for key in ["upstream_system", "previous_coi", "recollection_reason"] {
            if let Some(v) = fields.get(key) {
                data.insert(key.into(), v.clone());
            }
        }
        let mut event = Map::new();
        event.insert("stream".into(), json!(StreamId::chain(coi)));
        for key in ENVELOPE_FIELDS {
            if let Some(v) = fields.get(*key) {
                event.insert((*key).into(), v.clone());
            }
        }
        event.insert(
            "body".into(),
            json!({"type": "chain.enrolled", "version": 1, "data": data}),
        );
        Value::Object(event).to_string()
    }
}

/// A chain as it stood at `valid_at`, as known at `known_at`.
pub(crate) struct ChainAsOf {
    pub(crate) coi: String,
    pub(crate) valid_at: Instant,
    pub(crate) known_at: Instant,
    /// Every event of the chain known then, in ledger order.
    pub(crate) events: Vec<Event>,
    /// The events in force then (not superseded, occurred by `valid_at`).
    pub(crate) effective: Vec<Event>,
    /// The enrolment's payload as recorded (`null` when not enrolled then).
    pub(crate) enrolment: Value,
    /// The chain folded from its effective events in recording order.
    pub(crate) view: ChainView,
}

impl Autolog {
    /// The events of the chain `coi` (a parsed COI) recorded by `known_at`: a COI with
    /// none is not found.
    pub(crate) async fn chain_events(
        &self,
        coi: &str,
        known_at: Instant,
    ) -> Result<Vec<Event>, AppError> {
        let events = self
            .store
            .stream_events(&StreamId::chain(coi), known_at)
            .await?;
        if events.is_empty() {
            return Err(AppError::NotFound {
                what: "chain",
                id: coi.to_string(),
            });
        }
        Ok(events)
    }

    /// Reads a chain as of (`valid_at`, `known_at`), both defaulting to now (`known_at`
    /// capped at the last commit): a COI with no event known then is not found.
    pub(crate) async fn chain_as_of(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<ChainAsOf, AppError> {
        let coi = Coi::parse("coi", coi)?.to_string();
        let now = self.now();
        let valid_at = crate::ledger::read::parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        let events = self.chain_events(&coi, known_at).await?;
        let effective =
            autolog_domain::ledger::bitemporal::effective_events(&events, valid_at, known_at);
        let enrolment = effective
            .iter()
            .find(|e| e.body.event_type == "chain.enrolled")
            .map(|e| e.body.data.clone())
            .unwrap_or(Value::Null);
        let ordered = crate::chain::custody::in_recording_order(&effective, &events);
        let view = self.chain_view_of(&coi, &ordered).await?;
        let effective = effective.into_iter().cloned().collect();
        Ok(ChainAsOf {
            coi,
            valid_at,
            known_at,
            events,
            effective,
            enrolment,
            view,
        })
    }
}

impl Autolog {
    /// The chain of a COI as it stood at `valid_at`, as Autolog knew it at `known_at` (both
    /// default to now; `known_at` is capped at the last commit, so the same question always
    /// gets the same answer): patient key, product, state, custodian, units and their DINs,
    /// and the timeline of every event known then (corrections marked), each with its time
    /// in UTC, as recorded and in its site's zone, and its recorded-at time.
    #[tracing::instrument(skip_all, fields(coi = %coi))]
    pub async fn chain(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<ChainAnswer, AppError> {
        let ChainAsOf {
            coi,
            valid_at,
            known_at,
            events,
            effective,
            enrolment,
            view,
        } = self.chain_as_of(coi, valid_at, known_at).await?;
        let cancelled = effective
            .iter()
            .find(|e| e.body.event_type == "chain.cancelled")
            .map(|e| e.body.data.clone());
        let mut units: Vec<CollectedUnit> = Vec::new();
        for event in effective
            .iter()
            .filter(|e| e.body.event_type == "chain.collected")
        {
            if let Payload::ChainCollected(c) = crate::ledger::read::payload_of(event)? {
                for din in c.dins {
                    units.push(CollectedUnit {
                        collected_at_site: Some(c.collection_site_id.clone()),
                        at_site: view.unit_sites.get(&din).cloned().flatten(),
                        custodian_site_id: view.unit_custodians.get(&din).cloned(),
                        din,
                    });
                }
            }
        }
        let holds: Vec<Value> = view
            .holds
            .iter()
            .map(|h| {
                let mut hold = h.data.clone();
                hold["placed_at"] = json!(h.placed_at.to_string());
                hold["event_id"] = json!(h.event_id.to_string());
                hold
            })
            .collect();
        let open_handoff = view.open_handoff.as_ref().map(|h| {
            let mut handoff = h.data.clone();
            handoff["handed_off_at"] = json!(h.handed_off_at.to_string());
            handoff["event_id"] = json!(h.event_id.to_string());
            handoff
        });
        let superseded = autolog_domain::ledger::bitemporal::superseded_by(&events, known_at);
        let in_force: Vec<_> = effective.iter().map(|e| e.event_id).collect();
        let mut timeline = self.presented(&events).await?;
        for entry in timeline.iter_mut() {
            entry.superseded_by = superseded.get(&entry.event_id).copied();
            entry.in_force = Some(in_force.contains(&entry.event_id));
        }
        let on_hold = view.state == autolog_domain::chain::ChainState::OnHold;
        Ok(ChainAnswer {
            coi,
            valid_at: valid_at.to_string(),
            known_at: known_at.to_string(),
            patient_key: enrolment["patient_key"].as_str().map(str::to_string),
            product_code: enrolment["product_code"].as_str().map(str::to_string),
            treatment_site_id: enrolment["treatment_site_id"].as_str().map(str::to_string),
            state: view.state.as_str(),
            resume_state: on_hold.then(|| view.resume_state.as_str()),
            custodian_site_id: view.custodian_site_id.clone(),
            location_site_id: view.location_site_id.clone(),
            previous_coi: view.previous_coi.clone(),
            succeeded_by: view.succeeded_by.clone(),
            disputed_custody: view
                .disputed_custody
                .as_ref()
                .map(|d| DisputedCustodyShown {
                    handoff_id: d.handoff_id.clone(),
                    receiving_site_id: d.receiving_site_id.clone(),
                    units: d.units.clone(),
                    container_id: d.container_id.clone(),
                    hold_id: d.hold_id.clone(),
                }),
            holds,
            open_handoff,
            released: view.released,
            cancellation: cancelled,
            units,
            final_units: final_units(&view),
            shippers: view
                .shippers
                .iter()
                .map(|(container, s)| ShipperShown {
                    container_id: container.clone(),
                    handoff_id: s.handoff_id.clone(),
                    at_site: s.at_site.clone(),
                    custodian_site_id: s.custodian_site_id.clone(),
                })
                .collect(),
            timeline,
        })
    }
}

/// The final units of a chain's batches: where each is, who holds it, when it expires.
fn final_units(view: &autolog_domain::chain::ChainView) -> Vec<FinalUnit> {
    view.batch_units
        .iter()
        .flat_map(|(batch, units)| {
            units.iter().map(|unit| FinalUnit {
                unit: unit.clone(),
                batch_id: batch.clone(),
                expires_at: view.unit_expiry.get(unit).map(|t| t.to_string()),
                at_site: view.unit_sites.get(unit).cloned().flatten(),
                custodian_site_id: view.unit_custodians.get(unit).cloned(),
            })
        })
        .collect()
}

/// A chain of identity as it stood at `valid_at`, as known at `known_at`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ChainAnswer {
    pub coi: String,
    pub valid_at: String,
    pub known_at: String,
    /// The patient's pseudonymous key (never identifying data).
    pub patient_key: Option<String>,
    pub product_code: Option<String>,
    pub treatment_site_id: Option<String>,
    pub state: &'static str,
    /// The state the chain resumes when its last hold is released (only while on hold).
    pub resume_state: Option<&'static str>,
    pub custodian_site_id: Option<String>,
    pub location_site_id: Option<String>,
    pub previous_coi: Option<String>,
    pub succeeded_by: Option<String>,
    pub disputed_custody: Option<DisputedCustodyShown>,
    /// Open holds: each as placed, with when and by which event.
    pub holds: Vec<Value>,
    /// The handoff awaiting its receipt, as recorded, with when and by which event.
    pub open_handoff: Option<Value>,
    pub released: bool,
    /// The cancellation as recorded, if the chain was cancelled.
    pub cancellation: Option<Value>,
    /// The collected bags, by DIN.
    pub units: Vec<CollectedUnit>,
    pub final_units: Vec<FinalUnit>,
    pub shippers: Vec<ShipperShown>,
    /// Every event of the chain known then, corrections marked.
    pub timeline: Vec<PresentedEvent>,
}

/// A custody dispute: the receipt that failed reconciliation and the hold it placed.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct DisputedCustodyShown {
    pub handoff_id: String,
    pub receiving_site_id: String,
    pub units: Vec<String>,
    pub container_id: String,
    pub hold_id: String,
}

/// A collected bag: where it was collected, where it is, who holds custody of record.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CollectedUnit {
    pub din: String,
    pub collected_at_site: Option<String>,
    /// `None` while it travels.
    pub at_site: Option<String>,
    pub custodian_site_id: Option<String>,
}

/// A final product unit of a batch.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct FinalUnit {
    pub unit: String,
    pub batch_id: String,
    pub expires_at: Option<String>,
    pub at_site: Option<String>,
    pub custodian_site_id: Option<String>,
}

/// A shipper (container) a handoff of the chain used.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ShipperShown {
    pub container_id: String,
    pub handoff_id: String,
    pub at_site: Option<String>,
    pub custodian_site_id: Option<String>,
}
