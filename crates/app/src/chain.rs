//! Enrolment and COI issuance: a patient (pseudonymous key) is enrolled for a product at a
//! treatment center, and the chain's COI is issued once, or an upstream COI accepted.

use autolog_domain::identifiers::{Coi, Fin};
use autolog_domain::{EventDraft, FieldError, Instant};
use serde_json::{json, Map, Value};

use crate::read::{instant_field, text};
use crate::{AppError, AppendResult, Autolog, MAX_REQUEST_BYTES};

/// The fields of an enrolment request beyond the event envelope's.
const ENROLMENT_FIELDS: &[&str] = &[
    "patient_key",
    "product_code",
    "treatment_site_id",
    "coi",
    "upstream_system",
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
    pub async fn enrol(&self, body: &[u8]) -> Result<(String, AppendResult), AppError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(crate::too_large(body.len()));
        }
        let request: Value = serde_json::from_slice(body).map_err(|e| {
            AppError::Invalid(FieldError::new(
                "request",
                format!("line {} column {}", e.line(), e.column()),
                format!("is not well-formed JSON: {e}"),
            ))
        })?;
        let Value::Object(fields) = request else {
            return Err(AppError::Invalid(FieldError::new(
                "request",
                autolog_domain::error::show(&request),
                "an enrolment is a JSON object",
            )));
        };
        for key in fields.keys() {
            if !ENROLMENT_FIELDS.contains(&key.as_str()) && !ENVELOPE_FIELDS.contains(&key.as_str())
            {
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
        let upstream = fields.get("upstream_system").cloned();
        let (coi, coi_source) = match fields.get("coi") {
            Some(Value::String(text)) => (Coi::parse("coi", text)?, "upstream"),
            Some(other) => {
                return Err(AppError::Invalid(FieldError::new(
                    "coi",
                    autolog_domain::error::show(other),
                    "must be a COI as text, e.g. CHA999926000001*",
                )))
            }
            None => (self.issue_coi().await?, "autolog"),
        };
        let coi = coi.to_string();
        let mut data = Map::new();
        data.insert("coi".into(), json!(coi));
        for key in ["patient_key", "product_code", "treatment_site_id"] {
            if let Some(v) = fields.get(key) {
                data.insert(key.into(), v.clone());
            }
        }
        data.insert("coi_source".into(), json!(coi_source));
        if let Some(system) = upstream {
            data.insert("upstream_system".into(), system);
        }
        let mut event = Map::new();
        event.insert("stream".into(), json!(format!("coi/{coi}")));
        for key in ENVELOPE_FIELDS {
            if let Some(v) = fields.get(*key) {
                event.insert((*key).into(), v.clone());
            }
        }
        event.insert(
            "body".into(),
            json!({"type": "chain.enrolled", "version": 1, "data": data}),
        );
        let bytes = Value::Object(event).to_string();
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
            Err(AppError::Invalid(e)) if e.field == "stream" && e.rule.contains("already registered") => {
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

    /// A new COI under this Autolog's issuer FIN and the current UTC year.
    async fn issue_coi(&self) -> Result<Coi, AppError> {
        let Some(fin) = &self.coi_issuer else {
            return Err(AppError::Invalid(FieldError::new(
                "coi",
                "(absent)",
                "is required: this Autolog issues no COI of its own (start it with --coi-issuer-fin)",
            )));
        };
        // The UTC year, from the fixed RFC 3339 text form (YYYY-...).
        let now = Instant::now().to_string();
        let year: u16 = now.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
        let yy = u8::try_from(year % 100).unwrap_or(0);
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

impl Autolog {
    /// Checks chain steps against reference data (site type allowed for the step by the
    /// product's process, operator qualified at the site then, device at the site and in
    /// calibration, DINs never seen before) and returns the events Autolog records with
    /// them (one `din.linked` per collected bag). Refusals name the field under `prefix(i)`.
    pub(crate) async fn chain_step_rules(
        &self,
        drafts: &[EventDraft],
        prefix: &(dyn Fn(usize) -> String + Sync),
    ) -> Result<Vec<EventDraft>, AppError> {
        let mut extra = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if draft.body.event_type != "chain.collected" {
                continue;
            }
            let refuse = |field: &str, value: &str, rule: String| {
                AppError::Invalid(
                    FieldError::new(format!("body.data.{field}"), value, rule).under(&prefix(i)),
                )
            };
            let Some(coi) = draft.stream.strip_prefix("coi/") else {
                continue; // the store refuses a collection outside a chain
            };
            let data = &draft.body.data;
            let chain = match drafts[..i]
                .iter()
                .find(|d| d.stream == draft.stream && d.body.event_type == "chain.enrolled")
            {
                Some(enrolled) => enrolled.body.data.clone(),
                None => self.current_state(&draft.stream).await?,
            };
            let product_code = text(&chain, "product_code");
            if product_code.is_empty() {
                continue; // not enrolled: the store refuses it, naming the rule
            }
            let site_id = text(data, "collection_site_id");
            let started = instant_field(data, "started_at").unwrap_or(draft.occurred_at.instant);
            // The site type: one the product's collecting step allows.
            let product = self
                .current_state(&format!("product/{product_code}"))
                .await?;
            let steps = product
                .get("process")
                .and_then(|p| p.get("steps"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut allowed: Option<(String, Vec<String>)> = None;
            for step in &steps {
                let code = text(step, "step_code");
                let definition = self.current_state(&format!("step/{code}")).await?;
                if text(&definition, "cbv_biz_step") == "collecting" {
                    let types = step
                        .get("site_types")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect();
                    allowed = Some((code.to_string(), types));
                    break;
                }
            }
            let Some((step_code, allowed_types)) = allowed else {
                return Err(refuse(
                    "collection_site_id",
                    site_id,
                    format!("product {product_code}'s process has no step whose CBV bizStep is collecting"),
                ));
            };
            let site = self.current_state(&format!("site/{site_id}")).await?;
            let site_types: Vec<&str> = site
                .get("site_types")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !site_types
                .iter()
                .any(|t| allowed_types.iter().any(|a| a == t))
            {
                return Err(refuse(
                    "collection_site_id",
                    site_id,
                    format!(
                        "is a {} and may not perform step {step_code} of {product_code} (allowed: {})",
                        site_types.join(", "),
                        allowed_types.join(", ")
                    ),
                ));
            }
            // The operator: qualified at this site when the collection started.
            let operator_id = text(data, "operator_id");
            let operator = self.current_state(&format!("person/{operator_id}")).await?;
            let qualified = crate::alignment::qualified(&operator, Some(site_id), started);
            if !qualified {
                return Err(refuse(
                    "operator_id",
                    operator_id,
                    format!("holds no qualification at {site_id} valid at {started}"),
                ));
            }
            // The device: an apheresis device at this site, calibrated at the start.
            let device_id = text(data, "device_id");
            let device = self
                .current_state(&format!("equipment/{device_id}"))
                .await?;
            let device_rule = if text(&device, "equipment_type") != "apheresis_device" {
                Some(format!(
                    "is a {}, not an apheresis_device",
                    text(&device, "equipment_type")
                ))
            } else if text(&device, "site_id") != site_id {
                Some(format!(
                    "is at {}, not at {site_id}",
                    text(&device, "site_id")
                ))
            } else if instant_field(&device, "calibration_valid_until").is_none_or(|u| started >= u)
            {
                Some(format!(
                    "is not in calibration at {started} (calibration valid until {})",
                    device
                        .get("calibration_valid_until")
                        .and_then(Value::as_str)
                        .unwrap_or("never")
                ))
            } else {
                None
            };
            if let Some(rule) = device_rule {
                return Err(refuse("device_id", device_id, rule));
            }
            // Each DIN belongs to one COI, forever.
            let dins = data
                .get("dins")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (j, din) in dins.iter().filter_map(Value::as_str).enumerate() {
                let link = self.current_state(&format!("din/{din}")).await?;
                let owner = text(&link, "coi");
                if !owner.is_empty() {
                    let rule = if owner == coi {
                        "was already collected for this chain".to_string()
                    } else {
                        format!(
                            "already belongs to chain {owner}: a DIN belongs to one COI, forever"
                        )
                    };
                    return Err(refuse(&format!("dins[{j}]"), din, rule));
                }
                extra.push(EventDraft {
                    event_id: autolog_domain::Uuid::now_v7(),
                    stream: format!("din/{din}"),
                    occurred_at: draft.occurred_at.clone(),
                    actor: crate::AUTOLOG_ACTOR.to_string(),
                    site: None,
                    source: autolog_domain::Source {
                        system: "autolog".to_string(),
                        source_event_id: format!(
                            "din-link/{}/{}/{j}",
                            draft.source.system, draft.source.source_event_id
                        ),
                    },
                    reason: None,
                    corrects: None,
                    body: autolog_domain::Body {
                        event_type: "din.linked".to_string(),
                        version: 1,
                        data: json!({"din": din, "coi": coi}),
                    },
                });
            }
        }
        Ok(extra)
    }
}

impl Autolog {
    /// The chain of a COI as it stood at `valid_at`, as Autolog knew it at `known_at` (both
    /// default to now; `known_at` is capped at the last commit, so the same question always
    /// gets the same answer): patient key, product, state, custodian, units and their DINs,
    /// and the timeline of every event known then (corrections marked), each with its time
    /// in UTC, as recorded and in its site's zone, and its recorded-at time.
    pub async fn chain(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<Value, AppError> {
        let coi = Coi::parse("coi", coi)?.to_string();
        let stream = format!("coi/{coi}");
        let now = Instant::now();
        let valid_at = crate::read::parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        let events = self.store.stream_events(&stream, known_at).await?;
        if events.is_empty() {
            return Err(AppError::NotFound {
                what: "chain",
                id: coi,
            });
        }
        let effective = autolog_domain::bitemporal::effective_events(&events, valid_at, known_at);
        let mut enrolment = Value::Null;
        let mut collections = Vec::new();
        let mut cancelled = None;
        for event in &effective {
            match event.body.event_type.as_str() {
                "chain.enrolled" => enrolment = event.body.data.clone(),
                "chain.collected" => collections.push(&event.body.data),
                "chain.cancelled" => cancelled = Some(event.body.data.clone()),
                _ => {}
            }
        }
        let state = if cancelled.is_some() {
            "cancelled"
        } else if !collections.is_empty() {
            "collected"
        } else if enrolment.is_null() {
            "not_yet_enrolled"
        } else {
            "enrolled"
        };
        let custodian = collections
            .last()
            .map(|c| c["collection_site_id"].clone())
            .unwrap_or_else(|| enrolment["treatment_site_id"].clone());
        let units: Vec<Value> = collections
            .iter()
            .flat_map(|c| {
                let site = c["collection_site_id"].clone();
                c["dins"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |din| json!({"din": din, "collected_at_site": site}))
            })
            .collect();
        let superseded = autolog_domain::bitemporal::superseded_by(&events, known_at);
        let in_force: Vec<_> = effective.iter().map(|e| e.event_id).collect();
        let mut timeline = self.presented(&events).await?;
        for (entry, event) in timeline.iter_mut().zip(&events) {
            if let Some(by) = superseded.get(&event.event_id) {
                entry["superseded_by"] = json!(by.to_string());
            }
            entry["in_force"] = json!(in_force.contains(&event.event_id));
        }
        Ok(json!({
            "coi": coi,
            "valid_at": valid_at.to_string(),
            "known_at": known_at.to_string(),
            "patient_key": enrolment["patient_key"],
            "product_code": enrolment["product_code"],
            "treatment_site_id": enrolment["treatment_site_id"],
            "state": state,
            "custodian_site_id": custodian,
            "holds": [],
            "cancellation": cancelled,
            "units": units,
            "timeline": timeline,
        }))
    }
}
