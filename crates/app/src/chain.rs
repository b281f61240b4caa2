//! Enrolment and COI issuance: a patient (pseudonymous key) is enrolled for a product at a
//! treatment center, and the chain's COI is issued once, or an upstream COI accepted.

use autolog_domain::identifiers::{Coi, Fin};
use autolog_domain::{FieldError, Instant};
use serde_json::{json, Map, Value};

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
